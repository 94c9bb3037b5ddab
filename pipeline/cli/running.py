"""Running the pipeline: ``worker``, ``watch`` and ``serve`` (the watcher, the reconciler and worker
processes in one command); ``watch`` and ``serve`` stop cleanly on SIGINT or SIGTERM.

Workers and ``serve`` write their logs to files under the data folder (setting ``log_dir``) and to
the console only with ``--verbose``; a person starting them reads a few lines saying where things
are and how to stop.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import logging.handlers
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import click

from pipeline.cli.inputs import read_settings
from pipeline.errors import TransientError
from pipeline.runtime import cores, intake_context, open_catalog, open_to_others, process_name, processes
from pipeline.settings import FILE_MODE, Settings, private_dir

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
ALL_QUEUES = "intake,probe,derive,package,maintenance"


def _log_to_file(settings: Settings, name: str, level: str, *, console: bool) -> Path:
    """Send this process's log records (Python warnings too) to ``<log_dir>/<name>.log``, and keep
    them on the console only when ``console`` is set. Returns the file's path."""
    path = private_dir(settings.logs_dir) / f"{name}.log"
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE))
    with contextlib.suppress(PermissionError):  # a log file another account made stays as it is
        if stat.S_IMODE(path.stat().st_mode) != FILE_MODE:
            path.chmod(FILE_MODE)  # whatever the umask
    handler = logging.handlers.WatchedFileHandler(path, encoding="utf-8")  # follows logrotate
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    if not console:
        for existing in list(root.handlers):
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    logging.captureWarnings(True)
    return path


@click.command()
@click.option("--concurrency", type=click.IntRange(min=1), help="Worker processes (default: setting).")
@click.option(
    "--queues",
    default=ALL_QUEUES,
    show_default=True,
    help="Stages to work on, comma-separated (run slow stages on workers of their own).",
)
@click.option("--beat", is_flag=True, help="Also schedule the periodic reconciler (one per cluster).")
@click.option("--loglevel", default="INFO", show_default=True)
@click.option("--verbose", is_flag=True, help="Log to the console too, not only to the log file.")
@click.option("--quiet", is_flag=True, hidden=True, help="Say nothing on start (serve has said it).")
@click.option(
    "--idle",
    type=click.IntRange(min=0),
    hidden=True,
    help="Let the pool shrink to this many processes when there is no work (as serve's workers do).",
)
def worker(
    concurrency: int | None, queues: str, beat: bool, loglevel: str, verbose: bool, quiet: bool, idle: int | None
) -> None:
    """Run a Celery worker on the given stage queues."""
    from workers.queues import UnknownStageError, parse_stages

    try:
        stages = parse_stages(queues)
    except UnknownStageError as exc:
        raise click.BadParameter(str(exc), param_hint="--queues") from exc
    settings = read_settings()
    settings.ensure_dirs()
    open_catalog(settings).dispose()
    _run_worker(settings, stages, concurrency, beat=beat, loglevel=loglevel, verbose=verbose, quiet=quiet, idle=idle)


def _run_worker(
    settings: Settings,
    stages: Sequence[str],
    concurrency: int | None,
    *,
    beat: bool = False,
    loglevel: str,
    verbose: bool,
    quiet: bool,
    idle: int | None = None,
) -> None:
    """Run a Celery worker on ``stages`` in this process, until it is told to stop. With ``idle``,
    its pool shrinks to that many processes when there is nothing to do, and grows back to
    ``concurrency`` as work arrives (Celery's autoscaler)."""
    from celery.utils.nodenames import default_nodename, host_format

    from workers.app import create_app
    from workers.queues import queue_name

    name = f"worker-{'-'.join(stages)}"
    log = _log_to_file(settings, name, loglevel, console=verbose)
    if not quiet:
        click.echo(
            f"worker on {', '.join(stages)}: log {log}" + ("" if verbose else " (--verbose: console too)"), err=True
        )
    processes = concurrency or settings.worker_concurrency
    options: dict[str, object] = {}
    if idle is not None:
        options["autoscale"] = (processes, idle)
    if beat:
        options.update(beat=True, schedule=str(settings.home_dir / "beat-schedule"))
    # Started as Celery's own command would start it, without the command: its command line brings
    # an interactive shell's modules (prompt_toolkit, pygments) into every worker's memory.
    worker = create_app(settings).Worker(
        hostname=host_format(default_nodename(f"evidence-{'-'.join(stages)}-{os.getpid()}@%h")),
        loglevel=loglevel,
        quiet=True,  # no banner: the log file says what the worker does
        without_mingle=True,
        without_gossip=True,
        concurrency=processes,
        queues=[queue_name(settings, stage) for stage in stages],
        **options,
    )
    worker.start()
    if worker.exitcode:
        raise SystemExit(worker.exitcode)


