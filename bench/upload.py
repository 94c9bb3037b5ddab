"""Upload benchmark: one large file sent over loopback to ``evidence web``'s resumable uploads (tus
1.0) in fixed chunks, against ``curl -T`` of the same file to a plain PUT endpoint, in the same run.

- **tus**: ``evidence web`` on a fresh ``EVIDENCE_HOME`` (SQLite catalog, embedded queue, no
  workers), a dock token made with ``evidence token create``. One ``POST`` declaring the length and
  the file's SHA-256, then ``PATCH`` requests of ``--chunk`` bytes (default 8 MiB), each with its
  ``Upload-Checksum: sha256 …``, on one kept-alive connection. The server appends each chunk to the
  partial file (written on one thread, its checksum on another, while the next bytes arrive), fsyncs
  it, records the offset, and reads the chunk back from the file into the whole file's SHA-256 while
  the next chunk arrives; after the last chunk the store adopts the file (checked against the
  declared SHA-256, made read-only, linked under its digest: no copy) and it is catalogued; the time
  runs until the last answer (with its ``Evidence-Item``) arrives. The chunks' checksums and the file's SHA-256
  are computed before the clock starts: they are the client's work, not the server's.
- **reference**: a minimal PUT server (Python's ``http.server``, its own process) that writes the
  body to a file in 1 MiB blocks and fsyncs it, fed by ``curl -T FILE``.
- **floor**: the same minimal server taking the file in ``--chunk`` PATCHes on one connection,
  appending each through the page cache and fsyncing it before answering: the durability tus
  promises (a piece is on disk before its offset is given), kept the plain way, and nothing else.
  The tus server writes its pieces around the page cache (``O_DIRECT``), which on some disks
  flushes a piece at a time faster than the plain way: it can then beat the floor.

Each run's data is removed before the next (the reference's file, the tus run's data folder): the
page cache and the disk they fill made later runs of either side slower.

Ratio = tus throughput / reference throughput (target >= 0.7). Also reported: the tus transfer
alone (every chunk but the intake after the last one: the last answer's time minus the median
chunk's), and the CPU seconds each server process spent per GB received (from /proc). The digest
read back while the chunks arrive lives in the server's memory (a hash's state cannot be saved), so
an upload that spans a server restart has its file read in full at completion instead (not
measured here).

Run from the project root::

    .venv/bin/python bench/upload.py [--size 1G] [--chunk 8M] [--runs 3] [--json PATH] [--keep]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.client
import json
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from report import (
    GIB,
    MIB,
    BenchError,
    Results,
    Rows,
    evidence_env,
    find_evidence,
    human_bytes,
    mb_per_s,
    parse_size,
    print_section,
    run_bench,
    runs_text,
    tail,
    verdict,
)

TARGET = 0.7
START_TIMEOUT = 60.0
TICKS = os.sysconf("SC_CLK_TCK")

# The reference: a PUT endpoint that does the least a durable receiver must (write, fsync). Its
# PATCH is the floor of a resumable upload: each piece appended and fsynced before it is answered,
# as tus's promise needs, and nothing else (no checksum, no catalog).
REFERENCE_SERVER = r"""
import os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer

