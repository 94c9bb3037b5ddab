"""Task adapters: load settings and context once per process, call the pipeline, record nothing
themselves (the pipeline functions record their own outcomes in the catalog)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import timedelta
from functools import cache
from typing import Any

from celery import Task
from celery.signals import worker_process_init, worker_ready
from celery.utils.time import get_exponential_backoff_interval
from kombu import Connection
from kombu.exceptions import OperationalError as KombuOperationalError

from pipeline.catalog.db import dispose_engines
from pipeline.errors import NotFoundError, SystemFault, TransientError
from pipeline.fixity import check_scheduled, schedule_fixity
from pipeline.ingest.intake import IntakeContext, intake
from pipeline.ingest.reconcile import ReconcileReport, reconcile
from pipeline.package.stage import PackageContext, build_package, stale_packages
from pipeline.probe.stage import ProbeContext, probe
from pipeline.runtime import derive_context, intake_context, package_context, probe_context, process_name
from pipeline.settings import Settings
from pipeline.stage.status import in_turn, mark_failed
from pipeline.transcode.stage import DeriveContext, derive
from workers.app import app, broker_settings, queue_name

logger = logging.getLogger(__name__)


def _settings() -> Settings:
    settings: Settings = app.conf.evidence_settings
    return settings


@cache
def _context() -> IntakeContext:
    return intake_context(_settings(), actor=process_name("worker"))


@cache
def _probe_context() -> ProbeContext:
    return probe_context(_settings(), actor=process_name("worker"))


def _enqueue(task: Task, stage: str, ids: Sequence[str]) -> None:
    """Queue ``task`` for these IDs on the broker the current settings name.

    Connection and queue are explicit because the app may have been pointed at other settings since
    start-up, and kombu's pools would keep the first broker's connections. A broker that cannot be
    reached raises :class:`TransientError`.
    """
    settings = _settings()
    url, options = broker_settings(settings)
    try:
        with Connection(url, transport_options=options) as connection:
            task.apply_async(args=[list(ids)], queue=queue_name(settings, stage), connection=connection)
    except (KombuOperationalError, ConnectionError, OSError) as exc:
        raise TransientError(f"broker unavailable: {exc}") from exc


def _enqueue_next(enqueue: Callable[[Sequence[str]], None], stage: str, ids: Sequence[str]) -> None:
    """Queue the next stage; with the broker away, the items' stage stays pending in the catalog
    and the reconciler queues it once the broker is back."""
    if not ids:
        return
    try:
        enqueue(ids)
    except TransientError as exc:
        logger.warning("could not queue %s for %d item(s) (%s); the reconciler will", stage, len(ids), exc)


def enqueue_intake(sighting_ids: Sequence[str]) -> None:
    _enqueue(intake_task, "intake", sighting_ids)


def enqueue_probe(item_ids: Sequence[str]) -> None:
    _enqueue(probe_task, "probe", item_ids)


def enqueue_derive(item_ids: Sequence[str]) -> None:
    _enqueue(derive_task, "transcode", item_ids)


@cache
def _derive_context() -> DeriveContext:
    return derive_context(_settings(), actor=process_name("worker"))


def enqueue_package(package_ids: Sequence[str]) -> None:
    _enqueue(package_task, "package", package_ids)


@cache
def _package_context() -> PackageContext:
    return package_context(_settings(), actor=process_name("worker"))


def enqueue_fixity(item_ids: Sequence[str]) -> None:
    _enqueue(fixity_task, "maintenance", item_ids)


# The stages after intake, for the reconciler: stage name -> how to queue it.
LATER_STAGES = {"probe": enqueue_probe, "derive": enqueue_derive, "fixity": enqueue_fixity}


def reconcile_all(ctx: IntakeContext, settings: Settings) -> ReconcileReport:
    """One reconciler pass: queue again what a lost message or a dead worker left undone (intake,
    later stages, packages), and queue the fixity checks that have come due."""
    report = reconcile(ctx, enqueue_intake, LATER_STAGES)
    requeued = report.requeued
    if packages := stale_packages(ctx.engine, settings.stale_after):
        enqueue_package(packages)
        requeued += len(packages)
    if settings.fixity_interval_days > 0:
        every = timedelta(days=settings.fixity_interval_days)
        if due := schedule_fixity(ctx.engine, every=every, limit=settings.fixity_batch):
            enqueue_fixity(due)  # a lost message is sent again: the items stay pending
            requeued += len(due)
    return ReconcileReport(requeued, report.partials_removed)


# The worker's side of the error policy (pipeline/errors.py). The stages record content errors and
# defects on the item themselves and go on; a system fault comes back either raised (the catalog went
# away: the whole batch is retried, which is harmless as every stage is idempotent) or on the results
# of the items it hit (a missing program, the stored copy gone: only those are retried). Retries wait
# with exponential back-off and jitter; after task_max_retries the stage is marked failed with the
# reason, and the reconciler leaves it alone until a person runs `evidence probe|derive --retry-failed`.
def _backoff(retries: int) -> float:
    return float(
        get_exponential_backoff_interval(
            factor=1, retries=retries, maximum=int(_settings().retry_backoff_max), full_jitter=True
        )
    )


def _retry_or_give_up(task: Task, stage: str | None, ids: Sequence[str], exc: Exception) -> None:
    """Retry this task for ``ids`` later, or, past the limit, mark their ``stage`` failed."""
    limit = _settings().task_max_retries
    tries = task.request.retries
    if tries < limit:
        countdown = _backoff(tries)
        logger.warning("%s: %s; retry %d of %d in %.0f s", task.name, exc, tries + 1, limit, countdown)
        raise task.retry(args=[list(ids)], exc=exc, countdown=countdown, max_retries=limit)
    reason = f"gave up after {tries} retries: {exc}"
    logger.error("%s for %d item(s): %s", task.name, len(ids), reason)
    if stage is not None:
        try:
            mark_failed(_context().engine, list(ids), stage, reason)
        except TransientError as still:  # the catalog is still away: the stage stays pending
            logger.error("could not mark %s failed: %s; the reconciler will queue it again", stage, still)


def _systemic(results: Sequence[Any]) -> tuple[list[str], Exception | None]:
    """The items whose result says a system fault stopped them, and the first fault's text."""
    ids = list(dict.fromkeys(r.item for r in results if getattr(r, "system", False)))
    first = next((r.error for r in results if getattr(r, "system", False)), None)
    return ids, (SystemFault(first) if first else None)


