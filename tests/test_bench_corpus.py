"""The corpus benchmark runs end to end on a scaled-down corpus: every file gets the line it should
(the benchmark fails otherwise), the figures and statuses it reports are there, and it leaves
nothing behind."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import corpus as bench  # the benchmark is a script beside the tests, not a package
from report import BenchError

ROOT = Path(__file__).resolve().parents[1]

KINDS = {"clip-00.mp4": "clip", "photo-000.jpg": "dated-photo", "clip-cut.mp4": "truncated", "empty.mp4": "empty"}
SIZES = {"clip-00.mp4": 1000, "photo-000.jpg": 100, "clip-cut.mp4": 500, "empty.mp4": 0}


def line(name: str, **fields: Any) -> dict[str, Any]:
    """The line `evidence ingest --no-derive --json` prints for a corpus file that went as it should."""
    record: dict[str, Any]
    if name == "empty.mp4":
        record = {"path": f"corpus/{name}", "status": "failed", "item": None, "size": 0, "error": "zero-byte file"}
    else:
        issues = ["damaged-media", "truncated-stream"] if name == "clip-cut.mp4" else ["missing-collector"]
        record = {"path": f"corpus/{name}", "status": "stored", "item": "I" + name, "sha256": "ab" * 32,
                  "size": SIZES[name], "issues": issues}  # fmt: skip
    return {**record, **fields}


class TestCorpusBenchmark:
    def test_a_small_corpus_is_ingested_and_every_figure_reported(self, tmp_path: Path) -> None:
        """One 2 s clip, one WAV, three photos, the cut clip and the empty file: six stored, the cut
        one damaged, the empty one failed, both ratios computed from the medians."""
        out = tmp_path / "corpus.json"
        done = subprocess.run(
            [
                sys.executable,
                str(ROOT / "bench" / "corpus.py"),
                "--clips", "1", "--clip-seconds", "2", "--wavs", "1", "--jpegs", "3", "--runs", "1",
                "--json", str(out), "--workdir", str(tmp_path / "work"),
            ],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stdout + done.stderr  # a missed target is marked, not a failure
        results = json.loads(out.read_text())
        assert "error" not in results
        assert results["corpus"]["files"] == 7
        assert results["corpus"]["kinds"] == {
            "clip": 1, "wav": 1, "dated-photo": 1, "photo": 2, "truncated": 1, "empty": 1,
        }  # fmt: skip
        for side in ("reference", "no_derive", "ingest"):
            assert len(results[side]["runs"]) == 1 and results[side]["seconds"] > 0
        assert results["reference"]["unreadable_files"] == [2]  # ffprobe cannot read the cut or the empty file
        for side in ("no_derive", "ingest"):
            assert results[side]["statuses"] == {"stored": 6, "failed": 1}
            assert "damaged-media" in results[side]["truncated"]["issues"]
            assert results[side]["empty"]["status"] == "failed"
        assert results["no_derive"]["derivatives"] == {}
        assert results["ingest"]["derivatives"]["image-access:verified"] == 3
        assert results["ingest"]["derivatives"]["video-access:verified"] == 1
        ratio = results["ratio"]
        assert ratio["reference_over_no_derive"] == results["reference"]["seconds"] / results["no_derive"]["seconds"]
        assert ratio["ingest_over_no_derive"] == results["ingest"]["seconds"] / results["no_derive"]["seconds"]
        assert "ratio reference / no-derive" in done.stdout and "ratio ingest / no-derive" in done.stdout
        assert list((tmp_path / "work").iterdir()) == []  # the scratch folder, corpus and each run's data are gone

    def test_a_corpus_without_a_clip_is_refused(self, tmp_path: Path) -> None:
        """The cut MP4 is a clip's copy: --clips 0 is refused before anything is built."""
        done = subprocess.run(
            [sys.executable, str(ROOT / "bench" / "corpus.py"), "--clips", "0", "--workdir", str(tmp_path / "work")],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode != 0 and "--clips" in done.stderr
        assert not (tmp_path / "work").exists()


class TestLineChecks:
    corpus = bench.Corpus(Path("corpus"), KINDS, SIZES)

    def test_the_expected_lines_pass_with_their_statuses(self) -> None:
        """One line per file as the pipeline reports them: the statuses, the cut clip's issues and
        the empty file's reason are what the benchmark records."""
        checked = bench.check_lines(self.corpus, [line(name) for name in KINDS], derive=False)
        assert checked["statuses"] == {"stored": 3, "failed": 1}
        assert checked["truncated"]["issues"] == ["damaged-media", "truncated-stream"]
        assert checked["empty"] == {"status": "failed", "error": "zero-byte file"}

    @pytest.mark.parametrize(
        ("name", "fields", "problem"),
        [
            ("empty.mp4", {"status": "stored", "item": "X"}, "empty.mp4: not failed without an item"),
            ("clip-cut.mp4", {"issues": ["truncated-stream"]}, "clip-cut.mp4: cut in half but no damaged-media"),
            ("clip-00.mp4", {"issues": ["damaged-media"]}, "clip-00.mp4: intact but reported damaged"),
            ("clip-00.mp4", {"size": 999}, "clip-00.mp4: size 999 reported, 1000 on disk"),
            ("clip-00.mp4", {"status": "duplicate"}, "clip-00.mp4: status 'duplicate'"),
            ("photo-000.jpg", {"issues": ["capture-time-unknown"]}, "photo-000.jpg: EXIF DateTimeOriginal present"),
            ("photo-000.jpg", {"derivatives": ["image-access:verified"]}, "access copies made with --no-derive"),
        ],
    )
    def test_a_wrong_line_fails_the_benchmark_naming_the_file(
        self, name: str, fields: dict[str, Any], problem: str
    ) -> None:
        """One file's line differing from what the file is: the benchmark fails with that file's problem."""
        records = [line(other, **(fields if other == name else {})) for other in KINDS]
        with pytest.raises(BenchError, match="1 unexpected line") as raised:
            bench.check_lines(self.corpus, records, derive=False)
        assert problem in str(raised.value)

    def test_a_missing_or_doubled_line_fails_the_benchmark(self) -> None:
        """A file without its line, another with two: both named in one error."""
        records = [line(name) for name in KINDS if name != "photo-000.jpg"] + [line("clip-00.mp4")]
        with pytest.raises(BenchError) as raised:
            bench.check_lines(self.corpus, records, derive=False)
        assert "photo-000.jpg: no line" in str(raised.value) and "clip-00.mp4: a second line" in str(raised.value)

    def test_with_access_copies_each_intact_file_needs_them_verified(self) -> None:
        """With derive, an intact file whose access copy failed is a failure; the cut clip's failing is not."""
        records = [
            line("clip-00.mp4", derivatives=["video-access:verified", "poster:failed"]),
            line("photo-000.jpg", derivatives=["image-access:verified"]),
            line("clip-cut.mp4", derivatives=["video-access:failed", "poster:failed"]),
            line("empty.mp4"),
        ]
        with pytest.raises(BenchError) as raised:
            bench.check_lines(self.corpus, records, derive=True)
        assert "clip-00.mp4: access copies not all verified" in str(raised.value)
        assert "clip-cut.mp4" not in str(raised.value)
