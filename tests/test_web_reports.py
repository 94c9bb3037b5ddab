"""The report page and its downloads, as a supervisor's browser meets them: only admins, auditors
and custodians get it (others the 403 page); the charts are inline SVG with a bar per group; a
hostile officer's name is shown as text, never as markup; a custodian not cleared for a case never
sees it named; the headings follow the reader's language; every showing is in the custody log."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from pipeline.accounts.users import add_user
from pipeline.catalog.db import dispose_engines, session_scope
from pipeline.catalog.models import CustodyEvent
from pipeline.settings import Settings
from pipeline.stage import TOOL
from pipeline.web.app import create_web_app
from tests.test_reports import GROUP_KEYS, HOSTILE, JSON_KEYS, catalogue
from tests.test_web import PASSWORD, sign_in

# account: (roles, clearances)
ACCOUNTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "aud": (("auditor",), ("privacy", "trade-secret")),
    "admin": (("admin",), ()),
    "cust": (("custodian",), ()),
    "handler": (("case-handler",), ()),
    "dock": (("dock",), ()),
}
PERIOD = {"from": "2025-09-01", "to": "2025-10-31"}
SECRET_NAMES = ("SC-3", "秘密目标", "密探")


@dataclass(frozen=True)
class World:
    app: FastAPI

    def browser(self, name: str, lang: str = "zh") -> TestClient:
        client = TestClient(self.app, base_url="https://testserver", follow_redirects=False)
        client.cookies.set("lang", lang)
        assert sign_in(client, name).status_code == 303
        return client

    def report_events(self) -> list[CustodyEvent]:
        with Session(self.app.state.engine) as session:
            query = select(CustodyEvent).where(CustodyEvent.action == "report-viewed")
            return list(session.exec(query.order_by(col(CustodyEvent.seq))).all())


@pytest.fixture
def world(settings: Settings) -> Iterator[World]:
    """The hand-built catalog of tests/test_reports.py and the accounts in ACCOUNTS."""
    app = create_web_app(settings)
    with Session(app.state.engine) as session:
        catalogue(session)
    with session_scope(app.state.engine) as session:
        for name, (roles, clearances) in ACCOUNTS.items():
            add_user(
                session,
                name=name,
                roles=roles,
                clearances=clearances,
                dock="dock1" if "dock" in roles else None,
                password=PASSWORD,
                actor="tester",
                tool=TOOL,
            )
    yield World(app)
    dispose_engines()


class TestWhoGetsReports:
    def test_only_admins_auditors_and_custodians(self, world: World) -> None:
        """A case handler and a dock get the 403 page and a 403 from the API, and nothing is
        recorded for them; the three readers get the page and both downloads."""
        for name in ("handler", "dock"):
            browser = world.browser(name)
            page = browser.get("/reports", params=PERIOD)
            assert page.status_code == 403 and "<svg" not in page.text
            assert browser.get("/reports", params={"from": "not a day"}).status_code == 403
            for form in ("json", "csv"):
                assert browser.get("/api/v1/reports", params={**PERIOD, "format": form}).status_code == 403
        assert world.report_events() == []
        for name in ("aud", "admin", "cust"):
            browser = world.browser(name)
            assert browser.get("/reports", params=PERIOD).status_code == 200, name
            assert browser.get("/api/v1/reports", params={**PERIOD, "format": "json"}).status_code == 200
            assert browser.get("/api/v1/reports", params={**PERIOD, "format": "csv"}).status_code == 200
        stranger = TestClient(world.app, base_url="https://testserver", follow_redirects=False)
        assert stranger.get("/reports").headers["location"].startswith("/login")
        assert stranger.get("/api/v1/reports").status_code == 401

    def test_every_showing_is_in_the_custody_log(self, world: World) -> None:
        """The page, the JSON and the CSV are each a ``report-viewed`` event of the reader, with the
        interface, the format, the period and the grouping."""
        browser = world.browser("aud")
        browser.get("/reports", params={**PERIOD, "by": "dock"})
        browser.get("/api/v1/reports", params={**PERIOD, "format": "csv"})
        browser.get("/api/v1/reports", params={**PERIOD, "format": "json"})
        details = [(e.actor, json.loads(e.details)) for e in world.report_events()]
        assert [(actor, d["via"], d["format"], d["by"]) for actor, d in details] == [
            ("aud", "web", "html", "dock"),
            ("aud", "api", "csv", "officer"),
            ("aud", "api", "json", "officer"),
        ]
        assert all((d["from"], d["to"]) == ("2025-09-01", "2025-10-31") for _, d in details)


class TestThePage:
    def test_charts_are_inline_svg_with_a_bar_per_group(self, world: World) -> None:
        """Three charts: a bar for each officer (four named, one unknown, one withheld), a point
        for each month, a bin for each number of working days late up to the worst."""
        page = world.browser("aud").get("/reports", params=PERIOD)
        assert page.text.count("<svg") == 3
        assert page.text.count('<g class="bar">') == 5
        assert page.text.count('class="point"') == 2
        assert page.text.count('class="bin"') == 6
        assert "Noto Sans CJK SC" in page.text
        assert " style=" not in page.text and "<style" not in page.text  # the security policy allows none

    def test_a_hostile_name_is_text(self, world: World) -> None:
        """The officer named with markup is shown escaped in the table and the chart, never run."""
        page = world.browser("cust").get("/reports", params=PERIOD)
        assert HOSTILE not in page.text and "<script>alert" not in page.text
        assert "&lt;script&gt;alert(" in page.text
        target = world.browser("cust").get("/reports", params={**PERIOD, "by": "target"})
        assert "<b>T</b>" not in target.text and "&lt;b&gt;T&lt;/b&gt;" in target.text

    def test_headings_follow_the_reader_s_language(self, world: World) -> None:
        """Chinese by default, English when chosen: headings and the review queues' names."""
        zh = world.browser("aud").get("/reports", params=PERIOD).text
        en = world.browser("aud", lang="en").get("/reports", params=PERIOD).text
        assert "执法音视频记录统计与监督报告" in zh and "按时率" in zh and "缺少案件编号" in zh
        assert "Statistics and supervision report" in en and "On-time rate" in en and "Missing case number" in en
        assert "missing.case_number" not in zh + en
        assert "校验通过的光盘映像" in zh and "Disc images verified" in en and "discs_verified" not in zh + en

    def test_retrievals_by_class_in_the_reader_s_words(self, world: World) -> None:
        """The supervision table: retrievals per class of what was retrieved, the classes named in
        the reader's language; the secret case counted under its class, never named."""
        zh = world.browser("aud").get("/reports", params=PERIOD).text
        table = zh[zh.index('class="log retrievals-by-class"') :]
        table = table[: table.index("</table>")]
        cells = re.findall(r"<td>([^<]*)</td><td class=\"number\">(\d+)</td>", table)
        assert cells == [("无", "2"), ("商业秘密", "2")]
        assert "SC-3" not in table
        en = world.browser("aud", lang="en").get("/reports", params=PERIOD).text
        assert "Trade secret" in en[en.index('class="log retrievals-by-class"') :]

    def test_a_day_that_is_not_one_is_refused_on_the_page(self, world: World) -> None:
        """A 422 page saying what is wrong, with the form kept; nothing recorded."""
        page = world.browser("aud").get("/reports", params={"from": "2025-13-01"})
        assert page.status_code == 422 and "YYYY-MM-DD" in page.text and "<svg" not in page.text
        assert world.report_events() == []

    def test_downloads_are_linked_with_the_period_and_grouping(self, world: World) -> None:
        """The page links to the CSV and JSON of the same period and grouping."""
        page = world.browser("aud").get("/reports", params={**PERIOD, "by": "month"}).text
        links = set(re.findall(r'href="(/api/v1/reports\?[^"]+)"', page))
        assert links == {
            "/api/v1/reports?from=2025-09-01&amp;to=2025-10-31&amp;by=month&amp;format=csv",
            "/api/v1/reports?from=2025-09-01&amp;to=2025-10-31&amp;by=month&amp;format=json",
        }