@app.task(name="evidence.intake", bind=True)
def intake_task(self: Task, sighting_ids: list[str]) -> dict[str, Any]:
    try:
        results = intake(_context(), sighting_ids, worker=process_name("worker"))
    except TransientError as exc:
        _retry_or_give_up(self, None, sighting_ids, exc)  # past the limit, the reconciler takes over
        return {"statuses": []}
    _enqueue_next(enqueue_probe, "probe", [r.item for r in results if r.status == "stored" and r.item])
    return {"statuses": [result.status for result in results]}


@app.task(name="evidence.probe", bind=True)
def probe_task(self: Task, item_ids: list[str]) -> dict[str, Any]:
    try:
        results = in_turn(_context().engine, "probe", item_ids, lambda item_id: probe(_probe_context(), [item_id]))
    except TransientError as exc:
        _retry_or_give_up(self, "probe", item_ids, exc)
        return {"statuses": []}
    # Derivatives next, on the transcode queue so intake never waits.
    _enqueue_next(enqueue_derive, "derive", [result.item for result in results if result.status == "probed"])
    retry, fault = _systemic(results)
    if fault is not None:
        _retry_or_give_up(self, "probe", retry, fault)
    return {"statuses": [result.status for result in results]}


@app.task(name="evidence.derive", bind=True)
def derive_task(self: Task, item_ids: list[str]) -> dict[str, Any]:
    try:
        results = in_turn(_context().engine, "derive", item_ids, lambda item_id: derive(_derive_context(), [item_id]))
    except TransientError as exc:
        _retry_or_give_up(self, "derive", item_ids, exc)
        return {"statuses": []}
    retry, fault = _systemic(results)
    if fault is not None:
        _retry_or_give_up(self, "derive", retry, fault)
    return {"statuses": [f"{result.profile}:{result.status}" for result in results]}


@app.task(name="evidence.package", bind=True)
def package_task(self: Task, package_ids: list[str]) -> dict[str, Any]:
    statuses = []
    for package_id in package_ids:
        try:
            statuses.append(build_package(_package_context(), package_id).status)
        except NotFoundError as exc:  # a message for a package that is not in this catalog
            logger.warning("package task: %s", exc)
            statuses.append("missing")
        except TransientError as exc:  # the request stays building; the reconciler rebuilds it once stale
            _retry_or_give_up(self, None, [package_id], exc)
            statuses.append("retrying")
    return {"statuses": statuses}


@app.task(name="evidence.fixity", bind=True)
def fixity_task(self: Task, item_ids: list[str]) -> dict[str, Any]:
    ctx = _context()
    try:
        results = check_scheduled(ctx, item_ids=item_ids)
    except TransientError as exc:
        _retry_or_give_up(self, None, item_ids, exc)  # the checks stay pending; the reconciler queues them
        return {"statuses": []}
    return {"statuses": [result.outcome for result in results]}


@app.task(name="evidence.reconcile", bind=True)
def reconcile_task(self: Task) -> dict[str, int]:
    try:
        report = reconcile_all(_context(), _settings())
    except TransientError as exc:  # the next scheduled pass tries again
        logger.warning("reconcile pass skipped: %s", exc)
        return {"requeued": 0, "partials_removed": 0}
    return {"requeued": report.requeued, "partials_removed": report.partials_removed}


@worker_process_init.connect
def _fresh_connections(**_: Any) -> None:
    """A forked pool process must not reuse the parent's database connections."""
    dispose_engines()
    _context.cache_clear()
    _probe_context.cache_clear()
    _derive_context.cache_clear()
    _package_context.cache_clear()


@worker_ready.connect
def _reconcile_on_start(**_: Any) -> None:
    """After a crash or restart, queue again whatever the catalog says is unfinished."""
    reconcile_task.apply_async(queue=queue_name(_settings(), "maintenance"))
