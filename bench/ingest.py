"""Ingest benchmark: how close ``evidence`` comes to the cost of the work it cannot avoid.

Every figure is a ratio against a reference measured in the same run, on the same disk, so the
results compare across machines. Three parts (``--only a,b,c`` runs a subset):

(a) One large file of random data (``--big-size``, default 1 GiB), page cache warmed first.
    ``evidence ingest FILE --no-probe --json`` (a subprocess, fresh ``EVIDENCE_HOME`` each run) against
    hashlib SHA-256 alone over the same file in this process (1 MiB ``readinto`` chunks), and against
    ``dd if=FILE of=COPY bs=1M conv=fsync`` (the floor for a durable copy on this disk), and against
    ``cp FILE COPY && sync COPY`` (a plain copy made durable, no hash).
    Ratio = reference time / ingest time; the target is >= 0.8 of ``cp`` + ``sync`` (>= 0.9 of
    hashlib was an earlier one, still shown). Nothing is subtracted; the
    start-up time of ``evidence --version`` is reported separately for context.
(b) Many small files of random data (``--small-count`` x ``--small-size``, default 5,000 x 100 KiB)
    in one folder: ``evidence ingest DIR --no-probe --json`` against the shell reference
    ``cp -r DIR DEST && find DEST -type f -exec sha256sum {} + > /dev/null``; also, for context, the
    same with ``sync -f DEST`` after the copy (ingest's copies are on disk before it reports them).
    Ratio = reference time / ingest time; target >= 1.0. Every output line must say "stored".
(c) Watch latency: ``evidence watch``, ``evidence worker --queues intake,maintenance --concurrency 2``
    and a probe worker (as ``evidence serve`` runs them) share a fresh
    ``EVIDENCE_HOME`` (``EVIDENCE_QUIET_PERIOD`` from ``--quiet-period``,
    ``EVIDENCE_RECONCILE_INTERVAL=5``). Files are written one at a time into ``inbox/dock1/`` under a
    ``.part`` name and renamed (the close time), 20 ms apart. Latency = the sighting's ``updated_at``
    in the SQLite catalog (its last update, stamped as the worker moves the source to
    ``processed/`` right after the catalog commit) minus the close time. p50, p95 and max are
    reported. A first file, not counted, waits until the watcher and the worker are up.

Timed figures (a, b) are the median of 3 runs (``--runs``), interleaved with their references.
Each ``evidence`` subprocess gets a clean environment: inherited ``EVIDENCE_*`` variables are
dropped, so the benchmark never touches a real catalog or broker.

Run from the project root::

    .venv/bin/python bench/ingest.py [--json PATH] [--only a,b,c] [--keep]

Output: a table on stdout; ``--json PATH`` also writes every figure as JSON. The exit status is 1
when a part failed (its error is printed and recorded in the JSON); figures below their targets
are marked in the table and the JSON but do not change the exit status.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from report import (
    GIB,
    KIB,
    MIB,
    BenchError,
    Results,
    Rows,
    evidence_env,
    find_evidence,
    human_bytes,
    mb_per_s,
    parse_size,
    percentile,
    print_section,
    remove,
    run_bench,
    runs_text,
    tail,
    timed_run,
    verdict,
)

DEFAULT_RUNS = 3
CHUNK = MIB
HASHLIB_TARGET = 0.9  # an earlier target, kept as context
COPY_TARGET = 0.8  # against `cp FILE DEST && sync DEST`
SMALL_TARGET = 1.0
LATENCY_SPACING = 0.020
POLL_INTERVAL = 0.2
RECONCILE_INTERVAL = "5"
STOP_GRACE = 10.0
PARTS = ("a", "b", "c")


@dataclass(frozen=True)
class Config:
    evidence: str
    work: Path
    parts: tuple[str, ...]
    runs: int
    big_size: int
    small_count: int
    small_size: int
    latency_files: int
    latency_size: int
    quiet_period: float
    latency_timeout: float
    keep: bool


# ------------------------------------------------------------------------------------------ data sets
def write_random_file(path: Path, size: int, chunk: int = 16 * MIB) -> None:
    with path.open("wb") as out:
        left = size
        while left:
            n = min(chunk, left)
            out.write(os.urandom(n))
            left -= n
        out.flush()
        os.fsync(out.fileno())


def write_small_files(folder: Path, count: int, size: int) -> None:
    folder.mkdir(parents=True)
    width = len(str(count))
    for i in range(count):
        (folder / f"f{i:0{width}d}.bin").write_bytes(os.urandom(size))
    os.sync()


def read_through(path: Path) -> None:
    """Read a file once (warms the page cache)."""
    buf = bytearray(CHUNK)
    with path.open("rb", buffering=0) as src:
        while src.readinto(buf):
            pass


# ------------------------------------------------------------------------------------------ measurements
def time_hashlib(path: Path) -> tuple[float, str]:
    buf = bytearray(CHUNK)
    view = memoryview(buf)
    start = time.perf_counter()
    digest = hashlib.sha256()
    with path.open("rb", buffering=0) as src:
        while n := src.readinto(buf):
            digest.update(view[:n])
    return time.perf_counter() - start, digest.hexdigest()


def time_dd(source: Path, copy: Path) -> float:
    try:
        seconds, _ = timed_run(["dd", f"if={source}", f"of={copy}", "bs=1M", "conv=fsync", "status=none"])
    finally:
        copy.unlink(missing_ok=True)
    return seconds


def time_cp_sync(source: Path, copy: Path) -> float:
    """``cp FILE DEST && sync DEST``: a plain copy made durable (GNU ``sync FILE`` fsyncs it)."""
    try:
        seconds, _ = timed_run(["sh", "-c", 'cp "$1" "$2" && sync "$2"', "sh", str(source), str(copy)])
    finally:
        copy.unlink(missing_ok=True)
    return seconds


def time_shell_copy_hash(source: Path, dest: Path, *, durable: bool = False) -> float:
    """The shell reference; ``durable`` adds ``sync -f`` so the copies are on disk, as ingest's are."""
    script = 'cp -r "$1" "$2" && find "$2" -type f -exec sha256sum {} + > /dev/null'
    if durable:
        script = 'cp -r "$1" "$2" && sync -f "$2" && find "$2" -type f -exec sha256sum {} + > /dev/null'
    remove(dest)
    try:
        seconds, _ = timed_run(["sh", "-c", script, "sh", str(source), str(dest)])
    finally:
        remove(dest)
    return seconds