class TestConfidentiality:
    @pytest.mark.parametrize("by", ["officer", "case", "target"])
    def test_a_custodian_without_clearance_never_sees_the_secret_case_named(self, world: World, by: str) -> None:
        """Neither the page nor the downloads name the trade-secret case, its target or officer,
        nor count its record, for a custodian not cleared for it."""
        browser = world.browser("cust")
        page = browser.get("/reports", params={**PERIOD, "by": by}).text
        data = browser.get("/api/v1/reports", params={**PERIOD, "by": by, "format": "json"}).json()
        table = browser.get("/api/v1/reports", params={**PERIOD, "by": by, "format": "csv"}).text
        for text in (page, json.dumps(data, ensure_ascii=False), table):
            assert not any(name in text for name in SECRET_NAMES), by
        assert data["received"] == 6 and data["withheld"] == 0

    def test_an_auditor_without_a_grant_sees_it_counted_not_named(self, world: World) -> None:
        """Cleared but without a grant: counted in a withheld group of its own, never named."""
        data = world.browser("aud").get("/api/v1/reports", params={**PERIOD, "by": "case"}).json()
        assert set(data) == JSON_KEYS and all(set(g) == GROUP_KEYS for g in data["groups"])
        assert data["received"] == 7 and data["withheld"] == 1
        assert [g for g in data["groups"] if g["withheld"]] == [
            {"key": None, "received": 1, "on_time": 0, "late": 0, "working_days_late_max": None, "withheld": True}
        ]
        assert not any(name in json.dumps(data, ensure_ascii=False) for name in SECRET_NAMES)

    def test_the_csv_download_has_a_header_and_a_row_per_group(self, world: World) -> None:
        """A file to save, read by Python's csv module: a header, then one row per case."""
        answer = world.browser("cust").get("/api/v1/reports", params={**PERIOD, "by": "case", "format": "csv"})
        assert answer.headers["content-type"].startswith("text/csv")
        assert answer.headers["content-disposition"].startswith("attachment;")
        rows = list(csv.DictReader(io.StringIO(answer.text)))
        assert {r["key"]: int(r["received"]) for r in rows} == {"C1": 4, "C2": 1, "": 1}
