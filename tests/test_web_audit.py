"""The auditor's workplace and access requests, as a browser and a script meet them: only admins
and auditors read the custody log, verify it and read the retrieval history; filters and paging
find each event once; verification says whether the chain holds and is itself recorded, and names
the event an edit broke; events about records the auditor is not cleared for keep their details to
themselves; access requests are asked for, approved by an approver who is not the requester, or
denied, each step in the custody log."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlmodel import Session, col, select

from pipeline.accounts.users import add_user
from pipeline.catalog import queries
from pipeline.catalog.cases import set_classification
from pipeline.catalog.db import dispose_engines, session_scope
from pipeline.catalog.models import CustodyEvent
from pipeline.catalog.people import UserAccount
from pipeline.catalog.viewer import Viewer
from pipeline.cli.inputs import account_viewer
from pipeline.custody import check_chain
from pipeline.errors import WithheldError
from pipeline.probe.assign import assign_facts
from pipeline.runtime import open_store, probe_context
from pipeline.settings import Settings
from pipeline.stage import TOOL
from pipeline.web.app import create_web_app
from tests.test_web import PASSWORD, form_token, sign_in

SERVER = Viewer.local("root")
# name: (the item's own class, its case)
ITEMS = {"n": ("none", "A"), "t": ("trade-secret", "A"), "s": ("state-secret", "B")}
# account: (roles, clearances, approver, dock)
ACCOUNTS: dict[str, tuple[tuple[str, ...], tuple[str, ...], bool, str | None]] = {
    "aud": (("auditor",), ("privacy", "trade-secret"), False, None),
    "admin": (("admin",), (), False, None),
    "cust": (("custodian",), ("trade-secret",), False, None),
    "boss": (("custodian",), ("trade-secret",), True, None),
    "boss2": (("custodian",), ("trade-secret",), True, None),
    "handler": (("case-handler",), (), False, None),
    "dock": (("dock",), (), False, "dock1"),
}
HOSTILE = (
    "<script>alert(1)</script>",
    "%ff%fe",
    "x" * 20000,
    "\x00\x1b[31m",
    "/%2e%2e/%2e%2e/etc/passwd",
    "' OR 1=1 --",
)


@dataclass(frozen=True)
class World:
    app: FastAPI
    settings: Settings
    ids: dict[str, str]  # item name -> ID
    viewers: dict[str, Viewer]

    def browser(self, name: str) -> TestClient:
        """A browser signed in as ``name``."""
        client = TestClient(self.app, base_url="https://testserver", follow_redirects=False)
        assert sign_in(client, name).status_code == 303
        return client

    def view(self, item: str, as_name: str, times: int = 1) -> None:
        """``as_name`` opens the item's record ``times`` times (each a ``viewed`` event)."""
        for _ in range(times):
            with session_scope(self.app.state.engine) as session:
                queries.item_detail(
                    session,
                    ident=self.ids[item],
                    viewer=self.viewers[as_name],
                    via="web",
                    store=open_store(self.settings),
                    tool=TOOL,
                )

    def events(self, *actions: str) -> list[CustodyEvent]:
        with Session(self.app.state.engine) as session:
            query = select(CustodyEvent).order_by(col(CustodyEvent.seq))
            if actions:
                query = query.where(col(CustodyEvent.action).in_(actions))
            return list(session.exec(query).all())


@pytest.fixture
def world(cli, settings: Settings, media_dir: Path) -> Iterator[World]:
    """Three records (ITEMS) with their facts and classes, and the accounts in ACCOUNTS."""
    for name in ITEMS:
        dest = settings.inbox_dir / "dock1" / f"{name}.wav"
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes((media_dir / "voice.wav").read_bytes() + name.encode())
    result = cli("ingest", str(settings.inbox_dir), "--no-derive", "--json")
    assert result.exit_code == 0, result.output
    ids = {Path(str(r["path"])).stem: str(r["item"]) for r in result.records}
    probe_ctx = probe_context(settings)
    for name, (_, case) in ITEMS.items():
        facts = {"captured_at": "2025-09-30T10:00", "collector": f"officer-{name}", "case_number": case}
        assign_facts(probe_ctx, ident=ids[name], facts=facts, viewer=SERVER)
    app = create_web_app(settings)
    viewers = {}
    with session_scope(app.state.engine) as session:
        for name, (own, _) in ITEMS.items():
            set_classification(session, viewer=SERVER, item_id=ids[name], classification=own, tool=TOOL)
        for name, (roles, clearances, approver, dock) in ACCOUNTS.items():
            add_user(
                session,
                name=name,
                roles=roles,
                clearances=clearances,
                approver=approver,
                dock=dock,
                password=PASSWORD,
                actor="tester",
                tool=TOOL,
            )
    with Session(app.state.engine) as session:
        for account in session.exec(select(UserAccount)).all():
            viewers[account.name] = account_viewer(account)
    yield World(app, settings, ids, viewers)
    dispose_engines()


