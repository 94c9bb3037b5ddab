"""What the benchmarks share: sizes, their one error, how they run the product and other programs,
and how they print and save their figures."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

KIB = 1 << 10
MIB = 1 << 20
GIB = 1 << 30
MB = 1_000_000

Results = dict[str, Any]
Rows = list[tuple[str, str]]


class BenchError(RuntimeError):
    """A measurement could not be made, or the product's output was wrong."""


def human_bytes(n: int) -> str:
    for unit, size in (("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n} B"


def parse_size(text: str) -> int:
    """``1G``, ``256M``, ``100K``, ``4096``: binary units (a size given on a benchmark's command line)."""
    units = {"K": KIB, "M": MIB, "G": GIB}
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))
    return ordered[int(rank) - 1]


def mb_per_s(size: int, seconds: float) -> float:
    return size / MB / seconds


def find_evidence() -> str:
    """The `evidence` command of the virtualenv running the benchmark, else the one on PATH."""
    beside = Path(sys.executable).parent / "evidence"
    if beside.exists():
        return str(beside)
    found = shutil.which("evidence")
    if found is None:
        raise SystemExit("cannot find the `evidence` command; run this with the project's virtualenv Python")
    return found


def evidence_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment for an `evidence` run: inherited EVIDENCE_* variables dropped, so a benchmark
    never touches a real catalog or broker, and ``home`` as the data directory."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("EVIDENCE_")}
    env["EVIDENCE_HOME"] = str(home)
    env.update(extra)
    return env


def timed_run(cmd: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> tuple[float, str]:
    """Run ``cmd`` to completion (no input, output captured); returns (seconds, stdout). Raises
    :class:`BenchError` with the end of its output on a non-zero exit."""
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, check=False)
    seconds = time.perf_counter() - start
    stdout = proc.stdout.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise BenchError(
            f"`{' '.join(cmd)}` exited {proc.returncode}:\n{tail(proc.stderr.decode('utf-8', 'replace') or stdout)}"
        )
    return seconds, stdout


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
