"""The corpus benchmark counts the CPU seconds of each side as well as its wall time: they are what
show a change in the work on a machine others load."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import corpus as bench  # the benchmark is a script beside the tests, not a package

ROOT = Path(__file__).resolve().parents[1]


def test_cpu_seconds_of_the_processes_a_side_starts_are_counted(tmp_path: Path) -> None:
    """The ffprobe loop's CPU seconds are those of the processes it starts: more files, more CPU."""
    folder = tmp_path / "clips"
    folder.mkdir()
    clip = folder / "clip-0.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=10:duration=1", str(clip)],
        check=True,
    )
    _, one, unreadable = bench.time_reference(folder)
    assert unreadable == 0 and one > 0
    for number in range(1, 20):
        (folder / f"clip-{number}.mp4").write_bytes(clip.read_bytes())
    _, twenty, _ = bench.time_reference(folder)
    assert twenty > 5 * one


def test_a_run_reports_cpu_seconds_and_their_ratio(tmp_path: Path) -> None:
    out = tmp_path / "corpus.json"
    args = ["--runs", "1", "--clips", "1", "--clip-seconds", "1", "--wavs", "0", "--jpegs", "1"]
    done = subprocess.run(
        [sys.executable, "bench/corpus.py", *args, "--json", str(out), "--workdir", str(tmp_path / "work")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(out.read_text())
    for side in ("reference", "no_derive", "ingest"):
        assert results[side]["cpu_runs"] == [results[side]["cpu_seconds"]] and results[side]["cpu_seconds"] > 0
    ratio = results["ratio"]["cpu_ingest_over_no_derive"]
    assert ratio == results["ingest"]["cpu_seconds"] / results["no_derive"]["cpu_seconds"] > 1
    assert "cpu ratio ingest / no-derive" in done.stdout and "load average now" in done.stdout
