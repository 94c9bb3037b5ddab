"""Taking in many files at once from the command line: the files under the paths given, handed to
the workers, or taken in here in batches, each recorded, taken in and probed with a handful of
transactions.

The heavy work of each file (its copy into the store while hashing it, its probing, its access
copies) is spread over worker processes, one per core by default; the catalog writes that decide
what a file is (its sighting, its item or duplicate, the disposal of its source) stay in this
process, one transaction for a batch, in the order the files were given. So two identical files in
one batch are one item and a duplicate whichever copy finishes first, and the results come out in
the same order whatever the number of processes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from pipeline.catalog.models import SightingStatus
from pipeline.errors import SystemFault, TransientError, describe
from pipeline.ingest.context import Work
from pipeline.ingest.copying import copy_one
from pipeline.ingest.intake import Arrival, IntakeContext, IntakeResult, intake_leased, mark_queued, open_sightings
from pipeline.ingest.scan import Skipped, arrival_for, walk
from pipeline.ingest.sightings import Opened
from pipeline.runtime import Spread, derive_context, intake_context, probe_context, process_name
from pipeline.settings import Settings
from pipeline.stage.names import readable

if TYPE_CHECKING:  # the stages are imported when they run: `ingest --no-probe` starts without them
    from pipeline.probe.stage import ProbeContext, ProbeResult
    from pipeline.transcode.stage import DeriveContext, DeriveResult


@dataclass(frozen=True)
class _Stages:
    """The contexts of intake and of the stages run after it here; None leaves that stage for later."""

    intake: IntakeContext
    probe: ProbeContext | None
    derive: DeriveContext | None


logger = logging.getLogger(__name__)


def _already_open(arrival: Arrival) -> IntakeResult:
    """The result for a file another sighting is still taking in: left to that one."""
    return IntakeResult(
        None,
        readable(arrival.path),
        arrival.dock,
        SightingStatus.IGNORED,
        error="already being taken in (an open sighting holds this path)",
    )


def _take_in(spread: Spread[_Stages], batch: Sequence[Arrival]) -> list[IntakeResult]:
    """One batch: sightings (leased to this process as they are recorded), intake, and the later
    stages the spread's contexts name. Every arrival gets a result whatever happens: a catalog
    outage fails the batch's files with the reason and leaves their sources where they are."""
    ctx = spread.here.intake
    worker = process_name("ingest")
    try:
        opened = open_sightings(ctx, batch, lease_to=worker)
        results = [_already_open(arrival) for arrival, sighting in zip(batch, opened, strict=True) if sighting is None]
        leased = [s for s in opened if s is not None]
        taken = _intake(spread, leased, worker) if leased else []
    except Exception as exc:
        if not isinstance(exc, SystemFault):
            logger.exception("intake of a batch of %d file(s) failed", len(batch))
        reason = f"{describe(exc)}; the file was left where it is"
        return [IntakeResult(None, readable(a.path), a.dock, SightingStatus.FAILED, error=reason) for a in batch]
    new_items = [r.item for r in taken if r.status == SightingStatus.STORED and r.item]
    if spread.here.probe is None or not new_items:
        return results + taken
    return results + _later_stages(spread, taken, new_items)


def _intake(spread: Spread[_Stages], opened: Sequence[Opened], worker: str) -> list[IntakeResult]:
    """Intake of sightings just opened with ``open_sightings(..., lease_to=worker)``, with the copies
    spread over the worker processes (each signs its lease renewals as ``worker``, the lease's
    holder); cataloguing and disposal stay here, in the order given."""

    def copy_all(claimed: list[Work], durable: bool) -> list[Work]:
        return spread.map(_copy, [(work, worker, durable) for work in claimed])

    return intake_leased(spread.here.intake, opened, worker=worker, copy_all=copy_all)


def _copy(stages: _Stages, task: tuple[Work, str, bool]) -> Work:
    """One file copied into the store while hashing it (in a worker process, or here)."""
    work, worker, durable = task
    copy_one(stages.intake, work, worker, durable=durable)
    return work


def _later_stages(spread: Spread[_Stages], taken: list[IntakeResult], new_items: list[str]) -> list[IntakeResult]:
    """Probe (and derive) the items just stored, each in a worker process; their results join the
    intake lines. A stage the catalog's outage stopped stays pending for `evidence probe|derive
    --pending` or the workers."""
    issues: dict[str, tuple[str, ...]] = {}
    errors: dict[str, str] = {}
    derived: dict[str, list[str]] = {}
    try:
        for probed, made in spread.each(_probe_and_derive, new_items):
            for p in probed:
                issues[p.item] = p.issues
                if p.error:
                    errors[p.item] = f"probe: {p.error}"
            for m in made:
                derived.setdefault(m.item, []).append(f"{m.kind or 'derive'}:{m.status}")
                if m.system or (m.error or "").startswith("stage-error"):
                    errors.setdefault(m.item, f"derive: {m.error}")
    except TransientError as exc:
        for item in new_items:
            errors.setdefault(item, f"{exc}; the rest is done later (`evidence probe|derive --pending`)")
    return [
        replace(
            r,
            issues=issues.get(r.item, ()),
            derivatives=tuple(derived.get(r.item, ())),
            error=errors.get(r.item, r.error),
        )
        if r.item in new_items
        else r
        for r in taken
    ]