def api_token(page: httpx.Response) -> dict[str, str]:
    """The header a script using the browser's session sends instead of a form field."""
    return {"X-CSRF-Token": form_token(page)}


def all_events(browser: TestClient, **params: object) -> list[dict[str, Any]]:
    response = browser.get("/api/v1/audit/events", params={"limit": 500, **params})
    assert response.status_code == 200, response.text
    events: list[dict[str, Any]] = response.json()["events"]
    return events


class TestWhoMayAudit:
    def test_only_admins_and_auditors(self, world: World) -> None:
        """Custodians, case handlers and docks are refused every page and API call of the audit;
        without signing in the pages go to the sign-in page and the API answers 401."""
        for name in ("cust", "handler", "dock", "boss"):
            browser = world.browser(name)
            token = form_token(browser.get("/access"))
            answers = [
                browser.get("/audit"),
                browser.get("/audit", params={"from": "not a date"}),
                browser.get("/audit/retrievals", params={"user": "cust"}),
                browser.post("/audit/verify", data={"csrf_token": token}),
                browser.get("/api/v1/audit/events"),
                browser.get("/api/v1/audit/retrievals"),
                browser.post("/api/v1/audit/verify", headers={"X-CSRF-Token": token}),
            ]
            assert [a.status_code for a in answers] == [403] * len(answers), name
            assert 'href="/audit"' not in browser.get("/access").text
        assert world.events("audit-verified") == []
        for name in ("aud", "admin"):
            browser = world.browser(name)
            page = browser.get("/audit")
            assert page.status_code == 200 and 'href="/audit"' in page.text
            assert browser.get("/api/v1/audit/events").status_code == 200
            assert browser.get("/audit/retrievals").status_code == 200
        stranger = TestClient(world.app, base_url="https://testserver", follow_redirects=False)
        assert stranger.get("/audit").headers["location"] == "/login?next=/audit"
        assert stranger.get("/access").headers["location"] == "/login?next=/access"
        for path in ("/api/v1/audit/events", "/api/v1/audit/retrievals", "/api/v1/access-requests"):
            assert stranger.get(path).status_code == 401
        assert stranger.post("/api/v1/audit/verify").status_code == 401

    def test_forms_need_their_token(self, world: World) -> None:
        """Verify, ask, approve and deny without this session's token are refused with 403, and
        nothing is recorded."""
        auditor, boss = world.browser("aud"), world.browser("boss")
        before = len(world.events())
        assert auditor.post("/audit/verify").status_code == 403
        assert auditor.post("/api/v1/audit/verify").status_code == 403
        assert auditor.post("/audit/verify", data={"csrf_token": "z" * 43}).status_code == 403
        assert boss.post("/access", data={"item": world.ids["t"], "purpose": "x"}).status_code == 403
        assert boss.post("/api/v1/access-requests", json={"item": world.ids["t"], "purpose": "x"}).status_code == 403
        assert boss.post("/access/01ABC/approve", data={"until": "2099-01-01"}).status_code == 403
        assert boss.post("/access/01ABC/deny").status_code == 403
        assert len(world.events()) == before