def evidence_version(cfg: Config) -> tuple[float, str]:
    """``evidence --version``: (seconds, output). Its time is the interpreter and import start-up."""
    return timed_run([cfg.evidence, "--version"], env=evidence_env(cfg.work / "home-version"), cwd=cfg.work)


def time_ingest(cfg: Config, target: Path, home: Path) -> tuple[float, list[dict[str, Any]]]:
    """``evidence ingest TARGET --no-probe --json`` with a fresh data directory; returns (seconds, records).

    Intake alone (copy, hash, verify, catalogue, dispose): reading metadata is a later stage with
    costs of its own (ffprobe per file), which the references here do not pay either.
    """
    remove(home)
    try:
        seconds, out = timed_run(
            [cfg.evidence, "ingest", str(target), "--no-probe", "--json"], env=evidence_env(home), cwd=cfg.work
        )
    finally:
        if not cfg.keep:
            remove(home)
    return seconds, [json.loads(line) for line in out.splitlines() if line.strip()]


def check_stored(records: list[dict[str, Any]], expected: int) -> None:
    statuses = Counter(str(record.get("status")) for record in records)
    if len(records) == expected and statuses["stored"] == expected:
        return
    odd = [record for record in records if record.get("status") != "stored"][:5]
    raise BenchError(
        f"ingest reported {len(records)} line(s), {statuses['stored']} stored, expected {expected} stored; "
        f"statuses {dict(statuses)}; first others: {json.dumps(odd, ensure_ascii=False)}"
    )


def repeat(runs: int, measure: Callable[[int], float]) -> list[float]:
    return [measure(i) for i in range(runs)]


