"""Supervised retrieval of an item's content through the web application, on SQLite and
PostgreSQL, with real clips taken in and derived: the access copy streamed in byte ranges exactly as
stored, posters and contact sheets, the original downloaded for a purpose under a safe name; who may
have what (ACCESS.md); and the custody events every retrieval leaves, a stream counted once."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from pipeline.accounts.tokens import create_token
from pipeline.accounts.users import add_user
from pipeline.accounts.views import find_user, viewer_for_user
from pipeline.catalog.access_requests import approve_access, request_access
from pipeline.catalog.cases import assign_case_member, set_classification
from pipeline.catalog.db import dispose_engines, session_scope
from pipeline.catalog.models import CustodyEvent, Derivative, Item
from pipeline.catalog.queries import media as media_queries
from pipeline.catalog.queries.media import ascii_name, safe_name
from pipeline.catalog.viewer import Viewer
from pipeline.probe.assign import assign_facts
from pipeline.runtime import probe_context
from pipeline.settings import Settings
from pipeline.stage import TOOL
from pipeline.web.app import create_web_app
from pipeline.web.routes.media import byte_range
from tests.conftest import CliResult, MediaMaker
from tests.test_web import PASSWORD, form_token, sign_in

SERVER = Viewer.local("root")
# account: (roles, clearances, approver)
ACCOUNTS = {
    "keeper": (["custodian"], ["privacy", "trade-secret"], False),
    "plain": (["custodian"], [], False),
    "aud": (["auditor"], ["privacy", "trade-secret"], False),
    "handler": (["case-handler"], [], False),
    "stranger": (["case-handler"], [], False),
    "boss": (["auditor"], ["privacy", "trade-secret"], True),
}


@dataclass(frozen=True)
class World:
    app: FastAPI
    ids: dict[str, str]  # n (none, case A), p (privacy), t (trade-secret)
    access: dict[str, Derivative]  # the verified access copy of each item
    store_dir: Path

    def stored(self, sha256: str) -> bytes:
        return (self.store_dir / "sha256" / sha256[:2] / sha256).read_bytes()

    def browser(self, name: str) -> TestClient:
        client = TestClient(self.app, base_url="https://testserver", follow_redirects=False)
        assert sign_in(client, name).status_code == 303
        return client

    def events(self, *actions: str) -> list[tuple[str, str, dict[str, object]]]:
        with Session(self.app.state.engine) as session:
            rows = session.exec(
                select(CustodyEvent).where(col(CustodyEvent.action).in_(actions)).order_by(col(CustodyEvent.seq))
            ).all()
            return [(row.actor, row.action, json.loads(row.details)) for row in rows]


@pytest.fixture
def world(cli: Callable[..., CliResult], settings: Settings, media: MediaMaker) -> Iterator[World]:
    """Three clips taken in, probed and derived; ``p`` is privacy, ``t`` trade-secret, ``n`` is in
    case A (``handler`` assigned to it); the accounts in ACCOUNTS."""
    folder = settings.inbox_dir / "dock1"
    folder.mkdir(parents=True, exist_ok=True)
    for n, name in enumerate("npt", start=1):
        media.variant("clip.mp4", folder / f"{name}.mp4", n)
    result = cli("ingest", str(settings.inbox_dir), "--json")
    assert result.exit_code == 0, result.output
    ids = {Path(str(r["path"])).stem: str(r["item"]) for r in result.records}
    assign_facts(
        probe_context(settings),
        ident=ids["n"],
        facts={"case_number": "A", "captured_at": "2025-09-30T10:00", "collector": "officer-1"},
        viewer=SERVER,
    )
    app = create_web_app(settings)
    with session_scope(app.state.engine) as session:
        set_classification(session, viewer=SERVER, item_id=ids["p"], classification="privacy", tool=TOOL)
        set_classification(session, viewer=SERVER, item_id=ids["t"], classification="trade-secret", tool=TOOL)
        for name, (roles, clearances, approver) in ACCOUNTS.items():
            add_user(
                session,
                name=name,
                roles=roles,
                clearances=clearances,
                approver=approver,
                password=PASSWORD,
                actor="tester",
                tool=TOOL,
            )
        assign_case_member(session, viewer=SERVER, case_number="A", user_name="handler", tool=TOOL)
    with Session(app.state.engine) as session:
        access = {}
        for name, item_id in ids.items():
            found = session.exec(
                select(Derivative).where(Derivative.item_id == item_id, Derivative.kind == "video-access")
            ).one()
            assert found.verified and found.sha256
            access[name] = found
    yield World(app, ids, access, settings.store_dir)
    dispose_engines()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class TestStreaming:
    def test_the_whole_access_copy_is_the_stored_one(self, world: World) -> None:
        browser = world.browser("keeper")
        copy = world.access["n"]
        response = browser.get(f"/items/{world.ids['n']}/media/access")
        assert response.status_code == 200
        assert sha(response.content) == copy.sha256 == sha(world.stored(copy.sha256 or ""))
        assert response.headers["content-type"] == "video/mp4"
        assert response.headers["accept-ranges"] == "bytes"
        assert response.headers["content-length"] == str(copy.size)
        assert response.headers["etag"] == f'"{copy.sha256}"'
        assert response.headers["cache-control"] == "private, no-store"
        assert response.headers["content-disposition"].startswith("inline;")

    def test_byte_ranges(self, world: World) -> None:
        browser = world.browser("keeper")
        data = world.stored(world.access["n"].sha256 or "")
        size = len(data)
        assert size > 1000
        url = f"/items/{world.ids['n']}/media/access"
        for header, first, last in [
            ("bytes=0-99", 0, 99),
            ("bytes=500-699", 500, 699),
            ("bytes=-100", size - 100, size - 1),
            (f"bytes={size - 37}-", size - 37, size - 1),
            (f"bytes=10-{size + 500}", 10, size - 1),
        ]:
            response = browser.get(url, headers={"Range": header})
            assert response.status_code == 206, header
            assert response.content == data[first : last + 1], header
            assert response.headers["content-range"] == f"bytes {first}-{last}/{size}", header
            assert response.headers["content-length"] == str(last - first + 1), header
            assert response.headers["accept-ranges"] == "bytes"
        for header in (f"bytes={size}-", f"bytes={size + 10}-{size + 20}", "bytes=-0"):
            response = browser.get(url, headers={"Range": header})
            assert response.status_code == 416, header
            assert response.headers["content-range"] == f"bytes */{size}"
        # Several ranges, or one that cannot be read, are answered with the whole body.
        for header in ("bytes=0-9,20-29", "bytes=9-2", "items=0-9", "bytes=x-y"):
            response = browser.get(url, headers={"Range": header})
            assert response.status_code == 200, header
            assert response.content == data

    def test_etag_and_if_range(self, world: World) -> None:
        browser = world.browser("keeper")
        url = f"/items/{world.ids['n']}/media/access"
        etag = browser.get(url).headers["etag"]
        assert browser.get(url, headers={"If-None-Match": etag}).status_code == 304
        assert browser.get(url, headers={"If-None-Match": '"other"'}).status_code == 200
        assert browser.get(url, headers={"Range": "bytes=0-9", "If-Range": etag}).status_code == 206
        assert browser.get(url, headers={"Range": "bytes=0-9", "If-Range": '"old"'}).status_code == 200

    def test_poster_and_contact_sheet(self, world: World) -> None:
        browser = world.browser("keeper")
        for what in ("poster", "sheet"):
            response = browser.get(f"/items/{world.ids['n']}/media/{what}")
            assert response.status_code == 200, what
            assert response.headers["content-type"] == "image/jpeg"
            assert response.content.startswith(b"\xff\xd8")
        assert len(world.events("viewed-image")) == 2

    def test_only_a_verified_copy_is_served(self, world: World) -> None:
        with session_scope(world.app.state.engine) as session:
            for row in session.exec(select(Derivative).where(Derivative.item_id == world.ids["n"])):
                row.verified = False
                session.add(row)
        response = world.browser("keeper").get(f"/items/{world.ids['n']}/media/access")
        assert response.status_code == 404
        assert "no verified access copy" in response.text

    def test_the_byte_range_parser(self) -> None:
        assert byte_range(None, 10) is None
        assert byte_range("bytes=0-0", 10) == (0, 0)
        assert byte_range("bytes=-20", 10) == (0, 9)
        assert byte_range("bytes=0-", 0) is False
        assert byte_range("bytes=-", 10) is None


class TestWhoMay:
    def test_roles_classes_grants_and_purposes(self, world: World) -> None:
        url = "/items/{}/media/access"
        # An auditor may know the item but not play it; others may not know it exists.
        auditor = world.browser("aud")
        assert auditor.get(url.format(world.ids["n"])).status_code == 403
        assert auditor.get(f"/api/v1/items/{world.ids['n']}/media/poster").status_code in (401, 403)
        plain = world.browser("plain")
        assert plain.get(url.format(world.ids["p"])).status_code == 404
        assert plain.get(url.format(world.ids["t"])).status_code == 404
        assert plain.get(url.format("0" * 26)).status_code == 404
        # Case handlers: their cases only.
        assert world.browser("handler").get(url.format(world.ids["n"])).status_code == 200
        assert world.browser("stranger").get(url.format(world.ids["n"])).status_code == 404
        # Withheld without a grant.
        keeper = world.browser("keeper")
        refused = keeper.get(url.format(world.ids["t"]))
        assert refused.status_code == 403 and "access request" in refused.text
        # Privacy: a purpose, once per session.
        assert keeper.get(url.format(world.ids["p"])).status_code == 403
        assert keeper.get(url.format(world.ids["p"]), params={"purpose": "复核"}).status_code == 200
        assert keeper.get(url.format(world.ids["p"]), headers={"Range": "bytes=0-9"}).status_code == 206
        assert world.browser("keeper").get(url.format(world.ids["p"])).status_code == 403  # a new session
        played = [(actor, details.get("purpose")) for actor, _, details in world.events("played")]
        assert played == [("handler", None), ("keeper", "复核")]

    def test_a_granted_secret_is_played_and_the_grant_use_recorded(self, world: World) -> None:
        with session_scope(world.app.state.engine) as session:
            keeper = viewer_for_user(find_user(session, "keeper"))
            boss = viewer_for_user(find_user(session, "boss"))
            asked = request_access(session, viewer=keeper, item_id=world.ids["t"], purpose="案件审查", tool=TOOL)
            approve_access(
                session, viewer=boss, request_id=asked.id, until=datetime.now(UTC) + timedelta(days=1), tool=TOOL
            )
        response = world.browser("keeper").get(f"/items/{world.ids['t']}/media/access")
        assert response.status_code == 200
        used = world.events("access-used", "played")
        assert [action for _, action, _ in used] == ["access-used", "played"]
        assert used[1][2]["purpose"] == "案件审查"

    def test_a_token_client(self, world: World) -> None:
        with session_scope(world.app.state.engine) as session:
            made = create_token(session, name="script", role="custodian", actor="tester", tool=TOOL)
        client = TestClient(world.app, base_url="https://testserver")
        headers = {"Authorization": f"Bearer {made.token}"}
        item = world.ids["n"]
        response = client.get(f"/api/v1/items/{item}/media/access", headers={**headers, "Range": "bytes=0-99"})
        assert response.status_code == 206 and len(response.content) == 100
        assert client.get(f"/api/v1/items/{item}/media/sheet", headers=headers).status_code == 200
        refused = client.get(f"/api/v1/items/{item}/media/original", headers=headers)
        assert refused.status_code == 403 and refused.json()["error"] == "OriginalPurposeRequired"
        got = client.get(f"/api/v1/items/{item}/media/original", params={"purpose": "script"}, headers=headers)
        assert got.status_code == 200
        assert client.get(f"/api/v1/items/{item}/media/nonsense", headers=headers).status_code == 422
        assert [d["via"] for _, _, d in world.events("played", "viewed-image", "downloaded")] == ["api"] * 3


class TestOriginal:
    HOSTILE = "../../etc/passwd\"\n执法记录 2025'.mp4"

    def test_needs_a_purpose_and_is_saved_under_a_safe_name(self, world: World) -> None:
        item = world.ids["n"]
        with session_scope(world.app.state.engine) as session:
            row = session.get(Item, item)
            assert row is not None
            row.original_name = self.HOSTILE
            session.add(row)
            stored = row.sha256
        browser = world.browser("keeper")
        refused = browser.get(f"/items/{item}/original")
        assert refused.status_code == 403 and "purpose" in refused.text
        response = browser.get(f"/items/{item}/original", params={"purpose": "移送检察院"})
        assert response.status_code == 200
        assert sha(response.content) == stored
        disposition = response.headers["content-disposition"]
        assert disposition.startswith("attachment; ")
        assert "\n" not in disposition and "/" not in disposition.replace("UTF-8''", "")
        plain = disposition.split('filename="')[1].split('"')[0]
        assert plain == "passwd_2025.mp4"
        exact = unquote(disposition.split("filename*=UTF-8''")[1])
        assert exact == "passwd执法记录 2025.mp4"
        # The form on the item page: its token and a purpose.
        page = browser.get("/account/password")
        token = form_token(page)
        assert browser.post(f"/items/{item}/original", data={"purpose": "复制"}).status_code == 403
        posted = browser.post(f"/items/{item}/original", data={"csrf_token": token, "purpose": "复制"})
        assert posted.status_code == 200 and sha(posted.content) == stored
        downloads = world.events("downloaded")
        assert [(d["purpose"], d["client"], d["via"], d["what"]) for _, _, d in downloads] == [
            ("移送检察院", "testclient", "web", "original"),
            ("复制", "testclient", "web", "original"),
        ]
        assert all(d["sha256"] == stored for _, _, d in downloads)

    def test_safe_names(self) -> None:
        assert safe_name("../../etc/passwd", fallback="X") == "passwd"
        assert safe_name('a"b\nc\x00d.mp4', fallback="X") == "abcd.mp4"
        assert safe_name("..", fallback="X") == "X"
        assert safe_name("C:\\Users\\x\\录像.MP4", fallback="X") == "录像.MP4"
        assert safe_name("a" * 400 + ".mp4", fallback="X") == "a" * 146 + ".mp4"
        assert ascii_name("录像.MP4", fallback="ITEM") == "ITEM.MP4"
        assert ascii_name("Café 1.mp4", fallback="ITEM") == "Cafe_1.mp4"


class TestPlayedOnce:
    def test_a_stream_counts_once_per_window(self, world: World, monkeypatch: pytest.MonkeyPatch) -> None:
        browser = world.browser("keeper")
        url = f"/items/{world.ids['n']}/media/access"
        for start in range(0, 1000, 100):
            assert browser.get(url, headers={"Range": f"bytes={start}-{start + 99}"}).status_code == 206
        assert browser.get(url).status_code == 200
        played = world.events("played")
        assert len(played) == 1
        actor, _, details = played[0]
        assert actor == "keeper"
        assert details["what"] == "access" and details["sha256"] == world.access["n"].sha256
        assert details["profile"] == "video-access@2" and details["client"] == "testclient"
        # Another browser session is another play.
        world.browser("keeper").get(url, headers={"Range": "bytes=0-1"})
        assert len(world.events("played")) == 2
        # Eleven minutes on, the same session plays again.
        later = datetime.now(UTC) + timedelta(minutes=11)
        monkeypatch.setattr(media_queries, "utcnow", lambda: later)
        browser.get(url, headers={"Range": "bytes=0-1"})
        assert len(world.events("played")) == 3

    def test_the_custody_chain_holds(self, world: World) -> None:
        from pipeline.custody import check_chain

        browser = world.browser("keeper")
        browser.get(f"/items/{world.ids['n']}/media/access", headers={"Range": "bytes=0-1"})
        browser.get(f"/items/{world.ids['n']}/media/poster")
        with Session(world.app.state.engine) as session:
            assert check_chain(session).ok