class TestCustodyLog:
    def test_filters_select_the_right_events(self, world: World) -> None:
        """By user, action, item, case and time: each filter keeps exactly the events it names."""
        world.view("n", "cust", times=2)
        world.view("n", "boss")
        auditor = world.browser("aud")
        everything = all_events(auditor)
        assert [e["seq"] for e in everything] == sorted((e["seq"] for e in everything), reverse=True)
        viewed = all_events(auditor, action="viewed")
        assert len(viewed) == 3 and {e["action"] for e in viewed} == {"viewed"}
        by_cust = all_events(auditor, user="cust")
        assert len(by_cust) >= 2 and {e["actor"] for e in by_cust} == {"cust"}
        of_n = all_events(auditor, item=world.ids["n"])
        assert {e["target"] for e in of_n} == {f"item:{world.ids['n']}"}
        assert {"ingested", "assigned", "viewed"} <= {str(e["action"]) for e in of_n}
        of_case = {str(e["target"]) for e in all_events(auditor, case="A")}
        assert of_case == {f"item:{world.ids['n']}", f"item:{world.ids['t']}", "case:A"}
        assert all_events(auditor, case="no such case") == []
        now = datetime.now(UTC)
        assert all_events(auditor, **{"from": (now + timedelta(hours=1)).isoformat()}) == []
        assert all_events(auditor, to=(now - timedelta(days=1)).isoformat()) == []
        today = now.astimezone(ZoneInfo(world.settings.timezone)).date().isoformat()
        assert len(all_events(auditor, **{"from": today, "to": today})) == len(everything)
        combined = all_events(auditor, user="cust", action="viewed", item=world.ids["n"])
        assert len(combined) == 2
        page = auditor.get("/audit", params={"user": "boss", "action": "viewed"})
        assert page.status_code == 200
        assert page.text.count("<code>viewed</code>") == 1 and world.ids["n"] in page.text

    def test_times_are_shown_in_the_site_zone_as_the_filters_read_them(self, world: World) -> None:
        """The page shows each event's time in the site's zone (named in the column), the same zone
        its from/to filters read: a time copied from the page selects the event again."""
        world.view("n", "cust")
        auditor = world.browser("aud")
        [latest] = all_events(auditor, user="cust", action="viewed")[:1]
        at = datetime.fromisoformat(str(latest["at"]))
        local = at.astimezone(ZoneInfo(world.settings.timezone)).strftime("%Y-%m-%d %H:%M:%S")
        page = auditor.get("/audit", params={"user": "cust", "action": "viewed"})
        assert f">{local}</time>" in page.text and f"({world.settings.timezone})" in page.text
        assert " UTC</time>" not in page.text
        again = all_events(auditor, user="cust", action="viewed", **{"from": local.replace(" ", "T"), "to": local[:10]})
        assert latest["seq"] in [e["seq"] for e in again]

    def test_paging_returns_each_event_once(self, world: World) -> None:
        """Following ``next_before`` page after page yields every event once, newest first, and
        an event recorded meanwhile does not shift the pages."""
        world.view("n", "cust", times=4)
        auditor = world.browser("aud")
        expected = [e["seq"] for e in all_events(auditor)]
        seen: list[object] = []
        before = None
        while True:
            params = {"limit": 3, **({"before": before} if before else {})}
            answer = auditor.get("/api/v1/audit/events", params=params).json()
            assert len(answer["events"]) <= 3
            seen.extend(e["seq"] for e in answer["events"])
            if len(seen) == 3:
                world.view("n", "cust")  # newer than the first page: not on the later ones
            before = answer["next_before"]
            if before is None:
                break
        assert seen == expected and len(set(seen)) == len(seen)
        # the pages show a link to the older events, which carries the filters
        world.view("n", "boss", times=101)
        page = auditor.get("/audit", params={"user": "boss"})
        found = re.search(r'rel="next" href="/audit\?user=boss&amp;before=(\d+)"', page.text)
        assert found, "no link to the older events"
        older = auditor.get(f"/audit?user=boss&before={found.group(1)}")
        assert older.status_code == 200 and "<code>viewed</code>" in older.text

    def test_events_about_records_the_auditor_may_not_see_keep_their_details(self, world: World) -> None:
        """An auditor not cleared for state secrets sees the events about such a record (target,
        actor, action) without details; about a trade secret they hold no grant for, only how it
        was retrieved, never its facts; everything about an open record. An admin without a
        content role sees no record's details."""
        auditor = world.browser("aud")
        by_target = {}
        for event in all_events(auditor, action="assigned"):
            by_target[event["target"]] = event
        hidden = by_target[f"item:{world.ids['s']}"]
        assert hidden["details"] == {} and hidden["redacted"] is True
        withheld = by_target[f"item:{world.ids['t']}"]
        assert "changes" not in withheld["details"] and withheld["redacted"] is True
        shown = by_target[f"item:{world.ids['n']}"]
        assert "officer-n" in json.dumps(shown["details"]) and shown["redacted"] is False
        page = auditor.get("/audit", params={"item": world.ids["s"]}).text
        assert world.ids["s"] in page and "officer-s" not in page and "B" not in re.findall(r"<td>(\w)</td>", page)
        assert "officer-t" not in auditor.get("/audit", params={"case": "A"}).text
        assert "officer-n" in auditor.get("/audit", params={"case": "A"}).text
        # not cleared for case B: the items of B are not found through it
        assert {e["target"] for e in all_events(auditor, case="B")} == {"case:B"}
        admin = world.browser("admin")
        item_events = [e for e in all_events(admin) if str(e["target"]).startswith("item:")]
        assert item_events and all(e["details"] == {} for e in item_events)
        assert "officer-" not in admin.get("/audit").text


