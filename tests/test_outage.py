"""The broker or the catalog's database goes away in the middle of an ingest and comes back: every
file is still taken in exactly once and moved out of the dock, none is failed or quarantined for
the outage, the stages whose messages were lost are queued again from the catalog, and no task
fails with an unhandled error."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, func, select

from pipeline.catalog.models import Item, ItemIssue, Sighting, StageRun
from pipeline.ingest.intake import IntakeContext
from pipeline.settings import Settings
from pipeline.stage.issues import STAGE_ERROR
from tests.conftest import REDIS_URL, MediaMaker, Service, files_under, sha256_of, wait_for

pytestmark = pytest.mark.slow

FILES = 200
OUTAGE = 20.0  # seconds the server stays down
STAGES = ("intake", "probe", "derive")
# Recordings get no derivatives here: the derive stage is still queued, lost and queued again for
# every item, without the ffmpeg runs that would not let 200 files fit in the time a test may take.
PROFILES = """
[policy]
preservation = []

[[profile]]
name = "poster"
version = 1
kind = "poster"
applies_to = ["video"]
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# ------------------------------------------------------------------------------------------- redis
@dataclass
class RedisServer:
    """A private redis-server without persistence: killed and started again, it comes back empty."""

    binary: str
    port: int
    folder: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        options = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        with (self.folder / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(
                [self.binary, *options, "--dir", str(self.folder)], stdout=log, stderr=subprocess.STDOUT
            )
        client = redis.Redis.from_url(self.url)
        wait_for(lambda: self._answers(client), 10, f"redis-server on port {self.port}", interval=0.05)

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    @staticmethod
    def _answers(client: redis.Redis) -> bool:
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[RedisServer]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed")
    folder = tmp_path / "redis"
    folder.mkdir()
    server = RedisServer(binary, free_port(), folder)
    server.start()
    yield server
    server.kill()


# -------------------------------------------------------------------------------------- postgresql
def postgres_programs() -> Path | None:
    """The folder holding initdb and pg_ctl: on the PATH, else where pg_config says, else the
    newest of Debian's versioned folders."""
    folders = []
    if found := shutil.which("pg_ctl"):
        folders.append(Path(found).resolve().parent)
    if pg_config := shutil.which("pg_config"):
        said = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        folders.append(Path(said.stdout.strip()))
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True)
    folders += map(Path, debian)
    return next((f for f in folders if (f / "initdb").is_file() and (f / "pg_ctl").is_file()), None)


@dataclass
class PostgresCluster:
    """A private PostgreSQL cluster that can be stopped abruptly and started again."""

    programs: Path
    folder: Path
    port: int
    as_owner: list[str] = field(default_factory=list)  # runs the server programs as the cluster's owner

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def run(self, program: str, *args: str) -> None:
        done = subprocess.run(
            [*self.as_owner, str(self.programs / program), *args], capture_output=True, text=True, timeout=60
        )
        if done.returncode != 0:
            raise subprocess.CalledProcessError(done.returncode, done.args, done.stdout, done.stderr)

    def initdb(self) -> None:
        self.run("initdb", "-D", str(self.folder / "data"), "-U", "postgres", "-A", "trust", "--no-sync")

    def start(self) -> None:
        # fsync off: the server is only ever killed, never the machine, and the test stays quick.
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self.run(
            "pg_ctl", "-D", str(self.folder / "data"), "-l", str(self.folder / "server.log"), "-o", options, "-w",
            "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        self.run("pg_ctl", "-D", str(self.folder / "data"), "-m", mode, "-w", "stop")


@pytest.fixture
def private_postgres() -> Iterator[PostgresCluster]:
    programs = postgres_programs()
    if programs is None:
        pytest.skip("PostgreSQL's server programs (initdb, pg_ctl) are not installed")
    as_owner: list[str] = []
    # The cluster lives outside pytest's temporary folder, which only its owner may enter.
    folder = Path(tempfile.mkdtemp(prefix="evidence-pg-"))
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: run it as its own account
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError:
            shutil.rmtree(folder)
            pytest.skip("running as root and there is no postgres account to run a private cluster as")
        runuser = shutil.which("runuser")
        if runuser is None:
            shutil.rmtree(folder)
            pytest.skip("running as root and runuser is missing, so no private cluster can be started")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        as_owner = [runuser, "-u", "postgres", "--"]
    cluster = PostgresCluster(programs, folder, free_port(), as_owner)
    try:
        try:
            cluster.initdb()
            cluster.start()
        except subprocess.CalledProcessError as exc:
            pytest.fail(f"cannot start a private PostgreSQL cluster: {exc}: {exc.stderr}")
        yield cluster
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):  # it may not be running
            cluster.stop("immediate")
        shutil.rmtree(folder, ignore_errors=True)


