"""Working days and the upload deadline, on the real statutory calendar and real site files."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.deadline import (
    SHANGHAI,
    SITE_CALENDAR_FILE,
    CalendarConflictError,
    CalendarFileError,
    WorkCalendar,
    assess_lateness,
    load_site_calendar,
    upload_deadline,
    working_days_late,
)
from pipeline.errors import PipelineError

STATUTORY = WorkCalendar()
URUMQI = ZoneInfo("Asia/Urumqi")


def shanghai(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


def working_days_in(calendar: WorkCalendar, first: date, last: date) -> int:
    """Working days in [first, last], counted one date at a time."""
    count = 0
    day = first
    while day <= last:
        count += calendar.is_workday(day)
        day += timedelta(days=1)
    return count


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "site.toml"
    path.write_text(text, encoding="utf-8")
    return path


class TestStatutoryCalendar:
    def test_make_up_sunday_is_a_workday(self) -> None:
        """Sunday 2025-09-28 is a make-up workday before National Day, on the State Council's authority."""
        status = STATUTORY.status(date(2025, 9, 28))
        assert status.workday
        assert status.source == "statutory"
        assert not status.provisional

    def test_national_day_week_is_off(self) -> None:
        """2025-10-01 to 2025-10-08 are all holidays, weekdays included."""
        days = [date(2025, 10, 1) + timedelta(days=n) for n in range(8)]
        assert [STATUTORY.is_workday(day) for day in days] == [False] * 8
        assert STATUTORY.status(date(2025, 10, 1)).name == "National Day"

    def test_unpublished_year_falls_back_without_raising(self) -> None:
        """A year without statutory data is answered Monday to Friday and marked provisional."""
        monday, saturday = STATUTORY.status(date(2030, 1, 7)), STATUTORY.status(date(2030, 1, 5))
        assert monday.workday and not saturday.workday
        assert monday.provisional and saturday.provisional
        assert monday.source == "fallback"

    def test_year_before_the_data_falls_back_too(self) -> None:
        """Dates before the statutory data begins are also answered, provisionally."""
        assert STATUTORY.status(date(2003, 12, 31)).provisional

    def test_datetime_is_refused(self) -> None:
        """A datetime is refused: which day it is depends on the time zone."""
        with pytest.raises(TypeError, match="local date"):
            STATUTORY.is_workday(datetime(2025, 10, 1, 12))


class TestSiteOverrides:
    def test_site_holiday_wins_over_statutory_workday(self) -> None:
        """A regional holiday on a statutory workday is a holiday, by the site's authority, with its name."""
        calendar = WorkCalendar(holidays={date(2025, 3, 31): "肉孜节"})
        status = calendar.status(date(2025, 3, 31))
        assert not status.workday
        assert (status.source, status.name) == ("site", "肉孜节")

    def test_site_workday_wins_in_an_unpublished_year(self) -> None:
        """A site workday on a Saturday of an unpublished year is authoritative, not provisional."""
        calendar = WorkCalendar(workdays=[date(2030, 1, 5)])
        status = calendar.status(date(2030, 1, 5))
        assert status.workday and not status.provisional

    def test_same_date_as_holiday_and_workday_is_refused(self) -> None:
        """A date given both as holiday and as workday is refused, naming the date."""
        with pytest.raises(CalendarConflictError, match="2025-04-12") as caught:
            WorkCalendar(holidays=[date(2025, 4, 12)], workdays={date(2025, 4, 12): "make-up"})
        assert caught.value.dates == (date(2025, 4, 12),)
        assert isinstance(caught.value, PipelineError)


