"""Builds the long-lived objects (catalog engine, store, every stage's context) from the settings,
and the worker processes a command spreads its files over."""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import socket
import stat
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypedDict, TypeVar

from sqlalchemy import Engine

from pipeline.catalog.db import dispose_engines, get_engine, migrate
from pipeline.errors import PipelineError, SystemFault, TransientError, describe
from pipeline.ingest.intake import IntakeContext
from pipeline.settings import FILE_MODE, Settings, private_dir
from pipeline.stage import TOOL, StageContext
from pipeline.storage import LocalStore, ObjectStore

if TYPE_CHECKING:
    from pipeline.archive.stage import ArchiveContext
    from pipeline.package.stage import PackageContext
    from pipeline.probe.stage import ProbeContext
    from pipeline.transcode.stage import DeriveContext

_migrated: set[str] = set()


def open_catalog(settings: Settings) -> Engine:
    """The catalog engine, its schema brought up to date once per process. An embedded catalog is
    made (and kept) readable by this account and the data group only."""
    url = settings.effective_database_url
    engine = get_engine(url)
    if url not in _migrated:
        path = sqlite_path(url)
        if path is not None:
            _private_catalog(path)
        migrate(engine)
        _migrated.add(url)
    return engine


def sqlite_path(url: str) -> Path | None:
    """The file of an embedded (SQLite) catalog; None for a server's catalog or one in memory."""
    if not url.startswith("sqlite"):
        return None
    path = url.split("///", 1)[-1].split("?", 1)[0]
    return Path(path) if path and path != ":memory:" and "///" in url else None


def _private_catalog(path: Path) -> None:
    """Make the catalog file 0640 before SQLite opens it (its journal files take the same mode),
    and bring an older, more open one (with its journal files) down to it."""
    private_dir(path.parent)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    except FileExistsError:
        for name in (path, path.with_name(f"{path.name}-wal"), path.with_name(f"{path.name}-shm")):
            with contextlib.suppress(FileNotFoundError, PermissionError):
                if stat.S_IMODE(name.stat().st_mode) & ~FILE_MODE:
                    name.chmod(FILE_MODE)
    else:
        os.fchmod(fd, FILE_MODE)  # whatever the umask
        os.close(fd)


def open_to_others(settings: Settings) -> list[str]:
    """What in the data folder other local accounts may read or change (mode & 0o007): the data
    folder itself and an embedded catalog file. Empty when both are private."""
    found = []
    path = sqlite_path(settings.effective_database_url)
    for what, place, wanted in (("data folder", settings.home_dir, "0750"), ("catalog", path, "0640")):
        if place is None:
            continue
        try:
            mode = stat.S_IMODE(place.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o007:
            found.append(f"the {what} {place} is open to other accounts (mode {mode:04o}; make it {wanted})")
    return found


def catalog_reachable(engine: Engine) -> bool:
    """Whether the catalog answers a trivial query now."""
    from sqlalchemy import text
    from sqlalchemy.exc import SQLAlchemyError

    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError):
        return False
    return True


def existing_catalog(settings: Settings) -> Engine | None:
    """The catalog, when this machine has one: an embedded catalog that was never made is None, not
    made here (a disc can be checked anywhere, catalog or not)."""
    path = sqlite_path(settings.effective_database_url)
    if path is not None and not path.exists():
        return None
    return open_catalog(settings)


def open_store(settings: Settings) -> ObjectStore:
    """The store intake writes originals to: the local store (``EVIDENCE_STORE`` ``local``, the
    default, and ``local+s3``, whose S3 copy the archive stage makes), or the S3 bucket (``s3``)."""
    if settings.store == "s3":
        from pipeline.storage.s3 import S3Store

        return S3Store.from_settings(settings)
    return LocalStore(settings.store_dir, chunk_size=settings.copy_chunk_size)


def store_for(settings: Settings) -> dict[str, ObjectStore]:
    """Every store ``EVIDENCE_STORE`` keeps originals in, by name (``local``, ``s3``), the one
    intake writes to first. S3 is connected to only when it is asked for."""
    first = open_store(settings)
    stores: dict[str, ObjectStore] = {first.name: first}
    if settings.store == "local+s3":
        from pipeline.storage.s3 import S3Store

        stores["s3"] = S3Store.from_settings(settings)
    return stores


