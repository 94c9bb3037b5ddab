"""Transcode benchmark: what the derive path adds to the ffmpeg run it cannot avoid.

Every figure is a ratio against a reference measured in the same run, on the same machine, so the
results compare across machines. Three parts (``--only a,b`` runs a subset). Parts (a) and (b) measure
the encoding path, so they use the ``video-access`` profile with ``remux = false`` (the shipped
profile would stream-copy their H.264 clips); part (c) compares the two paths.

(a) The access copy of one clip: ``--duration`` seconds (default 60) of 1920x1080 at 30 fps, H.264
    with two AAC audio tracks, made with ffmpeg from lavfi ``testsrc2`` and two ``sine`` sources.
    After one untimed warm-up run of the reference command, three ways of making its
    ``video-access`` copy, interleaved run by run:

    - reference: the ffmpeg argument list that ``build_command`` gives for the profile, run as it
      is with ``subprocess.run`` (its output captured, nothing else);
    - ``make_derivative``: the same command through the pipeline's runner (``-progress pipe:1``,
      its own process group, both pipes read on threads), then verification (a full decode of the
      copy and an ffprobe), then the rename into place. The time around ``run_transcode`` and the
      time around ``verify_derivative`` are taken by wrapping those two names in
      ``pipeline.transcode.derive`` for the duration of the call; the runner's own ``elapsed`` is
      reported beside them. Overhead ratio = time around ``run_transcode`` / reference time;
      target <= 1.05;
    - the ``derive`` stage with ``only=("video-access",)`` on a real catalog: a fresh
      ``EVIDENCE_HOME`` per run, the clip taken in (and probed) with ``ingest_arrivals`` beforehand,
      untimed; the stage then probes the stored original, runs ``make_derivative``, puts the copy
      in the store and writes the derivative row, the progress updates and the custody event.

(b) Throughput: ``--clips`` clips (default 4) of ``--throughput-duration`` seconds (default 10),
    each through ``make_derivative`` with the ``video-access`` profile, spread over a
    ``multiprocessing`` pool of 1 and then 2 processes (started before the clock starts).
    Clips per minute for each and the speed-up of 2 processes over 1. libx264 already uses every
    core on its own, so the speed-up shows what a second transcode worker buys on this machine.

(c) Remux against re-encoding: ``--remux-clips`` clips (default 10) of ``--remux-duration`` seconds
    (default 20) of 1280x720 at 30 fps, H.264 High with one AAC track in MP4 as a body camera
    writes it, each through ``make_derivative`` twice, interleaved clip by clip: before, the
    ``video-access`` profile as version 1 had it (every copy encoded, x264 preset ``medium``);
    after, the shipped profile (a playable original is stream-copied). Both include planning,
    verification and the rename. Reported: the total and per-clip times of each, the time in
    ffmpeg and in verification, the speed-up, the copies' sizes, and how each copy was made; and
    each clip's contact sheet (one decoding pass), timed apart.

Timed figures in (a) are the median of 2 runs (``--runs``); (b) runs once per pool size. Inherited
``EVIDENCE_*`` variables are dropped, so the benchmark never touches a real catalog or broker.

Run from the project root::

    .venv/bin/python bench/transcode.py [--json PATH] [--only a,b,c] [--duration 10] [--keep]

Output: a table on stdout; ``--json PATH`` also writes every figure as JSON. The exit status is 1
when a part failed (its error is printed and recorded in the JSON); figures beyond their targets
are marked in the table and the JSON but do not change the exit status.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any
from unittest import mock

from report import (
    BenchError,
    Results,
    Rows,
    human_bytes,
    print_section,
    remove,
    run_bench,
    runs_text,
    timed_run,
    verdict,
)

import pipeline.transcode.derive as derive_module
from pipeline.errors import PipelineError
from pipeline.ingest.batch import ingest_arrivals
from pipeline.ingest.scan import arrival_for
from pipeline.metadata import ExtractionContext, FfprobeExtractor, MediaInfo
from pipeline.runtime import derive_context, intake_context
from pipeline.settings import load_settings
from pipeline.stage.tools import tool_version
from pipeline.transcode.commands import FFMPEG, build_command
from pipeline.transcode.derive import make_derivative
from pipeline.transcode.profiles import Profile, load_profiles
from pipeline.transcode.runner import TranscodeRun
from pipeline.transcode.stage import derive
from pipeline.transcode.verify import Verification

DEFAULT_RUNS = 2
OVERHEAD_TARGET = 1.05
PROFILE = "video-access"
WIDTH, HEIGHT, FPS = 1920, 1080, 30
TONES = (440, 660)  # Hz, one per audio track
TIMEOUT = 3600.0
PARTS = ("a", "b", "c")
REMUX_SIZE, REMUX_FPS = (1280, 720), 30


@dataclass(frozen=True)
class Config:
    work: Path
    parts: tuple[str, ...]
    runs: int
    duration: float
    clips: int
    throughput_duration: float
    keep: bool
    remux_clips: int = 10
    remux_duration: float = 20.0


# ------------------------------------------------------------------------------------------ helpers


@contextmanager
def evidence_home(home: Path) -> Iterator[None]:
    """``EVIDENCE_HOME`` set to ``home`` and every other inherited ``EVIDENCE_*`` variable dropped,
    for as long as the block runs (settings are read from the environment when loaded)."""
    saved = {key: value for key, value in os.environ.items() if key.startswith("EVIDENCE_")}
    for key in saved:
        del os.environ[key]
    os.environ["EVIDENCE_HOME"] = str(home)
    try:
        yield
    finally:
        os.environ.pop("EVIDENCE_HOME", None)
        os.environ.update(saved)


def video_profile() -> Profile:
    profiles = load_profiles()
    if PROFILE not in profiles:
        raise BenchError(f"the transcode profiles have no {PROFILE!r} profile")
    return profiles[PROFILE]


def encoding_profile() -> Profile:
    """The shipped ``video-access`` profile with stream copies turned off: every copy is encoded."""
    profile = video_profile()
    return replace(profile, params=MappingProxyType({**profile.params, "remux": False}))


def probe(path: Path) -> MediaInfo:
    extraction = FfprobeExtractor(check_integrity=False).extract(
        path, ExtractionContext(original_name=path.name, media_kind="video")
    )
    if extraction.media is None:
        problems = "; ".join(problem.message for problem in extraction.problems)
        raise BenchError(f"ffprobe cannot read the clip {path.name}: {problems}")
    return extraction.media


# ------------------------------------------------------------------------------------------ data sets
def make_clip(path: Path, duration: float) -> float:
    """Write a test clip: H.264 1920x1080 at 30 fps and two AAC tracks; returns the seconds it took."""
    cmd = [FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
    cmd += ["-f", "lavfi", "-i", f"testsrc2=size={WIDTH}x{HEIGHT}:rate={FPS}:duration={duration}"]
    for tone in TONES:
        cmd += ["-f", "lavfi", "-i", f"sine=frequency={tone}:sample_rate=48000:duration={duration}"]
    cmd += ["-map", "0:v", *(arg for number in range(1, len(TONES) + 1) for arg in ("-map", f"{number}:a"))]
    cmd += ["-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-pix_fmt", "yuv420p", "-g", str(2 * FPS)]
    cmd += ["-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart", str(path)]
    return timed_run(cmd)[0]


def describe_clip(path: Path, media: MediaInfo) -> Results:
    videos, audios = media.of_kind("video"), media.of_kind("audio")
    video = videos[0] if videos else None
    return {
        "bytes": path.stat().st_size,
        "duration_s": media.duration,
        "video": f"{video.codec} {video.width}x{video.height} {video.frame_rate:g} fps"
        if video and video.frame_rate
        else None,
        "audio_tracks": [f"{stream.codec} {stream.sample_rate} Hz" for stream in audios],
    }


def clip_text(clip: Results) -> str:
    tracks = len(clip["audio_tracks"])
    return f"{clip['duration_s']:.1f} s {clip['video']}, {tracks} audio track(s), {human_bytes(clip['bytes'])}"


# ------------------------------------------------------------------------------------------ step clock
@dataclass
class StepClock:
    """Times the two steps of ``make_derivative`` by wrapping the names it calls in its own module."""

    transcode: list[float] = field(default_factory=list)
    verify: list[float] = field(default_factory=list)
    runs: list[TranscodeRun] = field(default_factory=list)

    @contextmanager
    def installed(self) -> Iterator[StepClock]:
        real_run, real_verify = derive_module.run_transcode, derive_module.verify_derivative

        def run_transcode(*args: Any, **kwargs: Any) -> TranscodeRun:
            start = time.perf_counter()
            try:
                run = real_run(*args, **kwargs)
            finally:
                self.transcode.append(time.perf_counter() - start)
            self.runs.append(run)
            return run

        def verify_derivative(*args: Any, **kwargs: Any) -> Verification:
            start = time.perf_counter()
            try:
                return real_verify(*args, **kwargs)
            finally:
                self.verify.append(time.perf_counter() - start)

        with ExitStack() as stack:
            stack.enter_context(mock.patch.object(derive_module, "run_transcode", run_transcode))
            stack.enter_context(mock.patch.object(derive_module, "verify_derivative", verify_derivative))
            yield self

    def only(self) -> tuple[float, float, float]:
        """(around run_transcode, the runner's elapsed, around verify_derivative) of the one call timed."""
        if len(self.transcode) != 1 or len(self.verify) != 1 or len(self.runs) != 1:
            raise BenchError(
                f"expected one transcode and one verification, saw {len(self.transcode)} and {len(self.verify)}"
            )
        return self.transcode[0], self.runs[0].elapsed, self.verify[0]


# ------------------------------------------------------------------------------------------ (a) one clip
def time_direct(argv: Sequence[str], dest: Path) -> tuple[float, int]:
    remove(dest)
    seconds, _ = timed_run(argv)
    if not dest.is_file() or dest.stat().st_size == 0:
        raise BenchError(f"the reference ffmpeg run left no output at {dest.name}")
    return seconds, dest.stat().st_size


def timed_derivative(profile: Profile, media: MediaInfo, source: Path, dest: Path) -> tuple[Any, float, StepClock]:
    """``make_derivative`` timed whole and step by step; the copy it made (verified) and its path."""
    remove(dest)
    clock = StepClock()
    with clock.installed():
        start = time.perf_counter()
        made = make_derivative(profile, media, source, dest, timeout=TIMEOUT)
        total = time.perf_counter() - start
    if made.path is None:
        raise BenchError(f"{profile.label}: the copy failed verification: {made.verification.reason}")
    return made, total, clock


def time_make_derivative(profile: Profile, media: MediaInfo, source: Path, dest: Path) -> tuple[dict[str, float], int]:
    made, total, clock = timed_derivative(profile, media, source, dest)
    transcode, elapsed, verify = clock.only()
    figures = {
        "total": total,
        "transcode": transcode,
        "runner_elapsed": elapsed,
        "verify": verify,
        "other": total - transcode - verify,
    }
    return figures, made.path.stat().st_size


def time_derive_stage(cfg: Config, clip: Path, home: Path) -> dict[str, float]:
    """Take ``clip`` in (untimed) under a fresh ``home``, then time the derive stage for it."""
    remove(home)
    try:
        with evidence_home(home):
            settings = load_settings()
            ctx = intake_context(settings)
            arrival = arrival_for(
                os.fsencode(clip),
                inbox=settings.inbox_dir,
                dock=None,
                policy=settings.source_policy,
                external_policy=settings.external_source_policy,
            )
            taken = [
                result
                for batch in ingest_arrivals(settings, ctx, [arrival], jobs=1, with_probe=True, with_derive=False)
                for result in batch
            ]
            if len(taken) != 1 or taken[0].status != "stored" or taken[0].item is None:
                shown = [(result.status, result.error) for result in taken]
                raise BenchError(f"intake of the clip did not store it: {shown}")
            dctx = derive_context(settings, actor="bench-transcode")
            profiles = {**dctx.config.profiles, PROFILE: encoding_profile()}
            dctx = replace(dctx, config=replace(dctx.config, profiles=MappingProxyType(profiles)))
            clock = StepClock()
            with clock.installed():
                start = time.perf_counter()
                results = derive(dctx, [taken[0].item], only=(PROFILE,))
                total = time.perf_counter() - start
            ctx.engine.dispose()
            if len(results) != 1 or results[0].status != "verified":
                made = [(result.profile, result.status, result.error) for result in results]
                raise BenchError(f"the derive stage did not make a verified {PROFILE} copy: {made}")
            transcode, elapsed, verify = clock.only()
    finally:
        if not cfg.keep:
            remove(home)
    return {
        "total": total,
        "transcode": transcode,
        "runner_elapsed": elapsed,
        "verify": verify,
        "rest": total - transcode - verify,
    }


def bench_clip(cfg: Config, data: Results) -> None:
    clip = cfg.work / "clip.mp4"
    data["clip_generation_s"] = make_clip(clip, cfg.duration)
    media = probe(clip)
    data["clip"] = describe_clip(clip, media)
    profile = encoding_profile()
    data["profile"] = {"label": profile.label, "params": dict(profile.params)}
    direct_dest = cfg.work / "direct.mp4"
    argv = build_command(profile, media, clip, direct_dest)
    data["reference_argv"] = argv
    pipe_dest = cfg.work / "pipeline.mp4"
    times: dict[str, list[float]] = {"direct": []}
    derivative: dict[str, list[float]] = {}
    stage: dict[str, list[float]] = {}
    sizes: dict[str, int] = {}
    # One untimed run first: the first transcode after a pause runs measurably slower on small machines.
    data["warmup_s"], _ = time_direct(argv, direct_dest)
    for i in range(cfg.runs):  # interleaved, so drift in the machine's state hits every method alike
        seconds, sizes["direct"] = time_direct(argv, direct_dest)
        times["direct"].append(seconds)
        figures, sizes["make_derivative"] = time_make_derivative(profile, media, clip, pipe_dest)
        for name, value in figures.items():
            derivative.setdefault(name, []).append(value)
        for name, value in time_derive_stage(cfg, clip, cfg.work / f"home-derive-{i}").items():
            stage.setdefault(name, []).append(value)
    if not cfg.keep:
        for path in (clip, direct_dest, pipe_dest):
            remove(path)
    direct = statistics.median(times["direct"])
    med_derivative = {name: statistics.median(values) for name, values in derivative.items()}
    med_stage = {name: statistics.median(values) for name, values in stage.items()}
    overhead = med_derivative["transcode"] / direct
    frames = (media.duration or cfg.duration) * FPS
    data.update(
        {
            "runs_s": {"direct": times["direct"], "make_derivative": derivative, "derive_stage": stage},
            "median_s": {"direct": direct, "make_derivative": med_derivative, "derive_stage": med_stage},
            "direct_fps": frames / direct,
            "output_bytes": sizes,
            "ratio_transcode_over_direct": overhead,
            "ratio_runner_elapsed_over_direct": med_derivative["runner_elapsed"] / direct,
            "ratio_make_derivative_over_direct": med_derivative["total"] / direct,
            "ratio_derive_stage_over_direct": med_stage["total"] / direct,
            "target_overhead_ratio": OVERHEAD_TARGET,
            "meets_target": overhead <= OVERHEAD_TARGET,
        }
    )


def rows_clip(data: Results) -> Rows:
    med = data["median_s"]
    direct, made, stage = med["direct"], med["make_derivative"], med["derive_stage"]
    ratio = data["ratio_transcode_over_direct"]
    sizes = data["output_bytes"]

    def line(seconds: float) -> str:
        return f"{seconds:8.3f} s  {seconds / direct:6.3f} x ffmpeg"

    runs, params = data["runs_s"], data["profile"]["params"]
    missed = verdict(data["meets_target"], "ABOVE TARGET")
    return [
        ("clip", clip_text(data["clip"])),
        ("clip generation (untimed)", f"{data['clip_generation_s']:8.3f} s"),
        ("profile", f"{data['profile']['label']} (preset {params['preset']}, crf {params['crf']})"),
        ("ffmpeg warm-up run (untimed)", f"{data['warmup_s']:8.3f} s"),
        ("ffmpeg build_command (reference)", f"{direct:8.3f} s  {data['direct_fps']:6.1f} frames/s"),
        ("make_derivative total", line(made["total"])),
        ("  transcode (around run_transcode)", line(made["transcode"])),
        ("  transcode (runner's elapsed)", line(made["runner_elapsed"])),
        ("  verification", line(made["verify"])),
        ("  other (command, tool version, rename)", line(made["other"])),
        ("ratio transcode / ffmpeg", f"{ratio:8.3f}    target <= {OVERHEAD_TARGET}  {missed}"),
        ("derive stage total", line(stage["total"])),
        ("  transcode (around run_transcode)", line(stage["transcode"])),
        ("  verification", line(stage["verify"])),
        ("  rest (probe, store put, catalog, custody)", line(stage["rest"])),
        ("output size ffmpeg / pipeline", f"{sizes['direct']} B / {sizes['make_derivative']} B"),
        ("runs (s) ffmpeg", runs_text(runs["direct"])),
        ("runs (s) make_derivative transcode", runs_text(runs["make_derivative"]["transcode"])),
        ("runs (s) make_derivative verify", runs_text(runs["make_derivative"]["verify"])),
        ("runs (s) make_derivative total", runs_text(runs["make_derivative"]["total"])),
        ("runs (s) derive stage total", runs_text(runs["derive_stage"]["total"])),
    ]


# ------------------------------------------------------------------------------------------ (b) throughput
_worker_profile: Profile | None = None


def _derive_clip(job: tuple[str, str, MediaInfo]) -> dict[str, Any]:
    """One clip through ``make_derivative`` in a pool process; returns its figures."""
    global _worker_profile
    if _worker_profile is None:
        _worker_profile = encoding_profile()
    source, dest, media = job
    start = time.perf_counter()
    made = make_derivative(_worker_profile, media, Path(source), Path(dest), timeout=TIMEOUT)
    total = time.perf_counter() - start
    return {
        "ok": made.path is not None,
        "reason": made.verification.reason,
        "total_s": total,
        "runner_elapsed_s": made.run.elapsed,
        "pid": os.getpid(),
    }


def _ready(_: int) -> int:
    video_profile()
    tool_version(FFMPEG)
    return os.getpid()


def time_pool(processes: int, jobs: Sequence[tuple[str, str, MediaInfo]]) -> tuple[float, list[dict[str, Any]]]:
    for _, dest, _ in jobs:
        remove(Path(dest))
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        started = set(pool.map(_ready, range(processes * 4), chunksize=1))
        if len(started) != processes:  # every process is up before the clock starts
            started |= set(pool.map(_ready, range(processes * 16), chunksize=1))
        start = time.perf_counter()
        done = pool.map(_derive_clip, jobs, chunksize=1)
        seconds = time.perf_counter() - start
    failed = [result for result in done if not result["ok"]]
    if failed:
        raise BenchError(f"{len(failed)} clip(s) failed verification: {failed[0]['reason']}")
    return seconds, done


def bench_throughput(cfg: Config, data: Results) -> None:
    folder = cfg.work / "throughput"
    folder.mkdir()
    first = folder / "clip-0.mp4"
    data["clip_generation_s"] = make_clip(first, cfg.throughput_duration)
    media = probe(first)
    data["clip"] = describe_clip(first, media)
    data["clips"] = cfg.clips
    sources = [first]
    for number in range(1, cfg.clips):  # the same bytes under other names: every clip costs the same
        copy = folder / f"clip-{number}.mp4"
        shutil.copyfile(first, copy)
        sources.append(copy)
    jobs = [(str(source), str(source.with_name(f"{source.stem}.access.mp4")), media) for source in sources]
    pools: Results = {}
    for processes in (1, 2):
        seconds, done = time_pool(processes, jobs)
        pools[str(processes)] = {
            "seconds": seconds,
            "clips_per_minute": cfg.clips * 60 / seconds,
            "mean_clip_s": statistics.mean(result["total_s"] for result in done),
            "mean_transcode_s": statistics.mean(result["runner_elapsed_s"] for result in done),
            "processes_used": len({result["pid"] for result in done}),
        }
    if not cfg.keep:
        remove(folder)
    data["pools"] = pools
    data["speedup_2_over_1"] = pools["1"]["seconds"] / pools["2"]["seconds"]


def rows_throughput(data: Results) -> Rows:
    rows: Rows = [
        ("clips", f"{data['clips']} x {clip_text(data['clip'])}"),
        ("clip generation (untimed)", f"{data['clip_generation_s']:8.3f} s"),
    ]
    for processes, pool in data["pools"].items():
        rows += [
            (
                f"{processes} process(es)",
                f"{pool['seconds']:8.3f} s  {pool['clips_per_minute']:6.2f} clips/min  "
                f"(per clip {pool['mean_clip_s']:.2f} s, transcode {pool['mean_transcode_s']:.2f} s; "
                f"{pool['processes_used']} used)",
            )
        ]
    rows.append(("speed-up 2 / 1 processes", f"{data['speedup_2_over_1']:8.3f}"))
    return rows


# ------------------------------------------------------------------------------------------ (c) remux
def make_camera_clip(path: Path, duration: float) -> float:
    """Write a body-camera-like clip: H.264 High 1280x720 at 30 fps with B-frames, one AAC track, the
    index at the end; returns the seconds it took."""
    width, height = REMUX_SIZE
    cmd = [FFMPEG, "-hide_banner", "-nostdin", "-loglevel", "error", "-y"]
    cmd += ["-f", "lavfi", "-i", f"testsrc2=size={width}x{height}:rate={REMUX_FPS}:duration={duration}"]
    cmd += ["-f", "lavfi", "-i", f"sine=frequency={TONES[0]}:sample_rate=48000:duration={duration}"]
    cmd += ["-c:v", "libx264", "-preset", "veryfast", "-profile:v", "high", "-crf", "23", "-pix_fmt", "yuv420p"]
    cmd += ["-g", str(REMUX_FPS), "-c:a", "aac", "-b:a", "128k", str(path)]
    return timed_run(cmd)[0]


def before_profile(profile: Profile) -> Profile:
    """The ``video-access`` profile as version 1 made copies: every one encoded at preset medium."""
    params = {**profile.params, "remux": False, "preset": "medium"}
    return replace(profile, version=1, params=MappingProxyType(params))


def time_access(profile: Profile, media: MediaInfo, source: Path, dest: Path) -> dict[str, Any]:
    made, total, clock = timed_derivative(profile, media, source, dest)
    return {
        "total": total,
        "ffmpeg": sum(clock.transcode),
        "verify": sum(clock.verify),
        "bytes": made.path.stat().st_size,
        "how": made.plan.how if made.plan else None,
        "why": made.plan.why if made.plan else None,
    }


def bench_remux(cfg: Config, data: Results) -> None:
    folder = cfg.work / "remux"
    folder.mkdir()
    first = folder / "cam-0.mp4"
    data["clip_generation_s"] = make_camera_clip(first, cfg.remux_duration)
    media = probe(first)
    data["clip"] = describe_clip(first, media)
    data["clips"] = cfg.remux_clips
    after = video_profile()
    before = before_profile(after)
    sheet = load_profiles()["contact-sheet"]
    data["profiles"] = {"before": dict(before.params), "after": dict(after.params), "after_label": after.label}
    sources = [first]
    for number in range(1, cfg.remux_clips):  # the same bytes under other names: every clip costs the same
        copy = folder / f"cam-{number}.mp4"
        shutil.copyfile(first, copy)
        sources.append(copy)
    runs: dict[str, list[dict[str, Any]]] = {"before": [], "after": [], "sheet": []}
    for source in sources:  # interleaved, so drift in the machine's state hits both alike
        runs["before"].append(time_access(before, media, source, source.with_suffix(".before.mp4")))
        runs["after"].append(time_access(after, media, source, source.with_suffix(".after.mp4")))
        start = time.perf_counter()
        made = make_derivative(sheet, media, source, source.with_suffix(".sheet.jpg"), timeout=TIMEOUT)
        if made.path is None:
            raise BenchError(f"the contact sheet failed verification: {made.verification.reason}")
        runs["sheet"].append({"total": time.perf_counter() - start, "ffmpeg": made.run.elapsed})
    if not cfg.keep:
        remove(folder)
    totals = {name: sum(run["total"] for run in done) for name, done in runs.items()}
    data.update(
        {
            "runs": runs,
            "total_s": totals,
            "per_clip_s": {name: total / cfg.remux_clips for name, total in totals.items()},
            "ffmpeg_s": {name: sum(run["ffmpeg"] for run in runs[name]) for name in ("before", "after")},
            "verify_s": {name: sum(run["verify"] for run in runs[name]) for name in ("before", "after")},
            "bytes": {name: runs[name][0]["bytes"] for name in ("before", "after")},
            "how": {name: sorted({str(run["how"]) for run in runs[name]}) for name in ("before", "after")},
            "why_after": runs["after"][0]["why"],
            "speedup": totals["before"] / totals["after"],
        }
    )


def rows_remux(data: Results) -> Rows:
    per, total, ffmpeg_s, verify_s = data["per_clip_s"], data["total_s"], data["ffmpeg_s"], data["verify_s"]
    rows: Rows = [
        ("clips", f"{data['clips']} x {clip_text(data['clip'])}"),
        ("clip generation (untimed)", f"{data['clip_generation_s']:8.3f} s"),
    ]
    for name, title in (
        ("before", "before: re-encode, preset medium"),
        ("after", f"after: {data['profiles']['after_label']}"),
    ):
        rows.append(
            (
                title,
                f"{total[name]:8.3f} s  per clip {per[name]:6.3f} s  (ffmpeg {ffmpeg_s[name]:.3f} s, "
                f"verification {verify_s[name]:.3f} s; {', '.join(data['how'][name])}; "
                f"{human_bytes(data['bytes'][name])})",
            )
        )
    rows += [
        ("speed-up before / after", f"{data['speedup']:8.2f} x"),
        ("why (after)", str(data["why_after"])),
        ("contact sheet, one pass", f"{total['sheet']:8.3f} s  per clip {per['sheet']:6.3f} s"),
        ("runs (s) before", runs_text([run["total"] for run in data["runs"]["before"]])),
        ("runs (s) after", runs_text([run["total"] for run in data["runs"]["after"]])),
    ]
    return rows


# ------------------------------------------------------------------------------------------ reporting


def context(cfg: Config) -> Results:
    return {
        "ffmpeg": tool_version(FFMPEG),  # also caches it, as a long-running worker has it cached
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "runs_per_figure": cfg.runs,
    }


def rows_context(data: Results) -> Rows:
    return [
        ("ffmpeg", str(data["ffmpeg"])),
        ("timed figures", f"(a) median of {data['runs_per_figure']} runs, (b) one run per pool size"),
        ("python / cpus", f"{data['python']} / {data['cpus']}"),
        ("platform", data["platform"]),
    ]


SECTIONS: dict[str, tuple[str, Callable[[Config, Results], None], Callable[[Results], Rows]]] = {
    "a": ("(a) one clip's access copy: ffmpeg alone, make_derivative, the derive stage", bench_clip, rows_clip),
    "b": ("(b) throughput: make_derivative over a pool of 1 and 2 processes", bench_throughput, rows_throughput),
    "c": ("(c) access copies of camera clips: re-encoded (before) against remuxed (after)", bench_remux, rows_remux),
}


def run_all(cfg: Config) -> tuple[Results, bool]:
    results: Results = {"context": context(cfg)}
    print_section("context", rows_context(results["context"]))
    if results["context"]["ffmpeg"] is None:
        print(f"benchmark: {FFMPEG} cannot be run", file=sys.stderr)
        return results, False
    ok = True
    for part in cfg.parts:
        title, bench, rows = SECTIONS[part]
        data: Results = {}
        results[part] = data
        try:
            bench(cfg, data)
        except (BenchError, PipelineError, OSError, subprocess.SubprocessError) as exc:
            ok = False
            data["error"] = f"{type(exc).__name__}: {exc}"
            print_section(title, [("FAILED", data["error"])])
            print(f"benchmark part ({part}) failed: {data['error']}", file=sys.stderr)
            continue
        print_section(title, rows(data))
    return results, ok


# ------------------------------------------------------------------------------------------ command line
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--only", default=",".join(PARTS), help="Parts to run, e.g. c (default: a,b,c).")
    parser.add_argument("--json", type=Path, help="Also write every figure to this JSON file.")
    parser.add_argument("--workdir", type=Path, help="Make the temporary directory inside this one.")
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS, help="(a) runs per timed figure (default 2).")
    parser.add_argument("--keep", action="store_true", help="Keep the temporary directory and data.")
    parser.add_argument("--duration", type=float, default=60.0, help="(a) clip length in seconds (default 60).")
    parser.add_argument("--clips", type=int, default=4, help="(b) number of clips (default 4).")
    parser.add_argument(
        "--throughput-duration", type=float, default=10.0, help="(b) length of each clip in seconds (default 10)."
    )
    parser.add_argument("--remux-clips", type=int, default=10, help="(c) number of clips (default 10).")
    parser.add_argument(
        "--remux-duration", type=float, default=20.0, help="(c) length of each clip in seconds (default 20)."
    )
    return parser.parse_args(argv)


def make_config(args: argparse.Namespace) -> Config:
    parts = tuple(part.strip() for part in args.only.split(",") if part.strip())
    unknown = set(parts) - set(PARTS)
    if unknown:
        raise SystemExit(f"--only: unknown part(s) {', '.join(sorted(unknown))}; choose from {', '.join(PARTS)}")
    if args.runs < 1:
        raise SystemExit("--runs must be at least 1")
    if args.clips < 1 or args.remux_clips < 1:
        raise SystemExit("--clips and --remux-clips must be at least 1")
    if args.duration <= 0 or args.throughput_duration <= 0 or args.remux_duration <= 0:
        raise SystemExit("--duration, --throughput-duration and --remux-duration must be positive")
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-transcode-", dir=args.workdir))
    return Config(
        work=work,
        parts=parts,
        runs=args.runs,
        duration=args.duration,
        clips=args.clips,
        throughput_duration=args.throughput_duration,
        keep=args.keep,
        remux_clips=args.remux_clips,
        remux_duration=args.remux_duration,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = make_config(args)
    return run_bench(lambda: run_all(cfg), work=cfg.work, keep=cfg.keep, json_path=args.json)


if __name__ == "__main__":
    sys.exit(main())
