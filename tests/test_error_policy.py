"""The error policy as a user meets it: a full store, a missing program, a defect in one item's
stage and a catalog outage each get a clear line, lose nothing and leave the dock's source in place."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from sqlmodel import Session, select

from pipeline.catalog.models import Item, ItemIssue, Sighting, StageRun
from pipeline.errors import TransientError
from pipeline.ingest import copying
from pipeline.ingest import intake as intake_module
from pipeline.ingest.intake import Arrival, open_sightings
from pipeline.storage.local import LocalStore
from tests.conftest import files_under, sha256_of


@pytest.fixture
def database_url() -> str:
    """These tests are about files and processes, not the database: SQLite is enough."""
    return ""


def rows(engine, model, *where):
    with Session(engine) as session:
        return list(session.exec(select(model).where(*where)).all())


def stage_of(engine, item_id: str, stage: str) -> StageRun:
    (run,) = rows(engine, StageRun, StageRun.item_id == item_id, StageRun.stage == stage)
    return run


def issues_of(engine, item_id: str) -> dict[str, str]:
    return {i.code: i.message for i in rows(engine, ItemIssue, ItemIssue.item_id == item_id)}


def random_files(folder: Path, count: int, size: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for n in range(count):
        path = folder / f"REC{n:03d}.bin"
        path.write_bytes(os.urandom(size))
        paths.append(path)
    return paths


@pytest.fixture
def small_store(settings) -> Path:
    """The store on a 6 MiB tmpfs of its own (the tests run as root); unmounted afterwards."""
    store = settings.store_dir
    store.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(store)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small file system here: {mounted.stderr.decode().strip()}")
    yield store
    subprocess.run(["umount", "-l", str(store)], check=False)


class TestStoreFull:
    def test_files_that_do_not_fit_stay_in_the_dock_and_are_taken_in_once_there_is_room(
        self, cli, dock, small_store, settings
    ) -> None:
        """Ingesting more than fits: what fits is stored; the rest is reported "store full", stays in
        the inbox (not quarantined), leaves nothing in the store, and the next pass takes it in."""
        sources = random_files(dock, 8, 1 << 20)
        contents = {p.name: sha256_of(p) for p in sources}
        first = cli("ingest", str(dock), "--no-probe", "--json")
        assert first.exit_code == 1
        assert len(first.records) == 8
        stored = [r for r in first.records if r["status"] == "stored"]
        full = [r for r in first.records if r["status"] == "failed"]
        assert stored and full and len(stored) + len(full) == 8
        for record in full:
            assert "store full" in str(record["error"])
            assert record["disposition"] == "kept"
            assert Path(str(record["path"])).exists()
        assert files_under(settings.quarantine_dir) == []
        objects = files_under(small_store / "sha256")
        assert sorted(p.name for p in objects) == sorted(str(r["sha256"]) for r in stored)
        assert all(sha256_of(p) == p.name for p in objects)  # nothing partial under any name
        assert files_under(small_store / "tmp") == []
        assert "Traceback" not in first.output + first.errors

        subprocess.run(["mount", "-o", "remount,size=64m", str(small_store)], check=True)
        second = cli("ingest", str(dock), "--no-probe", "--json")
        assert second.exit_code == 0, second.output
        assert sorted(str(r["path"]) for r in second.records) == sorted(str(r["path"]) for r in full)
        assert {r["status"] for r in second.records} == {"stored"}
        assert not any(dock.iterdir())
        engine = settings_engine(settings)
        items = rows(engine, Item)
        assert sorted(i.sha256 for i in items) == sorted(contents.values())
        sightings = rows(engine, Sighting)
        assert len(sightings) == 8  # the second pass finished the first pass's sightings
        assert {s.status for s in sightings} == {"stored"}

    def test_a_write_that_runs_out_of_space_leaves_nothing_behind(self, small_store, ctx, dock, monkeypatch) -> None:
        """Even past the up-front room check (another writer took the space meanwhile), a write
        that meets ENOSPC is a store fault: no object, no partial file, the source untouched."""
        monkeypatch.setattr(LocalStore, "_check_room", lambda self, size: None)
        (big,) = random_files(dock, 1, 8 << 20)
        (opened,) = open_sightings(ctx, [Arrival(os.fsencode(big), "dock1", "move")])
        assert opened is not None
        (result,) = intake_module.intake(ctx, [opened.id], worker="w1")
        assert result.status == "failed" and result.disposition == "kept"
        assert "store full" in str(result.error)
        assert big.exists()
        assert files_under(small_store) == []
        (sighting,) = rows(ctx.engine, Sighting)
        assert (sighting.status, sighting.lease_owner) == ("pending", None)  # to be tried again


def settings_engine(settings):
    from pipeline.runtime import open_catalog

    return open_catalog(settings)


class TestCatalogOutage:
    def test_an_outage_while_copying_is_retried_not_recorded_against_the_file(self, ctx, dock, monkeypatch) -> None:
        """The catalog goes away while a large copy renews its lease: intake raises the transient
        error for a retry; the sighting is not failed and the source is neither moved nor quarantined."""
        big = dock / "BIG.mp4"
        with big.open("wb") as handle:
            handle.write(os.urandom(4096))
            handle.truncate(80 << 20)

        def outage(*_args: object) -> None:
            raise TransientError("catalog database unavailable: connection refused")

        (opened,) = open_sightings(ctx, [Arrival(os.fsencode(big), "dock1", "move")])
        assert opened is not None
        with monkeypatch.context() as patch, pytest.raises(TransientError):
            patch.setattr(copying, "_renew_lease", outage)
            intake_module.intake(ctx, [opened.id], worker="w1")
        assert big.exists()
        assert files_under(ctx.quarantine_dir) == []
        (sighting,) = rows(ctx.engine, Sighting)
        assert sighting.status == "pending"

        (result,) = intake_module.intake(ctx, [opened.id], worker="w1")
        assert result.status == "stored" and not big.exists()


class TestOddArrivals:
    def test_fifo_and_symlink_get_a_line_each_and_never_block(self, cli, dock, media, tmp_path) -> None:
        """A named pipe and a symbolic link in the inbox are refused with their reason, the real
        file beside them is taken in, and the command does not hang on the pipe."""
        os.mkfifo(dock / "pipe.mp4")
        target = media.variant("voice.wav", tmp_path / "elsewhere.wav")
        (dock / "link.wav").symlink_to(target)
        media.variant("voice.wav", dock / "real.wav", 3)
        result = cli("ingest", str(dock), "--no-derive", "--json")
        by_name = {Path(str(r["path"])).name: r for r in result.records}
        assert set(by_name) == {"pipe.mp4", "link.wav", "real.wav"}
        assert by_name["real.wav"]["status"] == "stored"
        assert "not a regular file" in str(by_name["pipe.mp4"]["error"])
        assert "symbolic link" in str(by_name["link.wav"]["error"])
        assert result.exit_code == 1
        assert target.exists()  # the link's target is never touched


class TestDefects:
    def test_a_probe_defect_on_one_item_is_recorded_and_the_others_go_on(self, cli, dock, media, monkeypatch) -> None:
        """An unexpected exception while probing one item: that item is failed with `stage-error`
        and the exception's text, the next item is probed, and a retry once fixed clears it."""
        media.variant("voice.wav", dock / "a.wav", 1)
        media.variant("voice.wav", dock / "b.wav", 2)
        taken = cli("ingest", str(dock), "--no-probe", "--json").records
        victim, other = (str(r["item"]) for r in taken)
        from pipeline.probe import stage as probe_stage

        real = probe_stage.extract_all

        def broken(path, kind, context, *args):
            if context.original_name == "a.wav":
                raise KeyError("no such tag")
            return real(path, kind, context, *args)

        monkeypatch.setattr(probe_stage, "extract_all", broken)
        result = cli("probe", victim, other, "--json")
        assert result.exit_code == 1
        by_item = {r["item"]: r for r in result.records}
        assert by_item[victim]["status"] == "failed"
        assert "stage-error" in str(by_item[victim]["error"]) and "KeyError" in str(by_item[victim]["error"])
        assert by_item[other]["status"] == "probed"
        engine = settings_engine_from_env()
        assert "KeyError" in issues_of(engine, victim)["stage-error"]
        assert stage_of(engine, victim, "probe").status == "failed"
        assert "Traceback" not in result.output

        monkeypatch.setattr(probe_stage, "extract_all", real)
        retried = cli("probe", "--retry-failed", "--json")
        assert [(r["item"], r["status"]) for r in retried.records] == [(victim, "probed")]
        assert "stage-error" not in issues_of(engine, victim)
        assert stage_of(engine, victim, "probe").status == "done"

    def test_a_derive_defect_fails_that_derivative_with_its_reason(self, cli, dock, media, monkeypatch) -> None:
        """A defect while making one derivative fails it with `stage-error` on the item; the item's
        other derivatives and the other items are still made."""
        media.variant("voice.wav", dock / "a.wav", 1)
        media.variant("voice.wav", dock / "b.wav", 2)
        taken = cli("ingest", str(dock), "--no-derive", "--json").records
        ids = [str(r["item"]) for r in taken]
        from pipeline.transcode import stage as derive_stage

        real = derive_stage.make_derivative

        def broken(profile, media_info, source, dest, **kwargs):
            if profile.kind == "waveform":
                raise ValueError("a split filter is probably required")
            return real(profile, media_info, source, dest, **kwargs)

        monkeypatch.setattr(derive_stage, "make_derivative", broken)
        result = cli("derive", *ids, "--json")
        assert result.exit_code == 1
        outcome = sorted((r["item"], r["kind"], r["status"]) for r in result.records)
        assert outcome == sorted(
            [(i, "audio-access", "verified") for i in ids] + [(i, "waveform", "failed") for i in ids]
        )
        assert all("ValueError" in str(r["error"]) for r in result.records if r["status"] == "failed")
        engine = settings_engine_from_env()
        for item_id in ids:
            assert "waveform" in issues_of(engine, item_id)["stage-error"]
            assert stage_of(engine, item_id, "derive").status == "failed"
        assert cli("derive", "--pending", "--json").records == []  # failed is not pending

        monkeypatch.setattr(derive_stage, "make_derivative", real)
        again = cli("derive", "--retry-failed", "--json")
        assert again.exit_code == 0
        assert sorted((r["kind"], r["status"]) for r in again.records) == sorted(
            [("audio-access", "skipped")] * 2 + [("waveform", "verified")] * 2
        )
        assert all("stage-error" not in issues_of(engine, item_id) for item_id in ids)