class TestLoadSiteCalendar:
    def test_shipped_file_has_no_overrides(self) -> None:
        """The default site file loads and changes nothing."""
        calendar = load_site_calendar(SITE_CALENDAR_FILE)
        assert dict(calendar.holidays) == {} and dict(calendar.workdays) == {}

    def test_reads_holidays_and_workdays(self, tmp_path: Path) -> None:
        """Holidays and workdays from the file, with their names, change the answers."""
        path = write(
            tmp_path,
            """
[[holidays]]
date = 2025-03-31
name = "肉孜节"

[[workdays]]
date = 2025-04-12
name = "make-up workday"

[[workdays]]
date = "2025-04-19"
""",
        )
        calendar = load_site_calendar(path)
        assert dict(calendar.holidays) == {date(2025, 3, 31): "肉孜节"}
        assert dict(calendar.workdays) == {date(2025, 4, 12): "make-up workday", date(2025, 4, 19): None}
        assert not calendar.is_workday(date(2025, 3, 31))
        assert calendar.is_workday(date(2025, 4, 12))

    def test_impossible_date_names_file_and_entry(self, tmp_path: Path) -> None:
        """An impossible date is reported with the file and the entry that holds it."""
        path = write(tmp_path, '[[holidays]]\ndate = 2025-04-12\n\n[[holidays]]\ndate = "2025-02-30"\n')
        with pytest.raises(CalendarFileError) as caught:
            load_site_calendar(path)
        assert caught.value.path == str(path)
        assert caught.value.details == ("holidays[2].date: '2025-02-30' is not a date (write YYYY-MM-DD)",)
        assert str(caught.value).startswith(f"{path}: holidays[2].date")

    def test_date_with_time_of_day_is_refused(self, tmp_path: Path) -> None:
        """A date with a time of day is refused: a holiday is a whole local day."""
        path = write(tmp_path, "[[workdays]]\ndate = 2025-04-12T09:00:00\n")
        with pytest.raises(CalendarFileError, match=r"workdays\[1\]\.date: .* no time of day"):
            load_site_calendar(path)

    def test_date_both_holiday_and_workday_names_both_entries(self, tmp_path: Path) -> None:
        """A date listed as holiday and as workday is reported naming both entries."""
        path = write(
            tmp_path,
            "[[holidays]]\ndate = 2025-05-06\n\n[[workdays]]\ndate = 2025-06-01\n\n[[workdays]]\ndate = 2025-05-06\n",
        )
        with pytest.raises(CalendarFileError) as caught:
            load_site_calendar(path)
        assert caught.value.details == ("workdays[2].date: 2025-05-06 is also holidays[1] (a holiday)",)

    def test_every_problem_is_reported_at_once(self, tmp_path: Path) -> None:
        """A misspelt section, a missing date and a repeated date are all reported together."""
        path = write(
            tmp_path,
            "[[holiday]]\ndate = 2025-05-06\n\n"
            "[[holidays]]\nname = 'no date'\n\n"
            "[[workdays]]\ndate = 2025-06-01\n\n[[workdays]]\ndate = 2025-06-01\nnote = 'x'\n",
        )
        with pytest.raises(CalendarFileError) as caught:
            load_site_calendar(path)
        assert caught.value.details == (
            "unknown section(s) holiday (only [[holidays]] and [[workdays]] are read)",
            "holidays[1]: has no date",
            "workdays[2]: unknown key(s) note (only date and name are read)",
            "workdays[2].date: 2025-06-01 is already workdays[1]",
        )

    def test_invalid_toml_names_the_file(self, tmp_path: Path) -> None:
        """A file that is not TOML is reported with its path and the parser's position."""
        path = write(tmp_path, "[[holidays]]\ndate = 2025-13-01\n")
        with pytest.raises(CalendarFileError, match=r"not valid TOML: .*line 2") as caught:
            load_site_calendar(path)
        assert caught.value.path == str(path)

    def test_missing_file_is_an_error(self, tmp_path: Path) -> None:
        """A calendar file that is not there is an error, not an empty calendar."""
        with pytest.raises(CalendarFileError, match="cannot be read"):
            load_site_calendar(tmp_path / "absent.toml")