StoreT = TypeVar("StoreT", bound=ObjectStore)


class _Shared(TypedDict, Generic[StoreT]):
    """The fields of :class:`StageContext`, as keywords for building any stage's context."""

    engine: Engine
    store: StoreT
    actor: str
    tool: str


def _shared(settings: Settings, store: StoreT, actor: str | None) -> _Shared[StoreT]:
    """What every stage's context shares: the catalog, the given store, who acts and the tool name."""
    return _Shared(engine=open_catalog(settings), store=store, actor=actor or settings.effective_actor, tool=TOOL)


def stage_context(settings: Settings, *, actor: str | None = None) -> StageContext[ObjectStore]:
    """The context of a stage that needs nothing of its own (fixity)."""
    return StageContext(**_shared(settings, open_store(settings), actor))


def intake_context(settings: Settings, *, actor: str | None = None) -> IntakeContext:
    settings.ensure_dirs()
    return IntakeContext(
        **_shared(settings, open_store(settings), actor),
        inbox_dir=settings.inbox_dir,
        processed_dir=settings.processed_dir,
        quarantine_dir=settings.quarantine_dir,
        algorithms=tuple(settings.extra_digests),
        lease_seconds=settings.lease_seconds,
        quiet_period=settings.quiet_period,
        stale_after=settings.stale_after,
        uploads_dir=settings.uploads_dir,
    )


def process_name(role: str) -> str:
    """How a process signs custody events and leases: role, host and pid."""
    return f"{role}@{socket.gethostname()}:{os.getpid()}"


def _local_store(settings: Settings) -> LocalStore:
    """The store as files on disk: the probe and derive stages hand ffmpeg a path."""
    store = open_store(settings)
    if not isinstance(store, LocalStore):
        raise PipelineError(
            f"EVIDENCE_STORE={settings.store}: the probe, derive and package stages read originals as local "
            "files, which this store does not keep; use local+s3"
        )
    return store


def probe_context(settings: Settings, *, actor: str | None = None) -> ProbeContext:
    """Everything the probe stage needs, with config files read once."""
    from pipeline.deadline import load_site_calendar
    from pipeline.metadata import load_filename_profiles
    from pipeline.probe.directory import load_directory
    from pipeline.probe.stage import ProbeContext

    return ProbeContext(
        **_shared(settings, _local_store(settings), actor),
        zone=settings.zone,
        profiles=load_filename_profiles(settings.config_file(settings.filename_patterns)),
        directory=load_directory(settings.config_file(settings.devices)),
        calendar=load_site_calendar(settings.config_file(settings.site_calendar)),
        working_days=settings.deadline_working_days,
        capture_day_counts=settings.capture_day_counts,
        drift_tolerance=settings.clock_drift_tolerance,
    )


def derive_context(settings: Settings, *, actor: str | None = None) -> DeriveContext:
    """Everything the derive stage needs, with the profiles read (and checked) once."""
    from pipeline.transcode.profiles import load_transcode_config
    from pipeline.transcode.stage import DeriveContext

    return DeriveContext(
        **_shared(settings, _local_store(settings), actor),
        config=load_transcode_config(settings.config_file(settings.transcode_profiles)),
        timeout=settings.transcode_timeout,
    )


def package_context(settings: Settings, *, actor: str | None = None) -> PackageContext:
    """Everything the package stage needs; access copies are named with their profile's extension."""
    from pipeline.package.stage import PackageContext
    from pipeline.transcode.profiles import load_transcode_config

    config = load_transcode_config(settings.config_file(settings.transcode_profiles))
    return PackageContext(
        **_shared(settings, _local_store(settings), actor),
        zone=settings.zone,
        packages_dir=settings.packages_dir,
        margin=settings.package_margin,
        access_extensions={name: profile.extension for name, profile in config.profiles.items()},
    )


def archive_context(settings: Settings, *, actor: str | None = None) -> ArchiveContext:
    """The archive stage's context: originals read from the local store and replicated to S3, which
    only ``EVIDENCE_STORE=local+s3`` asks for."""
    from pipeline.archive.stage import ArchiveContext

    stores = store_for(settings)
    if settings.store != "local+s3":
        raise PipelineError(
            f"EVIDENCE_STORE={settings.store}: originals are kept in one store only, so there is nothing to "
            "archive (local+s3 replicates the local store's originals to S3)"
        )
    return ArchiveContext(**_shared(settings, _local_store(settings), actor), replica=stores["s3"])


