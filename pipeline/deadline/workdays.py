"""Which days are working days: the Chinese statutory calendar, corrected by the site's own days.

The statutory calendar (public holidays and the make-up workdays, 调休, that the State Council moves
onto weekends) comes from the ``chinesecalendar`` package, which only knows the years already
published. Sites add their own days on top, in ``config/calendars/site.toml``: regional holidays
(Xinjiang's, for instance) and extra workdays. A site's entry always wins over the statutory answer.

For a year the statutory data does not cover, the answer falls back to Monday to Friday plus the site's
days and is marked provisional, so that deadlines computed from it can be flagged for review instead
of failing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Literal

import chinese_calendar

from pipeline.config import CONFIG_DIR, ConfigFileError, read_toml
from pipeline.errors import PipelineError

SITE_CALENDAR_FILE = CONFIG_DIR / "calendars" / "site.toml"

DaySource = Literal["site", "statutory", "fallback"]


class CalendarError(PipelineError):
    """The site's days cannot be used as given."""


class CalendarConflictError(CalendarError):
    """The same dates were given both as holidays and as workdays."""

    def __init__(self, dates: Iterable[date]) -> None:
        self.dates = tuple(sorted(dates))
        super().__init__("listed both as holiday and as workday: " + ", ".join(d.isoformat() for d in self.dates))


class CalendarFileError(CalendarError):
    """A site calendar file is unreadable or wrong. ``path`` names it; ``details`` has one line per
    problem, each naming the entry (``holidays[2]``, ``workdays[1].date``…) and what is wrong."""

    def __init__(self, path: str | Path, details: Iterable[str]) -> None:
        self.path = str(path)
        self.details = tuple(details)
        super().__init__(f"{self.path}: " + "; ".join(self.details))


@dataclass(frozen=True)
class DayStatus:
    """The ruling for one local date, and where it came from.

    ``source`` is ``site`` (an override from the site's file), ``statutory`` (the published national
    calendar) or ``fallback`` (no published calendar for that year: Monday to Friday is assumed).
    """

    day: date
    workday: bool
    source: DaySource
    name: str | None = None

    @property
    def provisional(self) -> bool:
        """True when the answer is a guess that must be reviewed once the year is published."""
        return self.source == "fallback"


def _as_days(days: Mapping[date, str | None] | Iterable[date], kind: str) -> dict[date, str | None]:
    named: dict[date, str | None] = dict(days) if isinstance(days, Mapping) else dict.fromkeys(days)
    for day in named:
        if isinstance(day, datetime) or not isinstance(day, date):
            raise TypeError(f"{kind} must be dates, not {type(day).__name__}: {day!r}")
    return named


class WorkCalendar:
    """Working days: the statutory calendar with the site's holidays and workdays on top.

    Never raises for a year the statutory data does not cover; ``status(day).provisional`` says when
    an answer is the Monday to Friday fallback.
    """

    __slots__ = ("_holidays", "_workdays")

    def __init__(
        self,
        *,
        holidays: Mapping[date, str | None] | Iterable[date] = (),
        workdays: Mapping[date, str | None] | Iterable[date] = (),
    ) -> None:
        extra_holidays = _as_days(holidays, "holidays")
        extra_workdays = _as_days(workdays, "workdays")
        both = extra_holidays.keys() & extra_workdays.keys()
        if both:
            raise CalendarConflictError(both)
        self._holidays: Mapping[date, str | None] = MappingProxyType(extra_holidays)
        self._workdays: Mapping[date, str | None] = MappingProxyType(extra_workdays)

    @property
    def holidays(self) -> Mapping[date, str | None]:
        """The site's extra holidays, by date, with their names."""
        return self._holidays

    @property
    def workdays(self) -> Mapping[date, str | None]:
        """The site's extra workdays, by date, with their names."""
        return self._workdays

    def status(self, day: date) -> DayStatus:
        """Whether ``day`` (a local date) is a working day, and on whose authority."""
        if isinstance(day, datetime):
            raise TypeError("pass the local date, not a datetime: which day it is depends on the time zone")
        if day in self._holidays:
            return DayStatus(day, False, "site", self._holidays[day])
        if day in self._workdays:
            return DayStatus(day, True, "site", self._workdays[day])
        try:
            workday = bool(chinese_calendar.is_workday(day))
            _, name = chinese_calendar.get_holiday_detail(day)
        except NotImplementedError:
            return DayStatus(day, day.weekday() < 5, "fallback")
        return DayStatus(day, workday, "statutory", name)

    def is_workday(self, day: date) -> bool:
        """True when ``day`` (a local date) is a working day."""
        return self.status(day).workday

    def __repr__(self) -> str:
        return f"WorkCalendar(<{len(self._holidays)} site holidays>, <{len(self._workdays)} site workdays>)"


