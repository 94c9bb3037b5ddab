"""Task adapters: load settings and context once per process, call the pipeline, record nothing
themselves (the pipeline functions record their own outcomes in the catalog)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from functools import cache
from typing import Any

from celery import Task
from celery.signals import worker_process_init, worker_ready
from kombu import Connection

from pipeline.catalog.db import dispose_engines
from pipeline.errors import TransientError
from pipeline.fixity import check_scheduled, schedule_fixity
from pipeline.ingest.intake import IntakeContext, intake
from pipeline.ingest.reconcile import ReconcileReport, reconcile
from pipeline.package.stage import PackageContext, build_package, stale_packages
from pipeline.probe.stage import ProbeContext, probe
from pipeline.runtime import derive_context, intake_context, package_context, probe_context, process_name
from pipeline.settings import Settings
from pipeline.transcode.stage import DeriveContext, derive
from workers.app import app, broker_settings, queue_name


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
    start-up, and kombu's pools would keep the first broker's connections.
    """
    settings = _settings()
    url, options = broker_settings(settings)
    with Connection(url, transport_options=options) as connection:
        task.apply_async(args=[list(ids)], queue=queue_name(settings, stage), connection=connection)


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


# Stage tasks retry only what is transient (database, broker), with backoff and jitter, for as long as
# it takes; damaged media and checksum mismatches are recorded on the item by the stage itself.
STAGE_TASK: dict[str, Any] = {
    "bind": True,
    "autoretry_for": (TransientError,),
    "retry_backoff": True,
    "retry_backoff_max": 300,
    "retry_jitter": True,
    "max_retries": None,
}


@app.task(name="evidence.intake", **STAGE_TASK)
def intake_task(self: Task, sighting_ids: list[str]) -> dict[str, Any]:
    results = intake(_context(), sighting_ids, worker=process_name("worker"))
    new_items = [r.item for r in results if r.status == "stored" and r.item]
    if new_items:
        enqueue_probe(new_items)  # the next stage; the reconciler re-sends it if this message is lost
    return {"statuses": [result.status for result in results]}


@app.task(name="evidence.probe", **STAGE_TASK)
def probe_task(self: Task, item_ids: list[str]) -> dict[str, Any]:
    results = probe(_probe_context(), item_ids)
    probed = [result.item for result in results if result.status == "probed"]
    if probed:
        enqueue_derive(probed)  # derivatives next, on the transcode queue so intake never waits
    return {"statuses": [result.status for result in results]}


@app.task(name="evidence.derive", **STAGE_TASK)
def derive_task(self: Task, item_ids: list[str]) -> dict[str, Any]:
    results = derive(_derive_context(), item_ids)
    return {"statuses": [f"{result.profile}:{result.status}" for result in results]}


@app.task(name="evidence.package", **STAGE_TASK)
def package_task(self: Task, package_ids: list[str]) -> dict[str, Any]:
    results = [build_package(_package_context(), package_id) for package_id in package_ids]
    return {"statuses": [result.status for result in results]}


@app.task(name="evidence.fixity", **STAGE_TASK)
def fixity_task(self: Task, item_ids: list[str]) -> dict[str, Any]:
    ctx = _context()
    results = check_scheduled(ctx.engine, ctx.store, actor=ctx.actor, item_ids=item_ids)
    return {"statuses": [result.outcome for result in results]}


@app.task(name="evidence.reconcile", autoretry_for=(TransientError,), retry_backoff=True, max_retries=5)
def reconcile_task() -> dict[str, int]:
    report = reconcile_all(_context(), _settings())
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
