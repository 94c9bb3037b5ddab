"""Fixity reads every replica (EVIDENCE_STORE=local+s3, against SeaweedFS): an S3 copy found altered
or gone is sent again from the local store, verified, and the repair is a custody event; a local
copy that is itself damaged repairs nothing."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, select

from pipeline.catalog.db import dispose_engines
from pipeline.catalog.models import CustodyEvent, FixityCheck, Item
from pipeline.catalog.replicas import Replica
from pipeline.fixity import FixityResult, check_scheduled, run_fixity, schedule_fixity
from pipeline.runtime import open_catalog, stage_context, store_for
from pipeline.settings import load_settings
from pipeline.storage.s3 import S3Store
from tests.conftest import CliResult, MediaMaker, flip_byte
from tests.test_archive import ingest, s3_env  # noqa: F401  (a fixture)

Cli = Callable[..., CliResult]


@pytest.fixture
def unlocked(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """As ``s3_env``, but with no Object Lock on the bucket's objects, so a test can damage or
    remove one as an outside party could on a server without it."""
    values: dict[str, str] = request.getfixturevalue("s3_env")
    monkeypatch.setenv("EVIDENCE_S3_LOCK_MODE", "off")
    return {**values, "EVIDENCE_S3_LOCK_MODE": "off"}


def archived(cli: Cli, dock: Path, media: MediaMaker) -> tuple[str, str]:
    [taken] = ingest(cli, dock, media)
    item, sha256 = str(taken["item"]), str(taken["sha256"])
    assert cli("archive", item, "--json").records[0]["status"] == "replicated"
    return item, sha256


def check(item: str) -> FixityResult:
    settings = load_settings()
    stores = store_for(settings)
    replicas = {name: store for name, store in stores.items() if name != "local"}
    [result] = list(run_fixity(stage_context(settings), items=[item], replicas=replicas))
    dispose_engines()
    return result


def s3() -> S3Store:
    store = store_for(load_settings())["s3"]
    assert isinstance(store, S3Store)
    return store


def events(item: str, action: str) -> list[dict[str, object]]:
    with Session(open_catalog(load_settings())) as session:
        found = session.exec(
            select(CustodyEvent).where(CustodyEvent.action == action, CustodyEvent.target == f"item:{item}")
        ).all()
    return [json.loads(e.details) for e in found]


def replica_row(item: str) -> Replica:
    with Session(open_catalog(load_settings())) as session:
        return session.exec(select(Replica).where(Replica.item_id == item, Replica.store == "s3")).one()


def test_whole_replicas_are_checked_and_recorded(
    unlocked: dict[str, str], cli: Cli, dock: Path, media: MediaMaker
) -> None:
    item, _sha256 = archived(cli, dock, media)
    before = replica_row(item).verified_at
    result = check(item)
    assert result.ok
    assert [(r.store, r.found, r.repaired) for r in result.replicas] == [("s3", "ok", False)]
    assert replica_row(item).verified_at > before
    assert [e["store"] for e in events(item, "fixity-checked")] == ["local", "s3"]
    assert events(item, "replica-repaired") == []


def test_a_missing_s3_copy_is_sent_again_and_the_repair_recorded(
    unlocked: dict[str, str], cli: Cli, dock: Path, media: MediaMaker
) -> None:
    item, sha256 = archived(cli, dock, media)
    store = s3()
    store.client.delete_object(Bucket=store.bucket, Key=store.key(sha256))  # a delete marker hides it
    assert not store.exists(sha256)
    result = check(item)
    [replica] = result.replicas
    assert (replica.found, replica.repaired, replica.status) == ("missing", True, "ok")
    assert store.digest(sha256)[0] == sha256
    [event] = events(item, "replica-repaired")
    assert (event["store"], event["found"], event["sha256"], event["from"]) == ("s3", "missing", sha256, "local")
    assert replica_row(item).status == "ok"


def test_an_altered_s3_copy_is_replaced_by_a_verified_one(
    unlocked: dict[str, str], cli: Cli, dock: Path, media: MediaMaker
) -> None:
    item, sha256 = archived(cli, dock, media)
    store = s3()
    store.client.put_object(Bucket=store.bucket, Key=store.key(sha256), Body=b"not the original")
    assert store.digest(sha256)[0] != sha256
    result = check(item)
    assert [(r.found, r.repaired) for r in result.replicas] == [("bad", True)]
    assert store.digest(sha256)[0] == sha256
    assert [e["found"] for e in events(item, "replica-repaired")] == ["bad"]


def test_a_damaged_local_copy_repairs_nothing_and_is_named(
    unlocked: dict[str, str], cli: Cli, dock: Path, media: MediaMaker
) -> None:
    item, sha256 = archived(cli, dock, media)
    store = s3()
    store.client.delete_object(Bucket=store.bucket, Key=store.key(sha256))
    flip_byte(load_settings().store_dir / "sha256" / sha256[:2] / sha256, 200)
    result = check(item)
    assert result.outcome == "mismatch" and not result.ok
    assert [(r.found, r.repaired) for r in result.replicas] == [("missing", False)]
    assert not store.exists(sha256)  # nothing sent from a damaged copy
    assert events(item, "replica-repaired") == []
    assert replica_row(item).status == "missing"
    with Session(open_catalog(load_settings())) as session:
        assert session.get(Item, item).fixity_status == "mismatch"  # type: ignore[union-attr]


def test_a_scheduled_check_reads_the_replicas_too(
    unlocked: dict[str, str], cli: Cli, dock: Path, media: MediaMaker
) -> None:
    """The worker's checks (queued by the reconciler) take the replicas as `evidence fixity` does."""
    item, sha256 = archived(cli, dock, media)
    store = s3()
    store.client.delete_object(Bucket=store.bucket, Key=store.key(sha256))
    settings = load_settings()
    ctx = stage_context(settings)
    assert schedule_fixity(ctx.engine, every=timedelta(0), limit=10) == [item]
    [result] = check_scheduled(ctx, item_ids=[item], replicas={"s3": store})
    assert [(r.found, r.repaired) for r in result.replicas] == [("missing", True)]
    assert store.exists(sha256)
    dispose_engines()


