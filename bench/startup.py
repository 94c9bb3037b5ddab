"""Start-up benchmark: how long ``evidence`` takes before it does anything useful.

Three figures, each the median wall time of ``--runs`` fresh processes (default 15), interleaved
with the reference ``python -c pass`` (the same interpreter, started the same way) so the figures
compare across machines and across a busy moment:

- ``evidence --version``: the group alone (target under 0.25 s);
- ``evidence --help``: the group and the one-line help of every command (no command imported);
- ``evidence ingest FILE --json`` (64 KiB of random data, a new file each time): from the start of
  the process to the moment the file is first opened (target under 0.4 s). The moment is taken
  inside the process by an audit hook (``sys.addaudithook``, event ``open``) on the monotonic clock,
  which every process on the machine shares; the ingest then runs to its end.

Every ``evidence`` process runs as ``python -m pipeline`` with a clean environment (no inherited
``EVIDENCE_*`` variables, byte code cached as an installed program's is) and an ``EVIDENCE_HOME`` in
a temporary folder, its catalog made and one ingest run once before the timed runs (a catalog's
first creation and the first compilation of the modules are not start-up), so the benchmark never
touches a real catalog. Run from the project root::

    .venv/bin/python bench/startup.py [--runs N] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {"version": 0.25, "first read": 0.4}

# Run the command line with an audit hook that writes, once, the monotonic time at which the file
# named in argv[1] is first opened, to the file named in argv[2].
FIRST_READ = """
import os, sys, time
target, mark = os.fsencode(os.path.abspath(sys.argv[1])), sys.argv[2]
def hook(event, args):
    if event == "open" and args and isinstance(args[0], (str, bytes)) and os.fsencode(args[0]) == target:
        if not os.path.exists(mark):
            with open(mark, "w") as out:
                out.write(repr(time.monotonic()))
sys.addaudithook(hook)
sys.argv = ["evidence", "ingest", sys.argv[1], "--json"]
from pipeline.cli import run
run()
"""


def clean_env(home: Path) -> dict[str, str]:
    """No inherited ``EVIDENCE_*`` settings, and byte-code caching as an installed program has it
    (``PYTHONDONTWRITEBYTECODE`` would make every run compile the project's modules again)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVIDENCE_") and k != "PYTHONDONTWRITEBYTECODE"}
    return {**env, "EVIDENCE_HOME": str(home)}


def wall(args: list[str], env: dict[str, str]) -> float:
    """Seconds from starting ``args`` to its end; it must succeed."""
    start = time.monotonic()
    subprocess.run(args, env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - start


def first_read(folder: Path, n: int) -> float:
    """Seconds from starting ``evidence ingest`` on one small file to its first opening of it."""
    source = folder / f"clip-{n}.bin"
    source.write_bytes(os.urandom(64 << 10))
    mark = folder / f"mark-{n}"
    start = time.monotonic()
    subprocess.run(
        [sys.executable, "-c", FIRST_READ, str(source), str(mark)],
        env=clean_env(folder / "home"),
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    if not mark.exists():
        raise RuntimeError("the ingest never opened its file")
    return float(mark.read_text()) - start


def measure(runs: int) -> dict[str, dict[str, float]]:
    evidence = [sys.executable, "-m", "pipeline"]
    with tempfile.TemporaryDirectory(prefix="evidence-startup-") as tmp:
        folder = Path(tmp)
        env = clean_env(folder / "home")
        wall([*evidence, "items"], env)  # the catalog, made once
        first_read(folder, -1)  # and the byte code of what an ingest imports, cached once
        timed: dict[str, Callable[[int], float]] = {
            "python -c pass": lambda n: wall([sys.executable, "-c", "pass"], env),
            "version": lambda n: wall([*evidence, "--version"], env),
            "help": lambda n: wall([*evidence, "--help"], env),
            "first read": lambda n: first_read(folder, n),
        }
        samples: dict[str, list[float]] = {name: [] for name in timed}
        for n in range(runs):  # interleaved, so a busy moment touches every figure alike
            for name, run in timed.items():
                samples[name].append(run(n))
    reference = statistics.median(samples["python -c pass"])
    return {
        name: {
            "median_s": statistics.median(values),
            "min_s": min(values),
            "over_reference_s": statistics.median(values) - reference,
        }
        for name, values in samples.items()
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=15, help="processes per figure (default 15)")
    parser.add_argument("--json", type=Path, help="also write the figures here as JSON")
    options = parser.parse_args()
    if options.runs < 1:
        parser.error("--runs must be 1 or more")
    figures = measure(options.runs)
    print(f"{'':<16} {'median':>8} {'min':>8} {'over python':>12}  target")
    for name, figure in figures.items():
        target = TARGETS.get(name)
        verdict = "" if target is None else f"< {target:.2f} s " + ("ok" if figure["median_s"] < target else "MISSED")
        print(
            f"{name:<16} {figure['median_s']:>7.3f}s {figure['min_s']:>7.3f}s "
            f"{figure['over_reference_s']:>11.3f}s  {verdict}"
        )
    if options.json:
        options.json.write_text(json.dumps({"runs": options.runs, "figures": figures}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
