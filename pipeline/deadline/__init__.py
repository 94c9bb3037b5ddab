"""Working days and the upload deadline: records must reach the platform within N working days of
capture, by the Chinese statutory calendar (with its make-up workdays) and the site's own days.

``WorkCalendar`` says which local dates are working days and whether the answer is authoritative;
``upload_deadline`` turns a capture time into a ``Deadline``; ``assess_lateness`` and
``working_days_late`` measure a receipt against it.
"""

from pipeline.deadline.upload import (
    DEFAULT_WORKING_DAYS,
    SHANGHAI,
    Deadline,
    Lateness,
    assess_lateness,
    upload_deadline,
    working_days_late,
)
from pipeline.deadline.workdays import (
    SITE_CALENDAR_FILE,
    CalendarConflictError,
    CalendarError,
    CalendarFileError,
    DaySource,
    DayStatus,
    WorkCalendar,
    load_site_calendar,
)

__all__ = [
    "DEFAULT_WORKING_DAYS",
    "SHANGHAI",
    "SITE_CALENDAR_FILE",
    "CalendarConflictError",
    "CalendarError",
    "CalendarFileError",
    "DaySource",
    "DayStatus",
    "Deadline",
    "Lateness",
    "WorkCalendar",
    "assess_lateness",
    "load_site_calendar",
    "upload_deadline",
    "working_days_late",
]