def settings_engine_from_env():
    from pipeline.settings import load_settings

    return settings_engine(load_settings())


class TestEveryInputGetsItsLine:
    def test_probe_and_derive_report_unknown_ids_and_go_on(self, cli, dock, media) -> None:
        media.variant("voice.wav", dock / "a.wav", 1)
        (taken,) = cli("ingest", str(dock), "--no-probe", "--json").records
        probed = cli("probe", "NOSUCHITEM", str(taken["item"]), "--json")
        assert probed.exit_code == 1
        assert [(r["item"], r["status"]) for r in probed.records] == [
            ("NOSUCHITEM", "missing"),
            (taken["item"], "probed"),
        ]
        assert "no item matches" in str(probed.records[0]["error"])
        derived = cli("derive", "NOSUCHITEM", str(taken["item"]), "--json")
        assert derived.exit_code == 1
        assert derived.records[0]["status"] == "missing"
        assert {r["status"] for r in derived.records[1:]} == {"verified"}

    def test_package_of_an_unknown_item_is_refused_in_json(self, cli, dock, media) -> None:
        result = cli("package", "A-1", "--items", "NOSUCHITEM", "--json")
        assert result.exit_code == 1
        (record,) = result.records
        assert record["status"] == "refused" and "NOSUCHITEM" in str(record["error"])

    def test_a_missing_program_leaves_the_stage_pending_with_the_reason(self, cli, dock, media, monkeypatch) -> None:
        """ffmpeg not installed is the machine's fault, not the file's: making the access copy is
        reported failed with the reason, nothing is recorded against the item, and it stays
        pending until the program is back. (Reading metadata needs no program: it runs in-process.)"""
        media.variant("clip.mp4", dock / "a.mp4", 1)
        (taken,) = cli("ingest", str(dock), "--no-derive", "--json").records
        engine = settings_engine_from_env()
        assert stage_of(engine, str(taken["item"]), "probe").status == "done"
        with monkeypatch.context() as patch:
            patch.setenv("PATH", "/nonexistent")
            derived = cli("derive", str(taken["item"]), "--json")
        assert derived.exit_code == 1
        assert [r["status"] for r in derived.records] == ["failed"]
        assert "ffmpeg and ffprobe not installed" in str(derived.records[0]["error"])
        assert stage_of(engine, str(taken["item"]), "derive").status == "pending"
        assert issues_of(engine, str(taken["item"])).keys().isdisjoint({"derive-failed", "stage-error"})
        again = cli("derive", "--pending", "--json").records
        assert again and {r["status"] for r in again} == {"verified"}
        assert stage_of(engine, str(taken["item"]), "derive").status == "done"


