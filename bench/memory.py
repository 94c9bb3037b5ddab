"""Memory benchmark (issue 14): what an ``evidence serve`` on the embedded default costs while it
waits, and while it works through a corpus dropped into a dock's folder.

``evidence serve`` starts on a fresh ``EVIDENCE_HOME`` (SQLite catalog, embedded queue, web
application on a free loopback port) as a process group of its own. Memory is the PSS summed over
every live process of the group (``Pss`` of ``/proc/PID/smaps_rollup``: a page shared by n
processes counts 1/n in each, so the sum is what the group costs the machine), sampled every
``--interval`` seconds:

- **idle**: after start-up, once the worker pools have shrunk to nothing (Celery's autoscaler,
  its keep-alive shortened to 2 s), the median of ``--idle-seconds`` of samples; target <= 150 MiB;
- **busy**: from dropping the corpus of ``bench/corpus.py`` (its default 117 files unless sized down
  with ``--clips/--jpegs/--wavs``) into ``inbox/dock1/`` until every file that can be is catalogued
  and the pools have shrunk again: the peak and the median, and the most processes seen at once;
- **idle after**: the same as idle, once every file is catalogued and the group's processes have
  stayed the same for a while (what the work left behind, pool processes that did not go included).

The reference, measured in the same run: ``python -c 'import time; time.sleep(…)'``, one bare
interpreter, so the figures can be read against what any Python process costs on the machine.

Run from the project root::

    .venv/bin/python bench/memory.py [--idle-seconds 10] [--interval 0.5] [--json PATH] [--keep]
        [--clips 10 --clip-seconds 20 --wavs 5 --jpegs 100]
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from corpus import EMPTY, Config, build_corpus
from report import BenchError, Results, Rows, evidence_env, find_evidence, print_section, run_bench, tail

from pipeline.runtime import processes

TARGET_IDLE_MIB = 150.0
START_TIMEOUT = 90.0
WORK_TIMEOUT = 1800.0
QUIET_SECONDS = 12.0  # the group's process count unchanged for this long: the work (and start-up's) done


def pss_kib(pid: int) -> int:
    """The process's proportional set size in KiB (0 when it has gone)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return 0


def group_members(pgid: int) -> list[int]:
    """The live processes of a process group (zombies excluded)."""
    return [p.pid for p in processes() if p.pgid == pgid and p.alive]


def sample(pgid: int) -> tuple[float, int]:
    """The group's summed PSS in MiB and its number of processes."""
    members = group_members(pgid)
    return sum(pss_kib(pid) for pid in members) / 1024, len(members)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(condition: Callable[[], bool], timeout: float, what: str, interval: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out waiting for {what}")
        time.sleep(interval)


class Serve:
    """``evidence serve`` as a process group of its own, on a fresh data folder."""

    def __init__(self, evidence: str, home: Path) -> None:
        self.log = home.parent / "serve.log"
        self.env = evidence_env(
            home,
            EVIDENCE_WEB_BIND=f"127.0.0.1:{free_port()}",
            EVIDENCE_QUIET_PERIOD="1",
            AUTOSCALE_KEEPALIVE="2",
        )
        self.evidence = evidence
        self.process = subprocess.Popen(
            [evidence, "serve"],
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def pgid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def items(self) -> int:
        answer = subprocess.run(
            [self.evidence, "items", "--json"], env=self.env, capture_output=True, check=False, stdin=subprocess.DEVNULL
        )
        return len(answer.stdout.splitlines()) if answer.returncode == 0 else -1

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.pgid, signal.SIGTERM)
            try:
                self.process.wait(timeout=90)
            except subprocess.TimeoutExpired:
                os.killpg(self.pgid, signal.SIGKILL)
                self.process.wait()


def settle(serve: Serve, interval: float) -> int:
    """Wait until the group's process count has stayed the same for QUIET_SECONDS; returns it."""
    last, since = -1, time.monotonic()
    deadline = time.monotonic() + WORK_TIMEOUT
    while time.monotonic() < deadline:
        _, count = sample(serve.pgid)
        if count != last:
            last, since = count, time.monotonic()
        elif time.monotonic() - since >= QUIET_SECONDS:
            return count
        time.sleep(interval)
    raise BenchError("the workers' pools never settled")


def idle_pss(serve: Serve, seconds: float, interval: float) -> tuple[float, int]:
    values, counts = [], []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pss, count = sample(serve.pgid)
        values.append(pss)
        counts.append(count)
        time.sleep(interval)
    return statistics.median(values), max(counts)


def reference_pss(interval: float) -> float:
    bare = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=True)
    try:
        time.sleep(max(1.0, interval))
        return pss_kib(bare.pid) / 1024
    finally:
        bare.kill()
        bare.wait()