@dataclass(frozen=True)
class ProcessInfo:
    """One process as ``/proc/PID/stat`` shows it."""

    pid: int
    ppid: int
    pgid: int
    state: str  # "Z": ended, not yet reaped

    @property
    def alive(self) -> bool:
        return self.state != "Z"


def processes() -> list[ProcessInfo]:
    """Every process on the machine now (one that ends while it is read is left out)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as stat_file:
                # The name, in parentheses, may hold anything: the fields follow its last ')'.
                fields = stat_file.read().rsplit(")", 1)[1].split()
            found.append(ProcessInfo(int(entry), int(fields[1]), int(fields[2]), fields[0]))
        except (OSError, ValueError, IndexError):
            continue
    return found


def cores() -> int:
    """The processor cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not offered on every system
        return os.cpu_count() or 1


def command_jobs(settings: Settings, jobs: int | None = None) -> int:
    """How many processes a command spreads its files over: ``--jobs``, else the ``jobs`` setting,
    else one per core."""
    return jobs or settings.jobs or cores()


SharedT = TypeVar("SharedT")
TaskT = TypeVar("TaskT")
ResultT = TypeVar("ResultT")

_in_child: Any = None  # what a worker process of a Spread built for itself (its contexts)


@dataclass(frozen=True)
class _Failed:
    """An exception raised in a worker process, carried back as its text and its kind (not every
    exception pickles): the catalog or broker away, another system's fault, or anything else."""

    text: str
    kind: type[PipelineError]


def _start_child(make: Callable[..., Any], args: tuple[Any, ...]) -> None:
    global _in_child
    dispose_engines()  # never share the parent's database connections
    _in_child = make(*args)


def _run_in_child(func: Callable[[Any, Any], Any], task: Any) -> Any:
    try:
        return func(_in_child, task)
    except Exception as exc:
        if not isinstance(exc, PipelineError):  # a defect: its traceback is logged where it happened
            logging.getLogger(__name__).exception("worker process: %s failed", func.__name__)
        kind = next((k for k in (TransientError, SystemFault) if isinstance(exc, k)), PipelineError)
        return _Failed(describe(exc), kind)


class Spread(Generic[SharedT]):
    """Work of one command spread over ``jobs`` worker processes, results in the order of the tasks.

    Each worker process is forked when first needed (it shares what this one imported and read)
    and builds its own ``shared`` objects once, with ``make(*args)``: the stages' contexts, with
    their own catalog connections. With one job, or a single task, the work runs here with
    ``here``. An exception in a worker process is raised here again, with its text, when its result
    is reached: as a :class:`TransientError` or a :class:`SystemFault` when it was one, else as a
    :class:`PipelineError` (its traceback logged by the worker process).
    """

    def __init__(self, jobs: int, here: SharedT, make: Callable[..., SharedT], *args: Any) -> None:
        self.jobs = jobs
        self.here = here
        self._make = make
        self._args = args
        self._pool: ProcessPoolExecutor | None = None

    def map(self, func: Callable[[SharedT, TaskT], ResultT], tasks: Sequence[TaskT]) -> list[ResultT]:
        """``func(shared, task)`` for every task, in order; ``func`` must be a module-level function."""
        return list(self.each(func, tasks))

    def each(self, func: Callable[[SharedT, TaskT], ResultT], tasks: Sequence[TaskT]) -> Iterator[ResultT]:
        """As :meth:`map`, each result given as soon as it and those before it are done."""
        if self.jobs <= 1 or len(tasks) <= 1:
            yield from (func(self.here, task) for task in tasks)
            return
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self.jobs,
                mp_context=multiprocessing.get_context("fork"),
                initializer=_start_child,
                initargs=(self._make, self._args),
            )
        for result in self._pool.map(_run_in_child, [func] * len(tasks), tasks):
            if isinstance(result, _Failed):
                raise result.kind(result.text)
            yield result

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def __enter__(self) -> Spread[SharedT]:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