class TestUploadDeadline:
    def test_national_day_and_make_up_saturday(self) -> None:
        """Captured 2025-09-30: the holiday week is skipped and Saturday 10-11 (make-up) is day 3."""
        deadline = upload_deadline(shanghai(2025, 9, 30, 10), calendar=STATUTORY)
        assert deadline.last_working_day == date(2025, 10, 11)
        assert deadline.due == datetime(2025, 10, 12, tzinfo=SHANGHAI)
        assert deadline.due == datetime(2025, 10, 11, 16, tzinfo=UTC)
        assert deadline.due.tzinfo is UTC
        assert not deadline.provisional and deadline.reason is None

    def test_capture_stamped_late_in_utc_belongs_to_the_local_day(self) -> None:
        """A capture stamped 23:30 UTC on Saturday is Sunday morning in Beijing and counts from Sunday."""
        captured = datetime(2025, 9, 27, 23, 30, tzinfo=UTC)  # Sunday 2025-09-28 07:30 in Beijing
        deadline = upload_deadline(captured, calendar=STATUTORY)
        assert deadline.captured_on == date(2025, 9, 28)
        # Mon 29, Tue 30, then the holiday week, Thu 10-09; counted from the UTC date it would be 09-30.
        assert deadline.last_working_day == date(2025, 10, 9)

    def test_capture_after_local_midnight_is_the_next_local_day(self) -> None:
        """00:30 in Beijing is still the previous date in UTC; the deadline follows the Beijing date."""
        captured = shanghai(2025, 10, 9, 0, 30)  # 2025-10-08T16:30Z, during the holiday in UTC terms
        deadline = upload_deadline(captured, calendar=STATUTORY)
        assert deadline.captured_on == date(2025, 10, 9)
        # Fri 10, Sat 11 make-up, Sun 12 off, Mon 13.
        assert deadline.last_working_day == date(2025, 10, 13)

    def test_site_time_zone_changes_the_day(self) -> None:
        """The same instant counted in Urumqi time starts from the earlier local date."""
        captured = shanghai(2025, 10, 9, 1, 0)  # 2025-10-08 23:00 in Urumqi, still a holiday there
        deadline = upload_deadline(captured, calendar=STATUTORY, tz=URUMQI)
        assert deadline.captured_on == date(2025, 10, 8)
        assert deadline.last_working_day == date(2025, 10, 11)
        assert deadline.due == datetime(2025, 10, 12, tzinfo=URUMQI)

    def test_capture_day_counts_when_it_is_a_working_day(self) -> None:
        """With the capture day counting, a Tuesday capture is due a working day earlier."""
        deadline = upload_deadline(shanghai(2025, 9, 30, 10), calendar=STATUTORY, capture_day_counts=True)
        assert deadline.last_working_day == date(2025, 10, 10)
        assert deadline.due == datetime(2025, 10, 10, 16, tzinfo=UTC)

    def test_capture_day_counts_changes_nothing_on_a_holiday(self) -> None:
        """A capture on a holiday is due the same day whether or not the capture day counts."""
        captured = shanghai(2025, 10, 3, 9)
        counting = upload_deadline(captured, calendar=STATUTORY, capture_day_counts=True)
        plain = upload_deadline(captured, calendar=STATUTORY)
        assert counting.last_working_day == plain.last_working_day == date(2025, 10, 11)

    def test_working_days_is_configurable(self) -> None:
        """N=1 from a Friday capture is due at the end of Monday."""
        deadline = upload_deadline(shanghai(2025, 6, 6, 9), calendar=STATUTORY, working_days=1)
        assert deadline.last_working_day == date(2025, 6, 9)

    def test_unpublished_year_is_provisional_and_skips_weekends(self) -> None:
        """Captured on Thursday 2030-01-03: due Tuesday, marked provisional with the reason, no error."""
        deadline = upload_deadline(shanghai(2030, 1, 3, 10), calendar=STATUTORY)
        assert deadline.last_working_day == date(2030, 1, 8)
        assert deadline.provisional
        assert deadline.reason == "no statutory calendar for 2030: weekends and site overrides only; needs review"

    def test_deadline_running_into_an_unpublished_year_is_provisional(self) -> None:
        """A capture in a published year whose deadline reaches into an unpublished one is provisional."""
        deadline = upload_deadline(shanghai(2026, 12, 30, 10), calendar=STATUTORY)
        assert deadline.provisional
        assert deadline.provisional_years == (2027,)
        assert "2027" in (deadline.reason or "")

    def test_site_holiday_pushes_the_deadline_later(self) -> None:
        """An extra regional holiday within the window moves the deadline one working day later."""
        captured = shanghai(2025, 6, 2, 10)  # Monday
        plain = upload_deadline(captured, calendar=STATUTORY)
        regional = upload_deadline(captured, calendar=WorkCalendar(holidays={date(2025, 6, 4): "regional"}))
        assert plain.last_working_day == date(2025, 6, 5)
        assert regional.last_working_day == date(2025, 6, 6)

    def test_site_workday_on_saturday_pulls_the_deadline_earlier(self) -> None:
        """An extra workday on a Saturday inside the window brings the deadline a working day earlier."""
        captured = shanghai(2025, 6, 5, 10)  # Thursday
        plain = upload_deadline(captured, calendar=STATUTORY)
        extra = upload_deadline(captured, calendar=WorkCalendar(workdays=[date(2025, 6, 7)]))
        assert plain.last_working_day == date(2025, 6, 10)
        assert extra.last_working_day == date(2025, 6, 9)

    def test_calendar_from_file_is_used(self, tmp_path: Path) -> None:
        """A holiday from the site file moves the deadline."""
        path = write(tmp_path, '[[holidays]]\ndate = 2025-06-04\nname = "regional"\n')
        deadline = upload_deadline(shanghai(2025, 6, 2, 10), calendar=load_site_calendar(path))
        assert deadline.last_working_day == date(2025, 6, 6)

    def test_fixed_offset_capture_is_accepted(self) -> None:
        """A capture stamped with a fixed UTC offset, as devices often report, is accepted."""
        captured = datetime(2025, 9, 30, 10, tzinfo=timezone(timedelta(hours=8)))
        assert upload_deadline(captured, calendar=STATUTORY).last_working_day == date(2025, 10, 11)

    def test_naive_capture_is_refused(self) -> None:
        """A capture time without a time zone is refused rather than guessed."""
        with pytest.raises(ValueError, match="timezone-aware"):
            upload_deadline(datetime(2025, 9, 30, 10), calendar=STATUTORY)

    def test_zero_working_days_is_refused(self) -> None:
        """Fewer than one working day is refused."""
        with pytest.raises(ValueError, match="at least 1"):
            upload_deadline(shanghai(2025, 9, 30, 10), calendar=STATUTORY, working_days=0)


