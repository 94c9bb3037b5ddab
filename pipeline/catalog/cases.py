"""Changing cases: a case's enforcement target, which groups every record about one person or
company. Each change is a custody event."""

from __future__ import annotations

from sqlmodel import Session

from pipeline.catalog.models import Case
from pipeline.catalog.types import utcnow
from pipeline.custody import CustodyLog


def set_case_target(session: Session, *, number: str, target: str, actor: str, tool: str) -> Case:
    """Set the enforcement target of case ``number`` (blank clears it), opening the case if the
    catalog has none by that number; records ``case-updated`` with the old and new target."""
    case = session.get(Case, number)
    old = case.target if case else None
    case = case or Case(number=number)
    case.target = target.strip() or None
    case.updated_at = utcnow()
    session.add(case)
    with CustodyLog(session, actor) as log:
        log.record("case-updated", f"case:{number}", {"target": {"old": old, "new": case.target}}, tool=tool)
    return case
