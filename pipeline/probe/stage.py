"""The probe stage: read an item's metadata from its stored copy, record every candidate fact with
its source, choose the values in force, compute the upload deadline and list the item's issues.

Damaged or unreadable files are never dropped: they stay catalogued with their hash and get a
``damaged-media`` issue. Re-running the stage replaces extracted facts and keeps manual ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, delete
from sqlmodel import Session, col, select

from pipeline.catalog.db import insert_rows, session_scope
from pipeline.catalog.models import Item, ItemFact, ItemIssue, Sighting, StageRun
from pipeline.catalog.types import utcnow
from pipeline.custody import CustodyLog
from pipeline.deadline import WorkCalendar, upload_deadline, working_days_late
from pipeline.fixity import ISSUES as FIXITY_ISSUES
from pipeline.ingest.intake import TOOL
from pipeline.metadata import ExtractionContext, FilenameProfile, MediaInfo, Problem, extract_all
from pipeline.probe.choose import Candidate, Choice, Directory, choose, clock_drift, derived
from pipeline.storage.local import LocalStore

STAGE = "probe"

MESSAGES = {
    "missing-case-number": "No case number: assign the record to a case.",
    "missing-proof-object": "No proof object: say what the record is meant to prove.",
    "missing-collector": "No collector: the officer who recorded it is unknown.",
    "capture-time-unknown": "Capture time unknown: no readable time in the file, its name or the record.",
    "location-missing": "Capture place missing: no place or GPS position in the file, and none for its dock.",
    "unsupported-type": "Not a recognised audio, video or photo file.",
}
REQUIRED_ISSUES = {
    "case_number": "missing-case-number",
    "proof_object": "missing-proof-object",
    "collector": "missing-collector",
    "captured_at": "capture-time-unknown",
    "captured_place": "location-missing",
}


@dataclass(frozen=True)
class ProbeContext:
    engine: Engine
    store: LocalStore
    actor: str
    zone: ZoneInfo
    profiles: tuple[FilenameProfile, ...]
    directory: Directory
    calendar: WorkCalendar
    working_days: int = 3
    capture_day_counts: bool = False
    drift_tolerance: float = 300.0


@dataclass(frozen=True)
class ProbeResult:
    item: str
    status: str  # probed | failed | missing
    issues: tuple[str, ...] = ()
    error: str | None = None


@dataclass
class _Assessment:
    chosen: dict[str, Choice]
    issues: list[tuple[str, str]] = field(default_factory=list)
    deadline: dict[str, Any] = field(default_factory=dict)


def probe(ctx: ProbeContext, item_ids: Sequence[str]) -> list[ProbeResult]:
    """Probe each item; one item's failure never stops the others."""
    results = []
    for item_id in item_ids:
        with session_scope(ctx.engine) as session:
            item = session.get(Item, item_id)
            if item is None:
                results.append(ProbeResult(item_id, "missing", error=f"no item {item_id}"))
                continue
            sha256, kind, name = item.sha256, item.media_kind, item.original_name
        extractions = extract_all(
            ctx.store.path(sha256), kind, ExtractionContext(original_name=name, filename_profiles=ctx.profiles)
        )
        candidates = [Candidate(f.field, f.value, f.source) for e in extractions for f in e.facts]
        problems = [p for e in extractions for p in e.problems]
        media = next((e.media for e in extractions if e.media is not None), None)
        tools = sorted({e.tool for e in extractions})
        with session_scope(ctx.engine) as session, CustodyLog(session, ctx.actor) as log:
            item = session.get(Item, item_id)
            assert item is not None
            session.execute(
                delete(ItemFact).where(col(ItemFact.item_id) == item_id, col(ItemFact.source).not_like("manual:%"))
            )
            derived_ones = derived(candidates, dock=item.dock_id, directory=ctx.directory)
            now = utcnow()
            rows = [
                {
                    "item_id": item_id,
                    "field": c.field,
                    "value": c.value,
                    "source": c.source,
                    "chosen": False,
                    "reason": None,
                    "recorded_at": now,
                }
                for c in [*candidates, *derived_ones]
            ]
            insert_rows(session, ItemFact, rows)
            item.media = _media_json(media)
            assessment = assess(session, ctx, item, problems)
            _stage_done(session, item_id, tools)
            log.record(
                "probed",
                f"item:{item_id}",
                {
                    "tools": tools,
                    "facts": {k: _jsonable(v.value) for k, v in assessment.chosen.items()},
                    "issues": [code for code, _ in assessment.issues],
                },
                tool=", ".join(tools) or TOOL,
            )
            results.append(ProbeResult(item_id, "probed", tuple(code for code, _ in assessment.issues)))
    return results


