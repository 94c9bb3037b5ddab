"""Commands spread their files over processes (`--jobs N`) and still report them as one process
would: the same catalog, the same lines in the order given, one item for identical files, and a
bad file recorded while the rest go on."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.conftest import files_under


@pytest.fixture
def database_url() -> str:
    """These tests compare runs in data folders of their own: SQLite, one catalog per folder."""
    return ""


def names(records: list[dict[str, object]]) -> list[str]:
    return [Path(str(r["path"])).name for r in records]


def outcome(records: list[dict[str, object]]) -> list[tuple[object, ...]]:
    """What a run says of each file, without what differs from run to run (IDs, folders)."""
    return [
        (Path(str(r["path"])).name, r["status"], r["sha256"], r["size"], tuple(r.get("issues", ())), r.get("error"))
        for r in records
    ]


@pytest.fixture
def folder(media, tmp_path: Path) -> Path:
    """Eight files: clips, recordings and photos with distinct bytes, and two copies of one clip."""
    where = tmp_path / "card"
    for n in range(1, 4):
        media.variant("clip.mp4", where / f"VID_{n:02d}.mp4", n)
    media.variant("clip.mp4", where / "VID_04.mp4", 1)  # the same bytes as VID_01
    media.variant("voice.wav", where / "REC_01.wav", 1)
    media.variant("voice.wav", where / "REC_02.wav", 2)
    media.variant("photo.jpg", where / "IMG_01.jpg", 1)
    media.variant("clip.mp4", where / "VID_05.mp4", 1)  # and again
    return where


class TestParallelIngest:
    def test_same_catalog_and_order_as_one_job(self, cli, folder, tmp_path, monkeypatch) -> None:
        """A folder taken in by two processes gives the lines, items and duplicates of one process."""
        again = shutil.copytree(folder, tmp_path / "card-again")
        one = cli("ingest", str(folder), "--jobs", "1", "--no-derive", "--json")
        items_one = cli("items", "--json").records
        monkeypatch.setenv("EVIDENCE_HOME", str(tmp_path / "data-parallel"))
        two = cli("ingest", str(again), "--jobs", "2", "--no-derive", "--json")
        items_two = cli("items", "--json").records
        assert one.exit_code == two.exit_code == 0
        assert names(one.records) == sorted(p.name for p in folder.iterdir())
        assert outcome(two.records) == outcome(one.records)
        assert [r["status"] for r in two.records].count("duplicate") == 2
        assert [(i["sha256"], i["size"]) for i in items_two] == [(i["sha256"], i["size"]) for i in items_one]
        assert len(items_two) == 6

    def test_identical_files_are_one_item_and_duplicates(self, cli, media, dock, settings) -> None:
        """Copies of one file in one parallel batch: the first given is stored, the others are its
        duplicates, one object is kept, and every source leaves the dock once catalogued."""
        for n in range(6):
            media.variant("clip.mp4", dock / f"COPY_{n}.mp4", 7)
        media.variant("voice.wav", dock / "OTHER.wav", 3)
        result = cli("ingest", str(dock), "--jobs", "2", "--no-derive", "--json")
        assert result.exit_code == 0
        by_name = {Path(str(r["path"])).name: r for r in result.records}
        copies = [by_name[f"COPY_{n}.mp4"] for n in range(6)]
        assert [r["status"] for r in copies] == ["stored"] + ["duplicate"] * 5
        assert len({r["item"] for r in copies}) == 1
        assert len(cli("items", "--json").records) == 2
        assert len(files_under(settings.store_dir / "sha256")) == 2
        assert not list(dock.iterdir())
        assert len(files_under(settings.processed_dir)) == 7

    def test_a_damaged_file_is_recorded_and_the_rest_succeed(self, cli, folder) -> None:
        """An empty file and a cut-off clip among good ones: each gets its line, the good ones are
        probed and derived, the run exits non-zero."""
        (folder / "EMPTY.mp4").touch()
        clip = (folder / "VID_02.mp4").read_bytes()
        (folder / "CUT.mp4").write_bytes(clip[: len(clip) // 3])
        result = cli("ingest", str(folder), "--jobs", "2", "--json")
        assert result.exit_code == 1
        by_name = {Path(str(r["path"])).name: r for r in result.records}
        assert names(result.records) == sorted(by_name)
        assert by_name["EMPTY.mp4"]["status"] == "failed" and "zero-byte" in str(by_name["EMPTY.mp4"]["error"])
        assert by_name["CUT.mp4"]["status"] == "stored" and by_name["CUT.mp4"]["issues"]
        for name in ("VID_01.mp4", "VID_03.mp4", "REC_01.wav", "IMG_01.jpg"):
            record = by_name[name]
            assert record["status"] == "stored" and "error" not in record, record
            assert record["derivatives"] and all(str(d).endswith(":verified") for d in record["derivatives"])

    def test_a_catalog_outage_in_a_worker_process_fails_the_batch_plainly(self, cli, dock, media, monkeypatch) -> None:
        """The catalog going away while a worker process copies: every file of the batch gets a
        failed line with the reason and stays in the dock, to be taken in later."""
        from pipeline.errors import TransientError
        from pipeline.ingest import batch

        def copy_one(ctx, work, worker, *, durable):
            raise TransientError("catalog unreachable: connection refused")

        for n in range(4):
            media.variant("clip.mp4", dock / f"VID_{n}.mp4", n + 1)
        monkeypatch.setattr(batch, "copy_one", copy_one)  # the worker processes are forked: they see it
        result = cli("ingest", str(dock), "--jobs", "2", "--json")
        assert result.exit_code == 1
        assert [r["status"] for r in result.records] == ["failed"] * 4
        assert all("catalog unreachable" in str(r["error"]) for r in result.records)
        assert len(list(dock.iterdir())) == 4


class TestStagesInParallel:
    def test_probe_and_derive_report_in_the_order_given(self, cli, folder) -> None:
        """Items named in any order are probed and derived by two processes and reported in that order."""
        taken = cli("ingest", str(folder), "--no-probe", "--json").records
        ids = list(dict.fromkeys(str(r["item"]) for r in taken))[::-1]
        probed = cli("probe", *ids, "--jobs", "2", "--json")
        assert probed.exit_code == 0
        assert [r["item"] for r in probed.records] == ids
        assert {r["status"] for r in probed.records} == {"probed"}
        derived = cli("derive", *ids, "--jobs", "2", "--json")
        assert derived.exit_code == 0
        assert list(dict.fromkeys(r["item"] for r in derived.records)) == ids
        assert {r["status"] for r in derived.records} == {"verified"}


class TestJobsOption:
    @pytest.mark.parametrize("command", ["ingest", "probe", "derive"])
    @pytest.mark.parametrize("value", ["0", "-2", "many"])
    def test_bad_jobs_is_refused(self, cli, folder, command, value) -> None:
        """`--jobs` must be a whole number of 1 or more; nothing is done otherwise."""
        given = str(folder) if command == "ingest" else "--pending"
        result = cli(command, given, "--jobs", value)
        assert result.exit_code == 2
        assert "--jobs" in result.errors and value in result.errors
        assert cli("items", "--json").records == []

    def test_jobs_with_enqueue_is_refused(self, cli, folder) -> None:
        result = cli("ingest", str(folder), "--enqueue", "--jobs", "2")
        assert result.exit_code == 2 and "--jobs" in result.errors