class TestLateness:
    # Captured Monday 2025-06-02: due at the end of Thursday 06-05 (2025-06-05T16:00Z).
    DEADLINE = upload_deadline(shanghai(2025, 6, 2, 10), calendar=STATUTORY)

    def test_received_at_the_deadline_is_on_time(self) -> None:
        """Received at exactly 24:00 of the last working day is on time."""
        assert working_days_late(self.DEADLINE, shanghai(2025, 6, 6), calendar=STATUTORY) == 0
        assert not assess_lateness(self.DEADLINE, shanghai(2025, 6, 6), calendar=STATUTORY).late

    def test_received_the_next_working_day_is_one_day_late(self) -> None:
        """Received on the Friday after a Thursday deadline: one working day late."""
        received = shanghai(2025, 6, 6, 0, 0) + timedelta(microseconds=1)
        assert working_days_late(self.DEADLINE, received, calendar=STATUTORY) == 1
        assert working_days_late(self.DEADLINE, shanghai(2025, 6, 6, 17), calendar=STATUTORY) == 1

    def test_weekend_is_not_counted(self) -> None:
        """After a Thursday deadline, Saturday and Sunday receipts count only Friday; Monday adds one."""
        late = [working_days_late(self.DEADLINE, shanghai(2025, 6, d, 12), calendar=STATUTORY) for d in (7, 8, 9)]
        assert late == [1, 1, 2]

    def test_received_on_a_weekend_just_after_deadline_is_late_by_zero_working_days(self) -> None:
        """A Friday deadline missed by a Saturday receipt is late, by 0 working days."""
        deadline = upload_deadline(shanghai(2025, 6, 3, 10), calendar=STATUTORY)  # due end of Fri 06-06
        lateness = assess_lateness(deadline, shanghai(2025, 6, 7, 9), calendar=STATUTORY)
        assert lateness.late and lateness.working_days_late == 0
        assert lateness.received_on == date(2025, 6, 7)

    def test_holidays_are_not_counted(self) -> None:
        """Received across the Dragon Boat Festival (2025-05-31..06-02) counts only the working days."""
        deadline = upload_deadline(shanghai(2025, 5, 26, 10), calendar=STATUTORY)  # due end of Thu 05-29
        assert deadline.last_working_day == date(2025, 5, 29)
        assert working_days_late(deadline, shanghai(2025, 6, 3, 10), calendar=STATUTORY) == 2  # Fri 30, Tue 3

    def test_lateness_into_unpublished_year_is_provisional(self) -> None:
        """Counting lateness through an unpublished year marks the result provisional."""
        deadline = upload_deadline(shanghai(2026, 12, 1, 10), calendar=STATUTORY)
        assert not deadline.provisional
        lateness = assess_lateness(deadline, shanghai(2027, 1, 5, 10), calendar=STATUTORY)
        assert lateness.late and lateness.provisional
        assert lateness.reason is not None and "2027" in lateness.reason

    def test_naive_receipt_is_refused(self) -> None:
        """A receipt time without a time zone is refused."""
        with pytest.raises(ValueError, match="received_at"):
            working_days_late(self.DEADLINE, datetime(2025, 6, 9, 10), calendar=STATUTORY)


