"""The upload deadline: records must reach the platform within N working days of capture.

Days are local days in the site's time zone (Asia/Shanghai unless told otherwise): a clip recorded
at 23:30 in Beijing belongs to that Beijing date, whatever the UTC date is. The deadline is the end
of the N-th working day after the capture day (24:00 local), kept as an aware UTC instant. When any
day the answer depends on has no published statutory calendar, the result says so (``provisional``
and ``reason``) instead of failing: it needs review once the State Council publishes that year.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo

from pipeline.deadline.workdays import DayStatus, WorkCalendar

SHANGHAI = ZoneInfo("Asia/Shanghai")
DEFAULT_WORKING_DAYS = 3

_ONE_DAY = timedelta(days=1)
_TICK = timedelta(microseconds=1)


def _fallback_reason(years: Iterable[int]) -> str | None:
    listed = sorted(set(years))
    if not listed:
        return None
    shown = ", ".join(str(year) for year in listed)
    return f"no statutory calendar for {shown}: weekends and site overrides only; needs review"


def _require_aware(moment: datetime, what: str) -> None:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{what} must be timezone-aware, got naive {moment.isoformat()}")


def _end_of_day(day: date, tz: tzinfo) -> datetime:
    """The instant ``day`` ends in ``tz`` (its 24:00), in UTC.

    Where clocks change around midnight the next 00:00 may be skipped or read twice; of its readings,
    the day ends at the last one that directly follows a moment of ``day`` itself.
    """
    midnight = datetime.combine(day + _ONE_DAY, time(0), tzinfo=tz)
    readings = {midnight.replace(fold=fold).astimezone(UTC) for fold in (0, 1)}
    following = [moment for moment in readings if (moment - _TICK).astimezone(tz).date() == day]
    return max(following or readings)


@dataclass(frozen=True)
class Deadline:
    """When a recording captured at ``captured_at`` must have reached the platform.

    ``due`` is the end of ``last_working_day`` in the local zone ``tz``, as an aware UTC datetime;
    receipt at or before ``due`` is on time. ``provisional`` is True when any day inspected came from
    the Monday to Friday fallback; ``reason`` then says which years and that the deadline needs review.
    """

    captured_at: datetime
    captured_on: date
    working_days: int
    capture_day_counts: bool
    tz: tzinfo
    last_working_day: date
    due: datetime
    provisional: bool
    reason: str | None
    provisional_years: tuple[int, ...] = ()

    def as_json(self) -> dict[str, object]:
        return {
            "captured_at": self.captured_at.isoformat(),
            "captured_on": self.captured_on.isoformat(),
            "working_days": self.working_days,
            "capture_day_counts": self.capture_day_counts,
            "tz": str(self.tz),
            "last_working_day": self.last_working_day.isoformat(),
            "due": self.due.isoformat(),
            "provisional": self.provisional,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class Lateness:
    """Whether a recording received at ``received_at`` met its deadline, and by how many working days
    it missed it (see :func:`working_days_late` for the rule)."""

    deadline: Deadline
    received_at: datetime
    received_on: date
    late: bool
    working_days_late: int
    provisional: bool
    reason: str | None

    def as_json(self) -> dict[str, object]:
        return {
            "due": self.deadline.due.isoformat(),
            "received_at": self.received_at.isoformat(),
            "received_on": self.received_on.isoformat(),
            "late": self.late,
            "working_days_late": self.working_days_late,
            "provisional": self.provisional,
            "reason": self.reason,
        }


def _look_up(calendar: WorkCalendar, day: date, fallback_years: set[int]) -> DayStatus:
    """The calendar's answer for ``day``, noting the year when only the fallback could answer."""
    status = calendar.status(day)
    if status.provisional:
        fallback_years.add(day.year)
    return status


def _days_after(calendar: WorkCalendar, day: date, fallback_years: set[int]) -> Iterator[DayStatus]:
    """The days following ``day``, one after another, each looked up as by :func:`_look_up`."""
    while True:
        day += _ONE_DAY
        yield _look_up(calendar, day, fallback_years)


def upload_deadline(
    captured_at: datetime,
    *,
    calendar: WorkCalendar,
    working_days: int = DEFAULT_WORKING_DAYS,
    tz: tzinfo = SHANGHAI,
    capture_day_counts: bool = False,
) -> Deadline:
    """The deadline for a recording captured at ``captured_at`` (timezone-aware).

    The capture day is the local date of ``captured_at`` in ``tz``. Counting starts the day after it,
    and the deadline is 24:00 local of the ``working_days``-th working day counted. With
    ``capture_day_counts`` a capture day that is itself a working day counts as day 1 (a capture on a
    non-working day changes nothing). Raises ValueError for a naive ``captured_at`` or fewer than one
    working day; never for a year without statutory data (the result is provisional instead).
    """
    _require_aware(captured_at, "captured_at")
    if working_days < 1:
        raise ValueError(f"working_days must be at least 1, got {working_days}")

    captured_on = captured_at.astimezone(tz).date()
    fallback_years: set[int] = set()
    counted = 0
    day = captured_on
    if capture_day_counts:
        counted = int(_look_up(calendar, day, fallback_years).workday)
    following = _days_after(calendar, captured_on, fallback_years)
    while counted < working_days:
        status = next(following)
        day = status.day
        counted += status.workday

    return Deadline(
        captured_at=captured_at.astimezone(UTC),
        captured_on=captured_on,
        working_days=working_days,
        capture_day_counts=capture_day_counts,
        tz=tz,
        last_working_day=day,
        due=_end_of_day(day, tz),
        provisional=bool(fallback_years),
        reason=_fallback_reason(fallback_years),
        provisional_years=tuple(sorted(fallback_years)),
    )


def assess_lateness(
    deadline: Deadline, received_at: datetime, *, calendar: WorkCalendar, tz: tzinfo | None = None
) -> Lateness:
    """Whether ``received_at`` (timezone-aware) met ``deadline``, and how many working days late.

    ``tz`` defaults to the zone the deadline was computed in; the rule is that of
    :func:`working_days_late`. The result is provisional when the deadline is, or when any day counted
    for the lateness has no statutory calendar.
    """
    _require_aware(received_at, "received_at")
    zone = deadline.tz if tz is None else tz
    received_on = received_at.astimezone(zone).date()
    fallback_years = set(deadline.provisional_years)
    days_late = 0
    late = received_at > deadline.due
    if late:
        for status in _days_after(calendar, deadline.last_working_day, fallback_years):
            if status.day > received_on:
                break
            days_late += status.workday
    return Lateness(
        deadline=deadline,
        received_at=received_at.astimezone(UTC),
        received_on=received_on,
        late=late,
        working_days_late=days_late,
        provisional=bool(fallback_years),
        reason=_fallback_reason(fallback_years),
    )


def working_days_late(
    deadline: Deadline, received_at: datetime, *, calendar: WorkCalendar, tz: tzinfo | None = None
) -> int:
    """How many working days after its deadline a recording arrived.

    The rule: 0 when ``received_at`` is at or before ``deadline.due``. Otherwise, the number of
    working days from the day after ``deadline.last_working_day`` up to and including the local date
    of receipt (in ``tz``, by default the deadline's zone). Non-working days are never counted, so a
    receipt on a non-working day is late by the working days that have elapsed before it: received
    on the Saturday after a Friday deadline is late (see :attr:`Lateness.late`) by 0 working days,
    received on the Monday after by 1. A later receipt never gives fewer days late.
    """
    return assess_lateness(deadline, received_at, calendar=calendar, tz=tz).working_days_late
