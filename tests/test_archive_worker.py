"""The archive stage in the running pipeline (EVIDENCE_STORE=local+s3): with no one running
`evidence archive`, a worker on the maintenance queue copies each original to S3 (SeaweedFS) once,
queued by the reconciler; PostgreSQL catalog and Redis broker, as a cluster runs them."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from sqlmodel import Session, select

from pipeline.catalog.models import CustodyEvent
from pipeline.catalog.replicas import Replica
from pipeline.runtime import open_catalog
from pipeline.settings import load_settings
from tests.conftest import REDIS_URL, CliResult, MediaMaker, Service, wait_for
from tests.test_archive import s3_env as s3_env  # a fixture
from tests.test_archive import s3_store


@pytest.fixture
def database_url(postgres_url: str) -> str:
    return postgres_url


@pytest.fixture
def broker(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Redis as the broker, the reconciler every second; the test's keys removed at its end."""
    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_URL}: {exc}")
    extra = {"EVIDENCE_BROKER_URL": REDIS_URL, "EVIDENCE_RECONCILE_INTERVAL": "1", "EVIDENCE_STALE_AFTER": "30"}
    for key, value in extra.items():
        monkeypatch.setenv(key, value)
    env.update(extra)
    yield env
    client = redis.Redis.from_url(REDIS_URL)
    if keys := list(client.scan_iter(f"{env['EVIDENCE_QUEUE_PREFIX']}:*")):
        client.delete(*keys)


@pytest.mark.usefixtures("broker")
def test_a_worker_replicates_what_the_reconciler_finds_unarchived(
    request: pytest.FixtureRequest,
    start: Callable[..., Service],
    cli: Callable[..., CliResult],
    dock: Path,
    media: MediaMaker,
) -> None:
    s3: dict[str, str] = request.getfixturevalue("s3_env")
    for n in (1, 2):
        media.variant("voice.wav", dock / f"rec{n}.wav", n)
    taken = cli("ingest", str(dock), "--no-probe", "--no-derive", "--json").records
    assert len(taken) == 2
    engine = open_catalog(load_settings())

    def replicated() -> bool:
        with Session(engine) as session:
            rows = session.exec(select(Replica).where(Replica.store == "s3", Replica.status == "ok")).all()
        return len(rows) == 2

    worker = start("worker", "--queues", "maintenance", "--beat", extra_env=s3)
    wait_for(replicated, 90, f"the worker to archive 2 items; it said:\n{worker.output()[-2000:]}", interval=0.5)
    worker.stop()
    store = s3_store()
    assert all(store.digest(str(t["sha256"]))[0] == t["sha256"] for t in taken)
    with Session(engine) as session:
        events = session.exec(select(CustodyEvent).where(CustodyEvent.action == "replicated")).all()
    assert sorted(e.target for e in events) == sorted(f"item:{t['item']}" for t in taken)  # once each
    assert {json.loads(e.details)["store"] for e in events} == {"s3"}