# ------------------------------------------------------------------------------------- properties
ZONES = st.sampled_from(
    [SHANGHAI, URUMQI, UTC, *(ZoneInfo(key) for key in ("Europe/London", "America/Havana", "America/Santiago"))]
)
CAPTURES = st.datetimes(
    min_value=datetime(2005, 1, 1), max_value=datetime(2035, 12, 31, 23, 59, 59), timezones=st.timezones()
)
CALENDARS = st.builds(
    lambda holidays, workdays: WorkCalendar(holidays=holidays, workdays=workdays - holidays),
    st.frozensets(st.dates(date(2005, 1, 1), date(2036, 3, 1)), max_size=30),
    st.frozensets(st.dates(date(2005, 1, 1), date(2036, 3, 1)), max_size=30),
)


class TestDeadlineProperties:
    @settings(max_examples=300, deadline=None)
    @given(
        captured=CAPTURES,
        n=st.integers(1, 10),
        calendar=CALENDARS,
        tz=ZONES,
        capture_day_counts=st.booleans(),
    )
    def test_deadline_is_exactly_n_working_days_on(
        self, captured: datetime, n: int, calendar: WorkCalendar, tz: ZoneInfo, capture_day_counts: bool
    ) -> None:
        """Any capture: due strictly later, on the end of a working day, exactly N working days on."""
        deadline = upload_deadline(
            captured, calendar=calendar, working_days=n, tz=tz, capture_day_counts=capture_day_counts
        )
        captured_on = captured.astimezone(tz).date()
        assert deadline.captured_on == captured_on
        assert deadline.due > captured
        assert deadline.due.utcoffset() == timedelta(0)
        assert calendar.is_workday(deadline.last_working_day)
        assert (deadline.due - timedelta(microseconds=1)).astimezone(tz).date() == deadline.last_working_day
        assert deadline.due.astimezone(tz).date() > deadline.last_working_day
        first = captured_on if capture_day_counts else captured_on + timedelta(days=1)
        assert working_days_in(calendar, first, deadline.last_working_day) == n
        inspected = [first + timedelta(days=k) for k in range((deadline.last_working_day - first).days + 1)]
        assert deadline.provisional == any(calendar.status(day).provisional for day in inspected)
        assert (deadline.reason is not None) == deadline.provisional

    @settings(max_examples=300, deadline=None)
    @given(
        captured=CAPTURES,
        n=st.integers(1, 10),
        after=st.lists(st.timedeltas(timedelta(0), timedelta(days=40)), min_size=2, max_size=6),
        tz=ZONES,
    )
    def test_later_receipt_is_never_less_late(
        self, captured: datetime, n: int, after: list[timedelta], tz: ZoneInfo
    ) -> None:
        """Receipts in time order give non-decreasing working days late, late only after the due time."""
        deadline = upload_deadline(captured, calendar=STATUTORY, working_days=n, tz=tz)
        receipts = sorted(captured + delta for delta in after)
        results = [assess_lateness(deadline, received, calendar=STATUTORY) for received in receipts]
        days = [result.working_days_late for result in results]
        assert days == sorted(days)
        for received, result in zip(receipts, results, strict=True):
            assert result.late == (received > deadline.due)
            if not result.late:
                assert result.working_days_late == 0


class TestClockChanges:
    """Deadlines in a zone whose clocks change at midnight still end when the local day ends."""

    def test_midnight_skipped_by_spring_forward(self) -> None:
        """Santiago skips 2025-09-07 00:00: Saturday 09-06 ends at 01:00 summer time (04:00 UTC)."""
        santiago = ZoneInfo("America/Santiago")
        calendar = WorkCalendar(workdays=[date(2025, 9, 6)])
        deadline = upload_deadline(
            datetime(2025, 9, 5, 10, tzinfo=santiago), calendar=calendar, working_days=1, tz=santiago
        )
        assert deadline.last_working_day == date(2025, 9, 6)
        assert deadline.due == datetime(2025, 9, 7, 4, tzinfo=UTC)

    def test_midnight_read_twice_by_fall_back(self) -> None:
        """Havana reads 2025-11-02 00:00 twice: Saturday 11-01 ends at the first (04:00 UTC)."""
        havana = ZoneInfo("America/Havana")
        calendar = WorkCalendar(workdays=[date(2025, 11, 1)])
        deadline = upload_deadline(
            datetime(2025, 10, 31, 10, tzinfo=havana), calendar=calendar, working_days=1, tz=havana
        )
        assert deadline.last_working_day == date(2025, 11, 1)
        assert deadline.due == datetime(2025, 11, 2, 4, tzinfo=UTC)