class TestVerify:
    def test_verify_shows_ok_with_the_head_and_is_recorded(self, world: World) -> None:
        auditor = world.browser("aud")
        with Session(world.app.state.engine) as session:
            chain = check_chain(session)
        page = auditor.get("/audit")
        answer = auditor.post("/audit/verify", data={"csrf_token": form_token(page)})
        assert answer.status_code == 200
        assert 'data-verdict="ok"' in answer.text and chain.head in answer.text
        assert f"<dd>{chain.events}</dd>" in answer.text
        recorded = world.events("audit-verified")
        assert len(recorded) == 1 and recorded[0].actor == "aud"
        assert json.loads(recorded[0].details) | {"client": None} == {
            "head": chain.head,
            "count": chain.events,
            "ok": True,
            "client": None,
        }
        again = auditor.post("/api/v1/audit/verify", headers=api_token(page)).json()
        assert again["ok"] is True and again["events"] == chain.events + 1 and again["broken_at"] is None
        assert "英文" not in answer.text and "保管链日志校验" in answer.text

    def test_an_edited_event_breaks_the_chain_at_its_number(self, world: World) -> None:
        """After one row's details are changed in the database, verification says broken at that
        event, with how many verified before it, and records that too."""
        world.view("n", "cust")
        target = world.events("viewed")[-1].seq
        assert target is not None
        with world.app.state.engine.begin() as connection:
            connection.execute(
                text(f"UPDATE {CustodyEvent.__tablename__} SET details = :d WHERE seq = :s"),
                {"d": '{"via":"web","purpose":"forged"}', "s": target},
            )
        auditor = world.browser("aud")
        page = auditor.get("/audit", headers={"Accept-Language": "en"})
        answer = auditor.post("/audit/verify", data={"csrf_token": form_token(page)}, headers={"Accept-Language": "en"})
        assert answer.status_code == 200
        assert 'data-verdict="broken"' in answer.text and 'data-verdict="ok"' not in answer.text
        assert f"breaks at event {target}" in answer.text
        recorded = json.loads(world.events("audit-verified")[-1].details)
        assert recorded["ok"] is False and recorded["broken_at"] == target
        api = auditor.post("/api/v1/audit/verify", headers=api_token(page)).json()
        assert api["ok"] is False and api["broken_at"] == target and api["events"] == target - 1


