"""Running the pipeline: the Celery app is made from the settings (importing it creates nothing,
two settings never share queues), a worker logs to its file and greets a person with one line, and
`serve`'s greeting says where things are without printing a password."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.catalog.models import Item
from pipeline.cli.running import _greeting, shown_url
from pipeline.runtime import processes
from pipeline.settings import Settings, load_settings
from tests.conftest import EVIDENCE, wait_for
from tests.test_watcher import count
from workers.app import create_app
from workers.dispatch import Dispatcher
from workers.queues import UnknownStageError, parse_stages


@pytest.fixture
def database_url() -> str:
    """The embedded catalog: what is tested here does not depend on the database."""
    return ""


class TestApp:
    def test_importing_the_worker_modules_creates_nothing(self, tmp_path: Path) -> None:
        """A web application or a script may import the workers' modules without a data folder
        appearing (the app is made only when asked for)."""
        home = tmp_path / "data"
        done = subprocess.run(
            [sys.executable, "-c", "import workers.app, workers.tasks, workers.dispatch, workers.queues"],
            env={**os.environ, "EVIDENCE_HOME": str(home)},
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, done.stderr
        assert not home.exists()

    def test_two_settings_queue_to_their_own_brokers(self, tmp_path: Path) -> None:
        """Apps made from two settings in one process each send to their own queue folder."""
        first = create_app(load_settings(home=tmp_path / "one"))
        second = create_app(load_settings(home=tmp_path / "two"))
        Dispatcher(first).intake(["S1"])
        Dispatcher(second).probe(["I1"])
        Dispatcher(second).derive(["I2"])

        def messages(home: Path) -> list[str]:
            return sorted(p.name.split(".", 1)[1] for p in (home / "queue" / "messages").iterdir())

        assert messages(tmp_path / "one") == ["evidence.intake.msg"]
        assert messages(tmp_path / "two") == ["evidence.derive.msg", "evidence.probe.msg"]

    def test_every_task_has_a_queue_named_after_its_stage(self, settings: Settings) -> None:
        app = create_app(settings)
        routes = app.conf.task_routes
        assert {name: route["queue"] for name, route in routes.items()} == {
            "evidence.intake": f"{settings.queue_prefix}.intake",
            "evidence.probe": f"{settings.queue_prefix}.probe",
            "evidence.derive": f"{settings.queue_prefix}.derive",
            "evidence.package": f"{settings.queue_prefix}.package",
            "evidence.reconcile": f"{settings.queue_prefix}.maintenance",
            "evidence.fixity": f"{settings.queue_prefix}.maintenance",
            "evidence.archive": f"{settings.queue_prefix}.maintenance",
        }
        assert set(routes) <= set(app.tasks)


class TestQueues:
    def test_old_queue_name_still_works_and_unknown_ones_are_named(self) -> None:
        assert parse_stages(" intake, transcode ,derive") == ["intake", "derive"]
        with pytest.raises(UnknownStageError, match="unknown stage\\(s\\) bogus; known: intake, probe, derive"):
            parse_stages("intake,bogus")

    def test_worker_refuses_an_unknown_queue(self, cli) -> None:  # type: ignore[no-untyped-def]
        result = cli("worker", "--queues", "probe,transcoding")
        assert result.exit_code == 2
        assert "unknown stage(s) transcoding" in result.errors


class TestWorkerLogs:
    def test_a_worker_logs_to_its_file_and_says_one_line(self, env: dict[str, str], settings: Settings) -> None:
        """Without --verbose the console gets one line naming the log file (and Celery's one line
        when it stops); no banner, and the worker's records go to the file."""
        process = subprocess.Popen(
            [*EVIDENCE, "worker", "--queues", "probe,derive", "--concurrency", "1"],
            env={**os.environ, **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        log = settings.logs_dir / "worker-probe-derive.log"
        try:
            wait_for(lambda: log.exists() and " ready." in log.read_text(), 60, f"the worker to start ({log})")
        finally:
            process.terminate()
            out, err = process.communicate(timeout=60)
        assert err.decode().splitlines() == [f"worker on probe, derive: log {log} (--verbose: console too)"]
        assert out.decode().strip() in ("", "worker: Warm shutdown (MainProcess)")  # Celery says it on SIGTERM
        assert "INFO celery.apps.worker: evidence-probe-derive-" in log.read_text()


class TestIdleServe:
    def test_an_idle_serve_keeps_no_pool_processes_and_stops_with_its_workers(  # type: ignore[no-untyped-def]
        self, start, settings, media, ctx
    ) -> None:
        """`serve` forks its pool processes when work arrives and lets them go when it is done:
        waiting, it is itself and one worker per queue group; all of them stop with `serve`."""
        service = start("serve", extra_env={"EVIDENCE_QUIET_PERIOD": "0.5", "AUTOSCALE_KEEPALIVE": "2"})
        wait_for(lambda: "serving" in service.output(), 60, "serve to start")
        group = service.process.pid
        media.variant("clip.mp4", settings.inbox_dir / "dock1" / "clip.mp4", 1)
        wait_for(lambda: count(ctx, Item) == 1, 120, "the clip to be catalogued")
        assert len(_group(group)) > 4  # pool processes (and the probe's helpers) did the work
        wait_for(lambda: len(_group(group)) == 4, 120, "the pools to shrink back when idle")
        service.process.send_signal(signal.SIGTERM)
        service.process.wait(timeout=90)
        wait_for(lambda: not _group(group), 30, "the workers to stop with serve")

    def test_a_worker_that_dies_is_started_again_and_work_goes_on(  # type: ignore[no-untyped-def]
        self, start, settings, media, ctx
    ) -> None:
        """Every worker `serve` forked killed at once (as the out-of-memory killer might): `serve`
        says so in its log, starts each again, and a file the dock writes afterwards is taken in
        and probed; the new workers stop with `serve` too."""
        service = start("serve", extra_env={"EVIDENCE_QUIET_PERIOD": "0.5"})
        wait_for(lambda: "serving" in service.output(), 60, "serve to start")
        group = service.process.pid
        forked = [pid for pid in _group(group) if pid != group]
        assert len(forked) == 3
        for pid in forked:
            os.kill(pid, signal.SIGKILL)
        wait_for(lambda: len(_workers_started_again(group)) == 3, 60, "the workers to be started again")
        log = (settings.logs_dir / "serve.log").read_text()
        assert "the worker on intake stopped (exit status -9); starting it again" in log
        media.variant("clip.mp4", settings.inbox_dir / "dock1" / "clip.mp4", 2)
        wait_for(lambda: count(ctx, Item) == 1, 120, "the clip to be catalogued")
        service.process.send_signal(signal.SIGTERM)
        service.process.wait(timeout=90)
        wait_for(lambda: not _group(group), 30, "the workers to stop with serve")


def _workers_started_again(pgid: int) -> list[int]:
    """The processes of the group that run `evidence worker` (a restarted worker, not a fork)."""
    found = []
    for pid in _group(pgid):
        try:
            words = (Path("/proc") / str(pid) / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"worker" in words and b"--idle" in words:
            found.append(pid)
    return found


def _group(pgid: int) -> list[int]:
    """The live processes of a process group (zombies excluded)."""
    return [p.pid for p in processes() if p.pgid == pgid and p.alive]


class TestGreeting:
    def test_passwords_never_shown(self, tmp_path: Path) -> None:
        settings = load_settings(
            home=tmp_path / "data",
            database_url="postgresql+psycopg://evidence:s3cret@db.example:5432/evidence",
            broker_url="redis://:hunter2@queue.example:6379/0",
        )
        text = "\n".join(_greeting(settings, settings.logs_dir))
        assert "s3cret" not in text and "hunter2" not in text
        assert "postgresql+psycopg://evidence:***@db.example:5432/evidence" in text
        assert "redis://:***@queue.example:6379/0" in text
        assert str(tmp_path / "data" / "inbox") in text and "Ctrl+C" in text

    def test_urls_without_password_are_shown_as_they_are(self) -> None:
        assert shown_url("sqlite:////srv/evidence/catalog.sqlite3") == "sqlite:////srv/evidence/catalog.sqlite3"
        assert shown_url("redis://queue:6379/0") == "redis://queue:6379/0"