def _probe_and_derive(stages: _Stages, item: str) -> tuple[list[ProbeResult], list[DeriveResult]]:
    """One new item probed, then (when its probe had no error) derived."""
    from pipeline.probe.stage import probe

    probed = probe(stages.probe, [item]) if stages.probe else []
    if stages.derive is None or any(p.error for p in probed):
        return probed, []
    from pipeline.transcode.stage import derive

    return probed, derive(stages.derive, [item])


def _stages(settings: Settings, with_probe: bool, with_derive: bool) -> _Stages:
    return _Stages(
        intake_context(settings),
        probe_context(settings) if with_probe else None,
        derive_context(settings) if with_probe and with_derive else None,
    )


def ingest_arrivals(
    settings: Settings,
    ctx: IntakeContext,
    arrivals: Sequence[Arrival],
    *,
    batch: int = 500,
    jobs: int = 1,
    with_probe: bool = True,
    with_derive: bool = True,
) -> Iterator[list[IntakeResult]]:
    """Take in ``arrivals``, then probe and derive the new items (a stage left out here stays
    pending for ``evidence probe``/``evidence derive`` or the workers; derivatives follow probing);
    yields each batch's results as it finishes, in order. The copies, probes and derivatives are
    spread over ``jobs`` worker processes.

    The stages' settings (profiles, calendars, directory) are read here, before any file is
    touched, so a broken configuration refuses the whole command up front.
    """
    here = replace(_stages(settings, with_probe, with_derive), intake=ctx)
    batches = [arrivals[start : start + batch] for start in range(0, len(arrivals), batch)]
    return _in_batches(Spread(jobs, here, _stages, settings, with_probe, with_derive), batches)


def _in_batches(spread: Spread[_Stages], batches: Sequence[Sequence[Arrival]]) -> Iterator[list[IntakeResult]]:
    with spread:
        for chunk in batches:
            yield _take_in(spread, chunk)


def collect_arrivals(
    paths: Sequence[str], settings: Settings, *, dock: str | None = None, policy: str | None = None
) -> tuple[list[Arrival], list[IntakeResult]]:
    """The files to take in under the given paths, and a result for each path missing or ignored.

    ``dock`` names the dock to record them under (default: the inbox folder they are in, or
    'manual'); ``policy`` what to do with each source once stored (default: the dock's policy inside
    the inbox, the external policy for files from elsewhere).
    """
    arrivals: list[Arrival] = []
    early: list[IntakeResult] = []
    # The pipeline's own folders: an upload's file is taken in when it completes, a stored object is
    # stored already; taken in from here, a file still being received would become an item.
    own = {
        os.path.join(os.path.abspath(os.fsencode(folder)), b""): reason
        for folder, reason in (
            (settings.uploads_dir, "an upload being received: it is taken in when it completes"),
            (settings.store_dir, "part of the store: kept already"),
        )
    }
    for given in paths:
        raw = os.fsencode(given)
        if not os.path.lexists(raw):
            early.append(
                IntakeResult(
                    None, os.path.abspath(given), dock or "", SightingStatus.FAILED, error="no such file or directory"
                )
            )
            continue
        for entry in walk(raw, settings.ignore_patterns):
            if isinstance(entry, Skipped):
                early.append(
                    IntakeResult(
                        None,
                        readable(os.path.abspath(entry.path)),
                        dock or "",
                        SightingStatus.IGNORED,
                        error=entry.reason,
                    )
                )
                continue
            inside = next((why for folder, why in own.items() if os.path.abspath(entry).startswith(folder)), None)
            if inside is not None:
                shown = readable(os.path.abspath(entry))
                early.append(IntakeResult(None, shown, dock or "", SightingStatus.IGNORED, error=inside))
                continue
            arrivals.append(
                arrival_for(
                    entry,
                    inbox=settings.inbox_dir,
                    dock=dock,
                    policy=policy or settings.source_policy,
                    external_policy=policy or settings.external_source_policy,
                )
            )
    return arrivals, early


def enqueue_arrivals(
    ctx: IntakeContext, batch: Sequence[Arrival], enqueue: Callable[[Sequence[str]], None]
) -> list[IntakeResult]:
    """Record a batch of arrivals as sightings and hand them to the intake workers with ``enqueue``.

    With the broker away the sightings stay recorded and the reconciler queues them once it is back;
    their results say so.
    """
    opened = open_sightings(ctx, batch)
    ids = [s.id for s in opened if s is not None]
    note = None
    if ids:
        try:
            enqueue(ids)
        except TransientError as exc:
            note = f"{exc}; recorded, and queued by the reconciler once the broker is back"
        else:
            mark_queued(ctx.engine, ids)
    return [
        IntakeResult(s.id, s.path, s.dock, "queued", size=s.size, error=note) if s is not None else _already_open(a)
        for a, s in zip(batch, opened, strict=True)
    ]