class TestRetrievals:
    def test_history_per_item_and_per_user(self, world: World) -> None:
        """The views just made are listed for the item and for the user who made them."""
        world.view("n", "cust", times=2)
        world.view("n", "boss")
        auditor = world.browser("aud")
        of_item = auditor.get("/api/v1/audit/retrievals", params={"item": world.ids["n"]}).json()["events"]
        assert [e["actor"] for e in of_item] == ["boss", "cust", "cust"]
        assert all(e["details"]["via"] == "web" for e in of_item)
        by_user = auditor.get("/api/v1/audit/retrievals", params={"user": "cust"}).json()["events"]
        assert len(by_user) == 2 and {e["target"] for e in by_user} == {f"item:{world.ids['n']}"}
        page = auditor.get("/audit/retrievals", params={"user": "boss"})
        assert page.status_code == 200 and world.ids["n"] in page.text and page.text.count("<code>viewed</code>") == 1
        assert "login" not in re.findall(r"<code>([a-z-]+)</code>", page.text)
        by_item_page = auditor.get("/audit/retrievals", params={"item": world.ids["n"]})
        assert by_item_page.text.count("<code>viewed</code>") == 3


class TestHostileFilters:
    def test_never_fail_and_are_shown_escaped(self, world: World) -> None:
        auditor = world.browser("aud")
        for value in HOSTILE:
            for path in ("/audit", "/audit/retrievals", "/api/v1/audit/events", "/api/v1/audit/retrievals"):
                keys = ("user", "action", "item", "case", "from", "to", "before") if len(value) < 100 else ("user",)
                params = dict.fromkeys(keys, value)
                response = auditor.get(path, params=params)
                assert response.status_code in (200, 422), (path, value[:20], response.status_code)
                assert "<script>alert" not in response.text
            for name in ("user", "item", "case", "action"):
                response = auditor.get("/audit", params={name: value})
                assert response.status_code in (200, 422), (name, value[:20])
                assert "<script>alert" not in response.text
        shown = auditor.get("/audit", params={"user": HOSTILE[0]})
        assert shown.status_code == 200 and 'value="&lt;script&gt;alert(1)&lt;/script&gt;"' in shown.text
        odd = auditor.get("/audit", params={"from": "<b>yesterday</b>"})
        assert odd.status_code == 422 and "&lt;b&gt;yesterday&lt;/b&gt;" in odd.text
        boss = world.browser("boss")
        token = form_token(boss.get("/access"))
        for value in HOSTILE[:4]:
            made = boss.post("/access", data={"csrf_token": token, "item": value, "purpose": value})
            assert made.status_code in (404, 422), value[:20]
            assert "<script>alert" not in made.text
            assert boss.post(f"/access/{quote(value[:100], safe='')}/deny", data={"csrf_token": token}).status_code in (
                404,
                405,
            )
        assert boss.get("/access", params={"status": HOSTILE[0]}).status_code == 422


