"""Real Celery workers on real Redis with the catalog on PostgreSQL: queued intake, and a worker
killed in the middle of a large file."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import redis
from sqlmodel import Session, func, select

from pipeline.catalog.models import Derivative, Item, ItemIssue, Package, PackageDisc, Sighting, StageRun
from tests.conftest import REDIS_URL, flip_byte, sha256_of, wait_for
from tests.odd_media import make_corpus, make_fifo, make_symlink


def open_files_under(folder: Path) -> list[int]:
    """Sizes of the files in ``folder`` some process has open, named or not (the store copies into
    unnamed temporary files where it can)."""
    prefix = f"{folder}/"
    sizes = []
    for link in Path("/proc").glob("[0-9]*/fd/*"):
        try:
            if os.readlink(link).startswith(prefix):
                sizes.append(os.stat(link).st_size)
        except OSError:
            continue  # the process or descriptor went away meanwhile
    return sizes


@pytest.fixture
def database_url(postgres_url: str) -> str:
    """These tests run the cluster configuration: PostgreSQL catalog, Redis broker."""
    return postgres_url


@pytest.fixture
def cluster_env(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.RedisError as exc:
        pytest.fail(f"Redis is not reachable at {REDIS_URL}: {exc}")
    extra = {
        "EVIDENCE_BROKER_URL": REDIS_URL,
        "EVIDENCE_LEASE_SECONDS": "3",
        "EVIDENCE_RECONCILE_INTERVAL": "1",
        "EVIDENCE_STALE_AFTER": "30",
    }
    for key, value in extra.items():
        monkeypatch.setenv(key, value)
    env.update(extra)
    yield env
    client = redis.Redis.from_url(REDIS_URL)
    keys = list(client.scan_iter(f"{env['EVIDENCE_QUEUE_PREFIX']}:*"))
    if keys:
        client.delete(*keys)


def count(ctx, model) -> int:
    with Session(ctx.engine) as session:
        return int(session.exec(select(func.count()).select_from(model)).one())


class TestCeleryWorker:
    def test_enqueued_files_are_taken_in_by_a_worker(self, cluster_env, start, cli, ctx, dock, media) -> None:
        for n in range(20):
            media.variant("voice.wav", dock / f"REC{n:03d}.wav", n + 1)
        queued = cli("ingest", str(dock), "--enqueue", "--json")
        assert queued.exit_code == 0
        assert {r["status"] for r in queued.records} == {"queued"}
        assert all((dock / f"REC{n:03d}.wav").exists() for n in range(20))  # nothing done before a worker runs
        worker = start("worker", "--concurrency", "2")
        wait_for(
            lambda: count(ctx, Item) == 20 and not any(dock.iterdir()),
            60,
            f"the worker to take in 20 files; worker said:\n{worker.output()[-2000:]}",
        )
        with Session(ctx.engine) as session:
            assert set(session.exec(select(Sighting.status)).all()) == {"stored"}

        def later_stages_done() -> bool:
            with Session(ctx.engine) as session:
                runs = session.exec(select(StageRun.stage, StageRun.status)).all()
            return sorted(set(runs)) == [("derive", "done"), ("intake", "done"), ("probe", "done")]

        # The worker chains the stages: intake queues probing, probing queues the derivatives.
        wait_for(later_stages_done, 120, f"probe and derive on the worker; it said:\n{worker.output()[-2000:]}")
        with Session(ctx.engine) as session:
            kinds = session.exec(select(Derivative.kind, Derivative.status)).all()
        assert sorted(set(kinds)) == [("audio-access", "verified"), ("waveform", "verified")]
        assert len(kinds) == 40

    def test_worker_killed_mid_copy_loses_nothing(self, cluster_env, start, cli, ctx, dock, settings) -> None:
        """SIGKILL during a large file's intake: the source stays until a restarted worker has stored,
        verified and catalogued it, exactly once."""
        big = dock / "BIG_0001.mp4"
        with big.open("wb") as handle:  # 3 GiB, mostly sparse: fast to make, slow enough to copy
            handle.write(os.urandom(1 << 20))
            handle.truncate(3 << 30)
        size = big.stat().st_size
        assert cli("ingest", str(big), "--enqueue", "--json").exit_code == 0
        worker = start("worker", "--concurrency", "1")
        partials = settings.store_dir / "tmp"

        def copying() -> bool:
            return any(size > (64 << 20) for size in open_files_under(partials))

        wait_for(copying, 60, f"the worker to be part-way through the copy: {worker.log}", interval=0.02)
        worker.stop(signal.SIGKILL)
        assert big.exists() and big.stat().st_size == size  # the source was not touched
        assert count(ctx, Item) == 0
        with Session(ctx.engine) as session:
            (sighting,) = session.exec(select(Sighting)).all()
            assert sighting.status == "pending" and sighting.lease_owner is not None

        restarted = start("worker", "--concurrency", "1", "--beat")
        wait_for(
            lambda: count(ctx, Item) == 1 and not big.exists(),
            180,
            f"the restarted worker to finish; it said:\n{restarted.output()[-2000:]}",
            interval=0.5,
        )
        moved = settings.processed_dir / "dock1" / "BIG_0001.mp4"
        expected = sha256_of(moved)
        with Session(ctx.engine) as session:
            (item,) = session.exec(select(Item)).all()
            sightings = session.exec(select(Sighting)).all()
        assert (item.sha256, item.size) == (expected, size)
        assert [(s.status, s.disposition, s.attempts) for s in sightings] == [("stored", "moved", 2)]
        assert ctx.store.digest(expected) == (expected, size)


class TestPackageWorker:
    @pytest.fixture
    def case_items(self, cli, media, tmp_path) -> list[str]:
        folder = tmp_path / "arrivals"
        media.variant("clip.mp4", folder / "现场.mp4")
        media.variant("voice.wav", folder / "询问.wav")
        ingested = cli("ingest", str(folder), "--no-derive", "--json")
        ids = [str(record["item"]) for record in ingested.records]
        assert cli("assign", *ids, "--case", "A-2025-7").exit_code == 0
        return ids

    def package(self, ctx, package_id: str) -> Package | None:
        with Session(ctx.engine) as session:
            return session.get(Package, package_id)

    def test_a_queued_package_is_built_and_verified_by_a_worker(self, cluster_env, start, cli, ctx, case_items) -> None:
        """`package --enqueue` records the request; a worker on the package queue builds the image."""
        [queued] = cli("package", "A-2025-7", "--enqueue", "--json").records
        assert queued["status"] == "queued"
        assert self.package(ctx, str(queued["package"])).status == "requested"  # type: ignore[union-attr]
        worker = start("worker", "--queues", "package", "--concurrency", "1")
        wait_for(
            lambda: self.package(ctx, str(queued["package"])).status == "verified",  # type: ignore[union-attr]
            120,
            f"the worker to build the package; it said:\n{worker.output()[-2000:]}",
            interval=0.5,
        )
        with Session(ctx.engine) as session:
            (disc,) = session.exec(select(PackageDisc).where(PackageDisc.package_id == queued["package"])).all()
        check = cli("verify-package", disc.path, "--json")
        assert check.exit_code == 0 and check.records[0]["catalog"] is True

    def test_a_request_whose_message_was_lost_is_built_after_reconciling(
        self, cluster_env, start, cli, ctx, case_items, monkeypatch
    ) -> None:
        """The catalog, not the broker, holds the request: with the queue emptied, the reconciler
        finds the unbuilt package and a worker builds it."""
        [queued] = cli("package", "A-2025-7", "--enqueue", "--json").records
        client = redis.Redis.from_url(REDIS_URL)
        lost = list(client.scan_iter(f"{cluster_env['EVIDENCE_QUEUE_PREFIX']}:*"))
        assert lost, "the request should have been queued"
        client.delete(*lost)
        worker = start("worker", "--concurrency", "1", "--beat", extra_env={"EVIDENCE_STALE_AFTER": "2"})
        wait_for(
            lambda: self.package(ctx, str(queued["package"])).status == "verified",  # type: ignore[union-attr]
            120,
            f"the reconciler to re-queue the package; the worker said:\n{worker.output()[-2000:]}",
            interval=0.5,
        )


class TestScheduledFixity:
    def test_a_worker_finds_an_altered_object_when_its_check_comes_due(
        self, cluster_env, start, cli, ctx, media, tmp_path
    ) -> None:
        """No one runs `evidence fixity`: the reconciler queues the checks that have come due and a
        worker on the maintenance queue runs them, opening an issue on the altered item."""
        folder = tmp_path / "arrivals"
        media.variant("clip.mp4", folder / "a.mp4")
        media.variant("voice.wav", folder / "b.wav")
        records = cli("ingest", str(folder), "--no-probe", "--json").records
        victim, intact = records[0], records[1]
        flip_byte(ctx.store.path(str(victim["sha256"])), 100)

        def checked() -> bool:
            with Session(ctx.engine) as session:
                return all(session.get(Item, r["item"]).fixity_checked_at for r in records)  # type: ignore[union-attr]

        worker = start(
            "worker",
            "--queues",
            "maintenance",
            "--beat",
            extra_env={"EVIDENCE_FIXITY_INTERVAL_DAYS": "0.00002", "EVIDENCE_FIXITY_BATCH": "1"},
        )
        wait_for(checked, 90, f"scheduled fixity checks; the worker said:\n{worker.output()[-2000:]}", interval=0.5)
        with Session(ctx.engine) as session:
            assert session.get(Item, victim["item"]).fixity_status == "mismatch"  # type: ignore[union-attr]
            assert session.get(Item, intact["item"]).fixity_status == "ok"  # type: ignore[union-attr]
        assert [i["id"] for i in cli("items", "--issue", "fixity-mismatch", "--json").records] == [victim["item"]]
        assert f"fixity mismatch: item {victim['item']}" in worker.output()


class TestRetryPolicy:
    def test_a_system_fault_is_retried_a_bounded_number_of_times_then_the_stage_fails(
        self, cluster_env, start, cli, ctx, dock, media, tmp_path
    ) -> None:
        """A worker on a machine without ffprobe: the probe is retried with back-off, then marked
        failed with the reason; the reconciler leaves it alone, and a person's retry finishes it."""
        media.variant("clip.mp4", dock / "A001.mp4", 1)
        assert cli("ingest", str(dock), "--enqueue", "--json").exit_code == 0
        empty = tmp_path / "no-programs"
        empty.mkdir()
        worker = start(
            "worker",
            "--concurrency",
            "1",
            "--beat",
            extra_env={
                "PATH": str(empty),
                "EVIDENCE_TASK_MAX_RETRIES": "2",
                "EVIDENCE_RETRY_BACKOFF_MAX": "1",
                "EVIDENCE_STALE_AFTER": "2",
            },
        )

        def probe_run() -> StageRun | None:
            with Session(ctx.engine) as session:
                return session.exec(select(StageRun).where(StageRun.stage == "probe")).first()

        wait_for(
            lambda: (run := probe_run()) is not None and run.status == "failed",
            90,
            f"the probe to be given up; the worker said:\n{worker.output()[-3000:]}",
            interval=0.5,
        )
        run = probe_run()
        assert run is not None and "gave up after 2 retries" in str(run.error) and "not installed" in str(run.error)
        log = worker.output()
        assert log.count("retry 1 of 2") >= 1 and log.count("retry 2 of 2") >= 1
        assert "raised unexpected" not in log
        received = log.count("evidence.probe[")
        assert received >= 3  # the first try and two retries
        time.sleep(4)  # a few reconciler passes (every second): a failed stage is not queued again
        assert worker.output().count("evidence.probe[") == received
        worker.stop()

        retried = cli("probe", "--retry-failed", "--json")
        assert [r["status"] for r in retried.records] == ["probed"]
        assert probe_run().status == "done"  # type: ignore[union-attr]


