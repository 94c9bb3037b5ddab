"""Probing without a program per file: libavformat in-process (PyAV) gives the facts ffprobe and
ffmpeg give, a file that hangs the demuxer costs its time-out and nothing more, and exiftool runs as
one long-running process."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from PIL import Image

from pipeline.metadata import (
    DEFAULT_FILENAME_PATTERNS,
    ExifreadExtractor,
    Extraction,
    ExtractionContext,
    FilenameExtractor,
    MediaInfo,
    load_filename_profiles,
)
from pipeline.metadata.avprobe import AvReader
from pipeline.metadata.exiftool import ExiftoolExtractor, ExiftoolProcess
from pipeline.metadata.ffprobe import FfprobeExtractor
from pipeline.metadata.registry import extract_all, extractors_for
from tests.odd_media import base_clip, make_corpus, make_fifo, picture, tone
from tests.odd_media import ffmpeg as run_ffmpeg

HAS_EXIFTOOL = shutil.which("exiftool") is not None
KINDS = {
    **dict.fromkeys(["mp4", "mov", "avi", "mkv", "ts", "mts", "dv", "mxf", "h264", "heic"], "video"),
    **dict.fromkeys(["wav", "mp3", "m4a", "flac"], "audio"),
    **dict.fromkeys(["jpg", "png"], "image"),
}
# Where the FFmpeg PyAV bundles (7 and later) and Debian's ffprobe 5.1 measure time differently:
# an MP3 lasts what is heard, without the encoder's delay and padding (1.0 s, not 1.044898 s); a
# zero-duration QuickTime header or an empty edit list leaves the duration unknown rather than zero;
# a DV file cut inside a frame, or a one-frame MPEG-TS clip, is timed by what its packets hold rather
# than rounded up to whole frames. Everything else about these files must agree.
DURATIONS_DIFFER = frozenset(
    [
        "empty-edit.mov",
        "half-a-frame.dv",
        "cut-tape.dv",
        "one-frame.ts",
        "zero-duration-5-frames.mov",
        "zero-duration.mov",
        "zero-duration.mp4",
    ]
)
KEYS = ["-movflags", "use_metadata_tags"]  # QuickTime metadata keys, as phones and many cameras write
PLACE = ["-metadata", "location=+31.2304+121.4737/"]
BEXT = [
    "-metadata",
    "originator=ZOOM F6",
    "-metadata",
    "origination_date=2025-09-30",
    "-metadata",
    "origination_time=14:30:15",
]
XMP = (
    '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    '<rdf:Description rdf:about="" xmlns:xmp="http://ns.adobe.com/xap/1.0/"'
    ' xmp:CreateDate="2025-09-30T14:30:15+08:00"/>'
    "</rdf:RDF></x:xmpmeta>"
)
PROFILES = load_filename_profiles(DEFAULT_FILENAME_PATTERNS)
CAMERA = ["-metadata", "creation_time=2025-09-30T06:30:15Z", "-metadata", "make=Hikvision", "-metadata", "model=DS-1"]


def kind_of(path: Path) -> str:
    return KINDS.get(path.suffix.lstrip(".").lower(), "other")


def stored(path: Path, store: Path) -> Path:
    """The file as the store keeps it: named by its SHA-256."""
    data = path.read_bytes()
    target = store / hashlib.sha256(data).hexdigest()
    target.write_bytes(data)
    return target


def context(name: str, kind: str = "other", timeout: float = 30.0) -> ExtractionContext:
    return ExtractionContext(original_name=name, filename_profiles=PROFILES, timeout=timeout, media_kind=kind)


def recordings(folder: Path) -> list[Path]:
    """One recording in each container docks deliver, tagged as cameras tag them, and the same cut short."""
    folder.mkdir()
    h264 = ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"]
    made = {
        "camera.mp4": [*picture(10, 1), *tone(1), *h264, "-c:a", "aac", *CAMERA, *KEYS],
        "phone.mov": [*picture(10, 1), *tone(1), *h264, "-c:a", "aac", *PLACE, *CAMERA],
        "faststart.mp4": [*picture(10, 1), *tone(1), *h264, "-c:a", "aac", "-movflags", "+faststart"],
        "recorder.avi": [*picture(10, 1), *tone(1), "-c:v", "mjpeg", "-c:a", "pcm_s16le", *CAMERA],
        "00001.mts": [*picture(25, 1), *tone(1), *h264, "-c:a", "aac", "-f", "mpegts"],
        "broadcast.mxf": [*picture(25, 1), "-c:v", "mpeg2video"],
        "tape.dv": [*picture(25, 1, "720x576"), "-c:v", "dvvideo", "-pix_fmt", "yuv420p"],
        "tagged.mkv": [*picture(10, 1), *tone(1), *h264, "-c:a", "libopus", *CAMERA],
        "voice.mp3": [*tone(1), "-c:a", "libmp3lame", "-metadata", "date=2025-09-30T14:30:15+08:00"],
        "voice.flac": [*tone(1), "-c:a", "flac", *CAMERA],
        "interview.wav": [*tone(1), "-ar", "48000", "-write_bext", "1", *BEXT],
        "photo.jpg": [*picture(1), "-frames:v", "1"],
        # a tag in GBK, as Chinese cameras write them: shown as the characters it stands for
        "gbk-tags.mp4": [*picture(10, 1), *h264, "-metadata", os.fsdecode("make=海康".encode("gbk")), *KEYS],
    }
    for name, args in made.items():
        run_ffmpeg(*args, str(folder / name))
    files = [folder / name for name in made]
    for name, keep in (("faststart.mp4", 0.5), ("camera.mp4", 0.5), ("interview.wav", 0.5), ("tape.dv", 0.3)):
        whole = (folder / name).read_bytes()
        cut = folder / f"cut-{name}"
        cut.write_bytes(whole[: int(len(whole) * keep)])
        files.append(cut)
    Image.new("RGB", (32, 24), "blue").save(folder / "xmp.jpg", xmp=XMP.encode())
    files.append(folder / "xmp.jpg")
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "notes.txt").write_text("Officer 012345 statement\n", encoding="utf-8")
    return [*files, folder / "empty.mp4", folder / "notes.txt"]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The odd-media corpus and a recording in each container, whole and cut short."""
    folder = tmp_path_factory.mktemp("probe-corpus")
    odd = [odd.path for odd in make_corpus(folder / "odd")]
    return odd + recordings(folder / "recordings")


