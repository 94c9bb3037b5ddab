"""Corpus benchmark (issue 14): ``evidence ingest`` on a mixed folder of evidence, against the cost
of merely running ``ffprobe`` once per file, in the same run.

The corpus is built with fixed seeds in a scratch folder (117 files by default):

- ``--clips`` (10) H.264/AAC MP4 clips of ``--clip-seconds`` (20) s, 1280x720 at 30 fps: ffmpeg's
  ``testsrc2`` picture and a ``sine`` tone (each clip its own pitch), libx264 ``-preset veryfast``;
- ``--wavs`` (5) WAV files of 2 to 5 s (tones at varied pitches, rates and channel counts);
- ``--jpegs`` (100) JPEG photos made with Pillow (gradients, shapes and grain at varied sizes and
  qualities), every third one with an EXIF ``DateTimeOriginal``;
- one MP4 cut in half (a copy of the first clip: its index at the end is lost) and one empty file.

Three sides, interleaved (each run starts with the next side), median of ``--runs`` (3); each run
gets a fresh copy of the corpus, and the ``evidence`` runs a fresh ``EVIDENCE_HOME`` (SQLite
catalog, embedded queue, no workers running):

- **reference**: a shell loop running ``ffprobe -v error -show_format -show_streams -of json FILE
  >/dev/null`` once per file (a file ffprobe cannot read is counted, not fatal);
- **no-derive**: ``evidence ingest DIR --no-derive --json``: copy, hash, verify, catalogue, and read
  the metadata in-process;
- **ingest**: ``evidence ingest DIR --json``: the same and the verified access copies.

Ratios: reference / no-derive (target >= 2: taking a file in, probing included, is faster than
merely starting ffprobe on it) and ingest / no-derive (target <= 3: access copies at most triple the
time). Each side's CPU seconds (user and system, of the command and every process it started) are
reported too, with their ratio ingest / no-derive: on a machine others load, they show what the
work costs far more steadily than the wall time does.

Every run's JSON lines are checked: one line per file; every intact file stored, its size as on
disk, no damage reported, an EXIF-dated photo's capture time known, its access copies verified
(ingest) or none made (no-derive); the cut MP4 stored with ``damaged-media``; the empty file failed
with no item; the command's exit status 1 (a file failed). Anything else fails the benchmark.

Run from the project root::

    .venv/bin/python bench/corpus.py [--runs 3] [--json PATH] [--workdir DIR] [--keep]
        [--clips 10 --clip-seconds 20 --wavs 5 --jpegs 100]

Output: a table on stdout; ``--json PATH`` also writes every figure. The exit status is 1 when the
benchmark failed (its error is printed and recorded in the JSON); figures that miss their targets are
marked but do not change it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFilter
from PIL.ExifTags import IFD, Base
from report import (
    BenchError,
    Results,
    Rows,
    evidence_env,
    find_evidence,
    human_bytes,
    print_section,
    remove,
    run_bench,
    runs_text,
    tail,
    timed_run,
    verdict,
)

SEED = 14
REFERENCE_TARGET = 2.0  # reference / no-derive, at least
DERIVE_TARGET = 3.0  # ingest / no-derive, at most
EXIF_EVERY = 3  # every third photo carries a DateTimeOriginal
PHOTO_SIZES = ((640, 480), (800, 600), (1024, 768), (480, 640), (600, 800), (960, 540), (720, 720))
SIDES = ("reference", "no_derive", "ingest")

# One ffprobe per file, as a shell script would; the count of files it could not read is printed.
REFERENCE_LOOP = r"""
failed=0
for f in "$1"/*; do
    ffprobe -v error -show_format -show_streams -of json "$f" >/dev/null 2>&1 || failed=$((failed + 1))
done
echo "$failed"
"""

# What each file of the corpus is, by its name; what its JSON line must say follows from it.
CLIP, WAV, PHOTO, DATED_PHOTO, TRUNCATED, EMPTY = "clip", "wav", "photo", "dated-photo", "truncated", "empty"


@dataclass(frozen=True)
class Config:
    evidence: str
    work: Path
    clips: int
    clip_seconds: float
    wavs: int
    jpegs: int
    runs: int
    keep: bool


@dataclass(frozen=True)
class Corpus:
    folder: Path
    kinds: dict[str, str]  # file name -> its kind
    sizes: dict[str, int]

    @property
    def files(self) -> int:
        return len(self.kinds)

    @property
    def bytes(self) -> int:
        return sum(self.sizes.values())


# ------------------------------------------------------------------------------------------ the corpus
def ffmpeg(*args: str) -> None:
    timed_run(["ffmpeg", "-nostdin", "-v", "error", "-y", *args])


def make_clip(path: Path, seconds: float, tone: int) -> None:
    ffmpeg(
        "-f", "lavfi", "-i", f"testsrc2=size=1280x720:rate=30:duration={seconds}",
        "-f", "lavfi", "-i", f"sine=frequency={tone}:sample_rate=48000:duration={seconds}",
        "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p",
        "-c:a", "aac", "-b:a", "128k", "-t", str(seconds), str(path),
    )  # fmt: skip


def make_wav(path: Path, rng: random.Random) -> None:
    seconds = rng.choice((2, 3, 4, 5))
    rate = rng.choice((16000, 44100, 48000))
    tone = f"sine=frequency={rng.randrange(180, 1800)}:beep_factor={rng.choice((0, 2, 4))}"
    ffmpeg(
        "-f", "lavfi", "-i", f"{tone}:sample_rate={rate}:duration={seconds}",
        "-ac", str(rng.choice((1, 2))), "-c:a", "pcm_s16le", str(path),
    )  # fmt: skip


def make_photo(path: Path, rng: random.Random, *, dated: bool) -> None:
    """A small photo-like JPEG: a coloured gradient, shapes, a blur and grain, so that it compresses
    as a photo does; ``dated`` adds camera EXIF with a DateTimeOriginal."""
    width, height = rng.choice(PHOTO_SIZES)
    top, bottom = (tuple(rng.randrange(256) for _ in range(3)) for _ in range(2))
    ramp = Image.linear_gradient("L").resize((width, height))
    image = Image.composite(Image.new("RGB", (width, height), bottom), Image.new("RGB", (width, height), top), ramp)
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randrange(3, 12)):
        x0, y0 = rng.randrange(width), rng.randrange(height)
        box = (x0, y0, x0 + rng.randrange(20, width // 2), y0 + rng.randrange(20, height // 2))
        fill = tuple(rng.randrange(256) for _ in range(3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=fill)
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 3.0)))
    grain = Image.frombytes("L", (width, height), rng.randbytes(width * height)).convert("RGB")
    image = Image.blend(image, grain, rng.uniform(0.03, 0.12))
    exif = Image.Exif()
    if dated:
        taken = datetime(2023, 1, 1) + timedelta(seconds=rng.randrange(2 * 365 * 86400))
        stamp = taken.strftime("%Y:%m:%d %H:%M:%S")
        exif[Base.Make] = "BenchCam"
        exif[Base.Model] = f"BC-{rng.randrange(1, 9)}"
        exif[Base.DateTime] = stamp
        exif.get_ifd(IFD.Exif)[Base.DateTimeOriginal] = stamp
    image.save(path, "JPEG", quality=rng.randrange(70, 95), exif=exif)


def build_corpus(cfg: Config, folder: Path) -> Corpus:
    """Every file made from fixed seeds; no two alike (each would otherwise be a duplicate)."""
    folder.mkdir(parents=True)
    kinds: dict[str, str] = {}
    rng = random.Random(SEED)
    for i in range(cfg.clips):
        name = f"clip-{i:02d}.mp4"
        make_clip(folder / name, cfg.clip_seconds, 300 + 40 * i)
        kinds[name] = CLIP
    for i in range(cfg.wavs):
        name = f"audio-{i:02d}.wav"
        make_wav(folder / name, rng)
        kinds[name] = WAV
    for i in range(cfg.jpegs):
        dated = i % EXIF_EVERY == 0
        name = f"photo-{i:03d}.jpg"
        make_photo(folder / name, random.Random(SEED * 1000 + i), dated=dated)
        kinds[name] = DATED_PHOTO if dated else PHOTO
    whole = (folder / "clip-00.mp4").read_bytes()
    (folder / "clip-cut.mp4").write_bytes(whole[: len(whole) // 2])
    kinds["clip-cut.mp4"] = TRUNCATED
    (folder / "empty.mp4").touch()
    kinds["empty.mp4"] = EMPTY
    os.sync()
    return Corpus(folder, kinds, {name: (folder / name).stat().st_size for name in kinds})


def fresh_copy(corpus: Corpus, dest: Path) -> Path:
    """A copy of the corpus for one run, on disk before the clock starts."""
    remove(dest)
    shutil.copytree(corpus.folder, dest)
    os.sync()
    return dest


# ------------------------------------------------------------------------------------------ measurements
def children_cpu() -> float:
    """CPU seconds (user and system) of every finished child of this process and their children:
    what a run costs the machine, which other users' load changes far less than its wall time."""
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


def time_reference(folder: Path) -> tuple[float, float, int]:
    """The ffprobe loop: (seconds, CPU seconds, files it could not read)."""
    cpu = children_cpu()
    seconds, out = timed_run(["sh", "-c", REFERENCE_LOOP, "sh", str(folder)])
    return seconds, children_cpu() - cpu, int(out.strip())


def time_ingest(cfg: Config, folder: Path, home: Path, *, derive: bool) -> tuple[float, float, list[dict[str, Any]]]:
    """``evidence ingest FOLDER [--no-derive] --json`` on a fresh data directory: (seconds, CPU
    seconds of it and every process it started, its lines). Its exit status must be 1: the empty
    file fails."""
    remove(home)
    cmd = [cfg.evidence, "ingest", str(folder), *([] if derive else ["--no-derive"]), "--json"]
    cpu = children_cpu()
    start = time.perf_counter()
    # The working directory is the scratch folder: the embedded queue writes files relative to it.
    proc = subprocess.run(cmd, cwd=cfg.work, env=evidence_env(home), stdin=subprocess.DEVNULL, capture_output=True)
    seconds = time.perf_counter() - start
    cpu = children_cpu() - cpu
    stdout, stderr = proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 1:
        raise BenchError(f"`{' '.join(cmd)}` exited {proc.returncode}, expected 1 (the empty file):\n{tail(stderr)}")
    try:
        records = [json.loads(line) for line in stdout.splitlines() if line.strip()]
    except json.JSONDecodeError as exc:
        raise BenchError(f"`{' '.join(cmd)}` printed a line that is not JSON ({exc}):\n{tail(stdout)}") from exc
    return seconds, cpu, records


def problems_of(kind: str, size: int, record: dict[str, Any], *, derive: bool) -> list[str]:
    """What is wrong with one file's line, given what the file is."""
    status, issues = record.get("status"), set(record.get("issues") or ())
    derivatives = list(record.get("derivatives") or ())
    if kind == EMPTY:
        return [] if status == "failed" and record.get("item") is None else [f"not failed without an item: {record}"]
    found = []
    if status != "stored" or not record.get("item") or not record.get("sha256"):
        found.append(f"status {status!r}, item {record.get('item')!r} (expected stored with an item)")
    if record.get("size") != size:
        found.append(f"size {record.get('size')} reported, {size} on disk")
    if not derive and derivatives:
        found.append(f"access copies made with --no-derive: {derivatives}")
    if kind == TRUNCATED:
        if "damaged-media" not in issues:
            found.append(f"cut in half but no damaged-media issue: {sorted(issues)}")
        return found
    if "damaged-media" in issues:
        found.append(f"intact but reported damaged: {sorted(issues)}")
    if kind == DATED_PHOTO and "capture-time-unknown" in issues:
        found.append("EXIF DateTimeOriginal present but capture-time-unknown reported")
    if derive and (not derivatives or not all(entry.endswith(":verified") for entry in derivatives)):
        found.append(f"access copies not all verified: {derivatives}")
    return found


def check_lines(corpus: Corpus, records: list[dict[str, Any]], *, derive: bool) -> Results:
    """Every file has one line saying what it should; raises :class:`BenchError` listing every
    problem. Returns the statuses and what the damaged and empty files' lines said."""
    by_name: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    for record in records:
        name = Path(str(record.get("path"))).name
        if name in by_name or name not in corpus.kinds:
            problems.append(f"{name}: {'a second line' if name in by_name else 'a line for no file of the corpus'}")
        by_name[name] = record
    for name, kind in corpus.kinds.items():
        if name not in by_name:
            problems.append(f"{name}: no line")
            continue
        problems += [
            f"{name}: {problem}" for problem in problems_of(kind, corpus.sizes[name], by_name[name], derive=derive)
        ]
    if problems:
        side = "ingest" if derive else "ingest --no-derive"
        raise BenchError(f"{side}: {len(problems)} unexpected line(s):\n  " + "\n  ".join(problems[:20]))
    cut = next(by_name[name] for name, kind in corpus.kinds.items() if kind == TRUNCATED)
    empty = next(by_name[name] for name, kind in corpus.kinds.items() if kind == EMPTY)
    return {
        "statuses": dict(Counter(str(record["status"]) for record in records)),
        "derivatives": dict(Counter(entry for record in records for entry in record.get("derivatives") or ())),
        "truncated": {key: cut.get(key) for key in ("status", "issues", "derivatives")},
        "empty": {key: empty.get(key) for key in ("status", "error")},
    }


# ------------------------------------------------------------------------------------------ the run
def version_line(cmd: Sequence[str]) -> str:
    return timed_run(cmd)[1].strip().splitlines()[0]


def context(cfg: Config) -> Results:
    startup, version = timed_run([cfg.evidence, "--version"], env=evidence_env(cfg.work / "home-version"))
    return {
        "when": datetime.now(UTC).isoformat(),
        "evidence_version": version.strip(),
        "evidence_version_startup_s": startup,  # the interpreter and imports: paid once by each ingest
        "ffprobe_version": version_line(["ffprobe", "-version"]),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "load_average_at_start": os.getloadavg(),
        "runs": cfg.runs,
    }


def run_all(cfg: Config) -> tuple[Results, bool]:
    results: Results = {"context": context(cfg)}
    try:
        measure(cfg, results)
    except (BenchError, OSError, subprocess.SubprocessError) as exc:
        results["error"] = str(exc)
        print_section("FAILED", [("error", str(exc))])
        print(f"corpus benchmark failed: {exc}", file=sys.stderr)
        return results, False
    finally:
        results["context"]["load_average_at_end"] = os.getloadavg()
    return results, True


def measure(cfg: Config, results: Results) -> None:
    started = time.perf_counter()
    corpus = build_corpus(cfg, cfg.work / "corpus")
    kinds = Counter(corpus.kinds.values())
    results["corpus"] = {
        "files": corpus.files,
        "bytes": corpus.bytes,
        "kinds": dict(kinds),
        "clip_seconds": cfg.clip_seconds,
        "build_seconds": time.perf_counter() - started,
    }
    print_section("corpus (fixed seeds)", rows_corpus(results["corpus"]))
    times: dict[str, list[float]] = {side: [] for side in SIDES}
    cpus: dict[str, list[float]] = {side: [] for side in SIDES}
    unreadable: list[int] = []
    checked: dict[str, Results] = {}

    def reference(run: int) -> None:
        seconds, cpu, failed = time_reference(fresh_copy(corpus, cfg.work / "copy"))
        times["reference"].append(seconds)
        cpus["reference"].append(cpu)
        unreadable.append(failed)

    def ingest(run: int, *, derive: bool) -> None:
        side = "ingest" if derive else "no_derive"
        home = cfg.work / f"home-{side}-{run}"
        try:
            seconds, cpu, records = time_ingest(cfg, fresh_copy(corpus, cfg.work / "copy"), home, derive=derive)
        finally:
            if not cfg.keep:  # what a run leaves must not slow the next
                remove(home)
        checked[side] = check_lines(corpus, records, derive=derive)
        times[side].append(seconds)
        cpus[side].append(cpu)

    sides: list[Callable[[int], None]] = [
        reference,
        lambda run: ingest(run, derive=False),
        lambda run: ingest(run, derive=True),
    ]
    for run in range(cfg.runs):  # interleaved, each run starting with the next side, so the machine's moods fall alike
        for timed in sides[run % 3 :] + sides[: run % 3]:
            timed(run)
    remove(cfg.work / "copy")
    medians = {side: statistics.median(values) for side, values in times.items()}
    for side in SIDES:
        results[side] = {
            "seconds": medians[side],
            "runs": times[side],
            "files_per_s": corpus.files / medians[side],
            "cpu_seconds": statistics.median(cpus[side]),
            "cpu_runs": cpus[side],
        }
    results["reference"]["unreadable_files"] = unreadable
    for side in ("no_derive", "ingest"):
        results[side].update(checked[side])
    over_reference = medians["reference"] / medians["no_derive"]
    over_no_derive = medians["ingest"] / medians["no_derive"]
    results["ratio"] = {
        "reference_over_no_derive": over_reference,
        "reference_target": REFERENCE_TARGET,
        "reference_ok": over_reference >= REFERENCE_TARGET,
        "ingest_over_no_derive": over_no_derive,
        "derive_target": DERIVE_TARGET,
        "derive_ok": over_no_derive <= DERIVE_TARGET,
        # CPU seconds: what the access copies cost, much less swayed by the machine's other load
        "cpu_ingest_over_no_derive": results["ingest"]["cpu_seconds"] / max(results["no_derive"]["cpu_seconds"], 1e-9),
    }
    print_section(f"ingest of the corpus vs one ffprobe per file (median of {cfg.runs})", rows_timing(results))


def rows_corpus(data: Results) -> Rows:
    kinds = data["kinds"]
    return [
        ("files", f"{data['files']} ({human_bytes(data['bytes'])})"),
        ("MP4 clips (1280x720, 30 fps)", f"{kinds.get(CLIP, 0)} x {data['clip_seconds']:g} s"),
        ("WAV", str(kinds.get(WAV, 0))),
        ("JPEG (with EXIF date)", f"{kinds.get(PHOTO, 0) + kinds.get(DATED_PHOTO, 0)} ({kinds.get(DATED_PHOTO, 0)})"),
        ("MP4 cut in half, empty file", f"{kinds.get(TRUNCATED, 0)}, {kinds.get(EMPTY, 0)}"),
        ("built in", f"{data['build_seconds']:.1f} s"),
    ]


def rows_timing(results: Results) -> Rows:
    ref, bare, full, ratio = results["reference"], results["no_derive"], results["ingest"], results["ratio"]

    def line(data: Results) -> str:
        return (
            f"{data['seconds']:8.3f} s  {data['files_per_s']:7.1f} files/s  ({runs_text(data['runs'])})"
            f"  cpu {data['cpu_seconds']:.1f} s"
        )

    return [
        ("ffprobe per file (reference)", line(ref) + f"  unreadable {ref['unreadable_files'][0]}"),
        ("evidence ingest --no-derive", line(bare)),
        ("evidence ingest", line(full)),
        (
            "ratio reference / no-derive",
            f"{ratio['reference_over_no_derive']:8.3f}    target >= {REFERENCE_TARGET}  "
            f"{verdict(ratio['reference_ok'])}",
        ),
        (
            "ratio ingest / no-derive",
            f"{ratio['ingest_over_no_derive']:8.3f}    target <= {DERIVE_TARGET}  "
            f"{verdict(ratio['derive_ok'], 'ABOVE TARGET')}",
        ),
        ("cpu ratio ingest / no-derive", f"{ratio['cpu_ingest_over_no_derive']:8.3f}    (not a target; load-proof)"),
        ("statuses (no-derive, ingest)", f"{json.dumps(bare['statuses'])}, {json.dumps(full['statuses'])}"),
        ("cut MP4 (no-derive)", f"{bare['truncated']['status']}, issues {bare['truncated']['issues']}"),
        ("cut MP4 access copies", json.dumps(full["truncated"]["derivatives"])),
        ("empty file", f"{bare['empty']['status']}: {bare['empty']['error']}"),
        ("access copies (all files)", json.dumps(full["derivatives"])),
        ("`evidence --version` (start-up)", f"{results['context']['evidence_version_startup_s']:8.3f} s"),
        ("load average at start", "  ".join(f"{n:.2f}" for n in results["context"]["load_average_at_start"])),
        ("load average now", "  ".join(f"{n:.2f}" for n in os.getloadavg())),
    ]


# ------------------------------------------------------------------------------------------ command line
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=3, help="Runs of each side, interleaved (default 3).")
    parser.add_argument("--clips", type=int, default=10, help="MP4 clips (default 10; at least 1).")
    parser.add_argument("--clip-seconds", type=float, default=20.0, help="Length of each clip (default 20).")
    parser.add_argument("--wavs", type=int, default=5, help="WAV files (default 5).")
    parser.add_argument("--jpegs", type=int, default=100, help="JPEG photos (default 100).")
    parser.add_argument("--json", type=Path, help="Also write every figure as JSON here.")
    parser.add_argument("--workdir", type=Path, help="Where to make the temporary directory (default: system tmp).")
    parser.add_argument("--keep", action="store_true", help="Keep the temporary directory, corpus and data.")
    parser.add_argument("--evidence", help="The evidence command (default: beside this Python).")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.runs < 1 or args.clips < 1 or args.clip_seconds <= 0:
        raise SystemExit(
            "--runs and --clips must be at least 1 (the cut MP4 is a clip's copy), --clip-seconds positive"
        )
    if args.wavs < 0 or args.jpegs < 0:
        raise SystemExit("--wavs and --jpegs cannot be negative")
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-corpus-", dir=args.workdir))
    cfg = Config(
        evidence=args.evidence or find_evidence(),
        work=work,
        clips=args.clips,
        clip_seconds=args.clip_seconds,
        wavs=args.wavs,
        jpegs=args.jpegs,
        runs=args.runs,
        keep=args.keep,
    )
    return run_bench(lambda: run_all(cfg), work=work, keep=args.keep, json_path=args.json)


if __name__ == "__main__":
    sys.exit(main())