class TestBrokerOutage:
    def test_enqueue_with_the_broker_away_records_every_file_for_the_reconciler(
        self, cli, dock, media, monkeypatch
    ) -> None:
        """`ingest --enqueue` while Redis is unreachable: each file gets its line, is recorded in the
        catalog, and is left in the dock for the reconciler to queue once the broker is back."""
        monkeypatch.setenv("EVIDENCE_BROKER_URL", "redis://127.0.0.1:1/0")  # nothing listens there
        for n in range(3):
            media.variant("voice.wav", dock / f"REC{n}.wav", n + 1)
        result = cli("ingest", str(dock), "--enqueue", "--json")
        assert result.exit_code == 0
        assert [r["status"] for r in result.records] == ["queued"] * 3
        assert all("reconciler" in str(r["error"]) for r in result.records)
        assert len(list(dock.iterdir())) == 3
        engine = settings_engine_from_env()
        sightings = rows(engine, Sighting)
        assert [(s.status, s.queued_at) for s in sightings] == [("pending", None)] * 3

    def test_fixity_reports_unknown_ids_and_checks_the_rest(self, cli, dock, media) -> None:
        media.variant("voice.wav", dock / "a.wav", 1)
        (taken,) = cli("ingest", str(dock), "--no-probe", "--json").records
        result = cli("fixity", "NOSUCHITEM", str(taken["item"]), "--json")
        assert result.exit_code == 1
        assert [(r["item"], r["status"]) for r in result.records] == [("NOSUCHITEM", "unknown"), (taken["item"], "ok")]
        people = cli("fixity", str(taken["item"]))
        assert people.exit_code == 0 and f"OK: item {taken['item']}" in people.output

    def test_verify_package_checks_every_path_even_missing_or_garbage(self, cli, tmp_path) -> None:
        """A missing path, random bytes named .iso and a folder that is no disc: a line each."""
        garbage = tmp_path / "garbage.iso"
        garbage.write_bytes(os.urandom(70000))
        folder = tmp_path / "folder"
        folder.mkdir()
        (folder / "MANIFEST.sha256").write_bytes(b"\xff\xfe not utf-8 \x80")
        result = cli("verify-package", str(tmp_path / "missing.iso"), str(garbage), str(folder), "--json")
        assert result.exit_code == 1
        assert [r["ok"] for r in result.records] == [False, False, False]
        assert "no such image or folder" in str(result.records[0]["error"])
        assert "not a readable ISO image" in str(result.records[1]["error"])
        assert "not UTF-8" in str(result.records[2]["problems"])
        assert "Traceback" not in result.output + result.errors