# ----------------------------------------------------------------------------------------- catalog
def drop(media: MediaMaker, folder: Path, numbers: range) -> None:
    """Tiny distinct recordings."""
    for n in numbers:
        media.variant("voice.wav", folder / f"REC{n:03d}.wav", n + 1)


def deliver(media: MediaMaker, dock: Path, numbers: range) -> list[Path]:
    """Recordings written beside the inbox, then moved into the dock as one folder: they all
    arrive at once, so intake, probing and deriving work on full batches. Returns their paths."""
    folder = dock.parent.parent / f"upload{numbers.start}"
    drop(media, folder, numbers)
    folder.rename(dock / folder.name)
    return sorted((dock / folder.name).iterdir())


def counted(engine: Engine, statement: Any) -> int:
    """A count from the catalog, or -1 while it cannot be reached."""
    try:
        with Session(engine) as session:
            return int(session.exec(statement).one())
    except SQLAlchemyError:
        return -1


def sightings() -> Any:
    return select(func.count()).select_from(Sighting)


def done(stage: str) -> Any:
    return select(func.count()).select_from(StageRun).where(StageRun.stage == stage, StageRun.status == "done")


def summary(engine: Engine) -> str:
    """What the catalog says, for the message when a run does not finish."""
    try:
        with Session(engine) as session:
            seen = session.exec(
                select(Sighting.status, Sighting.disposition, func.count()).group_by(
                    Sighting.status, Sighting.disposition
                )
            ).all()
            stages = session.exec(
                select(StageRun.stage, StageRun.status, func.count()).group_by(StageRun.stage, StageRun.status)
            ).all()
    except SQLAlchemyError as exc:
        return f"the catalog cannot be read: {exc}"
    return f"sightings {sorted(seen)}, stages {sorted(stages)}"


def finished(engine: Engine, settings: Settings, files: int = FILES, stages: Sequence[str] = STAGES) -> bool:
    """Every file gone from the dock and every item's ``stages`` done."""
    if files_under(settings.inbox_dir):
        return False
    items = counted(engine, select(func.count()).select_from(Item))
    return items == files and all(counted(engine, done(stage)) == files for stage in stages)


def assert_taken_in_once(engine: Engine, settings: Settings) -> None:
    """One item and one stored sighting per file, every source moved to processed/ and nothing
    quarantined, every stage done, and the stored originals are the files the dock wrote."""
    names = [f"REC{n:03d}.wav" for n in range(FILES)]
    with Session(engine) as session:
        digests = set(session.exec(select(Item.sha256)).all())
        seen = session.exec(select(Sighting.source_path, Sighting.status, Sighting.disposition)).all()
        stages = session.exec(
            select(StageRun.stage, StageRun.status, func.count()).group_by(StageRun.stage, StageRun.status)
        ).all()
        faults = session.exec(select(ItemIssue.message).where(ItemIssue.code == STAGE_ERROR)).all()
    assert len(digests) == FILES
    assert Counter(Path(path).name for path, _, _ in seen) == Counter(names)
    assert {(status, disposition) for _, status, disposition in seen} == {("stored", "moved")}
    assert files_under(settings.quarantine_dir) == []
    assert files_under(settings.inbox_dir) == []
    processed = files_under(settings.processed_dir)
    assert sorted(p.name for p in processed) == names
    assert {sha256_of(p) for p in processed} == digests
    assert {(stage, status): n for stage, status, n in stages} == {(stage, "done"): FILES for stage in STAGES}
    assert faults == []


