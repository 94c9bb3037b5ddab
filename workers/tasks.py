"""Task adapters: build each stage's context once per worker process, call the stage, record
nothing themselves (the stages record their own outcomes in the catalog).

:func:`register` adds the tasks to an app made by ``workers.app.create_app``; this module creates
nothing when imported.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any

from celery import Celery, Task
from celery.signals import worker_process_init, worker_ready
from celery.utils.time import get_exponential_backoff_interval

from pipeline.archive.stage import ArchiveContext, archive_pending, due_archive, queue_archive
from pipeline.catalog.db import dispose_engines
from pipeline.catalog.models import SightingStatus
from pipeline.errors import NotFoundError, SystemFault, TransientError
from pipeline.fixity import check_scheduled
from pipeline.ingest.intake import IntakeContext, intake
from pipeline.ingest.reconcile import reconcile_all
from pipeline.package.stage import PackageContext, build_package
from pipeline.probe.stage import ProbeContext, probe
from pipeline.runtime import (
    archive_context,
    derive_context,
    intake_context,
    package_context,
    probe_context,
    process_name,
)
from pipeline.settings import Settings
from pipeline.stage.status import in_turn, mark_failed
from pipeline.transcode.stage import DeriveContext, derive
from workers.dispatch import Dispatcher

logger = logging.getLogger(__name__)


class WorkerState:
    """What the tasks of one app share in a worker process: the settings, the stage contexts (built
    when first needed) and the dispatcher that queues the next stage."""

    def __init__(self, app: Celery) -> None:
        self.settings: Settings = app.conf.evidence_settings
        self.queue = Dispatcher(app)

    @cached_property
    def intake(self) -> IntakeContext:
        return intake_context(self.settings, actor=process_name("worker"))

    @cached_property
    def probe(self) -> ProbeContext:
        return probe_context(self.settings, actor=process_name("worker"))

    @cached_property
    def derive(self) -> DeriveContext:
        return derive_context(self.settings, actor=process_name("worker"))

    @cached_property
    def package(self) -> PackageContext:
        return package_context(self.settings, actor=process_name("worker"))

    @cached_property
    def archive(self) -> ArchiveContext:
        return archive_context(self.settings, actor=process_name("worker"))

    @property
    def archiving(self) -> bool:
        """Whether the settings keep a second copy of each original (``EVIDENCE_STORE=local+s3``)."""
        return self.settings.store == "local+s3"

    def forget(self) -> None:
        """Drop the contexts: a forked pool process builds its own (with its own connections)."""
        for name in ("intake", "probe", "derive", "package", "archive"):
            self.__dict__.pop(name, None)


_states: weakref.WeakSet[WorkerState] = weakref.WeakSet()


def _state(task: Task) -> WorkerState:
    state: WorkerState = task.app.conf.evidence_state
    return state


def _enqueue_next(enqueue: Callable[[Sequence[str]], None], stage: str, ids: Sequence[str]) -> None:
    """Queue the next stage; with the broker away, the items' stage stays pending in the catalog
    and the reconciler queues it once the broker is back."""
    if not ids:
        return
    try:
        enqueue(ids)
    except TransientError as exc:
        logger.warning("could not queue %s for %d item(s) (%s); the reconciler will", stage, len(ids), exc)


# The worker's side of the error policy (pipeline/errors.py). The stages record content errors and
# defects on the item themselves and go on; a system fault comes back either raised (the catalog went
# away: the whole batch is retried, which is harmless as every stage is idempotent) or on the results
# of the items it hit (a missing program, the stored copy gone: only those are retried). Retries wait
# with exponential back-off and jitter; after task_max_retries the stage is marked failed with the
# reason, and the reconciler leaves it alone until a person runs `evidence probe|derive --retry-failed`.
def _retry_or_give_up(task: Task, stage: str | None, ids: Sequence[str], exc: Exception) -> None:
    """Retry this task for ``ids`` later, or, past the limit, mark their ``stage`` failed."""
    state = _state(task)
    limit = state.settings.task_max_retries
    tries = task.request.retries
    if tries < limit:
        countdown = float(
            get_exponential_backoff_interval(
                factor=1, retries=tries, maximum=int(state.settings.retry_backoff_max), full_jitter=True
            )
        )
        logger.warning("%s: %s; retry %d of %d in %.0f s", task.name, exc, tries + 1, limit, countdown)
        raise task.retry(args=[list(ids)], exc=exc, countdown=countdown, max_retries=limit)
    reason = f"gave up after {tries} retries: {exc}"
    logger.error("%s for %d item(s): %s", task.name, len(ids), reason)
    if stage is not None:
        try:
            mark_failed(state.intake.engine, list(ids), stage, reason)
        except TransientError as still:  # the catalog is still away: the stage stays pending
            logger.error("could not mark %s failed: %s; the reconciler will queue it again", stage, still)


def _systemic(results: Sequence[Any]) -> tuple[list[str], Exception | None]:
    """The items whose result says a system fault stopped them, and the first fault's text."""
    ids = list(dict.fromkeys(r.item for r in results if getattr(r, "system", False)))
    first = next((r.error for r in results if getattr(r, "system", False)), None)
    return ids, (SystemFault(first) if first else None)


def intake_task(self: Task, sighting_ids: list[str]) -> dict[str, Any]:
    state = _state(self)
    try:
        results = intake(state.intake, sighting_ids, worker=process_name("worker"))
    except TransientError as exc:
        _retry_or_give_up(self, None, sighting_ids, exc)  # past the limit, the reconciler takes over
        return {"statuses": []}
    _enqueue_next(state.queue.probe, "probe", [r.item for r in results if r.status == SightingStatus.STORED and r.item])
    return {"statuses": [result.status for result in results]}


