"""Running the pipeline: ``worker``, ``watch`` and ``serve`` (the watcher, the reconciler and worker
processes in one command); ``watch`` and ``serve`` stop cleanly on SIGINT or SIGTERM."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading

import click

from pipeline.cli.inputs import read_settings
from pipeline.errors import TransientError
from pipeline.runtime import intake_context, open_catalog, process_name
from pipeline.settings import Settings


@click.command()
@click.option("--concurrency", type=click.IntRange(min=1), help="Worker processes (default: setting).")
@click.option(
    "--queues",
    default="intake,probe,transcode,package,maintenance",
    show_default=True,
    help="Stages to work on, comma-separated (run slow stages on workers of their own).",
)
@click.option("--beat", is_flag=True, help="Also schedule the periodic reconciler (one per cluster).")
@click.option("--loglevel", default="INFO", show_default=True)
def worker(concurrency: int | None, queues: str, beat: bool, loglevel: str) -> None:
    """Run a Celery worker on the given stage queues."""
    settings = read_settings()
    settings.ensure_dirs()
    open_catalog(settings)
    from workers.app import STAGES, app, configure, queue_name

    stages = [stage.strip() for stage in queues.split(",") if stage.strip()]
    if unknown := sorted(set(stages) - set(STAGES)):
        raise click.BadParameter(
            f"unknown stage(s) {', '.join(unknown)}; known: {', '.join(STAGES)}", param_hint="--queues"
        )
    configure(app, settings)
    argv = [
        "worker",
        "--loglevel",
        loglevel,
        "--without-mingle",
        "--without-gossip",
        "--concurrency",
        str(concurrency or settings.worker_concurrency),
        "--queues",
        ",".join(queue_name(settings, stage) for stage in stages),
        "--hostname",
        f"evidence-{'-'.join(stages)}-{os.getpid()}@%h",
    ]
    if beat:
        argv += ["--beat", "--schedule", str(settings.home_dir / "beat-schedule")]
    app.worker_main(argv)


def _run_watcher(settings: Settings, stop: threading.Event, with_reconciler: bool) -> None:
    """Watch the inbox (and reconcile, on a thread of its own) until ``stop`` is set."""
    from pipeline.ingest.watcher import Watcher
    from workers.app import app, configure
    from workers.tasks import enqueue_intake, reconcile_all

    configure(app, settings)
    ctx = intake_context(settings, actor=process_name("watcher"))
    watcher = Watcher(
        ctx,
        enqueue_intake,
        quiet_period=settings.quiet_period,
        rescan_interval=settings.rescan_interval,
        ignore_patterns=settings.ignore_patterns,
        source_policy=settings.source_policy,
        polling=settings.watch_polling,
        poll_interval=settings.poll_interval,
    )

    def reconcile_loop() -> None:
        while not stop.is_set():
            try:
                reconcile_all(ctx, settings)
            except TransientError as exc:  # the broker or the catalog is away: the next pass tries again
                logging.getLogger("evidence.reconcile").warning("reconcile pass skipped: %s", exc)
            except Exception:
                logging.getLogger("evidence.reconcile").exception("reconcile pass failed; retrying later")
            stop.wait(settings.reconcile_interval)

    if with_reconciler:
        threading.Thread(target=reconcile_loop, name="reconciler", daemon=True).start()
    watcher.run(stop)


def _stop_on_signals(stop: threading.Event) -> None:
    """SIGINT and SIGTERM set ``stop`` instead of ending the process at once."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())


@click.command()
@click.option(
    "--reconcile/--no-reconcile",
    default=True,
    show_default=True,
    help="Also run the reconciler in this process.",
)
def watch(reconcile: bool) -> None:
    """Watch inbox/<dock>/ folders and hand complete files to the workers."""
    settings = read_settings()
    settings.ensure_dirs()
    stop = threading.Event()
    _stop_on_signals(stop)
    click.echo(f"watching {settings.inbox_dir}", err=True)
    _run_watcher(settings, stop, with_reconciler=reconcile)


@click.command()
@click.option("--concurrency", type=click.IntRange(min=1), help="Worker processes (default: setting).")
def serve(concurrency: int | None) -> None:
    """Everything in one command: watcher, reconciler and workers (embedded default: no servers)."""
    settings = read_settings()
    settings.ensure_dirs()
    open_catalog(settings)
    stop = threading.Event()
    _stop_on_signals(stop)
    base = [sys.executable, "-m", "pipeline", "worker", "--loglevel", "WARNING"]
    # Intake has workers of its own, so slow probing or a batch of fixity checks never holds up files
    # waiting on the docks. Same process group: a signal to `serve` from a terminal or a supervisor
    # reaches the workers too.
    workers = [
        subprocess.Popen(
            [*base, "--queues", "intake", "--concurrency", str(concurrency or settings.worker_concurrency)]
        ),
        subprocess.Popen([*base, "--queues", "probe", "--concurrency", "1"]),
        subprocess.Popen(
            [
                *base,
                "--queues",
                "transcode,package,maintenance",
                "--concurrency",
                str(settings.transcode_concurrency),
            ]
        ),
    ]
    click.echo(
        f"serving: inbox {settings.inbox_dir}, catalog {settings.effective_database_url}, "
        f"broker {settings.broker_url or 'embedded file queue'}",
        err=True,
    )
    try:
        _run_watcher(settings, stop, with_reconciler=True)
    finally:
        for process in workers:
            process.terminate()
        for process in workers:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