# ------------------------------------------------------------------------------------------ (a) one large file
def bench_big(cfg: Config, data: Results) -> None:
    big = cfg.work / "big.bin"
    write_random_file(big, cfg.big_size)
    read_through(big)
    times: dict[str, list[float]] = {"hashlib": [], "dd": [], "cp_sync": [], "ingest": []}
    for i in range(cfg.runs):  # interleaved, so drift in the machine's state hits every method alike
        seconds, digest = time_hashlib(big)
        times["hashlib"].append(seconds)
        times["dd"].append(time_dd(big, cfg.work / "big.copy"))
        times["cp_sync"].append(time_cp_sync(big, cfg.work / "big.copy"))
        seconds, records = time_ingest(cfg, big, cfg.work / f"home-big-{i}")
        check_stored(records, 1)
        if records[0].get("sha256") != digest:
            raise BenchError(f"ingest digest {records[0].get('sha256')} differs from hashlib's {digest}")
        times["ingest"].append(seconds)
    if not cfg.keep:
        big.unlink()
    medians = {name: statistics.median(values) for name, values in times.items()}
    data.update(
        {
            "bytes": cfg.big_size,
            "runs_s": times,
            "median_s": medians,
            "mb_per_s": {name: mb_per_s(cfg.big_size, seconds) for name, seconds in medians.items()},
            "ratio_hashlib_over_ingest": medians["hashlib"] / medians["ingest"],
            "ratio_dd_over_ingest": medians["dd"] / medians["ingest"],
            "ratio_cp_sync_over_ingest": medians["cp_sync"] / medians["ingest"],
            "target_hashlib_ratio": HASHLIB_TARGET,
            "target_cp_sync_ratio": COPY_TARGET,
            "meets_target": medians["cp_sync"] / medians["ingest"] >= COPY_TARGET,
        }
    )


def rows_big(data: Results) -> Rows:
    med, rate = data["median_s"], data["mb_per_s"]
    ratio = data["ratio_hashlib_over_ingest"]
    copy_ratio = data["ratio_cp_sync_over_ingest"]
    return [
        ("file size", human_bytes(data["bytes"])),
        ("hashlib sha256 (in process)", f"{med['hashlib']:8.3f} s  {rate['hashlib']:8.1f} MB/s"),
        ("dd bs=1M conv=fsync", f"{med['dd']:8.3f} s  {rate['dd']:8.1f} MB/s"),
        ("cp FILE DEST && sync DEST", f"{med['cp_sync']:8.3f} s  {rate['cp_sync']:8.1f} MB/s"),
        ("evidence ingest FILE", f"{med['ingest']:8.3f} s  {rate['ingest']:8.1f} MB/s"),
        ("ratio cp+sync / ingest", f"{copy_ratio:8.3f}    target >= {COPY_TARGET}  {verdict(data['meets_target'])}"),
        ("ratio hashlib / ingest", f"{ratio:8.3f}    (earlier target >= {HASHLIB_TARGET})"),
        ("ratio dd / ingest", f"{data['ratio_dd_over_ingest']:8.3f}"),
        ("runs (s) hashlib", runs_text(data["runs_s"]["hashlib"])),
        ("runs (s) dd", runs_text(data["runs_s"]["dd"])),
        ("runs (s) cp+sync", runs_text(data["runs_s"]["cp_sync"])),
        ("runs (s) ingest", runs_text(data["runs_s"]["ingest"])),
    ]


# ------------------------------------------------------------------------------------------ (b) many small files
def bench_small(cfg: Config, data: Results) -> None:
    folder = cfg.work / "small"
    write_small_files(folder, cfg.small_count, cfg.small_size)
    total = cfg.small_count * cfg.small_size
    times: dict[str, list[float]] = {"reference": [], "reference_durable": [], "ingest": []}
    for i in range(cfg.runs):
        times["reference"].append(time_shell_copy_hash(folder, cfg.work / "small-copy"))
        times["reference_durable"].append(time_shell_copy_hash(folder, cfg.work / "small-copy", durable=True))
        seconds, records = time_ingest(cfg, folder, cfg.work / f"home-small-{i}")
        check_stored(records, cfg.small_count)
        times["ingest"].append(seconds)
    if not cfg.keep:
        remove(folder)
    medians = {name: statistics.median(values) for name, values in times.items()}
    ratio = medians["reference"] / medians["ingest"]
    data.update(
        {
            "files": cfg.small_count,
            "file_bytes": cfg.small_size,
            "bytes": total,
            "runs_s": times,
            "median_s": medians,
            "mb_per_s": {name: mb_per_s(total, seconds) for name, seconds in medians.items()},
            "files_per_s": {name: cfg.small_count / seconds for name, seconds in medians.items()},
            "ratio_reference_over_ingest": ratio,
            "ratio_durable_reference_over_ingest": medians["reference_durable"] / medians["ingest"],
            "target_ratio": SMALL_TARGET,
            "meets_target": ratio >= SMALL_TARGET,
        }
    )


