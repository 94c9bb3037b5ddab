"""The custodian's catalog on the web, as a script and a browser meet it: the items API (filters,
free text, pages by cursor, the whole record, facts and class set by PATCH), the search, queue and
item pages with their forms; every view recorded, nothing of a class the user is not cleared for
ever shown or counted, and hostile input shown escaped."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from pipeline.accounts.users import add_user
from pipeline.catalog.cases import assign_case_member, set_classification
from pipeline.catalog.db import dispose_engines, session_scope
from pipeline.catalog.models import CustodyEvent
from pipeline.catalog.viewer import Viewer
from pipeline.probe.assign import assign_facts
from pipeline.runtime import probe_context
from pipeline.settings import Settings
from pipeline.stage import TOOL
from pipeline.web.app import create_web_app
from tests.test_web import PASSWORD, form_token, sign_in

SERVER = Viewer.local("root")
ALL = ("privacy", "trade-secret", "state-secret")
# name: (class, facts)
ITEMS: dict[str, tuple[str, dict[str, str]]] = {
    "n1": ("none", {"case_number": "C1", "collector": "officer-1", "proof_object": "The Bridge"}),
    "n2": ("none", {"case_number": "C1", "collector": "officer-2", "captured_place": "Main Street 100%"}),
    "n3": ("none", {"case_number": "C1", "collector": "officer-1"}),
    "n4": ("none", {"case_number": "C2", "collector": "officer-3"}),
    "n5": ("none", {"case_number": "C2", "collector": "officer_3"}),
    "u": ("unclassified", {"collector": "officer-1"}),
    "p": ("privacy", {"case_number": "C1", "collector": "officer-9", "captured_place": "Home of a witness"}),
    "s": ("state-secret", {"case_number": "C3", "collector": "agent-x", "captured_place": "Secret Base"}),
}
# account: (roles, clearances)
ACCOUNTS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "cust": (("custodian",), ()),
    "custall": (("custodian",), ALL),
    "aud": (("auditor",), ALL),
    "handler": (("case-handler",), ALL),
    "admin": (("admin",), ALL),
}
PLAIN = {"n1", "n2", "n3", "n4", "n5", "u"}  # what ``cust`` may know exists
HOSTILE = ["x" * 5000, "<script>alert(1)</script>", "%ff", "' OR 1=1 --", "\u202e\u0000", "..%2f..", "%", "_"]
FILTERS = ["case", "target", "officer", "dock", "late", "missing", "issue", "from", "to", "kind", "class", "q"]


@dataclass(frozen=True)
class World:
    app: FastAPI
    ids: dict[str, str]

    def name_of(self, item_id: str) -> str:
        return {v: k for k, v in self.ids.items()}[item_id]

    def browser(self, name: str) -> TestClient:
        client = TestClient(self.app, base_url="https://testserver", follow_redirects=False)
        assert sign_in(client, name).status_code == 303
        return client


@pytest.fixture
def world(cli, settings: Settings, media_dir: Path) -> Iterator[World]:
    """The records of ITEMS (late audio, with their facts and classes) and the accounts of ACCOUNTS."""
    for name in ITEMS:
        dest = settings.inbox_dir / "dock1" / f"{name}.wav"
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes((media_dir / "voice.wav").read_bytes() + name.encode())
    result = cli("ingest", str(settings.inbox_dir), "--no-derive", "--json")
    assert result.exit_code == 0, result.output
    ids = {Path(str(r["path"])).stem: str(r["item"]) for r in result.records}
    ctx = probe_context(settings)
    for name, (_, facts) in ITEMS.items():
        assign_facts(ctx, ident=ids[name], facts={"captured_at": "2025-09-30T10:00", **facts}, viewer=SERVER)
    app = create_web_app(settings)
    with session_scope(app.state.engine) as session:
        for name, (own, _) in ITEMS.items():
            if own != "unclassified":
                set_classification(session, viewer=SERVER, item_id=ids[name], classification=own, tool=TOOL)
        for account, (roles, clearances) in ACCOUNTS.items():
            add_user(session, name=account, roles=roles, clearances=clearances, password=PASSWORD, actor="t", tool=TOOL)
        session.flush()
        assign_case_member(session, viewer=SERVER, case_number="C2", user_name="handler", tool=TOOL)
    yield World(app, ids)
    dispose_engines()


def events(world: World, action: str) -> list[CustodyEvent]:
    with Session(world.app.state.engine) as session:
        query = select(CustodyEvent).where(CustodyEvent.action == action).order_by(CustodyEvent.seq)  # type: ignore[arg-type]
        return list(session.exec(query).all())


def listed(world: World, client: TestClient, query: str = "") -> tuple[list[str], int]:
    response = client.get(f"/api/v1/items?{query}")
    assert response.status_code == 200, response.text
    body = response.json()
    return [world.name_of(item["id"]) for item in body["items"]], body["count"]


class TestItemsApi:
    def test_filters_select_and_count(self, world: World) -> None:
        """Each filter narrows the list, and the count is of what the filters select."""
        cust = world.browser("cust")
        assert listed(world, cust) == (sorted(PLAIN, key=lambda n: list(ITEMS).index(n)), 6)
        assert set(listed(world, cust, "case=C1")[0]) == {"n1", "n2", "n3"}
        assert listed(world, cust, "case=C1")[1] == 3
        assert set(listed(world, cust, "officer=officer-1")[0]) == {"n1", "n3", "u"}
        assert listed(world, cust, "missing=case_number")[0] == ["u"]
        assert listed(world, cust, "class=unclassified")[0] == ["u"]
        assert listed(world, cust, "class=none")[1] == 5
        assert listed(world, cust, "kind=audio")[1] == 6
        assert listed(world, cust, "kind=video")[1] == 0
        assert listed(world, cust, "dock=dock1&case=C2")[1] == 2
        assert listed(world, cust, "late=true")[1] == 6
        assert listed(world, cust, "from=2025-09-30&to=2025-09-30")[1] == 6
        assert listed(world, cust, "from=2025-10-01")[1] == 0
        assert listed(world, cust, "issue=missing-case-number")[0] == ["u"]
        assert listed(world, cust, "issue=clock-drift,missing-case-number")[0] == ["u"]
        first = cust.get("/api/v1/items?case=C1").json()["items"][0]
        assert {"id", "sha256", "original_name", "case_number", "classification", "withheld"} <= set(first)

    def test_free_text_ignores_case_and_takes_wildcards_literally(self, world: World) -> None:
        cust = world.browser("cust")
        assert listed(world, cust, "q=bRIDGE")[0] == ["n1"]
        assert listed(world, cust, "q=main street")[0] == ["n2"]
        assert listed(world, cust, "q=C2")[1] == 2
        assert listed(world, cust, "q=n3.wav")[0] == ["n3"]
        assert listed(world, cust, "q=" + quote("100%"))[0] == ["n2"]
        assert listed(world, cust, "q=" + quote("%"))[0] == ["n2"]
        assert listed(world, cust, "q=officer_")[0] == ["n5"]
        assert listed(world, cust, "q=" + quote("' OR 1=1 --"))[1] == 0

    def test_three_pages_give_every_item_once_in_order(self, world: World) -> None:
        """Paging by cursor walks the whole listing once, oldest first, the count staying the total."""
        cust = world.browser("cust")
        everything, total = listed(world, cust, "limit=500")
        seen: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            response = cust.get("/api/v1/items", params={"limit": 2, **({"cursor": cursor} if cursor else {})})
            body = response.json()
            assert body["count"] == total == 6
            seen += [world.name_of(item["id"]) for item in body["items"]]
            pages += 1
            cursor = body["next"]
            if cursor is None:
                break
            assert re.fullmatch(r"[A-Za-z0-9_-]+", cursor)
        assert pages == 3
        assert seen == everything

    def test_a_malformed_cursor_is_422(self, world: World) -> None:
        cust = world.browser("cust")
        for cursor in [
            "!!!",
            "abc",
            "YXxub3R8YXRpbWU",
            "x" * 300,
            "Ynx8",
            "YXwyMDI1LTEwLTAxVDAwOjAwOjAwfGlk%2Fx",
            "%ff",
        ]:
            response = cust.get(f"/api/v1/items?cursor={cursor}")
            assert response.status_code == 422, (cursor, response.text)
            assert cust.get(f"/items?cursor={cursor}").status_code == 422

    def test_limit_is_bounded(self, world: World) -> None:
        cust = world.browser("cust")
        for limit in ("0", "501", "-1", "many"):
            assert cust.get(f"/api/v1/items?limit={limit}").status_code == 422

    def test_an_uncleared_viewer_never_meets_those_records(self, world: World) -> None:
        """Not in the list, the count, the record (404) nor a search by the text of their facts."""
        cust = world.browser("cust")
        names, count = listed(world, cust, "limit=500")
        assert set(names) == PLAIN and count == 6
        for name in ("p", "s"):
            assert cust.get(f"/api/v1/items/{world.ids[name]}").status_code == 404
            assert cust.get(f"/items/{world.ids[name]}").status_code == 404
        for text in ("witness", "Secret Base", "agent-x", "officer-9"):
            assert listed(world, cust, f"q={quote(text)}") == ([], 0)
        assert listed(world, cust, "case=C3") == ([], 0)
        assert listed(world, cust, "class=state-secret") == ([], 0)

    def test_a_withheld_record_is_listed_by_id_and_class_and_not_searched(self, world: World) -> None:
        custall = world.browser("custall")
        body = custall.get("/api/v1/items?class=state-secret").json()
        assert body["count"] == 1
        (shown,) = body["items"]
        assert shown["withheld"] is True and shown["original_name"] is None and shown["case_number"] is None
        assert listed(world, custall, "q=Secret") == ([], 0)
        assert custall.get(f"/api/v1/items/{world.ids['s']}").status_code == 403

    def test_each_role_sees_what_the_catalog_gives_it(self, world: World) -> None:
        """A case handler sees the records of their cases, without forms; an admin sees none."""
        handler = world.browser("handler")
        assert set(listed(world, handler, "limit=500")[0]) == {"n4", "n5"}
        assert listed(world, handler, "q=officer")[1] == 2
        assert handler.get(f"/api/v1/items/{world.ids['n1']}").status_code == 404
        page = handler.get(f"/items/{world.ids['n4']}")
        assert page.status_code == 200 and "/facts" not in page.text and 'href="/items"' in page.text
        assert handler.patch(f"/api/v1/items/{world.ids['n4']}", json={"classification": "none"}).status_code == 403
        admin = world.browser("admin")
        assert listed(world, admin) == ([], 0)
        assert admin.get(f"/api/v1/items/{world.ids['n1']}").status_code == 404
        assert 'href="/items"' not in admin.get("/").text
        assert 'href="/queues"' in world.browser("aud").get("/").text

    def test_the_record_is_what_the_command_line_shows(self, world: World, cli) -> None:
        cust = world.browser("cust")
        record = cust.get(f"/api/v1/items/{world.ids['n1']}").json()
        shown = json.loads(cli("item", world.ids["n1"], "--json").output)
        assert set(record) == set(shown)
        assert record["facts"] == shown["facts"] and record["candidates"] == shown["candidates"]
        assert record["facts"]["proof_object"]["value"] == "The Bridge"

    def test_every_view_is_recorded_with_client_and_purpose(self, world: World) -> None:
        custall = world.browser("custall")
        before = len(events(world, "viewed"))
        assert custall.get(f"/api/v1/items/{world.ids['n1']}?purpose=case review").status_code == 200
        assert custall.get(f"/api/v1/items/{world.ids['n2']}", headers={"X-Purpose": "audit 7"}).status_code == 200
        assert custall.get(f"/items/{world.ids['n3']}").status_code == 200
        assert custall.get(f"/api/v1/items/{world.ids['p']}").status_code == 403  # no purpose: not shown, not logged
        assert custall.get(f"/api/v1/items/{world.ids['p']}?purpose=hearing").status_code == 200
        viewed = events(world, "viewed")[before:]
        assert len(viewed) == 4
        details = [json.loads(e.details) for e in viewed]
        assert all(d["client"] == "testclient" and d["via"] == "web" for d in details)
        assert [d.get("purpose") for d in details] == ["case review", "audit 7", None, "hearing"]
        assert {e.actor for e in viewed} == {"custall"}
        assert [e.target for e in viewed] == [f"item:{world.ids[n]}" for n in ("n1", "n2", "n3", "p")]


class TestChanges:
    def test_patch_sets_facts_and_class_with_old_and_new(self, world: World) -> None:
        custall = world.browser("custall")
        response = custall.patch(
            f"/api/v1/items/{world.ids['u']}?purpose=fixing",
            json={"facts": {"case_number": "C9", "proof_object": "收费站"}, "classification": "privacy"},
        )
        assert response.status_code == 200, response.text
        record = response.json()
        assert record["case_number"] == "C9" and record["classification"] == "privacy"
        assert record["facts"]["proof_object"] == {"value": "收费站", "source": "manual:custall"}
        (assigned,) = events(world, "assigned")[-1:]
        changes = json.loads(assigned.details)["changes"]
        assert changes["case_number"] == {"old": None, "new": "C9"}
        assert changes["proof_object"] == {"old": None, "new": "收费站"}
        (classified,) = events(world, "classified")[-1:]
        assert json.loads(classified.details)["classification"] == {"old": "unclassified", "new": "privacy"}
        assert assigned.actor == classified.actor == "custall"

    def test_patch_one_part_and_refusals(self, world: World) -> None:
        cust = world.browser("cust")
        url = f"/api/v1/items/{world.ids['n1']}"
        assert cust.patch(url, json={"classification": "none"}).status_code == 200
        assert cust.patch(url, json={"facts": {"collector": "officer-7"}}).json()["collector"] == "officer-7"
        assert cust.patch(url, json={"classification": "secret-ish"}).status_code == 422
        assert cust.patch(url, json={"facts": {"colour": "red"}}).status_code == 422
        assert cust.patch(url, json={"facts": {"captured_at": "2999-01-01T00:00"}}).status_code == 422
        assert cust.patch(url, json={}).status_code == 422
        assert cust.patch(url, json={"classification": "state-secret"}).status_code == 403  # not cleared
        assert cust.patch(f"/api/v1/items/{world.ids['s']}", json={"classification": "none"}).status_code == 404

    def test_an_auditor_may_not_change(self, world: World) -> None:
        aud = world.browser("aud")
        url = f"/api/v1/items/{world.ids['n1']}"
        assert aud.patch(url, json={"facts": {"collector": "me"}}).status_code == 403
        assert aud.patch(url, json={"classification": "privacy"}).status_code == 403
        page = aud.get(f"/items/{world.ids['n1']}")
        assert page.status_code == 200
        assert "/facts" not in page.text and "/classification" not in page.text
        token = form_token(page)
        refused = aud.post(f"/items/{world.ids['n1']}/facts", data={"csrf_token": token, "collector": "me"})
        assert refused.status_code == 403

    def test_page_forms_need_their_token(self, world: World) -> None:
        cust = world.browser("cust")
        item = world.ids["n1"]
        for path, data in (
            (f"/items/{item}/facts", {"collector": "x"}),
            (f"/items/{item}/classification", {"classification": "none"}),
            (f"/items/{item}/purpose", {"purpose": "x"}),
        ):
            assert cust.post(path, data=data).status_code == 403
            assert cust.post(path, data={**data, "csrf_token": "f" * 43}).status_code == 403
        changed = [json.loads(e.details)["changes"] for e in events(world, "assigned")]
        assert not [c for c in changed if c.get("collector", {}).get("new") == "x"]

    def test_the_forms_set_facts_and_class_and_come_back(self, world: World) -> None:
        cust = world.browser("cust")
        item = world.ids["u"]
        page = cust.get(f"/items/{item}?missing=case_number")
        token = form_token(page)
        done = cust.post(
            f"/items/{item}/facts", data={"csrf_token": token, "case_number": "C7", "queue": "missing=case_number"}
        )
        assert done.status_code == 303
        assert done.headers["location"] == f"/items/{item}?missing=case_number&notice=facts"
        back = cust.get(done.headers["location"])
        assert "C7" in back.text and 'role="status"' in back.text
        done = cust.post(f"/items/{item}/classification", data={"csrf_token": token, "classification": "none"})
        assert done.headers["location"] == f"/items/{item}?notice=classified"
        assert listed(world, cust, "class=unclassified") == ([], 0)


class TestPages:
    def test_search_page_counts_and_pages(self, world: World) -> None:
        cust = world.browser("cust")
        page = cust.get("/items?case=C1", headers={"Accept-Language": "en"})
        assert page.status_code == 200
        assert "3 records found" in page.text
        for name in ("n1", "n2", "n3"):
            assert world.ids[name] in page.text
        assert world.ids["n4"] not in page.text
        first = cust.get("/items?limit=2")  # the page size is fixed: all six on one page
        assert first.text.count('href="/items/') == 6

    def test_withheld_records_show_id_and_class_only(self, world: World) -> None:
        custall = world.browser("custall")
        page = custall.get("/items?class=state-secret", headers={"Accept-Language": "en"})
        assert world.ids["s"] in page.text and "Secret Base" not in page.text and "s.wav" not in page.text
        assert "Withheld" in page.text
        item = custall.get(f"/items/{world.ids['s']}", headers={"Accept-Language": "en"})
        assert item.status_code == 403
        assert f"/access/new?item={world.ids['s']}" in item.text and "Secret Base" not in item.text

    def test_a_privacy_record_asks_the_purpose_once(self, world: World) -> None:
        custall = world.browser("custall")
        item = world.ids["p"]
        asked = custall.get(f"/items/{item}")
        assert asked.status_code == 200 and f'action="/items/{item}/purpose"' in asked.text
        assert "witness" not in asked.text
        shown = custall.post(f"/items/{item}/purpose", data={"csrf_token": form_token(asked), "purpose": "hearing"})
        assert shown.status_code == 200 and "Home of a witness" in shown.text
        again = custall.get(f"/items/{item}")
        assert "Home of a witness" in again.text
        assert [json.loads(e.details).get("purpose") for e in events(world, "viewed")][-2:] == ["hearing", "hearing"]

    def test_queues_count_and_lead_to_the_next_item(self, world: World) -> None:
        cust = world.browser("cust")
        page = cust.get("/queues", headers={"Accept-Language": "en"})
        assert page.status_code == 200
        assert re.search(r'href="/items\?missing=case_number">Missing case number</a></td>\s*<td[^>]*>1<', page.text)
        assert re.search(r'href="/items\?late=1">Uploaded late</a></td>\s*<td[^>]*>6<', page.text)
        assert re.search(r'href="/items\?class=unclassified">Not yet classified</a></td>\s*<td[^>]*>1<', page.text)
        first = cust.get(f"/items/{world.ids['n1']}?case=C1")
        assert f'href="/items/{world.ids["n2"]}?case=C1"' in first.text
        last = cust.get(f"/items/{world.ids['n3']}?case=C1")
        assert 'rel="next"' not in last.text

    def test_both_languages(self, world: World) -> None:
        cust = world.browser("cust")
        zh = cust.get(f"/items/{world.ids['n1']}", headers={"Accept-Language": "zh-CN"}).text
        en = cust.get(f"/items/{world.ids['n1']}", headers={"Accept-Language": "en"}).text
        assert "案件编号" in zh and "保管链记录" in zh
        assert "Case number" in en and "Custody trail" in en
        assert "证据目录" in cust.get("/", headers={"Accept-Language": "zh-CN"}).text

    def test_hostile_values_are_shown_escaped_never_500(self, world: World) -> None:
        cust = world.browser("cust")
        for value in HOSTILE:
            self.walk(world, cust, value)

    def walk(self, world: World, cust: TestClient, value: str) -> None:
        for name in FILTERS:
            query = f"{name}={quote(value, safe='%')}"
            page = cust.get(f"/items?{query}")
            assert page.status_code in (200, 422), (name, page.status_code)
            assert "<script>alert" not in page.text
            api = cust.get(f"/api/v1/items?{query}")
            assert api.status_code in (200, 422), (name, api.status_code)
            assert api.headers["content-type"] == "application/json"
        if value.startswith("<script>"):
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in cust.get(f"/items?q={quote(value)}").text
        for path in (f"/items/{quote(value, safe='%')}", f"/api/v1/items/{quote(value, safe='%')}"):
            assert cust.get(path).status_code in (404, 422)
        item = world.ids["n1"]
        assert cust.get(f"/items/{item}?case={quote(value, safe='%')}").status_code == 200
        token = form_token(cust.get("/items"))
        posted = cust.post(f"/items/{item}/facts", data={"csrf_token": token, "proof_object": value, "queue": value})
        assert posted.status_code in (303, 422), posted.status_code
        patched = cust.patch(f"/api/v1/items/{item}", json={"facts": {"collector": value}})
        assert patched.status_code in (200, 409, 422), patched.text
