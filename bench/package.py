"""Package benchmark: building one disc package against ``xorriso -as mkisofs -J -R`` on the same tree.

Every figure is a ratio against a reference measured in the same run, on the same disk, so the
results compare across machines.

Setup (untimed): ``--files`` files of random data (default 8, as body cameras write a few hundred MB
each) adding up to ``--size`` (default 4 GiB), written in 16 MiB chunks and flushed; a fresh
``EVIDENCE_HOME`` in the scratch folder; the files taken in with
``evidence ingest DIR --no-probe --no-derive --json`` and given to case BENCH-1 with
``evidence assign ID... --case BENCH-1 --collector ... --place ... --proof-object ...``.

Timed, ``--runs`` times (default 3), the two methods interleaved and taking turns to go first:

- ours: ``evidence package BENCH-1 --media bd25 --out OUT --json`` as a subprocess. Its JSON gives,
  for the one disc, ``write_seconds`` (the image written and flushed to disk) and ``verify_seconds``
  (the image read back from the disk and every file compared with the catalog); when the JSON lacks
  them they are read from the catalog's record of the disc. The wall time of the whole command
  (start-up, catalog, planning, writing, verification, recording) is taken as well.
- reference: ``xorriso -as mkisofs -J -R -o REF.iso TREE``, where TREE holds exactly what our disc
  holds (the first run's image extracted with ``xorriso -osirrox on``, untimed, then flushed). Our
  writer flushes its image to disk and xorriso does not, so the time until xorriso exits and the
  time until an ``fsync`` of its output returns are both reported.

Throughput ratio = payload bytes / write_seconds over payload bytes / xorriso's time (that is,
xorriso's time / write_seconds); target >= 0.8 against xorriso alone, as the issue states it, with
the ratio against xorriso + fsync beside it. The whole command's wall time gives a second pair of
ratios. Verification is reported separately: ``verify_seconds`` and its MB/s, and for reference
``sha256sum`` over our image right after our command (its digest must equal the one the package
reports), then ``dd bs=8M`` of the image to ``/dev/null``, the floor for reading it at all; before
each, the image's cached pages are dropped (``posix_fadvise``), as the read-back itself does.
coreutils' ``sha256sum`` may hash more slowly than hashlib (no SHA instructions), so the ``dd``
figure is the one that says how close the read-back comes to the disk.

Both methods read source files that are in the page cache (the store's files after intake, the tree
after its extraction); the page cache is not dropped between runs. Each run's images are deleted
after timing, so the disk needs about four times ``--size`` free. Every timed figure is the median of
the runs, and every run is listed. Each ``evidence`` subprocess gets a clean environment: inherited
``EVIDENCE_*`` variables are dropped, so the benchmark never touches a real catalog or broker.

Run from the project root::

    .venv/bin/python bench/package.py [--size 4GB] [--files 8] [--runs 3] [--json PATH] [--work DIR] [--keep]

Output: a table on stdout; ``--json PATH`` also writes every figure as JSON. The exit status is 1
when the benchmark failed (e.g. the package was not verified; the error is printed and recorded in
the JSON); figures below their target are marked in the table and the JSON but do not change the
exit status.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ingest import parse_size, write_random_file
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
    print_section,
    remove,
    run_bench,
    runs_text,
    timed_run,
    verdict,
)

from pipeline.package.media import MEDIA_NAMES

DEFAULT_RUNS = 3
DEFAULT_FILES = 8
THROUGHPUT_TARGET = 0.8
CASE = "BENCH-1"
ACTOR = "bench-package"
XORRISO = "xorriso"
ROOT = Path(__file__).resolve().parent.parent
SPACE_FACTOR = 4  # the store, the extracted tree, one image of ours and one of xorriso's
SPACE_SLACK = 512 * MIB


@dataclass(frozen=True)
class Config:
    evidence: str
    work: Path
    size: int
    files: int
    runs: int
    media: str
    keep: bool

    @property
    def home(self) -> Path:
        return self.work / "home"

    def env(self) -> dict[str, str]:
        return evidence_env(self.home, EVIDENCE_ACTOR=ACTOR)


@dataclass(frozen=True)
class OurRun:
    wall: float
    write: float
    verify: float
    image: Path
    image_bytes: int
    sha256: str
    files_on_disc: int
    timings_from: str  # "json" or "catalog"


@dataclass(frozen=True)
class ReferenceRun:
    xorriso: float
    durable: float  # xorriso, then an fsync of its output
    image_bytes: int


# ------------------------------------------------------------------------------------------ helpers
def filesystem(path: Path) -> str:
    """``SOURCE (FSTYPE)`` of the file system holding ``path``, as ``df`` names it."""
    proc = subprocess.run(["df", "--output=source,fstype", str(path)], capture_output=True, text=True, check=False)
    lines = proc.stdout.split("\n")
    if proc.returncode != 0 or len(lines) < 2 or not lines[1].split():
        return "unknown"
    source, *rest = lines[1].split()
    return f"{source} ({rest[0] if rest else '?'})"


def tool_version(cmd: Sequence[str]) -> str:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as exc:
        return f"cannot be run: {exc}"
    lines = (proc.stdout or proc.stderr).strip().splitlines()
    return lines[0] if lines else "?"


def drop_cached(path: Path) -> None:
    """Ask the kernel to forget the cached pages of ``path`` (flushed first), so the next read
    comes from the disk; advisory, and without privileges."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fdatasync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def json_lines(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.strip().startswith("{")]


# ------------------------------------------------------------------------------------------ setup
def file_sizes(total: int, count: int) -> list[int]:
    """``count`` sizes adding up to ``total``, the remainder on the last."""
    each = total // count
    return [each] * (count - 1) + [total - each * (count - 1)]


def prepare_case(cfg: Config, data: Results) -> list[str]:
    """Write the files, take them in under a fresh home and assign them to the case; their item IDs."""
    source = cfg.work / "cameras"
    source.mkdir()
    sizes = file_sizes(cfg.size, cfg.files)
    start = time.perf_counter()
    for number, size in enumerate(sizes, start=1):
        write_random_file(source / f"cam{number:02d}.bin", size)
    data["generation_s"] = time.perf_counter() - start
    data["ingest_s"], out = timed_run(
        [cfg.evidence, "ingest", str(source), "--no-probe", "--no-derive", "--json"], env=cfg.env(), cwd=cfg.work
    )
    records = json_lines(out)
    stored = [record for record in records if record.get("status") == "stored"]
    if len(records) != cfg.files or len(stored) != cfg.files:
        statuses = [record.get("status") for record in records]
        raise BenchError(f"ingest reported {len(records)} line(s), expected {cfg.files} stored; statuses {statuses}")
    ids = [str(record["item"]) for record in stored]
    timed_run(
        [
            cfg.evidence,
            "assign",
            *ids,
            "--case",
            CASE,
            "--collector",
            "Bench Collector",
            "--place",
            "Bench Place",
            "--proof-object",
            "Bench proof",
            "--json",
        ],
        env=cfg.env(),
        cwd=cfg.work,
    )
    if not cfg.keep:
        remove(source)  # the store holds the copies the package reads
    data["payload_bytes"] = sum(int(record["size"]) for record in stored)
    data["file_bytes"] = sizes
    return ids


def extract_tree(image: Path, tree: Path, files: int) -> Results:
    """What our disc holds, as a folder: the image extracted, made removable and flushed to disk."""
    seconds, _ = timed_run([XORRISO, "-osirrox", "on", "-indev", str(image), "-extract", "/", str(tree)])
    timed_run(["chmod", "-R", "u+w", str(tree)])
    timed_run(["sync", "-f", str(tree)])
    found = [path for path in tree.rglob("*") if path.is_file()]
    originals = [path for path in found if path.parent.name == "originals"]
    if len(originals) != files:
        raise BenchError(f"the extracted tree holds {len(originals)} original(s), expected {files}")
    return {"extract_s": seconds, "files": len(found), "bytes": sum(path.stat().st_size for path in found)}


# ------------------------------------------------------------------------------------------ measurements
def disc_timings(cfg: Config, package: str) -> dict[str, Any]:
    """The first disc's timings as the catalog recorded them with its verification."""
    conn = sqlite3.connect(f"file:{cfg.home / 'catalog.sqlite3'}?mode=ro", uri=True)
    try:
        row = conn.execute(
            "SELECT verification FROM packagedisc WHERE package_id = ? AND disc_index = 1", (package,)
        ).fetchone()
    finally:
        conn.close()
    if row is None:
        raise BenchError(f"the catalog has no disc 1 for package {package}")
    verification: dict[str, Any] = json.loads(row[0])
    return verification


def time_ours(cfg: Config, out: Path) -> OurRun:
    cmd = [cfg.evidence, "package", CASE, "--media", cfg.media, "--out", str(out), "--json"]
    wall, stdout = timed_run(cmd, env=cfg.env(), cwd=cfg.work)
    lines = json_lines(stdout)
    if not lines:
        raise BenchError(f"`evidence package` printed no JSON: {stdout[-500:]!r}")
    result = lines[-1]
    if result.get("status") != "verified":
        raise BenchError(f"package status {result.get('status')!r}, not verified: {result.get('error')}")
    discs = result.get("discs") or []
    if len(discs) != 1:
        raise BenchError(f"the package has {len(discs)} disc(s); --size must fit one {cfg.media} disc")
    disc = discs[0]
    timings_from = "json"
    if disc.get("write_seconds") is None or disc.get("verify_seconds") is None:
        disc = {**disc, **disc_timings(cfg, str(result["package"]))}
        timings_from = "catalog"
    if disc.get("write_seconds") is None or disc.get("verify_seconds") is None:
        raise BenchError("neither the JSON nor the catalog gives the disc's write_seconds and verify_seconds")
    image = Path(disc["path"])
    if not image.is_file():
        raise BenchError(f"the package's image {image} does not exist")
    return OurRun(
        wall=wall,
        write=float(disc["write_seconds"]),
        verify=float(disc["verify_seconds"]),
        image=image,
        image_bytes=int(disc["size"]),
        sha256=str(disc["sha256"]),
        files_on_disc=int(disc["files"]),
        timings_from=timings_from,
    )


def time_sha256sum(image: Path, expected: str) -> float:
    drop_cached(image)
    seconds, out = timed_run(["sha256sum", str(image)])
    digest = out.split()[0] if out.split() else ""
    if digest != expected:
        raise BenchError(f"sha256sum of {image.name} gives {digest}, the package reports {expected}")
    return seconds


def time_dd_read(image: Path) -> float:
    """Reading the image from the disk and nothing else: the floor for any read-back."""
    drop_cached(image)
    seconds, _ = timed_run(["dd", f"if={image}", "of=/dev/null", "bs=8M", "status=none"])
    return seconds


def time_reference(tree: Path, image: Path) -> ReferenceRun:
    remove(image)
    try:
        start = time.perf_counter()
        seconds, _ = timed_run([XORRISO, "-as", "mkisofs", "-J", "-R", "-o", str(image), str(tree)])
        fsync_file(image)
        durable = time.perf_counter() - start
        size = image.stat().st_size
    finally:
        remove(image)
    return ReferenceRun(xorriso=seconds, durable=durable, image_bytes=size)


# ------------------------------------------------------------------------------------------ the benchmark
def bench_package(cfg: Config, data: Results) -> None:
    prepare_case(cfg, data)
    payload = data["payload_bytes"]
    tree = cfg.work / "tree"
    times: dict[str, list[float]] = {
        "write": [],
        "verify": [],
        "command": [],
        "xorriso": [],
        "xorriso_fsync": [],
        "sha256sum": [],
        "dd_read": [],
    }
    sizes: dict[str, int] = {}
    order: list[str] = []
    timings_from: set[str] = set()
    for i in range(cfg.runs):  # interleaved, each method first in turn, so drift hits both alike
        last = i == cfg.runs - 1
        for method in ("ours", "reference") if i % 2 == 0 else ("reference", "ours"):
            if method == "ours":
                out = cfg.work / f"out-{i}"
                ours = time_ours(cfg, out)
                times["write"].append(ours.write)
                times["verify"].append(ours.verify)
                times["command"].append(ours.wall)
                timings_from.add(ours.timings_from)
                sizes["ours"], data["files_on_disc"] = ours.image_bytes, ours.files_on_disc
                if not tree.exists():
                    data["tree"] = extract_tree(ours.image, tree, cfg.files)
                times["sha256sum"].append(time_sha256sum(ours.image, ours.sha256))
                times["dd_read"].append(time_dd_read(ours.image))
                if not (cfg.keep and last):
                    remove(out)
            else:
                reference = time_reference(tree, cfg.work / "REF.iso")
                times["xorriso"].append(reference.xorriso)
                times["xorriso_fsync"].append(reference.durable)
                sizes["xorriso"] = reference.image_bytes
        order.append(" then ".join(("ours", "reference") if i % 2 == 0 else ("reference", "ours")))
    med = {name: statistics.median(values) for name, values in times.items()}
    ratios = {
        "write_vs_xorriso": med["xorriso"] / med["write"],
        "write_vs_xorriso_fsync": med["xorriso_fsync"] / med["write"],
        "command_vs_xorriso": med["xorriso"] / med["command"],
        "command_vs_xorriso_fsync": med["xorriso_fsync"] / med["command"],
        "sha256sum_vs_verify": med["sha256sum"] / med["verify"],
        "dd_read_vs_verify": med["dd_read"] / med["verify"],
    }
    data.update(
        {
            "media": cfg.media,
            "files": cfg.files,
            "runs_s": times,
            "run_order": order,
            "median_s": med,
            "rest_of_command_s": med["command"] - med["write"] - med["verify"],
            "payload_mb_per_s": {
                name: mb_per_s(payload, med[name]) for name in ("write", "command", "xorriso", "xorriso_fsync")
            },
            "image_bytes": sizes,
            "image_mb_per_s": {
                "verify": mb_per_s(sizes["ours"], med["verify"]),
                "sha256sum": mb_per_s(sizes["ours"], med["sha256sum"]),
                "dd_read": mb_per_s(sizes["ours"], med["dd_read"]),
            },
            "ratios": ratios,
            "timings_from": sorted(timings_from),
            "target_throughput_ratio": THROUGHPUT_TARGET,
            "meets_target": ratios["write_vs_xorriso"] >= THROUGHPUT_TARGET,
            "meets_target_against_xorriso_fsync": ratios["write_vs_xorriso_fsync"] >= THROUGHPUT_TARGET,
        }
    )


def rows_package(data: Results) -> Rows:
    med, rate, ratio, runs = data["median_s"], data["payload_mb_per_s"], data["ratios"], data["runs_s"]
    sizes = data["image_bytes"]
    sizes_each = sorted(set(data["file_bytes"]))
    target = f"target >= {THROUGHPUT_TARGET}"
    rows: Rows = [
        (
            "payload",
            f"{data['files']} files of random data, {' / '.join(human_bytes(n) for n in sizes_each)} each, "
            f"{human_bytes(data['payload_bytes'])} in all",
        ),
        ("medium", f"{data['media']}, one disc, {data['files_on_disc']} files on it"),
        ("image size ours / xorriso", f"{human_bytes(sizes['ours'])} / {human_bytes(sizes['xorriso'])}"),
        ("setup (untimed) write files / ingest", f"{data['generation_s']:8.3f} s / {data['ingest_s']:.3f} s"),
        ("setup (untimed) extract tree", f"{data['tree']['extract_s']:8.3f} s, {data['tree']['files']} files"),
        ("evidence package: write (flushed)", f"{med['write']:8.3f} s  {rate['write']:8.1f} MB/s"),
        ("evidence package: whole command", f"{med['command']:8.3f} s  {rate['command']:8.1f} MB/s"),
        ("  of which verification", f"{med['verify']:8.3f} s"),
        ("  of which the rest (start-up, catalog, ...)", f"{data['rest_of_command_s']:8.3f} s"),
        ("xorriso -as mkisofs -J -R", f"{med['xorriso']:8.3f} s  {rate['xorriso']:8.1f} MB/s"),
        ("xorriso + fsync of its image", f"{med['xorriso_fsync']:8.3f} s  {rate['xorriso_fsync']:8.1f} MB/s"),
        (
            "ratio write / xorriso",
            f"{ratio['write_vs_xorriso']:8.3f}    {target}  {verdict(data['meets_target'])}",
        ),
        (
            "ratio write / xorriso + fsync",
            f"{ratio['write_vs_xorriso_fsync']:8.3f}    "
            f"({target}: {verdict(data['meets_target_against_xorriso_fsync'])})",
        ),
        ("ratio whole command / xorriso", f"{ratio['command_vs_xorriso']:8.3f}"),
        ("ratio whole command / xorriso + fsync", f"{ratio['command_vs_xorriso_fsync']:8.3f}"),
        ("runs (s) evidence write", runs_text(runs["write"])),
        ("runs (s) evidence whole command", runs_text(runs["command"])),
        ("runs (s) xorriso", runs_text(runs["xorriso"])),
        ("runs (s) xorriso + fsync", runs_text(runs["xorriso_fsync"])),
        ("run order", "; ".join(data["run_order"])),
    ]
    if data["timings_from"] != ["json"]:
        rows.append(("write/verify seconds read from", ", ".join(data["timings_from"])))
    return rows


def rows_verification(data: Results) -> Rows:
    med, rate, ratio, runs = data["median_s"], data["image_mb_per_s"], data["ratios"], data["runs_s"]
    return [
        ("evidence read-back and compare", f"{med['verify']:8.3f} s  {rate['verify']:8.1f} MB/s"),
        ("sha256sum over the image (cache dropped)", f"{med['sha256sum']:8.3f} s  {rate['sha256sum']:8.1f} MB/s"),
        ("dd bs=8M to /dev/null (cache dropped)", f"{med['dd_read']:8.3f} s  {rate['dd_read']:8.1f} MB/s"),
        ("ratio sha256sum / read-back", f"{ratio['sha256sum_vs_verify']:8.3f}"),
        ("ratio dd read / read-back", f"{ratio['dd_read_vs_verify']:8.3f}"),
        ("runs (s) read-back", runs_text(runs["verify"])),
        ("runs (s) sha256sum", runs_text(runs["sha256sum"])),
        ("runs (s) dd read", runs_text(runs["dd_read"])),
    ]


# ------------------------------------------------------------------------------------------ reporting
def context(cfg: Config) -> Results:
    startup, version = timed_run([cfg.evidence, "--version"], env=cfg.env(), cwd=cfg.work)
    return {
        "evidence_version": version.strip(),
        "evidence_version_startup_s": startup,
        "xorriso": tool_version([XORRISO, "-version"]),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "work": str(cfg.work),
        "work_filesystem": filesystem(cfg.work),
        "runs_per_figure": cfg.runs,
        "page_cache": "not dropped between runs; both methods read sources that are in the page cache",
    }


def rows_context(data: Results) -> Rows:
    return [
        ("evidence", data["evidence_version"]),
        ("`evidence --version` (start-up)", f"{data['evidence_version_startup_s']:8.3f} s"),
        ("xorriso", data["xorriso"]),
        ("scratch folder", f"{data['work']} on {data['work_filesystem']}"),
        ("timed figures", f"median of {data['runs_per_figure']} runs, interleaved"),
        ("page cache", data["page_cache"]),
        ("python / cpus", f"{data['python']} / {data['cpus']}"),
        ("platform", data["platform"]),
    ]


TITLE = "disc package: `evidence package` against `xorriso -as mkisofs -J -R`, same tree"
VERIFY_TITLE = "verification (reported separately)"


def run_all(cfg: Config) -> tuple[Results, bool]:
    results: Results = {"context": context(cfg)}
    print_section("context", rows_context(results["context"]))
    data: Results = {}
    results["package"] = data
    try:
        bench_package(cfg, data)
    except (BenchError, OSError, subprocess.SubprocessError, ValueError, KeyError) as exc:
        data["error"] = f"{type(exc).__name__}: {exc}"
        print_section(TITLE, [("FAILED", data["error"])])
        print(f"benchmark failed: {data['error']}", file=sys.stderr)
        return results, False
    print_section(TITLE, rows_package(data))
    print_section(VERIFY_TITLE, rows_verification(data))
    return results, True


# ------------------------------------------------------------------------------------------ command line
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--size", type=parse_size, default=4 * GIB, help="Payload in all, e.g. 4GB (default).")
    parser.add_argument("--files", type=int, default=DEFAULT_FILES, help="Number of files (default 8).")
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS, help="Runs per timed figure (default 3).")
    parser.add_argument(
        "--media", choices=MEDIA_NAMES, default="bd25", help="Disc type for `evidence package` (default bd25)."
    )
    parser.add_argument("--json", type=Path, help="Also write every figure to this JSON file.")
    parser.add_argument(
        "--work",
        type=Path,
        help="Make the scratch folder inside this one (default: the project folder's parent, on disk).",
    )
    parser.add_argument("--keep", action="store_true", help="Keep the scratch folder and the last run's image.")
    return parser.parse_args(argv)


def make_config(args: argparse.Namespace) -> Config:
    if args.runs < 1:
        raise SystemExit("--runs must be at least 1")
    if args.files < 1:
        raise SystemExit("--files must be at least 1")
    if args.size < args.files:
        raise SystemExit("--size must give every file at least one byte")
    if shutil.which(XORRISO) is None:
        raise SystemExit(f"{XORRISO} is not installed; it is the reference")
    parent = args.work if args.work is not None else ROOT.parent
    parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(parent).free
    needed = SPACE_FACTOR * args.size + SPACE_SLACK
    if free < needed:
        raise SystemExit(f"{parent} has {human_bytes(free)} free; the benchmark needs about {human_bytes(needed)}")
    work = Path(tempfile.mkdtemp(prefix="bench-package-", dir=parent))
    return Config(
        evidence=find_evidence(),
        work=work,
        size=args.size,
        files=args.files,
        runs=args.runs,
        media=args.media,
        keep=args.keep,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = make_config(args)
    return run_bench(lambda: run_all(cfg), work=cfg.work, keep=cfg.keep, json_path=args.json)


if __name__ == "__main__":
    sys.exit(main())