def rows_small(data: Results) -> Rows:
    med, rate, fps = data["median_s"], data["mb_per_s"], data["files_per_s"]
    ratio = data["ratio_reference_over_ingest"]
    return [
        ("files", f"{data['files']} x {human_bytes(data['file_bytes'])} = {human_bytes(data['bytes'])}"),
        (
            "cp -r + sha256sum (reference)",
            f"{med['reference']:8.3f} s  {rate['reference']:8.1f} MB/s  {fps['reference']:8.0f} files/s",
        ),
        (
            "cp -r + sync + sha256sum",
            f"{med['reference_durable']:8.3f} s  {rate['reference_durable']:8.1f} MB/s  "
            f"{fps['reference_durable']:8.0f} files/s",
        ),
        ("evidence ingest DIR", f"{med['ingest']:8.3f} s  {rate['ingest']:8.1f} MB/s  {fps['ingest']:8.0f} files/s"),
        ("ratio reference / ingest", f"{ratio:8.3f}    target >= {SMALL_TARGET}  {verdict(data['meets_target'])}"),
        ("ratio durable reference / ingest", f"{data['ratio_durable_reference_over_ingest']:8.3f}"),
        ("runs (s) reference", runs_text(data["runs_s"]["reference"])),
        ("runs (s) durable reference", runs_text(data["runs_s"]["reference_durable"])),
        ("runs (s) ingest", runs_text(data["runs_s"]["ingest"])),
    ]


# ------------------------------------------------------------------------------------------ (c) watch latency
@dataclass
class Service:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    log: TextIO


def start_service(cfg: Config, name: str, args: Sequence[str], env: dict[str, str]) -> Service:
    log_path = cfg.work / f"{name}.log"
    log = log_path.open("w")
    # The working directory is the scratch folder: the embedded broker writes files relative to it.
    proc = subprocess.Popen(
        [cfg.evidence, *args], cwd=cfg.work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    return Service(name, proc, log_path, log)


def stop_services(services: Iterable[Service]) -> dict[str, str]:
    """SIGTERM every service, SIGKILL (its whole process group) any still running after the grace."""
    services = list(services)
    start = time.monotonic()
    for service in services:
        if service.proc.poll() is None:
            service.proc.send_signal(signal.SIGTERM)
    outcome: dict[str, str] = {}
    for service in services:
        try:
            code = service.proc.wait(timeout=max(0.0, start + STOP_GRACE - time.monotonic()))
            outcome[service.name] = f"exited {code} after {time.monotonic() - start:.1f} s"
        except subprocess.TimeoutExpired:
            os.killpg(service.proc.pid, signal.SIGKILL)
            service.proc.wait()
            outcome[service.name] = f"killed (SIGKILL) after {STOP_GRACE:.0f} s"
        service.log.close()
    return outcome


def check_alive(services: Iterable[Service]) -> None:
    for service in services:
        code = service.proc.poll()
        if code is not None:
            service.log.flush()
            raise BenchError(f"`evidence {service.name}` exited {code}:\n{tail(service.log_path.read_text())}")


def utc_timestamp(text: str) -> float:
    """A naive UTC datetime as SQLAlchemy stores it in SQLite, as a POSIX timestamp."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


class SightingRow(NamedTuple):
    status: str
    updated_at: str  # naive UTC
    disposition: str | None
    error: str | None


class Catalog:
    """Read-only view of the sightings in a SQLite catalog."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn: sqlite3.Connection | None = None

    def sightings(self) -> dict[str, SightingRow]:
        """File name -> its sighting; empty until the catalog exists."""
        if self.conn is None:
            if not self.path.exists():
                return {}
            self.conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=5)
        try:
            rows = self.conn.execute(
                "SELECT source_path, status, updated_at, disposition, error FROM sighting"
            ).fetchall()
        except sqlite3.OperationalError:
            return {}  # schema not created yet
        return {os.path.basename(path): SightingRow(*rest) for path, *rest in rows}

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


CATALOGUED = ("stored", "duplicate")
GIVEN_UP = ("failed", "ignored")


def wait_catalogued(
    catalog: Catalog, names: Sequence[str], timeout: float, services: Sequence[Service]
) -> dict[str, SightingRow]:
    """Poll until every name has a catalogued sighting; returns the sightings."""
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    wanted = set(names)
    while True:
        rows = catalog.sightings()
        for name in wanted - seen:
            row = rows.get(name)
            if row and row.status in CATALOGUED:
                seen.add(name)
            elif row and row.status in GIVEN_UP:
                raise BenchError(f"{name}: sighting {row.status}: {row.error}")
        if seen == wanted:
            return catalog.sightings()
        check_alive(services)
        if time.monotonic() > deadline:
            missing = sorted(wanted - seen)
            states = Counter(rows[name].status if name in rows else "no sighting" for name in missing)
            raise BenchError(
                f"{len(missing)} of {len(wanted)} file(s) not catalogued after {timeout:.0f} s "
                f"(their states: {dict(states)}; first: {missing[:3]})"
            )
        time.sleep(POLL_INTERVAL)