def _run_watcher(settings: Settings, stop: threading.Event, with_reconciler: bool) -> None:
    """Watch the inbox (and reconcile, on a thread of its own) until ``stop`` is set."""
    from pipeline.ingest.reconcile import reconcile_all
    from pipeline.ingest.watcher import Watcher
    from workers.app import create_app
    from workers.dispatch import Dispatcher

    queue = Dispatcher(create_app(settings))
    ctx = intake_context(settings, actor=process_name("watcher"))
    watcher = Watcher(
        ctx,
        queue.intake,
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
                reconcile_all(ctx, settings, queue)
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


def shown_url(url: str) -> str:
    """A database or broker URL fit to print: any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = f"{parts.username}:***@" if parts.username else ":***@"
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}{host}"))


def guard_data_modes(settings: Settings) -> None:
    """Refuse to start in production when other local accounts can read or change the data folder
    or the catalog; warn in development."""
    problems = open_to_others(settings)
    if problems and settings.environment == "production":
        raise click.ClickException("refusing to start: " + "; ".join(problems))
    for problem in problems:
        click.echo(f"warning: {problem}", err=True)


def _greeting(settings: Settings, logs: Path, web: str | None = None) -> list[str]:
    """What a person starting ``serve`` needs to know: where things are and how to stop."""
    queue = shown_url(settings.broker_url) if settings.broker_url else f"embedded, in {settings.queue_dir}"
    lines = [
        "evidence pipeline serving",
        f"  web          {web or 'not started (setting web_bind is empty)'}",
        f"  data folder  {settings.home_dir}",
        f"  inbox        {settings.inbox_dir}{os.sep}<dock>{os.sep}  (one folder per docking station)",
        f"  catalog      {shown_url(settings.effective_database_url)}",
        f"  queue        {queue}",
        f"  logs         {logs}{os.sep}",
        "  stop with Ctrl+C or SIGTERM",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        lines.append("  note: running as root; give the pipeline an account of its own")
    return lines


@click.command()
@click.option("--concurrency", type=click.IntRange(min=1), help="Intake worker processes (default: setting).")
@click.option("--verbose", is_flag=True, help="Log to the console too, not only to the log files.")
def serve(concurrency: int | None, verbose: bool) -> None:
    """Everything in one command: web application, watcher, reconciler and workers (embedded
    default: no servers)."""
    from pipeline.cli.web import WebServer, announce_first_admin

    settings = read_settings()
    settings.ensure_dirs()
    open_catalog(settings).dispose()  # no connection is carried into the workers
    guard_data_modes(settings)
    # Probing and transcoding use a core per file: by default as many processes as there are cores.
    # Intake has workers of its own, so slow probing or a batch of fixity checks never holds up files
    # waiting on the docks.
    groups: list[tuple[tuple[str, ...], int]] = [
        (("intake",), concurrency or settings.worker_concurrency),
        (("probe",), settings.probe_concurrency or cores()),
        (("derive", "package", "maintenance"), settings.transcode_concurrency or cores()),
    ]
    workers: list[_Forked | _Spawned] = [
        _fork_worker(settings, stages, processes, verbose=verbose) for stages, processes in groups
    ]
    _log_to_file(settings, "serve", os.environ.get("EVIDENCE_LOG_LEVEL", "WARNING"), console=verbose)
    announce_first_admin(settings)
    stop = threading.Event()
    _stop_on_signals(stop)
    address = settings.web_address
    server = WebServer(settings, *address) if address else None
    url = server.start() if server else None
    click.echo("\n".join(_greeting(settings, settings.logs_dir, url)), err=True)
    if url:
        click.echo(f"web: {url}", err=True)
    keeper = threading.Thread(
        target=_keep_workers, args=(groups, workers, stop, verbose), name="worker-keeper", daemon=True
    )
    keeper.start()
    try:
        _run_watcher(settings, stop, with_reconciler=True)
    finally:
        stop.set()
        keeper.join()
        if server:
            server.stop()
        _stop_workers(workers)


SHUTDOWN_WAIT = 40.0  # seconds serve's workers have, together, to finish what they run and stop


def _stop_workers(workers: Sequence[_Forked | _Spawned], wait: float = SHUTDOWN_WAIT) -> None:
    """Ask every worker to stop (a warm shutdown: running tasks finish), then kill those still there
    when ``wait`` has passed, with their pool processes. Celery's prefork pool can hang in its own
    shutdown after its autoscaler has let processes go; what a killed worker held is queued again
    from the catalog."""
    for process in workers:
        process.terminate()
    deadline = time.monotonic() + wait
    for process in workers:
        if not process.wait(timeout=max(0.0, deadline - time.monotonic())):
            logging.getLogger("evidence.serve").warning(
                "a worker (pid %s) did not stop within %.0f s and was killed; its unfinished work is queued "
                "again from the catalog",
                process.pid,
                wait,
            )


KEEP_INTERVAL = 2.0  # seconds between two looks at serve's workers
RESTART_PAUSE = 10.0  # at least this long between two starts of one group's worker


def _keep_workers(
    groups: Sequence[tuple[tuple[str, ...], int]],
    workers: list[_Forked | _Spawned],
    stop: threading.Event,
    verbose: bool,
) -> None:
    """Start again a worker of ``serve`` that stopped while ``serve`` runs (killed, out of memory,
    crashed), so that no queue is left without one: as a program of its own, since ``serve`` now has
    threads and a fork would copy their locks. The catalog drives what it left unfinished back into
    the queues (the reconciler), so nothing it held is lost."""
    log = logging.getLogger("evidence.serve")
    started = [time.monotonic()] * len(workers)
    while not stop.wait(KEEP_INTERVAL):
        for index, process in enumerate(workers):
            code = process.poll()
            if code is None or time.monotonic() - started[index] < RESTART_PAUSE:
                continue
            if stop.is_set():  # serve is stopping: its workers stop with it
                return
            stages, processes = groups[index]
            log.error("the worker on %s stopped (exit status %s); starting it again", ", ".join(stages), code)
            command = [
                *(sys.executable, "-m", "pipeline", "worker", "--queues", ",".join(stages)),
                *("--concurrency", str(processes), "--idle", "0", "--loglevel", "WARNING", "--quiet"),
            ]
            if verbose:
                command.append("--verbose")
            workers[index] = _Spawned(subprocess.Popen(command, stdin=subprocess.DEVNULL))
            started[index] = time.monotonic()


class _Spawned:
    """A worker ``serve`` started again as a program: stopped as a forked one is."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process

    def poll(self) -> int | None:
        return self.process.poll()

    def terminate(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()

    @property
    def pid(self) -> int:
        return self.process.pid

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds; then kill it and its children. True if it stopped itself."""
        try:
            self.process.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            _kill_tree(self.process.pid)
            self.process.wait()
            return False


class _Forked:
    """A worker process forked by ``serve``: stopped with SIGTERM, killed if it outstays ``wait``."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            with contextlib.suppress(ChildProcessError):
                pid, status = os.waitpid(self.pid, os.WNOHANG)
                if pid == 0:
                    return None
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def terminate(self) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds; then kill it and its children. True if it stopped itself."""
        deadline = time.monotonic() + timeout
        while self.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        if self.poll() is not None:
            return True
        _kill_tree(self.pid)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)
        return False


def _kill_tree(pid: int) -> None:
    """SIGKILL a process and every process descended from it (a worker and its pool, and their
    helpers), children first found, so none is left behind as an orphan."""
    children: dict[int, list[int]] = {}
    for process in processes():
        children.setdefault(process.ppid, []).append(process.pid)
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    for member in tree:
        with contextlib.suppress(ProcessLookupError):
            os.kill(member, signal.SIGKILL)


# What a worker imports as it starts, imported by ``serve`` before it forks the workers, so that they
# share one copy of it.
_WORKER_MODULES = (
    "billiard.pool",
    "celery.apps.worker",
    "celery.concurrency.asynpool",
    "celery.concurrency.prefork",
    "celery.events.dispatcher",
    "celery.events.receiver",
    "celery.worker.autoscale",
    "celery.worker.components",
    "celery.worker.consumer",
    "celery.worker.consumer.delayed_delivery",
    "celery.worker.strategy",
    "celery.app.amqp",
    "celery.app.control",
    "celery.app.events",
    "celery.app.log",
    "celery.app.routes",
    "celery.backends.base",
    "kombu.pidbox",
    "workers.app",
)


def _fork_worker(settings: Settings, stages: Sequence[str], concurrency: int, *, verbose: bool) -> _Forked:
    """Start a worker on ``stages`` as a fork of this process, before it has started any thread.

    The workers share with ``serve`` (and with each other) the memory of what was imported before
    the fork, the catalog's models, Celery and the stages among it: an idle ``serve`` costs one copy
    of them rather than one per worker. ``gc.freeze`` keeps the collector from writing to those
    objects and so copying their pages. In the same process group: a signal to ``serve`` from a
    terminal or a supervisor reaches the workers too."""
    import gc

    for module in _WORKER_MODULES:
        importlib.import_module(module)

    gc.freeze()
    pid = os.fork()
    if pid:
        gc.unfreeze()
        return _Forked(pid)
    code = 1
    try:
        _run_worker(settings, stages, concurrency, loglevel="WARNING", verbose=verbose, quiet=True, idle=0)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:
        logging.getLogger("evidence.worker").exception("worker on %s failed", ", ".join(stages))
    finally:
        logging.shutdown()
        os._exit(code)
