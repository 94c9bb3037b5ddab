"""Reads of the catalog that every interface needs, as plain functions of a session: the command
line and the web application call these instead of writing their own queries. Each returns small
frozen results whose ``as_json()`` is what the interfaces show; a name that finds nothing raises
:class:`NotFoundError`, a value that cannot be used :class:`InvalidValueError`.

Every one takes the acting ``viewer`` and reads only what the viewer may know exists
(:mod:`pipeline.catalog.access`); anything else is "not found".

- items: :func:`find_item` (:func:`locate_item`, :func:`find_summary` also for a withheld item),
  :func:`list_items` with an :class:`ItemFilter` (:func:`local_day` reads its dates),
  :func:`page_items` (an :class:`ItemPage` after or before a :class:`Cursor`, its count exact up
  to :data:`COUNT_LIMIT`), :func:`items_in_stage`, :func:`count_items` (``at_most`` to bound it)
- one item's whole record: :func:`item_detail` (records the view in the custody log)
- cases and deadlines: :func:`case_detail`, :func:`overdue_groups` (a page: :func:`overdue_page`)
- disc packages: :func:`list_packages`, :func:`incomplete_items`
- the custody log, for admins and auditors: :func:`custody_log`, :func:`retrievals`, :func:`verify_log`
"""

from pipeline.catalog.queries.audit import LogEvent, LogPage, custody_log, retrievals, verify_log
from pipeline.catalog.queries.cases import (
    CaseDetail,
    OverdueGroup,
    OverdueItem,
    OverduePage,
    case_detail,
    overdue_groups,
    overdue_page,
)
from pipeline.catalog.queries.detail import ItemDetail, item_detail
from pipeline.catalog.queries.items import (
    COUNT_LIMIT,
    MAX_PAGE,
    MIN_PREFIX,
    SHORT_TEXT_WINDOW,
    AmbiguousError,
    Cursor,
    ItemFilter,
    ItemPage,
    ItemSummary,
    Located,
    count_items,
    find_item,
    find_summary,
    items_in_stage,
    list_items,
    local_day,
    locate_item,
    page_items,
)
from pipeline.catalog.queries.packages import (
    DiscSummary,
    IncompleteItem,
    PackageSummary,
    incomplete_items,
    list_packages,
)

__all__ = [
    "COUNT_LIMIT",
    "MAX_PAGE",
    "MIN_PREFIX",
    "SHORT_TEXT_WINDOW",
    "AmbiguousError",
    "CaseDetail",
    "Cursor",
    "DiscSummary",
    "IncompleteItem",
    "ItemDetail",
    "ItemFilter",
    "ItemPage",
    "ItemSummary",
    "Located",
    "LogEvent",
    "LogPage",
    "OverdueGroup",
    "OverdueItem",
    "OverduePage",
    "PackageSummary",
    "case_detail",
    "count_items",
    "custody_log",
    "find_item",
    "find_summary",
    "incomplete_items",
    "item_detail",
    "items_in_stage",
    "list_items",
    "list_packages",
    "local_day",
    "locate_item",
    "overdue_groups",
    "overdue_page",
    "page_items",
    "retrievals",
    "verify_log",
]