def drop_file(dock: Path, name: str, size: int) -> float:
    """Write under a temporary name, rename into place; returns the wall-clock time of the rename."""
    part = dock / f"{name}.part"
    with part.open("wb") as out:
        out.write(os.urandom(size))
    os.rename(part, dock / name)
    return time.time()


def drop_spaced(dock: Path, count: int, size: int) -> dict[str, float]:
    closes: dict[str, float] = {}
    start = time.monotonic()
    width = len(str(count))
    for i in range(count):
        delay = start + i * LATENCY_SPACING - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        name = f"lat{i:0{width}d}.bin"
        closes[name] = drop_file(dock, name, size)
    return closes


def bench_latency(cfg: Config, data: Results) -> None:
    home = cfg.work / "home-watch"
    dock = home / "inbox" / "dock1"
    dock.mkdir(parents=True)
    env = evidence_env(
        home, EVIDENCE_QUIET_PERIOD=str(cfg.quiet_period), EVIDENCE_RECONCILE_INTERVAL=RECONCILE_INTERVAL
    )
    services: list[Service] = []
    catalog = Catalog(home / "catalog.sqlite3")
    data.update(quiet_period_s=cfg.quiet_period, files=cfg.latency_files, file_bytes=cfg.latency_size)
    try:
        services.append(start_service(cfg, "watch", ["watch"], env))
        # As `evidence serve` runs them: intake on workers of its own, probing beside it.
        services.append(
            start_service(cfg, "worker", ["worker", "--queues", "intake,maintenance", "--concurrency", "2"], env)
        )
        services.append(start_service(cfg, "prober", ["worker", "--queues", "probe", "--concurrency", "1"], env))
        ready_start = time.monotonic()
        # A first file proves the whole chain (watcher, queue, worker, catalog) is up; it is not counted.
        drop_file(dock, "warmup.bin", cfg.latency_size)
        wait_catalogued(catalog, ["warmup.bin"], cfg.latency_timeout, services)
        data["startup_to_first_catalogued_s"] = time.monotonic() - ready_start
        closes = drop_spaced(dock, cfg.latency_files, cfg.latency_size)
        rows = wait_catalogued(catalog, list(closes), cfg.latency_timeout, services)
        data.update(latency_figures(closes, rows))
    except BenchError:
        for service in services:
            service.log.flush()
            data[f"{service.name}_log_tail"] = tail(service.log_path.read_text(errors="replace"), 40)
        raise
    finally:
        catalog.close()
        data["shutdown"] = stop_services(services)


def latency_figures(closes: dict[str, float], rows: dict[str, SightingRow]) -> Results:
    latencies = [utc_timestamp(rows[name].updated_at) - close for name, close in closes.items()]
    if min(latencies) < 0:
        raise BenchError(f"negative latency {min(latencies):.3f} s: updated_at is not the UTC the benchmark assumes")
    return {
        "latency_s": {
            "p50": percentile(latencies, 50),
            "p95": percentile(latencies, 95),
            "max": max(latencies),
            "min": min(latencies),
        },
        "statuses": dict(Counter(rows[name].status for name in closes)),
        "dispositions": dict(Counter(str(rows[name].disposition) for name in closes)),
        "span_of_writes_s": max(closes.values()) - min(closes.values()),
    }


def rows_latency(data: Results) -> Rows:
    rows: Rows = [
        ("files", f"{data['files']} x {human_bytes(data['file_bytes'])}, {LATENCY_SPACING * 1000:.0f} ms apart"),
        ("quiet period (configured)", f"{data['quiet_period_s']:.2f} s"),
    ]
    if "startup_to_first_catalogued_s" in data:
        rows.append(("start-up to first catalogued", f"{data['startup_to_first_catalogued_s']:8.3f} s"))
    if "latency_s" in data:
        lat = data["latency_s"]
        rows += [
            ("latency p50", f"{lat['p50']:8.3f} s"),
            ("latency p95", f"{lat['p95']:8.3f} s"),
            ("latency max", f"{lat['max']:8.3f} s"),
            ("latency min", f"{lat['min']:8.3f} s"),
            ("statuses", json.dumps(data["statuses"])),
            ("dispositions", json.dumps(data["dispositions"])),
        ]
    rows += [(f"shutdown {name}", outcome) for name, outcome in data.get("shutdown", {}).items()]
    return rows