class TestOddMediaOnAWorker:
    def test_a_worker_takes_the_odd_corpus_without_an_unhandled_task_failure(
        self, cluster_env, start, cli, ctx, dock, tmp_path
    ) -> None:
        """The odd-file corpus, a FIFO and a symbolic link queued to a real worker: every file ends
        with an outcome in the catalog, every stored one finishes its stages with reasons, and no
        task fails with an unhandled exception."""
        corpus = make_corpus(dock)
        make_fifo(dock / "pipe.mp4")
        make_symlink(dock / "link.mp4", corpus[0].path)
        queued = cli("ingest", str(dock), "--enqueue", "--json")
        assert queued.exit_code == 0
        assert len(queued.records) == len(corpus) + 2
        worker = start("worker", "--concurrency", "2", "--beat")

        def finished() -> bool:
            with Session(ctx.engine) as session:
                sightings = session.exec(select(Sighting.status)).all()
                runs = session.exec(select(StageRun.status).where(StageRun.stage != "fixity")).all()
            return (
                len(sightings) == len(corpus) + 2
                and "pending" not in sightings
                and bool(runs)
                and set(runs) <= {"done", "failed"}
            )

        wait_for(finished, 300, f"the worker to finish the corpus; it said:\n{worker.output()[-3000:]}", interval=1)
        log = worker.output()
        assert "raised unexpected" not in log, log[-5000:]
        assert "stage-error" not in log
        with Session(ctx.engine) as session:
            failed = dict(
                session.exec(select(Sighting.source_path, Sighting.error).where(Sighting.status == "failed")).all()
            )
            runs = session.exec(select(StageRun).where(StageRun.status == "failed")).all()
            issues = session.exec(select(ItemIssue.item_id, ItemIssue.code)).all()
        assert {Path(path).name for path in failed} >= {"pipe.mp4", "link.mp4"}
        assert all(error for error in failed.values())
        assert all(run.error for run in runs)  # every failure says why
        assert "stage-error" not in {code for _, code in issues}