def without_durations(media: MediaInfo | None) -> MediaInfo | None:
    if media is None:
        return None
    streams = tuple(dataclasses.replace(stream, duration=None) for stream in media.streams)
    return dataclasses.replace(media, duration=None, streams=streams)


class TestSameFacts:
    def test_every_file_reads_the_same_in_process_as_with_ffprobe(self, corpus: list[Path], tmp_path: Path) -> None:
        """Container, duration, every stream (codec, size, rate, sound), the tags' facts and the verdict
        on damage: the same from PyAV as from ffprobe and ffmpeg, for every file of the corpus."""
        reference, in_process = FfprobeExtractor(engine="ffprobe"), FfprobeExtractor(reader=AvReader())
        differences: list[str] = []
        for path in corpus:
            shown = os.fsdecode(path.name)
            ctx = context(shown, kind_of(path))
            source = stored(path, tmp_path)
            want, got = reference.extract(source, ctx), in_process.extract(source, ctx)
            want_media, got_media = want.media, got.media
            if shown in DURATIONS_DIFFER or path.suffix == ".mp3":
                want_media, got_media = without_durations(want_media), without_durations(got_media)
            for what, left, right in (
                ("media", want_media, got_media),
                ("facts", want.facts, got.facts),
                ("problems", [p.code for p in want.problems], [p.code for p in got.problems]),
            ):
                if left != right:
                    differences.append(f"{shown}: {what}:\n  ffprobe {left}\n  PyAV    {right}")
        assert not differences, "\n".join(differences)

    def test_the_corpus_holds_what_it_should(self, corpus: list[Path], tmp_path: Path) -> None:
        """The comparison above is worth something: the corpus has whole, cut and unreadable files of every kind."""
        reader = FfprobeExtractor(reader=AvReader())
        codes: dict[str, list[str]] = {}
        for path in corpus:
            result = reader.extract(stored(path, tmp_path), context(path.name, kind_of(path)))
            codes[os.fsdecode(path.name)] = [problem.code for problem in result.problems]
        assert codes["camera.mp4"] == codes["tape.dv"] == codes["interview.wav"] == []
        assert codes["cut-faststart.mp4"] == ["truncated-stream"]
        assert codes["cut-camera.mp4"] == codes["empty.mp4"] == ["damaged-media"]
        assert codes["cut-interview.wav"] == codes["cut-tape.dv"] == ["truncated-stream"]
        assert codes["notes.txt"] == ["unsupported-type"]
        gbk = next(path for path in corpus if path.name == "gbk-tags.mp4")
        assert reader.extract(stored(gbk, tmp_path), context("gbk-tags.mp4", "video")).values("make") == ["海康"]

    def test_the_tool_and_the_messages_name_what_read_the_file(self, corpus: list[Path], tmp_path: Path) -> None:
        """The record names PyAV and its libavformat; a message names libavformat, not a program that never ran."""
        cut = next(path for path in corpus if path.name == "cut-faststart.mp4")
        result = FfprobeExtractor().extract(stored(cut, tmp_path), context("clip.mp4", "video"))
        assert result.tool.startswith("PyAV ") and "libavformat" in result.tool
        (problem,) = result.problems
        assert problem.message.startswith("clip.mp4: the recording is cut short (libavformat: ")
        assert "partial file" in problem.message and str(tmp_path) not in problem.message

    def test_the_engine_is_chosen_by_name(self) -> None:
        """PyAV is the default; "ffprobe" gives the programs; anything else is refused up front."""
        assert [e.engine for e in extractors_for("pyav") if isinstance(e, FfprobeExtractor)] == ["pyav"]
        assert [e.engine for e in extractors_for("ffprobe") if isinstance(e, FfprobeExtractor)] == ["ffprobe"]
        with pytest.raises(ValueError, match="unknown probe engine 'ffplay'"):
            FfprobeExtractor(engine="ffplay")