# ------------------------------------------------------------------------------------------ reporting


def context(cfg: Config) -> Results:
    version_runs = repeat(cfg.runs, lambda _: evidence_version(cfg)[0])
    version = evidence_version(cfg)[1]
    return {
        "evidence_version": version.strip(),
        "evidence_version_startup_s": statistics.median(version_runs),
        "evidence_version_runs_s": version_runs,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "runs_per_figure": cfg.runs,
    }


def rows_context(data: Results) -> Rows:
    return [
        ("evidence", data["evidence_version"]),
        ("`evidence --version` (start-up)", f"{data['evidence_version_startup_s']:8.3f} s"),
        ("timed figures", f"median of {data['runs_per_figure']} runs"),
        ("python / cpus", f"{data['python']} / {data['cpus']}"),
        ("platform", data["platform"]),
    ]


SECTIONS: dict[str, tuple[str, Callable[[Config, Results], None], Callable[[Results], Rows]]] = {
    "a": ("(a) one large file", bench_big, rows_big),
    "b": ("(b) many small files in one folder", bench_small, rows_small),
    "c": ("(c) watch latency: rename in inbox -> catalogued", bench_latency, rows_latency),
}


def run_all(cfg: Config) -> tuple[Results, bool]:
    results: Results = {"context": context(cfg)}
    print_section("context", rows_context(results["context"]))
    ok = True
    for part in cfg.parts:
        title, bench, rows = SECTIONS[part]
        data: Results = {}
        results[part] = data
        try:
            bench(cfg, data)
        except (BenchError, OSError, subprocess.SubprocessError) as exc:
            ok = False
            data["error"] = str(exc)
            shutdown = [(f"shutdown {name}", outcome) for name, outcome in data.get("shutdown", {}).items()]
            print_section(title, [("FAILED", str(exc)), *shutdown])
            print(f"benchmark part ({part}) failed: {exc}", file=sys.stderr)
            continue
        print_section(title, rows(data))
    return results, ok


# ------------------------------------------------------------------------------------------ command line
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--only", default=",".join(PARTS), help="Parts to run, e.g. a,c (default: a,b,c).")
    parser.add_argument("--json", type=Path, help="Also write every figure to this JSON file.")
    parser.add_argument("--workdir", type=Path, help="Make the temporary directory inside this one.")
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS, help="Runs per timed figure (default 3).")
    parser.add_argument("--keep", action="store_true", help="Keep the temporary directory and data.")
    parser.add_argument("--evidence", help="The evidence command (default: beside this Python).")
    parser.add_argument("--big-size", type=parse_size, default=GIB, help="(a) file size, e.g. 1G (default).")
    parser.add_argument("--small-count", type=int, default=5000, help="(b) number of files (default 5000).")
    parser.add_argument("--small-size", type=parse_size, default=100 * KIB, help="(b) file size (default 100K).")
    parser.add_argument("--latency-files", type=int, default=200, help="(c) number of files (default 200).")
    parser.add_argument("--latency-size", type=parse_size, default=64 * KIB, help="(c) file size (default 64K).")
    parser.add_argument("--quiet-period", type=float, default=0.5, help="(c) EVIDENCE_QUIET_PERIOD (default 0.5).")
    parser.add_argument(
        "--latency-timeout", type=float, default=120.0, help="(c) seconds to wait for the catalog (default 120)."
    )
    return parser.parse_args(argv)


def make_config(args: argparse.Namespace) -> Config:
    parts = tuple(part.strip() for part in args.only.split(",") if part.strip())
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise SystemExit(f"--only: unknown part(s) {', '.join(sorted(unknown))}; choose from {', '.join(PARTS)}")
    if args.runs < 1:
        raise SystemExit("--runs must be at least 1")
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-ingest-", dir=args.workdir))
    return Config(
        evidence=args.evidence or find_evidence(),
        work=work,
        parts=parts,
        runs=args.runs,
        big_size=args.big_size,
        small_count=args.small_count,
        small_size=args.small_size,
        latency_files=args.latency_files,
        latency_size=args.latency_size,
        quiet_period=args.quiet_period,
        latency_timeout=args.latency_timeout,
        keep=args.keep,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = make_config(args)
    return run_bench(lambda: run_all(cfg), work=cfg.work, keep=cfg.keep, json_path=args.json)


if __name__ == "__main__":
    sys.exit(main())