def _read_days(data: dict[str, object], kind: str, problems: list[str]) -> dict[date, tuple[str, str | None]]:
    """The ``[[kind]]`` entries as ``{date: (entry label, name)}``; problems are appended, not raised."""
    entries = data.get(kind, [])
    if not isinstance(entries, list):
        problems.append(f"{kind}: must be an array of tables ([[{kind}]] sections)")
        return {}
    days: dict[date, tuple[str, str | None]] = {}
    for number, entry in enumerate(entries, start=1):
        label = f"{kind}[{number}]"
        if not isinstance(entry, dict):
            problems.append(f"{label}: must be a table with a date, not {entry!r}")
            continue
        unknown = sorted(set(entry) - {"date", "name"})
        if unknown:
            problems.append(f"{label}: unknown key(s) {', '.join(unknown)} (only date and name are read)")
        value = entry.get("date")
        name = entry.get("name")
        if name is not None and not isinstance(name, str):
            problems.append(f"{label}.name: must be a string, not {name!r}")
            name = None
        if value is None:
            problems.append(f"{label}: has no date")
            continue
        if isinstance(value, str):
            try:
                value = date.fromisoformat(value)
            except ValueError:
                problems.append(f"{label}.date: {value!r} is not a date (write YYYY-MM-DD)")
                continue
        if isinstance(value, datetime) or not isinstance(value, date):
            problems.append(f"{label}.date: {value!r} is not a date (write YYYY-MM-DD, no time of day)")
            continue
        if value in days:
            problems.append(f"{label}.date: {value.isoformat()} is already {days[value][0]}")
            continue
        days[value] = (label, name)
    return days


def load_site_calendar(path: str | Path = SITE_CALENDAR_FILE) -> WorkCalendar:
    """Read a site calendar file (``[[holidays]]`` and ``[[workdays]]`` tables, each with a ``date``
    and an optional ``name``) into a :class:`WorkCalendar`.

    Every problem in the file is reported at once in one :class:`CalendarFileError` naming the file
    and each wrong entry: unreadable file, invalid TOML, unknown sections or keys, entries without a
    date or with a date that is not a calendar date, a date listed twice, and a date listed both as
    holiday and as workday.
    """
    try:
        data = read_toml(Path(path))
    except ConfigFileError as exc:
        raise CalendarFileError(path, [exc.reason]) from exc

    problems: list[str] = []
    unknown = sorted(set(data) - {"holidays", "workdays"})
    if unknown:
        problems.append(f"unknown section(s) {', '.join(unknown)} (only [[holidays]] and [[workdays]] are read)")
    holidays = _read_days(data, "holidays", problems)
    workdays = _read_days(data, "workdays", problems)
    for day in sorted(holidays.keys() & workdays.keys()):
        problems.append(f"{workdays[day][0]}.date: {day.isoformat()} is also {holidays[day][0]} (a holiday)")
    if problems:
        raise CalendarFileError(path, problems)
    return WorkCalendar(
        holidays={day: name for day, (_, name) in holidays.items()},
        workdays={day: name for day, (_, name) in workdays.items()},
    )
