"""The archive stage (EVIDENCE_STORE=local+s3) against a real S3 server (SeaweedFS): originals are
copied to S3, read back there with their SHA-256, locked and recorded as replicas; a second run
sends nothing; an S3 store that cannot be reached leaves the item pending for the next run."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlmodel import Session, select

from pipeline.catalog.db import dispose_engines, migrate
from pipeline.catalog.models import CustodyEvent, StageRun
from pipeline.catalog.replicas import Replica
from pipeline.runtime import open_catalog
from pipeline.settings import load_settings
from pipeline.storage.s3 import S3Store
from tests.conftest import CliResult, MediaMaker, flip_byte
from tests.s3server import SeaweedServer, free_ports
from tests.test_migrations import catalog_at

Cli = Callable[..., CliResult]


@pytest.fixture
def s3_env(env: dict[str, str], s3_server: SeaweedServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Originals kept in the local store and in a bucket of the test's own on SeaweedFS."""
    values = {
        "EVIDENCE_STORE": "local+s3",
        "EVIDENCE_S3_ENDPOINT": s3_server.endpoint,
        "EVIDENCE_S3_BUCKET": f"evidence-{uuid.uuid4().hex[:12]}",
        "EVIDENCE_S3_ACCESS_KEY": s3_server.access_key,
        "EVIDENCE_S3_SECRET_KEY": s3_server.secret_key,
        "EVIDENCE_S3_LOCK_MODE": "compliance",
        "EVIDENCE_S3_RETENTION_DAYS": "1",
        "EVIDENCE_S3_PART_SIZE": str(5 << 20),
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    return {**env, **values}


def s3_store() -> S3Store:
    return S3Store.from_settings(load_settings())


def ingest(cli: Cli, dock: Path, media: MediaMaker, count: int = 1) -> list[dict[str, object]]:
    """Take in ``count`` distinct clips (stored locally only: archive is a stage of its own)."""
    for n in range(1, count + 1):
        media.variant("clip.mp4", dock / f"clip{n}.mp4", n)
    result = cli("ingest", str(dock), "--no-probe", "--no-derive", "--json")
    assert result.exit_code == 0, result.output + result.errors
    return result.records


def replicas_shown(cli: Cli, item: str) -> list[dict[str, Any]]:
    """The ``replicas`` of ``evidence item ID --json``."""
    shown = cli("item", item, "--json")
    assert shown.exit_code == 0
    replicas: list[dict[str, Any]] = shown.records[0]["replicas"]  # type: ignore[assignment]
    return replicas


def replicated_events(item: str) -> list[dict[str, object]]:
    with Session(open_catalog(load_settings())) as session:
        events = session.exec(
            select(CustodyEvent).where(CustodyEvent.action == "replicated", CustodyEvent.target == f"item:{item}")
        ).all()
    return [json.loads(e.details) for e in events]


def test_an_original_is_replicated_read_back_locked_and_listed(
    s3_env: dict[str, str], cli: Cli, dock: Path, media: MediaMaker
) -> None:
    [taken] = ingest(cli, dock, media)
    item, sha256 = str(taken["item"]), str(taken["sha256"])
    result = cli("archive", item, "--json")
    assert result.exit_code == 0, result.output + result.errors
    key = f"sha256/{sha256[:2]}/{sha256}"
    assert result.records == [{"item": item, "status": "replicated", "store": "s3", "key": key, "error": None}]
    store = s3_store()
    local = load_settings().store_dir / "sha256" / sha256[:2] / sha256
    assert store.digest(sha256) == (sha256, local.stat().st_size)
    assert store.retention(sha256) is not None  # locked in S3
    [event] = replicated_events(item)
    assert (event["store"], event["key"], event["sha256"]) == ("s3", key, sha256)
    replicas = {r["store"]: r for r in replicas_shown(cli, item)}
    assert set(replicas) == {"local", "s3"}
    assert replicas["local"]["key"] == replicas["s3"]["key"] == key
    assert all(r["verified_at"] and r["status"] == "ok" for r in replicas.values())


def test_archiving_twice_replicates_once(s3_env: dict[str, str], cli: Cli, dock: Path, media: MediaMaker) -> None:
    taken = ingest(cli, dock, media, 2)
    first = cli("archive", "--all-pending", "--json")
    assert first.exit_code == 0
    assert sorted((r["item"], r["status"]) for r in first.records) == sorted((t["item"], "replicated") for t in taken)
    again = cli("archive", "--all-pending", "--json")
    assert again.exit_code == 0 and again.records == []  # nothing left to archive
    named = cli("archive", *(str(t["item"]) for t in taken), "--json")
    assert [r["status"] for r in named.records] == ["already", "already"]
    store = s3_store()
    for t in taken:
        assert len(replicated_events(str(t["item"]))) == 1
        listing = store.client.list_object_versions(Bucket=store.bucket, Prefix=store.key(str(t["sha256"])))
        assert len(listing.get("Versions", [])) == 1  # sent once


def test_an_object_already_in_s3_is_verified_there_not_sent_again(
    s3_env: dict[str, str], cli: Cli, dock: Path, media: MediaMaker
) -> None:
    """A run that stopped after its upload and before its catalog row: the next one finds the
    object, reads it back and records it."""
    [taken] = ingest(cli, dock, media)
    item, sha256 = str(taken["item"]), str(taken["sha256"])
    store = s3_store()
    with (load_settings().store_dir / "sha256" / sha256[:2] / sha256).open("rb") as handle:
        store.put(handle.fileno())
    result = cli("archive", item, "--json")
    assert result.records[0]["status"] == "already"
    [event] = replicated_events(item)
    assert event["sent"] is False
    with Session(open_catalog(load_settings())) as session:
        [replica] = session.exec(select(Replica).where(Replica.item_id == item)).all()
    assert (replica.store, replica.status) == ("s3", "ok")


def test_an_unreachable_s3_store_leaves_the_item_pending_for_the_next_run(
    s3_env: dict[str, str], cli: Cli, dock: Path, media: MediaMaker, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = ingest(cli, dock, media, 2)
    items = [str(t["item"]) for t in taken]
    monkeypatch.setenv("EVIDENCE_S3_ENDPOINT", f"http://127.0.0.1:{free_ports(1)[0]}")  # nobody listens
    monkeypatch.setenv("EVIDENCE_TASK_MAX_RETRIES", "1")
    failed = cli("archive", *items, "--json")
    assert failed.exit_code != 0
    first, second = failed.records
    assert [(r["item"], r["status"]) for r in failed.records] == [(items[0], "failed"), (items[1], "failed")]
    assert "S3 store at http://127.0.0.1:" in str(first["error"])
    assert str(second["error"]).startswith("not tried: S3 store at")  # not made to wait through the retries too
    with Session(open_catalog(load_settings())) as session:
        runs = session.exec(select(StageRun).where(StageRun.stage == "archive")).all()
        assert sorted((r.item_id, r.status) for r in runs) == sorted((i, "pending") for i in items)
        assert all(r.error for r in runs)
        assert session.exec(select(Replica)).all() == []
    assert [r["store"] for r in replicas_shown(cli, items[0])] == ["local"]
    monkeypatch.setenv("EVIDENCE_S3_ENDPOINT", s3_env["EVIDENCE_S3_ENDPOINT"])  # the store is back
    retried = cli("archive", "--all-pending", "--json")
    assert retried.exit_code == 0
    assert sorted((r["item"], r["status"]) for r in retried.records) == sorted((i, "replicated") for i in items)
    assert all(s3_store().exists(str(t["sha256"])) for t in taken)


def test_a_damaged_local_copy_is_not_sent_and_not_retried(
    s3_env: dict[str, str], cli: Cli, dock: Path, media: MediaMaker
) -> None:
    [taken] = ingest(cli, dock, media)
    item, sha256 = str(taken["item"]), str(taken["sha256"])
    flip_byte(load_settings().store_dir / "sha256" / sha256[:2] / sha256, 100)
    result = cli("archive", item, "--json")
    assert result.exit_code != 0
    assert result.records[0]["status"] == "failed"
    assert "evidence fixity" in str(result.records[0]["error"])
    assert not s3_store().exists(sha256)
    assert cli("archive", "--all-pending", "--json").records == []  # a person retries it by ID


def test_archive_needs_a_second_store(env: dict[str, str], cli: Cli, dock: Path, media: MediaMaker) -> None:
    [taken] = ingest(cli, dock, media)
    result = cli("archive", str(taken["item"]))
    assert result.exit_code != 0
    assert "EVIDENCE_STORE=local" in result.errors
    [local] = replicas_shown(cli, str(taken["item"]))
    assert local["store"] == "local" and local["key"].endswith(str(taken["sha256"]))


def test_a_catalog_of_the_previous_revision_gets_an_empty_replica_table(tmp_path: Path) -> None:
    """Nothing is back-filled: the copy intake made is implied by the item row (see replicas.py)."""
    engine = catalog_at(tmp_path / "old.sqlite3", "0010")
    migrate(engine)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM replica")).scalar() == 0
        assert connection.execute(text("SELECT count(*) FROM item")).scalar() == 1
        assert connection.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0011"
    engine.dispose()
    dispose_engines()


def test_item_shows_its_replicas_to_people(s3_env: dict[str, str], cli: Cli, dock: Path, media: MediaMaker) -> None:
    [taken] = ingest(cli, dock, media)
    item, sha256 = str(taken["item"]), str(taken["sha256"])
    assert cli("archive", item).exit_code == 0
    shown = cli("item", item).output
    replicas = shown.split("\nreplicas:\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert [line.split()[:2] for line in replicas] == [["local", "ok"], ["s3", "ok"]]
    assert all(line.endswith(f"sha256/{sha256[:2]}/{sha256}") for line in replicas)
