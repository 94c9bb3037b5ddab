"""What the benchmarks share: sizes, their one error, and how they print and save their figures."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

KIB = 1 << 10
MIB = 1 << 20
GIB = 1 << 30

Results = dict[str, Any]
Rows = list[tuple[str, str]]


class BenchError(RuntimeError):
    """A measurement could not be made, or the product's output was wrong."""


def human_bytes(n: int) -> str:
    for unit, size in (("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n} B"


def remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


def tail(text: str, lines: int = 20) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def verdict(ok: bool, missed: str = "BELOW TARGET") -> str:
    return "ok" if ok else missed


def runs_text(values: Sequence[float]) -> str:
    return "  ".join(f"{value:.3f}" for value in values)


def print_section(title: str, rows: Rows) -> None:
    print(f"\n{title}")
    width = max((len(label) for label, _ in rows), default=0)
    for label, value in rows:
        print(f"  {label:<{width}}  {value}")


def run_bench(run_all: Callable[[], tuple[Results, bool]], *, work: Path, keep: bool, json_path: Path | None) -> int:
    """Run a benchmark's parts, then :func:`finish`; the scratch folder goes even if a part raised
    (unless ``keep``)."""
    started = time.monotonic()
    try:
        results, ok = run_all()
    except BaseException:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
        raise
    return finish(results, ok, work=work, keep=keep, started=started, json_path=json_path)


def finish(results: Results, ok: bool, *, work: Path, keep: bool, started: float, json_path: Path | None) -> int:
    """Remove (or keep) the scratch folder, print the running time, save the JSON; the exit status."""
    if keep:
        print(f"\nkept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    results["context"]["benchmark_seconds"] = time.monotonic() - started
    print(f"\nbenchmark took {results['context']['benchmark_seconds']:.0f} s")
    if json_path:
        json_path.write_text(json.dumps(results, indent=2) + "\n")
    return 0 if ok else 1