def measure(args: argparse.Namespace, work: Path) -> Results:
    cfg = Config(
        evidence=find_evidence(),
        work=work,
        clips=args.clips,
        clip_seconds=args.clip_seconds,
        wavs=args.wavs,
        jpegs=args.jpegs,
        runs=1,
        keep=args.keep,
    )
    corpus = build_corpus(cfg, work / "corpus")
    expected = sum(1 for kind in corpus.kinds.values() if kind != EMPTY)
    results: Results = {"python_sleep_mib": reference_pss(args.interval), "files": corpus.files}
    serve = Serve(cfg.evidence, work / "home")
    try:
        wait_until(lambda: "serving" in serve.output(), START_TIMEOUT, "serve to start", args.interval)
        results["idle_processes"] = settle(serve, args.interval)
        results["idle_mib"], _ = idle_pss(serve, args.idle_seconds, args.interval)

        inbox = work / "home" / "inbox" / "dock1"
        inbox.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        busy: list[float] = []
        most = 0
        for path in sorted(corpus.folder.iterdir()):
            os.link(path, inbox / path.name)
        next_count = time.monotonic()
        catalogued = 0
        last_count, steady_since = -1, time.monotonic()
        while True:
            if time.monotonic() - started > WORK_TIMEOUT:
                raise BenchError(f"only {catalogued} of {expected} files catalogued in {WORK_TIMEOUT:.0f} s")
            pss, count = sample(serve.pgid)
            busy.append(pss)
            most = max(most, count)
            if count != last_count:
                last_count, steady_since = count, time.monotonic()
            if time.monotonic() >= next_count:
                catalogued = serve.items()
                next_count = time.monotonic() + 5
            # Done: every file catalogued and the processes unchanged for a while (the pools back to
            # idle, or as far as they shrink).
            if catalogued >= expected and time.monotonic() - steady_since >= QUIET_SECONDS:
                break
            time.sleep(args.interval)
        results["work_seconds"] = time.monotonic() - started
        results["busy_peak_mib"] = max(busy)
        results["busy_median_mib"] = statistics.median(busy)
        results["busy_processes_max"] = most
        results["catalogued"] = catalogued
        results["idle_after_mib"], results["idle_after_processes"] = idle_pss(serve, args.idle_seconds, args.interval)
        results["context"] = {"load_average": os.getloadavg(), "cores": os.cpu_count()}
    except BenchError as exc:
        raise BenchError(f"{exc}\n{tail(serve.output())}") from exc
    finally:
        serve.stop()
    return results


def rows(results: Results) -> Rows:
    ok = results["idle_mib"] <= TARGET_IDLE_MIB
    return [
        ("corpus", f"{results['files']} files, {results['catalogued']} catalogued in {results['work_seconds']:.0f} s"),
        ("reference: bare python", f"{results['python_sleep_mib']:.1f} MiB"),
        (
            "idle serve",
            f"{results['idle_mib']:.1f} MiB in {results['idle_processes']} processes"
            f"  target <= {TARGET_IDLE_MIB:.0f}  {'ok' if ok else 'MISSED'}",
        ),
        (
            "busy (corpus)",
            f"peak {results['busy_peak_mib']:.1f} MiB, median {results['busy_median_mib']:.1f} MiB,"
            f" up to {results['busy_processes_max']} processes",
        ),
        (
            "idle after the work",
            f"{results['idle_after_mib']:.1f} MiB in {results['idle_after_processes']} processes",
        ),
        ("load average at the end", " ".join(f"{v:.2f}" for v in results["context"]["load_average"])),
    ]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument("--interval", type=float, default=0.5)
    parser.add_argument("--clips", type=int, default=10)
    parser.add_argument("--clip-seconds", type=float, default=20.0)
    parser.add_argument("--wavs", type=int, default=5)
    parser.add_argument("--jpegs", type=int, default=100)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    work = args.workdir or Path(os.environ.get("TMPDIR", "/tmp")) / f"evidence-memory-{os.getpid()}"

    def run_all() -> tuple[Results, bool]:
        results = measure(args, work)
        print_section("memory of evidence serve (PSS summed over its process group)", rows(results))
        return results, True  # a missed target is marked, not a failure of the benchmark

    return run_bench(run_all, work=work, keep=args.keep, json_path=args.json)


if __name__ == "__main__":
    sys.exit(main())