class Put(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    appending = None

    def do_PATCH(self):
        if Put.appending is None:
            Put.appending = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        left = int(self.headers["Content-Length"])
        while left:
            block = self.rfile.read(min(left, 1 << 20))
            if not block:
                break
            os.write(Put.appending, block)
            left -= len(block)
        os.fsync(Put.appending)
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_PUT(self):
        left = int(self.headers["Content-Length"])
        fd = os.open(sys.argv[2], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        try:
            while left:
                block = self.rfile.read(min(left, 1 << 20))
                if not block:
                    break
                os.write(fd, block)
                left -= len(block)
            os.fsync(fd)
        finally:
            os.close(fd)
        self.send_response(201)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass

server = HTTPServer(("127.0.0.1", 0), Put)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


@dataclass(frozen=True)
class Config:
    evidence: str
    work: Path
    size: int
    chunk: int
    runs: int
    keep: bool


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a running process, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def write_random_file(path: Path, size: int) -> None:
    with path.open("wb") as handle:
        left = size
        while left:
            block = os.urandom(min(left, 16 * MIB))
            handle.write(block)
            left -= len(block)


def read_through(path: Path) -> None:
    with path.open("rb") as handle:
        while handle.read(16 * MIB):
            pass


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# ------------------------------------------------------------------------------------- the servers
class EvidenceWeb:
    """``evidence web`` on a fresh data directory, with a dock token."""

    def __init__(self, cfg: Config, home: Path) -> None:
        self.env = evidence_env(home, EVIDENCE_ACTOR="bench", EVIDENCE_UPLOAD_RESERVE_BYTES=str(64 * MIB))
        made = subprocess.run(
            [cfg.evidence, "token", "create", "bench-dock", "--role", "dock", "--dock", "bench", "--json"],
            env=self.env,
            capture_output=True,
            check=False,
        )
        if made.returncode != 0:
            raise BenchError(f"cannot make a dock token:\n{tail(made.stderr.decode(errors='replace'))}")
        self.token = json.loads(made.stdout)["token"]
        self.port = free_port()
        self.log = home.parent / f"{home.name}-web.log"
        self.process = subprocess.Popen(
            [cfg.evidence, "web", "--bind", f"127.0.0.1:{self.port}"],
            env=self.env,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while not re.search(r"web: http://", self.log.read_text(errors="replace")):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise BenchError(f"evidence web did not start:\n{tail(self.log.read_text(errors='replace'))}")
            time.sleep(0.1)

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


class ReferencePut:
    """The plain PUT endpoint, its own Python process."""

    def __init__(self, target: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", REFERENCE_SERVER, "serve", str(target)], stdout=subprocess.PIPE, text=True
        )
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline())

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


# ---------------------------------------------------------------------------------- measurements
def checksums(path: Path, chunk: int) -> tuple[str, list[str]]:
    """The file's SHA-256 and each chunk's ``Upload-Checksum``, made before timing."""
    whole, pieces = hashlib.sha256(), []
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            whole.update(block)
            pieces.append("sha256 " + base64.b64encode(hashlib.sha256(block).digest()).decode())
    return whole.hexdigest(), pieces


def time_tus(cfg: Config, source: Path, home: Path) -> dict[str, Any]:
    """One upload to a fresh ``evidence web``: seconds to the last answer, each chunk's seconds,
    the server's CPU seconds, and the item it names."""
    digest, pieces = checksums(source, cfg.chunk)
    web = EvidenceWeb(cfg, home)
    try:
        connection = http.client.HTTPConnection("127.0.0.1", web.port, timeout=600)
        base = {"Authorization": f"Bearer {web.token}", "Tus-Resumable": "1.0.0"}
        meta = ",".join(
            f"{key} {base64.b64encode(value.encode()).decode()}"
            for key, value in (("filename", source.name), ("sha256", digest))
        )
        with source.open("rb") as handle:
            cpu_before = cpu_seconds(web.process.pid)
            start = time.perf_counter()
            connection.request(
                "POST", "/api/v1/uploads", headers={**base, "Upload-Length": str(cfg.size), "Upload-Metadata": meta}
            )
            created = connection.getresponse()
            created.read()
            if created.status != 201:
                raise BenchError(f"creating the upload was answered {created.status}")
            location = created.headers["Location"]
            offset, times, answer = 0, [], None
            for checksum in pieces:
                block = handle.read(cfg.chunk)
                began = time.perf_counter()
                headers = {
                    **base,
                    "Content-Type": "application/offset+octet-stream",
                    "Upload-Offset": str(offset),
                    "Upload-Checksum": checksum,
                }
                connection.request("PATCH", location, body=block, headers=headers)
                answer = connection.getresponse()
                answer.read()
                times.append(time.perf_counter() - began)
                if answer.status != 204:
                    raise BenchError(f"a chunk at {offset} was answered {answer.status}: {answer.headers}")
                offset = int(answer.headers["Upload-Offset"])
            seconds = time.perf_counter() - start
            cpu = cpu_seconds(web.process.pid) - cpu_before
        assert answer is not None
        item = answer.headers.get("Evidence-Item")
        if not item:
            raise BenchError(f"the upload ended without an item: {answer.headers.get('Evidence-Error')}")
        log = web.log.read_text(errors="replace")
    finally:
        web.stop()
        if not cfg.keep:  # as the reference's file is: what a run leaves must not slow the next
            shutil.rmtree(home, ignore_errors=True)
    return {"seconds": seconds, "chunk_seconds": times, "cpu_seconds": cpu, "item": item, "log_tail": tail(log, 5)}


def time_reference(source: Path, target: Path) -> dict[str, Any]:
    """``curl -T`` to the plain PUT endpoint: seconds and the server's CPU seconds."""
    server = ReferencePut(target)
    try:
        cpu_before = cpu_seconds(server.process.pid)
        start = time.perf_counter()
        done = subprocess.run(
            ["curl", "-sS", "-f", "-T", str(source), f"http://127.0.0.1:{server.port}/file"],
            capture_output=True,
            check=False,
        )
        seconds = time.perf_counter() - start
        cpu = cpu_seconds(server.process.pid) - cpu_before
        if done.returncode != 0:
            raise BenchError(f"curl -T failed: {done.stderr.decode(errors='replace')}")
    finally:
        server.stop()
    if target.stat().st_size != source.stat().st_size:
        raise BenchError("the reference server did not receive the whole file")
    target.unlink()
    return {"seconds": seconds, "cpu_seconds": cpu}


def time_floor(source: Path, target: Path, chunk: int) -> dict[str, Any]:
    """The same file in ``chunk``-sized PATCHes to the plain endpoint, each fsynced before it is
    answered: what tus's durability alone costs on this disk."""
    server = ReferencePut(target)
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=600)
        cpu_before = cpu_seconds(server.process.pid)
        start = time.perf_counter()
        with source.open("rb") as handle:
            while block := handle.read(chunk):
                connection.request("PATCH", "/file", body=block)
                answer = connection.getresponse()
                answer.read()
                if answer.status != 204:
                    raise BenchError(f"the plain endpoint answered a PATCH with {answer.status}")
        seconds = time.perf_counter() - start
        cpu = cpu_seconds(server.process.pid) - cpu_before
        connection.close()
    finally:
        server.stop()
    if target.stat().st_size != source.stat().st_size:
        raise BenchError("the plain endpoint did not receive the whole file in PATCHes")
    target.unlink()
    return {"seconds": seconds, "cpu_seconds": cpu}


def run_all(cfg: Config) -> tuple[Results, bool]:
    source = cfg.work / "upload.bin"
    write_random_file(source, cfg.size)
    read_through(source)  # warm the page cache for every side
    tus_runs: list[dict[str, Any]] = []
    ref_runs: list[dict[str, Any]] = []
    floor_runs: list[dict[str, Any]] = []
    sides = [
        lambda run: ref_runs.append(time_reference(source, cfg.work / "reference.bin")),
        lambda run: floor_runs.append(time_floor(source, cfg.work / "floor.bin", cfg.chunk)),
        lambda run: tus_runs.append(time_tus(cfg, source, cfg.work / f"home-{run}")),
    ]
    for run in range(cfg.runs):  # interleaved, each run starting with the next side, so the disk's moods fall alike
        for side in sides[run % 3 :] + sides[: run % 3]:
            side(run)
    gb = cfg.size / 1e9
    tus = statistics.median(r["seconds"] for r in tus_runs)
    ref = statistics.median(r["seconds"] for r in ref_runs)
    floor = statistics.median(r["seconds"] for r in floor_runs)
    transfer = statistics.median(
        r["seconds"] - (r["chunk_seconds"][-1] - statistics.median(r["chunk_seconds"])) for r in tus_runs
    )
    results: Results = {
        "context": {
            "when": datetime.now(UTC).isoformat(),
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "size": cfg.size,
            "chunk": cfg.chunk,
            "runs": cfg.runs,
        },
        "tus": {
            "seconds": tus,
            "runs": [r["seconds"] for r in tus_runs],
            "mb_per_s": mb_per_s(cfg.size, tus),
            "transfer_seconds": transfer,
            "transfer_mb_per_s": mb_per_s(cfg.size, transfer),
            "server_cpu_seconds_per_gb": statistics.median(r["cpu_seconds"] for r in tus_runs) / gb,
            "whole_file_digest": "read back from the file chunk by chunk while the next arrives, in the server's "
            "memory (a hash's state cannot be saved: after a server restart the file is read in full at completion)",
        },
        "reference": {
            "seconds": ref,
            "runs": [r["seconds"] for r in ref_runs],
            "mb_per_s": mb_per_s(cfg.size, ref),
            "server_cpu_seconds_per_gb": statistics.median(r["cpu_seconds"] for r in ref_runs) / gb,
        },
        "floor": {
            "seconds": floor,
            "runs": [r["seconds"] for r in floor_runs],
            "mb_per_s": mb_per_s(cfg.size, floor),
            "server_cpu_seconds_per_gb": statistics.median(r["cpu_seconds"] for r in floor_runs) / gb,
        },
    }
    ratio = ref / tus
    results["ratio"] = {
        "value": ratio,
        "target": TARGET,
        "ok": ratio >= TARGET,
        "transfer_only": ref / transfer,
        "floor": ref / floor,  # what a plain server keeping tus's durability reaches on this disk
        "of_floor": floor / tus,
    }
    rows: Rows = [
        ("file", f"{human_bytes(cfg.size)} in {human_bytes(cfg.chunk)} chunks, median of {cfg.runs}"),
        ("tus to Evidence-Item", f"{tus:.3f} s  {mb_per_s(cfg.size, tus):.0f} MB/s  "
                                 f"({runs_text(results['tus']['runs'])})"),
        ("tus transfer only", f"{transfer:.3f} s  {mb_per_s(cfg.size, transfer):.0f} MB/s (without the final intake)"),
        ("curl -T to plain PUT", f"{ref:.3f} s  {mb_per_s(cfg.size, ref):.0f} MB/s  "
                                 f"({runs_text(results['reference']['runs'])})"),
        ("plain PATCHes, fsync each", f"{floor:.3f} s  {mb_per_s(cfg.size, floor):.0f} MB/s  "
                                      f"({runs_text(results['floor']['runs'])})  (tus's durability alone)"),
        ("ratio (tus / reference)", f"{ratio:.2f}  target >= {TARGET}  {verdict(ratio >= TARGET)}"),
        ("ratio, transfer only", f"{ref / transfer:.2f}"),
        ("ratio, PATCH floor / reference", f"{ref / floor:.2f}  (tus reaches {floor / tus:.2f} of the floor)"),
        ("server CPU per GB", f"tus {results['tus']['server_cpu_seconds_per_gb']:.2f} s, "
         f"reference {results['reference']['server_cpu_seconds_per_gb']:.2f} s, "
         f"floor {results['floor']['server_cpu_seconds_per_gb']:.2f} s"),
        ("whole-file SHA-256", "read back chunk by chunk as they arrive; the store adopts the file (no copy)"),
    ]  # fmt: skip
    print_section("upload over loopback: evidence web (tus) vs curl -T to a plain PUT endpoint", rows)
    return results, True


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--size", type=parse_size, default=GIB, help="File size, e.g. 1G (default) or 256M.")
    parser.add_argument("--chunk", type=parse_size, default=8 * MIB, help="PATCH size (default 8M).")
    parser.add_argument("--runs", type=int, default=3, help="Runs of each side, interleaved (default 3).")
    parser.add_argument("--json", type=Path, help="Also write every figure as JSON here.")
    parser.add_argument("--keep", action="store_true", help="Keep the temporary directory and data.")
    parser.add_argument("--workdir", type=Path, help="Where to make the temporary directory (default: system tmp).")
    parser.add_argument("--evidence", help="The evidence command (default: beside this Python).")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.runs < 1 or args.size < 1 or args.chunk < 1:
        raise SystemExit("--runs, --size and --chunk must be positive")
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-upload-", dir=args.workdir))
    cfg = Config(args.evidence or find_evidence(), work, args.size, args.chunk, args.runs, args.keep)
    return run_bench(lambda: run_all(cfg), work=work, keep=args.keep, json_path=args.json)


if __name__ == "__main__":
    sys.exit(main())