class TestAccessRequests:
    def test_request_approve_use_and_deny(self, world: World) -> None:
        """A cleared custodian asks for a trade-secret record with a purpose; the requester may not
        approve a request of their own; another approver grants it until a time; the record then
        opens to the requester; a denial works too; every step is a custody event."""
        cust, boss, aud = world.browser("cust"), world.browser("boss"), world.browser("aud")
        form = cust.get("/access/new", params={"item": world.ids["t"]})
        assert form.status_code == 200 and f'value="{world.ids["t"]}"' in form.text
        asked = cust.post(
            "/access", data={"csrf_token": form_token(form), "item": world.ids["t"], "purpose": "核对账目"}
        )
        assert asked.status_code == 303 and asked.headers["location"] == "/access"
        mine = cust.get("/api/v1/access-requests").json()["requests"]
        assert len(mine) == 1 and mine[0]["status"] == "pending" and mine[0]["purpose"] == "核对账目"
        request_id = mine[0]["request"]
        listing = cust.get("/access")
        assert "核对账目" in listing.text and f"/access/{request_id}/approve" not in listing.text
        # the requester holds no approver right: refused by the service layer, not only the page
        token = form_token(listing)
        until = (datetime.now(ZoneInfo(world.settings.timezone)) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
        assert cust.post(f"/access/{request_id}/approve", data={"csrf_token": token, "until": until}).status_code == 403
        with session_scope(world.app.state.engine) as session, pytest.raises(WithheldError):
            queries.item_detail(
                session,
                ident=world.ids["t"],
                viewer=world.viewers["cust"],
                via="web",
                store=open_store(world.settings),
                tool=TOOL,
            )
        # an approver asking for access may not grant it to themselves
        boss_page = boss.get("/access")
        boss_token = form_token(boss_page)
        assert f"/access/{request_id}/approve" in boss_page.text
        own = boss.post(
            "/api/v1/access-requests", json={"item": world.ids["t"], "purpose": "自查"}, headers=api_token(boss_page)
        )
        assert own.status_code == 201
        own_id = own.json()["request"]
        assert f"/access/{own_id}/approve" not in boss.get("/access").text
        refused = boss.post(f"/access/{own_id}/approve", data={"csrf_token": boss_token, "until": until})
        assert refused.status_code == 403 and "own request" in refused.text
        assert (
            boss.post(
                f"/api/v1/access-requests/{own_id}/approve", json={"until": until}, headers=api_token(boss_page)
            ).status_code
            == 403
        )
        # another approver grants the custodian's request with a window
        granted = boss.post(
            f"/access/{request_id}/approve", data={"csrf_token": boss_token, "until": until, "note": "限两日"}
        )
        assert granted.status_code == 303
        decided = {r["request"]: r for r in cust.get("/api/v1/access-requests").json()["requests"]}[request_id]
        assert decided["status"] == "approved" and decided["decided_by"] == "boss" and decided["in_force"] is True
        assert decided["valid_until"].startswith(
            datetime.strptime(until, "%Y-%m-%dT%H:%M")
            .replace(tzinfo=ZoneInfo(world.settings.timezone))
            .astimezone(UTC)
            .strftime("%Y-%m-%dT%H:%M")
        )
        world.view("t", "cust")  # no longer withheld
        # the other approver denies the boss's own request, by the API
        boss2 = world.browser("boss2")
        denied = boss2.post(
            f"/api/v1/access-requests/{own_id}/deny", json={"note": "无需"}, headers=api_token(boss2.get("/access"))
        )
        assert denied.status_code == 200 and denied.json()["status"] == "denied"
        again = boss2.post(f"/access/{own_id}/deny", data={"csrf_token": form_token(boss2.get("/access"))})
        assert again.status_code == 409
        assert (
            boss2.post(
                "/access/01NOSUCHREQUEST/deny", data={"csrf_token": form_token(boss2.get("/access"))}
            ).status_code
            == 404
        )
        # the auditor sees both requests and their outcomes; the approve buttons are not theirs
        seen = aud.get("/access")
        assert "核对账目" in seen.text and "自查" in seen.text and "/approve" not in seen.text
        actions = [
            e.action for e in world.events("access-requested", "access-approved", "access-denied", "access-used")
        ]
        assert sorted(actions) == sorted(
            ["access-requested", "access-requested", "access-approved", "access-denied", "access-used"]
        )
        used = all_events(aud, action="access-used")
        assert used[0]["actor"] == "cust" and used[0]["details"]["purpose"] == "核对账目"
        retrieved = aud.get("/api/v1/audit/retrievals", params={"item": world.ids["t"]}).json()["events"]
        assert {e["action"] for e in retrieved} == {"viewed", "access-used"}

    def test_a_window_that_cannot_be_granted_is_refused(self, world: World) -> None:
        cust, boss = world.browser("cust"), world.browser("boss")
        page = cust.get("/access")
        made = cust.post(
            "/api/v1/access-requests", json={"item": world.ids["t"], "purpose": "x"}, headers=api_token(page)
        )
        request_id = made.json()["request"]
        token = form_token(boss.get("/access"))
        for until in ("", "yesterday", "2000-01-01", (datetime.now(UTC) + timedelta(days=60)).date().isoformat()):
            answer = boss.post(f"/access/{request_id}/approve", data={"csrf_token": token, "until": until})
            assert answer.status_code == 422, until
        assert (
            cust.post(
                "/api/v1/access-requests", json={"item": world.ids["n"], "purpose": "x"}, headers=api_token(page)
            ).status_code
            == 422
        )
        assert (
            cust.post(
                "/api/v1/access-requests", json={"item": world.ids["s"], "purpose": "x"}, headers=api_token(page)
            ).status_code
            == 404
        )
        blank = cust.post("/access", data={"csrf_token": form_token(page), "item": world.ids["t"], "purpose": "  "})
        assert blank.status_code == 422 and "purpose" in blank.text