def probe_task(self: Task, item_ids: list[str]) -> dict[str, Any]:
    state = _state(self)
    try:
        results = in_turn(state.intake.engine, "probe", item_ids, lambda item_id: probe(state.probe, [item_id]))
    except TransientError as exc:
        _retry_or_give_up(self, "probe", item_ids, exc)
        return {"statuses": []}
    # Derivatives next, on the derive queue so intake never waits.
    _enqueue_next(state.queue.derive, "derive", [result.item for result in results if result.status == "probed"])
    retry, fault = _systemic(results)
    if fault is not None:
        _retry_or_give_up(self, "probe", retry, fault)
    return {"statuses": [result.status for result in results]}


def derive_task(self: Task, item_ids: list[str]) -> dict[str, Any]:
    state = _state(self)
    try:
        results = in_turn(state.intake.engine, "derive", item_ids, lambda item_id: derive(state.derive, [item_id]))
    except TransientError as exc:
        _retry_or_give_up(self, "derive", item_ids, exc)
        return {"statuses": []}
    if state.archiving:  # then the original's copy in S3, on the maintenance queue
        _queue_archive(state, [result.item for result in results])
    retry, fault = _systemic(results)
    if fault is not None:
        _retry_or_give_up(self, "derive", retry, fault)
    return {"statuses": [f"{result.profile}:{result.status}" for result in results]}


def _queue_archive(state: WorkerState, item_ids: Sequence[str]) -> None:
    """Mark the items' archive stage pending and queue it; with the catalog away the reconciler
    finds them later (it queues every item without a verified S3 copy)."""
    ids = list(dict.fromkeys(item_ids))
    if not ids:
        return
    try:
        queue_archive(state.intake.engine, ids)
    except TransientError as exc:
        logger.warning("could not queue archive for %d item(s) (%s); the reconciler will", len(ids), exc)
        return
    _enqueue_next(state.queue.archive, "archive", ids)


def archive_task(self: Task, item_ids: list[str]) -> dict[str, Any]:
    state = _state(self)
    try:
        results = archive_pending(state.archive, item_ids)
    except TransientError as exc:
        _retry_or_give_up(self, "archive", item_ids, exc)
        return {"statuses": []}
    retry, fault = _systemic(results)
    if fault is not None:
        _retry_or_give_up(self, "archive", retry, fault)
    return {"statuses": [result.status for result in results]}


def package_task(self: Task, package_ids: list[str]) -> dict[str, Any]:
    state = _state(self)
    statuses = []
    for package_id in package_ids:
        try:
            statuses.append(build_package(state.package, package_id).status)
        except NotFoundError as exc:  # a message for a package that is not in this catalog
            logger.warning("package task: %s", exc)
            statuses.append("missing")
        except TransientError as exc:  # the request stays building; the reconciler rebuilds it once stale
            _retry_or_give_up(self, None, [package_id], exc)
            statuses.append("retrying")
    return {"statuses": statuses}


def fixity_task(self: Task, item_ids: list[str]) -> dict[str, Any]:
    state = _state(self)
    ctx = state.intake
    # With a second copy of each original kept in S3, that copy is checked (and repaired) too.
    replicas = {state.archive.replica.name: state.archive.replica} if state.archiving else None
    try:
        results = check_scheduled(ctx, item_ids=item_ids, replicas=replicas)
    except TransientError as exc:
        _retry_or_give_up(self, None, item_ids, exc)  # the checks stay pending; the reconciler queues them
        return {"statuses": []}
    return {"statuses": [result.outcome for result in results]}


def reconcile_task(self: Task) -> dict[str, int]:
    state = _state(self)
    try:
        report = reconcile_all(state.intake, state.settings, state.queue)
        archiving = (
            due_archive(state.intake.engine, "s3", stale_after=state.settings.stale_after) if state.archiving else []
        )
    except TransientError as exc:  # the next scheduled pass tries again
        logger.warning("reconcile pass skipped: %s", exc)
        return {"requeued": 0, "partials_removed": 0}
    for start in range(0, len(archiving), ARCHIVE_BATCH):
        _enqueue_next(state.queue.archive, "archive", archiving[start : start + ARCHIVE_BATCH])
    requeued = report.requeued + len(archiving)
    return {"requeued": requeued, "partials_removed": report.partials_removed}


# Items per archive message the reconciler sends.
ARCHIVE_BATCH = 16


TASKS: dict[str, Callable[..., dict[str, Any]]] = {
    "evidence.intake": intake_task,
    "evidence.probe": probe_task,
    "evidence.derive": derive_task,
    "evidence.package": package_task,
    "evidence.fixity": fixity_task,
    "evidence.archive": archive_task,
    "evidence.reconcile": reconcile_task,
}


def register(app: Celery) -> None:
    """Add the tasks to ``app`` (configured with ``evidence_settings``) and hook its worker start."""
    state = WorkerState(app)
    app.conf.evidence_state = state
    _states.add(state)
    for name, function in TASKS.items():
        app.task(name=name, bind=True, shared=False)(function)
    worker_process_init.connect(_fresh_connections, weak=False, dispatch_uid="evidence.fresh-connections")
    worker_ready.connect(_reconcile_on_start, weak=False, dispatch_uid="evidence.reconcile-on-start")


def _fresh_connections(**_: Any) -> None:
    """A forked pool process must not reuse the parent's database connections."""
    dispose_engines()
    for state in list(_states):
        state.forget()


def _reconcile_on_start(sender: Any = None, **_: Any) -> None:
    """After a crash or restart, queue again whatever the catalog says is unfinished."""
    app = getattr(sender, "app", None)
    if app is not None and "evidence.reconcile" in app.tasks:
        Dispatcher(app).reconcile()
