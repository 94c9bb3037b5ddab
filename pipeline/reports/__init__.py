"""Statistics and supervision reports: figures counted by the catalog (:mod:`.figures`), drawn as
SVG charts (:mod:`.charts`) and written as a table, CSV, JSON or an HTML page (:mod:`.render`).

The command line (``evidence report``) and the web application (``/reports``) call the same
functions; the figures narrow their SQL to what the acting viewer may know exists."""

from pipeline.reports.figures import (
    FACT_GROUPINGS,
    REPORT_READERS,
    Group,
    Grouping,
    KindFigures,
    MonthFigures,
    PackageFigures,
    Period,
    QueueSize,
    Report,
    build_report,
    record_report_view,
    review_queues,
    typed_day,
)

__all__ = [
    "FACT_GROUPINGS",
    "REPORT_READERS",
    "Group",
    "Grouping",
    "KindFigures",
    "MonthFigures",
    "PackageFigures",
    "Period",
    "QueueSize",
    "Report",
    "build_report",
    "record_report_view",
    "review_queues",
    "typed_day",
]
