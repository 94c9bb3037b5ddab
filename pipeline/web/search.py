"""The catalog search as the API and the pages take it: the same query parameters (``case``,
``target``, ``officer``, ``dock``, ``late``, ``missing``, ``issue``, ``from``, ``to``, ``kind``,
``class``, ``q``) read into an :class:`~pipeline.catalog.queries.ItemFilter`, the review queues as
saved searches, and the probe context that facts set by hand are assessed with (made once per
application)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode
from zoneinfo import ZoneInfo

from starlette.requests import Request

from pipeline.catalog.models import REQUIRED_FACTS
from pipeline.catalog.queries import ItemFilter, local_day
from pipeline.errors import InvalidValueError
from pipeline.runtime import probe_context
from pipeline.settings import Settings
from pipeline.stage import issues

if TYPE_CHECKING:
    from pipeline.probe.stage import ProbeContext

# Query parameter -> field of SearchForm (``from`` and ``class`` are Python keywords).
PARAMETERS = {
    "case": "case",
    "target": "target",
    "officer": "officer",
    "dock": "dock",
    "late": "late",
    "missing": "missing",
    "issue": "issue",
    "from": "date_from",
    "to": "date_to",
    "kind": "kind",
    "class": "classification",
    "q": "q",
}
YES = ("1", "true", "yes", "on")
NO = ("", "0", "false", "no", "off")
KINDS = ("video", "audio", "image", "other")
CLASSES = ("unclassified", "none", "privacy", "trade-secret", "state-secret")


@dataclass(frozen=True)
class SearchForm:
    """The search as given: each parameter's text, as the form shows it back."""

    case: str = ""
    target: str = ""
    officer: str = ""
    dock: str = ""
    late: str = ""
    missing: str = ""
    issue: str = ""
    date_from: str = ""
    date_to: str = ""
    kind: str = ""
    classification: str = ""
    q: str = ""

    @classmethod
    def of(cls, params: Mapping[str, str]) -> SearchForm:
        """The search in ``params`` (a request's query parameters); others are ignored."""
        return cls(**{field: str(params.get(name, "")).strip() for name, field in PARAMETERS.items()})

    @classmethod
    def parse(cls, query: str) -> SearchForm:
        """The search in a query string (``a=1&b=2``)."""
        return cls.of(dict(parse_qsl(query[:8000], keep_blank_values=False)))

    @property
    def given(self) -> bool:
        return any(getattr(self, f.name) for f in fields(self))

    def query(self) -> str:
        """The query string of the search (parameters given only)."""
        return urlencode([(name, getattr(self, field)) for name, field in PARAMETERS.items() if getattr(self, field)])

    def filters(self, zone: ZoneInfo) -> ItemFilter:
        """The search as filters; :class:`InvalidValueError` for a value that cannot be used."""
        late = self.late.lower()
        if late not in YES + NO:
            raise InvalidValueError("late: give true or false")
        codes = tuple(code.strip() for code in self.issue.split(",") if code.strip())
        return ItemFilter(
            case_number=self.case or None,
            target=self.target or None,
            officer=self.officer or None,
            dock=self.dock or None,
            late=late in YES,
            missing=self.missing or None,
            issues=codes,
            captured_from=local_day(self.date_from, zone, end=False) if self.date_from else None,
            captured_to=local_day(self.date_to, zone, end=True) if self.date_to else None,
            media_kind=self.kind or None,
            classification=self.classification or None,
            text=self.q or None,
        )


@dataclass(frozen=True)
class Queue:
    """A review queue: a saved search, named by ``key`` (``queue.<key>`` in the translations)."""

    key: str
    search: SearchForm


QUEUES: tuple[Queue, ...] = (
    *(Queue(f"missing.{fact}", SearchForm(missing=fact)) for fact in REQUIRED_FACTS),
    Queue("late", SearchForm(late="1")),
    Queue("damaged", SearchForm(issue=f"{issues.DAMAGED_MEDIA},{issues.TRUNCATED_STREAM}")),
    Queue("clock_drift", SearchForm(issue=issues.CLOCK_DRIFT)),
    Queue("provisional", SearchForm(issue=issues.DEADLINE_PROVISIONAL)),
    Queue("fixity", SearchForm(issue=f"{issues.FIXITY_MISMATCH},{issues.FIXITY_MISSING}")),
    Queue("unclassified", SearchForm(classification="unclassified")),
)


def queue_of(search: SearchForm) -> Queue | None:
    """The review queue ``search`` is, if it is one."""
    return next((queue for queue in QUEUES if queue.search == search), None)


def probe_ctx(request: Request) -> ProbeContext:
    """The application's probe context (made at first use, then kept on ``app.state``)."""
    found: ProbeContext | None = getattr(request.app.state, "probe_context", None)
    if found is None:
        settings: Settings = request.app.state.settings
        found = probe_context(settings)
        request.app.state.probe_context = found
    return found