# -------------------------------------------------------------------------------------------- logs
RECORD = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ (?P<level>[A-Z]+) (?P<logger>[\w.]+): (?P<message>.*)$")
OURS = ("pipeline", "workers", "evidence")


def assert_no_task_failed(logs: dict[str, str]) -> None:
    """No task ended with an unhandled error, no worker gave up, no item was blamed for a defect,
    and none of our own log records carries a traceback: an outage is logged as a warning that
    says what is away and what happens next. (Celery's own records of failed broker calls carry
    their tracebacks; they are its business.)"""
    for name, text in logs.items():
        logger = ""
        for line in text.splitlines():
            if record := RECORD.match(line):
                logger = record["logger"]
                assert " raised unexpected: " not in line, f"{name}: {line}"
                assert "Unrecoverable error" not in line, f"{name}: {line}"
                assert "stage failed on item" not in line, f"{name}: {line}"
            elif line.startswith("Traceback"):
                assert not logger.startswith(OURS), f"{name}: a traceback logged by {logger}"


# --------------------------------------------------------------------------------------------- run
def outage_settings(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **extra: str
) -> dict[str, str]:
    """Short reconciler and lease times, so lost work is found again within the test, and the
    light transcode profiles above."""
    profiles = tmp_path / "profiles.toml"
    profiles.write_text(PROFILES)
    values = {
        "EVIDENCE_LEASE_SECONDS": "3",
        "EVIDENCE_RECONCILE_INTERVAL": "1",
        "EVIDENCE_STALE_AFTER": "8",
        "EVIDENCE_QUIET_PERIOD": "0.3",
        "EVIDENCE_TRANSCODE_PROFILES": str(profiles),
        **extra,
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    env.update(values)
    return env


def run_through_outage(
    start: Callable[..., Service],
    engine: Engine,
    settings: Settings,
    dock: Path,
    media: MediaMaker,
    *,
    stop: Callable[[], None],
    restart: Callable[[], None],
) -> dict[str, str]:
    """The watcher with its reconciler and a worker with the scheduled one take in 200 files. Once
    the first half is probed and its first items are derived, and the other half has just arrived,
    the server goes away (``stop``) with work of every stage running or queued; it comes back
    (``restart``) after OUTAGE seconds. Returns the watcher's and the worker's logs once everything
    is done."""
    watcher = start("watch")
    worker = start("worker", "--concurrency", "2", "--beat")
    services = [watcher, worker]
    wait_for(lambda: " ready." in worker.output(), 60, f"the worker to start: {worker.log}")
    deliver(media, dock, range(FILES // 2))
    wait_for(lambda: counted(engine, done("derive")) > 0, 90, "the first items to be derived", interval=0.1)
    deliver(media, dock, range(FILES // 2, FILES))
    wait_for(lambda: counted(engine, sightings()) > FILES // 2, 10, "the next files to be seen", interval=0.05)
    stop()
    time.sleep(OUTAGE)
    restart()
    try:
        wait_for(lambda: finished(engine, settings), 150, "every file and stage to be done", interval=0.5)
    except AssertionError as exc:
        said = "\n".join(f"--- {s.log.name}:\n{s.output()[-3000:]}" for s in services)
        raise AssertionError(f"{exc}; {summary(engine)}\n{said}") from None
    for service in services:
        assert service.process.poll() is None, f"{service.log.name} stopped:\n{service.output()[-3000:]}"
    return {"watcher": watcher.output(), "worker": worker.output()}


class TestBrokerOutage:
    @pytest.fixture
    def database_url(self, postgres_url: str) -> str:
        return postgres_url

    @pytest.fixture
    def outage_env(self, env, monkeypatch, tmp_path, private_redis: RedisServer) -> dict[str, str]:
        return outage_settings(env, monkeypatch, tmp_path, EVIDENCE_BROKER_URL=private_redis.url)

    def test_redis_killed_mid_ingest_loses_nothing(
        self, outage_env, private_redis, start, ctx: IntakeContext, settings, dock, media
    ) -> None:
        """Redis killed for 20 s in the middle of 200 files, then started empty (every queued
        message lost): each file is taken in once, moved to processed/, probed and derived."""
        logs = run_through_outage(
            start, ctx.engine, settings, dock, media, stop=private_redis.kill, restart=private_redis.start
        )
        assert "Connection to broker lost" in logs["worker"]
        assert "broker unavailable" in logs["watcher"]
        assert_taken_in_once(ctx.engine, settings)
        assert_no_task_failed(logs)

    def test_a_worker_running_a_task_outlives_a_redis_restart(
        self, outage_env, private_redis, start, cli, ctx: IntakeContext, dock, media
    ) -> None:
        """Redis goes away while the worker runs one task and waits for more: the worker reconnects
        once Redis is back and takes in what is queued then, instead of stopping."""
        drop(media, dock, range(30))
        assert cli("ingest", str(dock), "--enqueue", "--json").exit_code == 0
        worker = start("worker", "--concurrency", "2")
        wait_for(lambda: "evidence.probe[" in worker.output(), 60, f"probing to start: {worker.log}")
        private_redis.kill()
        time.sleep(3)
        private_redis.start()
        later = dock.parent / "dock2"
        drop(media, later, range(100, 110))
        assert cli("ingest", str(later), "--enqueue", "--json").exit_code == 0

        def taken_in() -> bool:
            assert worker.process.poll() is None, f"the worker stopped:\n{worker.output()[-3000:]}"
            return counted(ctx.engine, select(func.count()).select_from(Item)) == 40

        wait_for(taken_in, 60, f"the worker to take in the files queued after the restart: {worker.log}")
        assert_no_task_failed({"worker": worker.output()})


class TestDatabaseOutage:
    @pytest.fixture
    def database_url(self, private_postgres: PostgresCluster) -> str:
        return private_postgres.url

    @pytest.fixture
    def outage_env(self, env, monkeypatch, tmp_path) -> Iterator[dict[str, str]]:
        try:
            redis.Redis.from_url(REDIS_URL).ping()
        except redis.RedisError as exc:
            pytest.fail(f"Redis is not reachable at {REDIS_URL}: {exc}")
        yield outage_settings(env, monkeypatch, tmp_path, EVIDENCE_BROKER_URL=REDIS_URL)
        client = redis.Redis.from_url(REDIS_URL)
        if keys := list(client.scan_iter(f"{env['EVIDENCE_QUEUE_PREFIX']}:*")):
            client.delete(*keys)

    def test_postgresql_stopped_mid_ingest_loses_nothing(
        self, outage_env, private_postgres, start, ctx: IntakeContext, settings, dock, media
    ) -> None:
        """The catalog's PostgreSQL stopped abruptly for 20 s in the middle of 200 files: each file
        is taken in once, moved to processed/, probed and derived, and every task met the outage
        as a system fault to retry, none as a defect."""
        logs = run_through_outage(
            start,
            ctx.engine,
            settings,
            dock,
            media,
            stop=lambda: private_postgres.stop("immediate"),
            restart=private_postgres.start,
        )
        assert_taken_in_once(ctx.engine, settings)
        assert_no_task_failed(logs)
        # The lost connections were met as the catalog being away (a TransientError), and said so: by
        # the tasks running at the time (which ones depends on timing) and both reconcilers.
        unavailable = "catalog database unavailable: "
        met = [task for task in ("intake", "probe", "derive") if f"evidence.{task}: {unavailable}" in logs["worker"]]
        assert met, "no task met the outage as the catalog being away"
        assert f"reconcile pass skipped: {unavailable}" in logs["worker"]
        assert f"reconcile pass skipped: {unavailable}" in logs["watcher"]
