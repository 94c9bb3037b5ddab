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

from sqlalchemy import delete
from sqlmodel import Session, col, select

from pipeline.catalog.db import insert_rows, session_scope
from pipeline.catalog.models import Item, ItemFact, ItemIssue, Sighting, StageStatus
from pipeline.catalog.types import utcnow
from pipeline.custody import CustodyLog
from pipeline.deadline import WorkCalendar, upload_deadline, working_days_late
from pipeline.errors import SystemFault, ToolUnavailableError, TransientError
from pipeline.metadata import ExtractionContext, FilenameProfile, MediaInfo, Problem, extract_all
from pipeline.metadata.registry import extractors_for
from pipeline.probe.choose import Candidate, Choice, Directory, choose, clock_drift, derived
from pipeline.stage import StageContext, issues, stored_original
from pipeline.stage.status import record_stage_error, set_stage
from pipeline.storage.local import LocalStore

STAGE = "probe"


@dataclass(frozen=True)
class ProbeContext(StageContext[LocalStore]):
    zone: ZoneInfo
    profiles: tuple[FilenameProfile, ...]
    directory: Directory
    calendar: WorkCalendar
    working_days: int = 3
    capture_day_counts: bool = False
    drift_tolerance: float = 300.0
    probe_engine: str = "pyav"  # how container and streams are read: "pyav" in-process, or "ffprobe"


@dataclass(frozen=True)
class ProbeResult:
    item: str
    status: str  # probed | failed | missing
    issues: tuple[str, ...] = ()
    error: str | None = None
    system: bool = False  # failed for a system fault (a program missing): try again later


@dataclass
class _Assessment:
    chosen: dict[str, Choice]
    issues: list[tuple[str, str]] = field(default_factory=list)
    deadline: dict[str, Any] = field(default_factory=dict)


def probe(ctx: ProbeContext, item_ids: Sequence[str]) -> list[ProbeResult]:
    """Probe each item; one item's failure never stops the others.

    A content problem is an issue on the item (the probe is still done). A system fault (a program
    that is not installed) leaves the stage pending and gives a ``failed`` result with ``system``
    set, for the caller to retry; a defect is recorded on the item as ``stage-error``. Only a
    :class:`TransientError` (the catalog went away) is raised, for the whole batch to be retried.
    """
    results = []
    for item_id in dict.fromkeys(item_ids):
        try:
            results.append(_probe_one(ctx, item_id))
        except TransientError:
            raise
        except SystemFault as exc:
            results.append(ProbeResult(item_id, "failed", error=str(exc), system=True))
        except Exception as exc:
            error = record_stage_error(ctx.engine, ctx.actor, item_id, STAGE, exc, tool=ctx.tool)
            results.append(ProbeResult(item_id, "failed", error=f"{issues.STAGE_ERROR}: {error}"))
    return results


def _probe_one(ctx: ProbeContext, item_id: str) -> ProbeResult:
    with session_scope(ctx.engine) as session:
        item = session.get(Item, item_id)
        if item is None:
            return ProbeResult(item_id, "missing", error=f"no item {item_id}")
        sha256, kind, name = item.sha256, item.media_kind, item.original_name
    source = stored_original(ctx.store, sha256, item_id)
    context = ExtractionContext(original_name=name, filename_profiles=ctx.profiles)
    extractions = extract_all(source, kind, context, extractors_for(ctx.probe_engine))
    candidates = [Candidate(f.field, f.value, f.source) for e in extractions for f in e.facts]
    problems = [p for e in extractions for p in e.problems]
    if missing := [p for p in problems if p.code == issues.TOOL_MISSING]:
        raise ToolUnavailableError(missing[0].message)
    media = next((e.media for e in extractions if e.media is not None), None)
    tools = sorted({e.tool for e in extractions})
    with session_scope(ctx.engine) as session, CustodyLog(session, ctx.actor) as log:
        # Locked first: two probes of one item (a repeated message) replace its facts in turn.
        item = session.get(Item, item_id, with_for_update=True)
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
        found_kind = _kind_from_streams(item.media_kind, media)
        kind_change = {"media_kind": {"from": item.media_kind, "to": found_kind}} if found_kind != kind else {}
        item.media_kind = found_kind
        assessment = assess(session, ctx, item, problems)
        set_stage(session, item_id, STAGE, StageStatus.DONE, tool=", ".join(tools) or ctx.tool)
        codes = tuple(dict.fromkeys(code for code, _ in assessment.issues))
        log.record(
            "probed",
            f"item:{item_id}",
            {
                "tools": tools,
                "facts": {k: _jsonable(v.value) for k, v in assessment.chosen.items()},
                "issues": list(codes),
                **kind_change,
            },
            tool=", ".join(tools) or ctx.tool,
        )
    return ProbeResult(item_id, "probed", codes)


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
    for fact_name, code in issues.MISSING_FACT.items():
        if fact_name not in chosen:
            assessment.issues.append((code, issues.MESSAGES[code]))
    if item.media_kind == "other":
        assessment.issues.append((issues.UNSUPPORTED_TYPE, issues.MESSAGES[issues.UNSUPPORTED_TYPE]))
    kept = session.exec(
        select(ItemIssue).where(ItemIssue.item_id == item.id, col(ItemIssue.code).in_(issues.MEDIA + issues.STORE))
    ).all()
    if problems is None:
        assessment.issues += [(i.code, i.message) for i in kept]
    else:
        assessment.issues += [(p.code, p.message) for p in problems]
        assessment.issues += [(i.code, i.message) for i in kept if i.code in issues.STORE]
    drift = clock_drift(candidates, chosen, item.received_at, ctx.zone, ctx.drift_tolerance)
    if drift:
        assessment.issues.append((issues.CLOCK_DRIFT, f"Device clock looks wrong: {drift}."))
    _deadline(ctx, item, assessment)
    # Issues other stages own (a failed derivative, another stage's defect) stay as they are.
    session.execute(
        delete(ItemIssue).where(col(ItemIssue.item_id) == item.id, col(ItemIssue.code).not_in(issues.OTHER_STAGES))
    )
    assessment.issues = list(dict(assessment.issues).items())  # each code once
    now = utcnow()
    for code, message in assessment.issues:
        session.add(ItemIssue(item_id=item.id, code=code, message=message, created_at=now))
    session.add(item)
    return assessment


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
        assessment.issues.append((issues.DEADLINE_PROVISIONAL, f"Deadline needs review: {deadline.reason}"))
    if item.received_at is None:
        return
    item.working_days_late = working_days_late(deadline, item.received_at, calendar=ctx.calendar, tz=ctx.zone)
    item.late = item.received_at > deadline.due
    if item.late:
        assessment.issues.append(
            (
                issues.LATE,
                f"Uploaded {item.working_days_late} working day(s) after the deadline "
                f"({deadline.due.astimezone(ctx.zone):%Y-%m-%d %H:%M %Z}).",
            )
        )


def _kind_from_streams(kind: str, media: MediaInfo | None) -> str:
    """The media kind the streams show, where the name said otherwise: a "video" file (.mp4, .mov)
    holding only sound is a recording of sound, and gets an audio copy and a waveform."""
    if kind == "video" and media is not None and media.of_kind("audio") and not media.of_kind("video"):
        return "audio"
    return kind


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