class TestHostileFiles:
    def test_a_file_that_hangs_the_demuxer_costs_its_time_out_only(self, tmp_path: Path) -> None:
        """A named pipe nobody writes blocks libav for ever: the file gets a timeout problem, the child is
        replaced and the files after it are read by the new one."""
        clip = stored(base_clip(tmp_path / "clip.mp4"), tmp_path)
        stuck = make_fifo(tmp_path / "stuck")
        reader = AvReader()
        extractor = FfprobeExtractor(reader=reader)
        started = time.monotonic()
        results = [extractor.extract(path, context("clip.mp4", "video", timeout=1.0)) for path in (clip, stuck, clip)]
        assert time.monotonic() - started < 15
        assert [[p.code for p in result.problems] for result in results] == [[], ["timeout"], []]
        message = results[1].problems[0].message
        assert message.startswith("clip.mp4: reading it did not finish within 1 s")
        assert results[0].media == results[2].media is not None
        assert reader.started == 2

    def test_the_other_extractors_still_run(self, tmp_path: Path) -> None:
        """A hung demuxer is the ffprobe extractor's problem; the file's name is still read."""
        stuck = make_fifo(tmp_path / "stuck")
        name = "DSJ0001_012345_20250930143015_0001.MP4"
        extractors = [FfprobeExtractor(reader=AvReader()), FilenameExtractor(), ExifreadExtractor()]
        results = {r.extractor: r for r in extract_all(stuck, "video", context(name, timeout=0.5), extractors)}
        assert [p.code for p in results["ffprobe"].problems] == ["timeout"]
        assert results["filename"].values("officer_id") == ["012345"]

    def test_a_killed_child_is_replaced(self, tmp_path: Path) -> None:
        """The child killed between two files (out of memory, an operator): the next file starts a new one."""
        clip = stored(base_clip(tmp_path / "clip.mp4"), tmp_path)
        reader = AvReader()
        extractor = FfprobeExtractor(reader=reader)
        first = extractor.extract(clip, context("clip.mp4", "video"))
        assert reader.pid is not None
        os.kill(reader.pid, signal.SIGKILL)
        second = extractor.extract(clip, context("clip.mp4", "video"))
        assert (first.problems, second.problems) == ((), ())
        assert first.media == second.media
        assert reader.started == 2

    def test_threads_share_one_child(self, tmp_path: Path) -> None:
        """Eight threads probing at once get their own answers from one child."""
        clips = [stored(base_clip(tmp_path / "a.mp4"), tmp_path)]
        run_ffmpeg(*picture(10, 2), "-c:v", "mjpeg", str(tmp_path / "b.avi"))
        clips.append(stored(tmp_path / "b.avi", tmp_path))
        reader = AvReader()
        extractor = FfprobeExtractor(reader=reader)
        containers: list[tuple[int, str | None]] = []

        def probe(number: int) -> None:
            for _ in range(5):
                media = extractor.extract(clips[number % 2], context("x", "video")).media
                containers.append((number % 2, media.container if media else None))

        threads = [threading.Thread(target=probe, args=(number,)) for number in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(set(containers)) == [(0, "mov,mp4,m4a,3gp,3g2,mj2"), (1, "avi")]
        assert len(containers) == 40 and reader.started == 1

    def test_the_child_ends_with_its_reader(self, tmp_path: Path) -> None:
        """Closing the reader (done at exit for every reader) leaves no child behind."""
        reader = AvReader()
        FfprobeExtractor(reader=reader).extract(stored(base_clip(tmp_path / "a.mp4"), tmp_path), context("a.mp4"))
        pid = reader.pid
        assert pid is not None
        reader.close()
        assert reader.pid is None
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def running_exiftools() -> set[int]:
    """The process ids of the exiftool processes this test process started."""
    done = subprocess.run(["pgrep", "-P", str(os.getpid()), "-f", "exiftool"], capture_output=True, check=False)
    return {int(pid) for pid in done.stdout.split()}


@pytest.mark.skipif(not HAS_EXIFTOOL, reason="exiftool is not installed (Debian: libimage-exiftool-perl)")
class TestLongRunningExiftool:
    def test_many_files_through_one_process_with_the_same_facts(self, corpus: list[Path], tmp_path: Path) -> None:
        """Every file of the corpus through one exiftool gives what one exiftool per file gave."""
        process = ExiftoolProcess()
        kept, per_file = ExiftoolExtractor(process=process), ExiftoolExtractor(stay_open=False)
        differences = []
        pids = set()
        for path in corpus:
            shown = os.fsdecode(path.name)
            source = stored(path, tmp_path)
            want, got = per_file.extract(source, context(shown)), kept.extract(source, context(shown))
            pids.add(process.pid)
            if (want.facts, want.problems) != (got.facts, got.problems):
                differences.append(f"{shown}:\n  per file {want}\n  kept     {got}")
        assert not differences, "\n".join(differences)
        assert process.started == 1 and len(pids) == 1 and len(corpus) > 60
        process.close()

    def test_facts_come_through(self, corpus: list[Path], tmp_path: Path) -> None:
        """The comparison is of something: XMP's time reaches the result, Matroska's tags are left to ffprobe."""
        process = ExiftoolProcess()
        found = {}
        for name in ("xmp.jpg", "tagged.mkv"):
            path = next(path for path in corpus if path.name == name)
            result: Extraction = ExiftoolExtractor(process=process).extract(stored(path, tmp_path), context(name))
            found[name] = result.values("captured_at")
        assert found == {"xmp.jpg": ["2025-09-30T14:30:15+08:00"], "tagged.mkv": []}
        process.close()

    def test_a_killed_exiftool_is_restarted(self, corpus: list[Path], tmp_path: Path) -> None:
        """exiftool killed between files: the next file starts another and is read in full."""
        process = ExiftoolProcess()
        extractor = ExiftoolExtractor(process=process)
        xmp = stored(next(path for path in corpus if path.name == "xmp.jpg"), tmp_path)
        first = extractor.extract(xmp, context("xmp.jpg"))
        assert process.pid in running_exiftools()
        os.kill(process.pid or 0, signal.SIGKILL)
        second = extractor.extract(xmp, context("xmp.jpg"))
        assert first == second and first.facts
        assert process.started == 2
        process.close()
        assert not running_exiftools() & {process.pid}

    def test_a_stuck_exiftool_is_killed_at_the_time_out(self, corpus: list[Path], tmp_path: Path) -> None:
        """An exiftool that never answers (here, the first one started): a timeout problem for that file,
        a fresh exiftool for the next."""
        stuck_once = tmp_path / "exiftool"
        stuck_once.write_text(
            f'#!/bin/sh\nif [ "$1" = -stay_open ] && [ ! -e "{tmp_path}/hung" ]; then\n'
            f'  touch "{tmp_path}/hung"; exec sleep 60\nfi\nexec exiftool "$@"\n',
            encoding="utf-8",
        )
        stuck_once.chmod(0o755)
        process = ExiftoolProcess(str(stuck_once))
        extractor = ExiftoolExtractor(exiftool=str(stuck_once), process=process)
        xmp = stored(next(path for path in corpus if path.name == "xmp.jpg"), tmp_path)
        started = time.monotonic()
        hung = extractor.extract(xmp, context("xmp.jpg", timeout=1.0))
        assert time.monotonic() - started < 10
        assert [p.code for p in hung.problems] == ["timeout"]
        assert hung.problems[0].message == "xmp.jpg: exiftool did not finish within 1 s; nothing was read"
        assert extractor.extract(xmp, context("xmp.jpg")).values("captured_at") == ["2025-09-30T14:30:15+08:00"]
        assert process.started == 2
        process.close()

    def test_threads_share_one_exiftool(self, corpus: list[Path], tmp_path: Path) -> None:
        """Six threads at once: each gets its own file's answer from the one process."""
        process = ExiftoolProcess()
        extractor = ExiftoolExtractor(process=process)
        xmp = stored(next(path for path in corpus if path.name == "xmp.jpg"), tmp_path)
        bare = stored(next(path for path in corpus if path.name == "photo.jpg"), tmp_path)
        answers: list[tuple[str, list[object]]] = []

        def read(path: Path) -> None:
            for _ in range(4):
                answers.append((path.name, extractor.extract(path, context("x")).values("captured_at")))

        threads = [threading.Thread(target=read, args=(path,)) for path in (xmp, bare) * 3]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wanted = {(xmp.name, ("2025-09-30T14:30:15+08:00",)), (bare.name, ())}
        assert {(name, tuple(values)) for name, values in answers} == wanted
        assert len(answers) == 24 and process.started == 1
        process.close()


class TestChildrenEndWithTheProcess:
    @pytest.mark.skipif(not HAS_EXIFTOOL, reason="exiftool is not installed (Debian: libimage-exiftool-perl)")
    def test_a_worker_killed_outright_leaves_no_reader_or_exiftool_behind(self, tmp_path: Path) -> None:
        """A worker killed with SIGKILL runs no exit handler: its PyAV child and its exiftool go with it."""
        script = tmp_path / "worker.py"
        script.write_text(
            "import os, sys\n"
            "from pipeline.metadata.avprobe import AvReader\n"
            "from pipeline.metadata.exiftool import ExiftoolProcess\n"
            "exiftool, reader = ExiftoolProcess(), AvReader()\n"
            "exiftool.run(['-ver'], 30)\n"
            "reader._running()\n"
            "print(exiftool.pid, reader.pid, flush=True)\n"
            "os.kill(os.getpid(), 9)\n",
            encoding="utf-8",
        )
        root = str(Path(__file__).resolve().parents[1])
        done = subprocess.run(
            [sys.executable, str(script)], capture_output=True, env={**os.environ, "PYTHONPATH": root}, check=False
        )
        assert done.returncode == -signal.SIGKILL, done.stderr
        pids = [int(pid) for pid in done.stdout.split()]
        assert len(pids) == 2
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(alive(pid) for pid in pids):
            time.sleep(0.1)
        assert not [pid for pid in pids if alive(pid)]


def alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (a zombie waiting for its parent counts as ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"
