"""Taking in many files at once from the command line: batches of arrivals, each recorded, taken in
and probed with a handful of transactions, spread over worker processes (hashing and the catalog's
Python work both need a core)."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from pipeline.catalog.db import dispose_engines
from pipeline.ingest.intake import Arrival, IntakeContext, IntakeResult, intake_leased, open_sightings
from pipeline.ingest.names import readable
from pipeline.runtime import derive_context, intake_context, probe_context, process_name
from pipeline.settings import Settings

if TYPE_CHECKING:  # the stages are imported when they run: `ingest --no-probe` starts without them
    from pipeline.probe.stage import ProbeContext
    from pipeline.transcode.stage import DeriveContext


@dataclass(frozen=True)
class _Stages:
    """The contexts of the stages run after intake here; None leaves that stage for later."""

    probe: ProbeContext | None
    derive: DeriveContext | None


_child: tuple[IntakeContext, _Stages] | None = None


def _take_in(ctx: IntakeContext, stages: _Stages, batch: Sequence[Arrival]) -> list[IntakeResult]:
    """One batch: sightings (leased to this process as they are recorded), intake, and the later
    stages that ``stages`` names."""
    worker = process_name("ingest")
    opened = open_sightings(ctx, batch, lease_to=worker)
    results = [
        IntakeResult(
            None,
            readable(arrival.path),
            arrival.dock,
            "ignored",
            error="already being taken in (an open sighting holds this path)",
        )
        for arrival, sighting in zip(batch, opened, strict=True)
        if sighting is None
    ]
    leased = [s for s in opened if s is not None]
    if not leased:
        return results
    taken = intake_leased(ctx, leased, worker=worker)
    if stages.probe is None:
        return results + taken
    new_items = [r.item for r in taken if r.status == "stored" and r.item]
    from pipeline.probe.stage import probe

    issues = {p.item: p.issues for p in probe(stages.probe, new_items)}
    derived: dict[str, list[str]] = {}
    if stages.derive is not None:
        from pipeline.transcode.stage import derive

        for made in derive(stages.derive, new_items):
            derived.setdefault(made.item, []).append(f"{made.kind}:{made.status}")
    return results + [
        replace(r, issues=issues.get(r.item, ()), derivatives=tuple(derived.get(r.item, ()))) if r.item in issues else r
        for r in taken
    ]


def _stages(settings: Settings, with_probe: bool, with_derive: bool) -> _Stages:
    return _Stages(
        probe_context(settings) if with_probe else None,
        derive_context(settings) if with_probe and with_derive else None,
    )


def _child_init(settings: Settings, with_probe: bool, with_derive: bool) -> None:
    global _child
    dispose_engines()  # never share the parent's database connections
    _child = (intake_context(settings), _stages(settings, with_probe, with_derive))


def _child_take_in(batch: Sequence[Arrival]) -> list[IntakeResult]:
    assert _child is not None
    return _take_in(*_child, batch)


def ingest_arrivals(
    settings: Settings,
    ctx: IntakeContext,
    arrivals: Sequence[Arrival],
    *,
    batch: int = 500,
    processes: int | None = None,
    with_probe: bool = True,
    with_derive: bool = True,
) -> Iterator[list[IntakeResult]]:
    """Take in ``arrivals``, then probe and derive the new items (a stage left out here stays
    pending for ``evidence probe``/``evidence derive`` or the workers; derivatives follow probing);
    yields each batch's results as it finishes, in order."""
    batches = [arrivals[start : start + batch] for start in range(0, len(arrivals), batch)]
    processes = min(processes or (os.cpu_count() or 1) * 2, len(batches))
    if processes <= 1:
        stages = _stages(settings, with_probe, with_derive)
        for chunk in batches:
            yield _take_in(ctx, stages, chunk)
        return
    with ProcessPoolExecutor(
        processes,
        mp_context=multiprocessing.get_context("fork"),
        initializer=_child_init,
        initargs=(settings, with_probe, with_derive),
    ) as pool:
        yield from pool.map(_child_take_in, batches)