@pytest.mark.usefixtures("s3_env")
def test_a_damaged_local_copy_is_restored_from_a_whole_replica(cli: Cli, dock: Path, media: MediaMaker) -> None:
    item, sha256 = archived(cli, dock, media)
    local = load_settings().store_dir / "sha256" / sha256[:2] / sha256
    original = local.read_bytes()
    flip_byte(local, 300)
    result = check(item)
    assert (result.outcome, result.restored_from, result.ok) == ("mismatch", "s3", True)
    assert local.read_bytes() == original
    [event] = events(item, "replica-repaired")
    assert (event["store"], event["found"], event["from"]) == ("local", "bad", "s3")
    assert [e["outcome"] for e in events(item, "fixity-checked")] == ["mismatch", "ok"]  # as found
    with Session(open_catalog(load_settings())) as session:
        assert session.get(Item, item).fixity_status == "ok"  # type: ignore[union-attr]
        [checked] = session.exec(select(FixityCheck).where(FixityCheck.item_id == item)).all()
        assert checked.outcome == "mismatch" and "restored from s3" in str(checked.error)
    assert cli("items", "--issue", "fixity-mismatch", "--json").records == []


@pytest.mark.usefixtures("s3_env")
def test_a_missing_local_copy_is_restored_too(cli: Cli, dock: Path, media: MediaMaker) -> None:
    item, sha256 = archived(cli, dock, media)
    local = load_settings().store_dir / "sha256" / sha256[:2] / sha256
    local.unlink()
    result = check(item)
    assert (result.outcome, result.restored_from) == ("missing", "s3")
    assert local.is_file() and hashlib.sha256(local.read_bytes()).hexdigest() == sha256


def test_the_fixity_command_checks_and_repairs_the_s3_copy(
    unlocked: dict[str, str], cli: Cli, dock: Path, media: MediaMaker
) -> None:
    """`evidence fixity ITEM --json` with EVIDENCE_STORE=local+s3: the S3 copy is read too, and one
    found missing is sent again from the local copy and said so."""
    item, sha256 = archived(cli, dock, media)
    store = s3()
    store.client.delete_object(Bucket=store.bucket, Key=store.key(sha256))
    result = cli("fixity", item, "--json")
    [record] = result.records
    assert record["status"] == "ok"
    assert [(r["store"], r["found"], r["repaired"], r["status"]) for r in record["replicas"]] == [
        ("s3", "missing", True, "ok")
    ]
    assert store.digest(sha256)[0] == sha256
    again = cli("fixity", item, "--json").records[0]
    assert [(r["found"], r["repaired"]) for r in again["replicas"]] == [("ok", False)]