def assess(session: Session, ctx: ProbeContext, item: Item, problems: Sequence[Problem] | None = None) -> _Assessment:
    """Choose facts from the stored candidates, recompute the deadline and replace the item's
    issues. Used by the probe stage and after manual edits. ``problems=None`` keeps the media
    problems found by the last probe."""
    facts = session.exec(select(ItemFact).where(ItemFact.item_id == item.id)).all()
    candidates = [Candidate(f.field, f.value, f.source) for f in facts]
    chosen = choose(candidates, ctx.zone)
    for fact in facts:
        winner = chosen.get(fact.field)
        fact.chosen = winner is not None and winner.source == fact.source and winner.field == fact.field
        fact.reason = winner.reason if fact.chosen and winner else None
        session.add(fact)
    item.case_number = _text(chosen.get("case_number"))
    item.captured_place = _text(chosen.get("captured_place"))
    item.collector = _text(chosen.get("collector"))
    item.proof_object = _text(chosen.get("proof_object"))
    capture = chosen.get("captured_at")
    item.captured_at = capture.value if capture else None
    item.capture_tz = ctx.zone.key
    if item.received_at is None:
        item.received_at = session.exec(
            select(Sighting.received_at).where(Sighting.item_id == item.id).order_by(col(Sighting.received_at))
        ).first()
    assessment = _Assessment(chosen)
    for fact_name, code in REQUIRED_ISSUES.items():
        if fact_name not in chosen:
            assessment.issues.append((code, MESSAGES[code]))
    if item.media_kind == "other":
        assessment.issues.append(("unsupported-type", MESSAGES["unsupported-type"]))
    kept = session.exec(
        select(ItemIssue).where(ItemIssue.item_id == item.id, col(ItemIssue.code).in_(_MEDIA_CODES + _STORE_CODES))
    ).all()
    if problems is None:
        assessment.issues += [(i.code, i.message) for i in kept]
    else:
        assessment.issues += [(p.code, p.message) for p in problems]
        assessment.issues += [(i.code, i.message) for i in kept if i.code in _STORE_CODES]
    drift = clock_drift(candidates, chosen, item.received_at, ctx.zone, ctx.drift_tolerance)
    if drift:
        assessment.issues.append(("clock-drift", f"Device clock looks wrong: {drift}."))
    _deadline(ctx, item, assessment)
    session.execute(delete(ItemIssue).where(col(ItemIssue.item_id) == item.id))
    now = utcnow()
    for code, message in dict(assessment.issues).items():
        session.add(ItemIssue(item_id=item.id, code=code, message=message, created_at=now))
    session.add(item)
    return assessment


_MEDIA_CODES = (
    "damaged-media",
    "truncated-stream",
    "unreadable-metadata",
    "tool-missing",
    "timeout",
    "extractor-failed",
    "unsupported-type",
)


# Issues of the stored object, not of its metadata: only a fixity check opens or closes them.
_STORE_CODES = tuple(FIXITY_ISSUES.values())


def _deadline(ctx: ProbeContext, item: Item, assessment: _Assessment) -> None:
    if item.captured_at is None:
        item.deadline, item.late, item.working_days_late, item.deadline_provisional = None, None, None, False
        return
    deadline = upload_deadline(
        item.captured_at,
        calendar=ctx.calendar,
        working_days=ctx.working_days,
        tz=ctx.zone,
        capture_day_counts=ctx.capture_day_counts,
    )
    item.deadline = deadline.due
    item.deadline_provisional = deadline.provisional
    if deadline.provisional:
        assessment.issues.append(("deadline-provisional", f"Deadline needs review: {deadline.reason}"))
    if item.received_at is None:
        return
    item.working_days_late = working_days_late(deadline, item.received_at, calendar=ctx.calendar, tz=ctx.zone)
    item.late = item.received_at > deadline.due
    if item.late:
        assessment.issues.append(
            (
                "late",
                f"Uploaded {item.working_days_late} working day(s) after the deadline "
                f"({deadline.due.astimezone(ctx.zone):%Y-%m-%d %H:%M %Z}).",
            )
        )


def _stage_done(session: Session, item_id: str, tools: Sequence[str]) -> None:
    run = session.exec(select(StageRun).where(StageRun.item_id == item_id, StageRun.stage == STAGE)).first()
    run = run or StageRun(item_id=item_id, stage=STAGE, status="pending")
    run.status = "done"
    run.attempts += 1
    run.error = None
    run.tool = ", ".join(tools)[:255] or TOOL
    run.updated_at = utcnow()
    session.add(run)


def _text(choice: Choice | None) -> str | None:
    return None if choice is None else str(choice.value)


def _jsonable(value: object) -> object:
    return value.isoformat() if isinstance(value, datetime) else value


def _media_json(media: MediaInfo | None) -> dict[str, Any]:
    if media is None:
        return {}
    return {
        "container": media.container,
        "duration": media.duration,
        "streams": [
            {
                k: getattr(s, k)
                for k in (
                    "index",
                    "kind",
                    "codec",
                    "width",
                    "height",
                    "frame_rate",
                    "sample_rate",
                    "channels",
                    "duration",
                )
            }
            for s in media.streams
        ],
    }
