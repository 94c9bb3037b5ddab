"""Fault suite: the watcher and the workers killed with SIGKILL at random moments while docks keep
delivering, each started again at once, over several trials. Afterwards every file the docks wrote
is catalogued once, stored and verified, probed, moved out of the dock once; nothing is quarantined
or blamed on a file; and the time from the last restart until all of it is done is reported."""

from __future__ import annotations

import random
import signal
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from pipeline.catalog.db import dispose_engines
from pipeline.catalog.models import Item, ItemIssue, Sighting
from pipeline.runtime import open_catalog
from pipeline.settings import Settings, load_settings
from pipeline.stage.issues import STAGE_ERROR
from pipeline.storage.local import LocalStore
from tests.conftest import MediaMaker, Service, files_under, sha256_of, wait_for
from tests.faults.conftest import fault_trials
from tests.test_outage import deliver, finished, outage_settings, summary

pytestmark = pytest.mark.slow

PER_TRIAL = 12  # files each trial delivers
SHORT_TRIALS = 3
RECOVERY_TIMEOUT = 180.0
STAGES = ("intake", "probe")


@pytest.fixture
def database_url(postgres_url: str) -> str:
    return postgres_url  # the cluster's catalog: several processes write to it at once


@pytest.fixture
def fault_settings(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Settings]:
    outage_settings(env, monkeypatch, tmp_path)
    yield load_settings()
    dispose_engines()


def outcome(engine: Engine, settings: Settings, digests: dict[str, str]) -> dict[str, int]:
    """What the trials left: files lost (delivered, neither catalogued nor still in the dock),
    duplicated (a second item, sighting or processed copy of one file), and removed early (gone
    from the dock without a stored copy that hashes to its SHA-256)."""
    store = LocalStore(settings.store_dir)
    with Session(engine) as session:
        catalogued = Counter(session.exec(select(Item.sha256)).all())
        seen = Counter(
            Path(p).name for p in session.exec(select(Sighting.source_path).where(Sighting.status == "stored")).all()
        )
    in_dock = {p.name for p in files_under(settings.inbox_dir)}
    processed = Counter(p.name for p in files_under(settings.processed_dir))
    lost = sum(1 for name, sha in digests.items() if sha not in catalogued and name not in in_dock)
    duplicated = (
        sum(n - 1 for n in catalogued.values() if n > 1)
        + sum(n - 1 for n in seen.values() if n > 1)
        + sum(n - 1 for n in processed.values() if n > 1)
    )
    removed_early = sum(
        1
        for name, sha in digests.items()
        if name not in in_dock and (not store.exists(sha) or sha256_of(store.path(sha)) != sha)
    )
    return {"lost": lost, "duplicated": duplicated, "removed_early": removed_early}


def test_sigkill_of_watcher_and_workers_loses_and_duplicates_nothing(
    start: Callable[..., Service],
    fault_settings: Settings,
    dock: Path,
    media: MediaMaker,
    fault_random: random.Random,
    fault_report: Callable[[dict[str, Any]], None],
) -> None:
    settings = fault_settings
    engine = open_catalog(settings)
    trials = fault_trials(SHORT_TRIALS)
    roles: dict[str, tuple[str, ...]] = {
        "watcher": ("watch",),
        "intake worker": ("worker", "--queues", "intake,maintenance", "--concurrency", "2", "--beat"),
        "probe worker": ("worker", "--queues", "probe,derive", "--concurrency", "2"),
    }
    running = {role: start(*args) for role, args in roles.items()}
    digests: dict[str, str] = {}
    kills: Counter[str] = Counter()
    seed = getattr(fault_random, "seed_value", None)
    for trial in range(trials):
        numbers = range(trial * PER_TRIAL, (trial + 1) * PER_TRIAL)
        for path in deliver(media, dock, numbers):
            digests[path.name] = sha256_of(path)
        time.sleep(fault_random.uniform(0.2, 3.0))  # somewhere in sighting, copying, probing
        victim = fault_random.choice(sorted(running))
        running[victim].stop(signal.SIGKILL)
        assert running[victim].process.returncode == -signal.SIGKILL
        kills[victim] += 1
        running[victim] = start(*roles[victim])
    restarted = time.monotonic()
    files = trials * PER_TRIAL
    try:
        wait_for(
            lambda: finished(engine, settings, files, STAGES), RECOVERY_TIMEOUT, "every file taken in and probed", 0.5
        )
    except AssertionError as exc:
        logs = "\n".join(f"--- {s.log.name}:\n{s.output()[-2000:]}" for s in running.values())
        raise AssertionError(f"{exc} (seed {seed}, kills {dict(kills)}); {summary(engine)}\n{logs}") from None
    recover = time.monotonic() - restarted
    found = outcome(engine, settings, digests)
    fault_report(
        {"fault": "SIGKILL", "trials": trials, "files": files, **found, "recover_s": f"{recover:.1f}", "seed": seed}
    )
    assert found == {"lost": 0, "duplicated": 0, "removed_early": 0}, f"seed {seed}, kills {dict(kills)}"
    with Session(engine) as session:
        blamed = session.exec(select(ItemIssue.message).where(ItemIssue.code == STAGE_ERROR)).all()
    assert blamed == [], f"seed {seed}"
    assert files_under(settings.quarantine_dir) == []
    assert sorted(p.name for p in files_under(settings.processed_dir)) == sorted(digests)
    engine.dispose()
