"""Cases and disc packages on the web: a case handler sees the cases assigned to them and nothing
else, may ask for discs only of what they may see; a custodian asks for a package from the case
page, it is built, and its image, hash and description are downloaded (every download a custody
event), each item's class written on the disc."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import Session, col, select

from pipeline.accounts.users import add_user
from pipeline.catalog.cases import assign_case_member, set_case_target, set_classification
from pipeline.catalog.db import dispose_engines, session_scope
from pipeline.catalog.models import CustodyEvent, PackageDisc
from pipeline.catalog.viewer import Viewer
from pipeline.package.stage import build_package
from pipeline.probe.assign import assign_facts
from pipeline.runtime import package_context, probe_context
from pipeline.settings import Settings
from pipeline.stage import TOOL
from pipeline.web.app import create_web_app
from tests.test_web import PASSWORD, form_token, sign_in

SERVER = Viewer.local("root")
ALL = ("privacy", "trade-secret", "state-secret")
# name: (case, class)
ITEMS = {
    "a1": ("A", "none"),
    "a2": ("A", "privacy"),
    "r1": ("A2", "none"),
    "w1": ("W", "none"),
    "w2": ("W", "state-secret"),
    "b1": ("B", "none"),
}
ACCOUNTS = {
    "handler": (("case-handler",), ALL),
    "custall": (("custodian",), ALL),
    "cust": (("custodian",), ()),
}


@dataclass(frozen=True)
class World:
    app: FastAPI
    settings: Settings
    ids: dict[str, str]

    def browser(self, name: str) -> TestClient:
        client = TestClient(self.app, base_url="https://testserver", follow_redirects=False)
        assert sign_in(client, name).status_code == 303
        return client

    def events(self, action: str) -> list[tuple[CustodyEvent, dict[str, object]]]:
        """The custody events of ``action``, each with its details."""
        with Session(self.app.state.engine) as session:
            query = select(CustodyEvent).where(CustodyEvent.action == action).order_by(col(CustodyEvent.seq))
            return [(event, json.loads(event.details)) for event in session.exec(query).all()]


@pytest.fixture
def world(cli, settings: Settings, media_dir: Path) -> Iterator[World]:
    for name in ITEMS:
        dest = settings.inbox_dir / "dock1" / f"{name}.wav"
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes((media_dir / "voice.wav").read_bytes() + name.encode())
    result = cli("ingest", str(settings.inbox_dir), "--no-derive", "--json")
    assert result.exit_code == 0, result.output
    ids = {Path(str(r["path"])).stem: str(r["item"]) for r in result.records}
    ctx = probe_context(settings)
    for name, (case, _) in ITEMS.items():
        facts = {"captured_at": "2025-09-30T10:00", "case_number": case, "collector": "officer-1"}
        assign_facts(ctx, ident=ids[name], facts=facts, viewer=SERVER)
    app = create_web_app(settings)
    with session_scope(app.state.engine) as session:
        for name, (_, own) in ITEMS.items():
            if own != "none":
                set_classification(session, viewer=SERVER, item_id=ids[name], classification=own, tool=TOOL)
        for case in ("A", "A2"):
            set_case_target(session, number=case, target="张伟 Zhang Wei", viewer=SERVER, tool=TOOL)
        for account, (roles, clearances) in ACCOUNTS.items():
            add_user(session, name=account, roles=roles, clearances=clearances, password=PASSWORD, actor="t", tool=TOOL)
        session.flush()
        for case in ("A", "W"):
            assign_case_member(session, viewer=SERVER, case_number=case, user_name="handler", tool=TOOL)
    yield World(app, settings, ids)
    dispose_engines()


def _request(client: TestClient, case: str, purpose: str = "court hearing") -> httpx.Response:
    token = form_token(client.get("/cases/A"))
    return client.post(f"/cases/{case}/packages", data={"csrf_token": token, "media": "dvd", "purpose": purpose})


class TestCaseHandler:
    def test_sees_their_cases_and_records_never_another_case(self, world: World) -> None:
        handler = world.browser("handler")
        listing = handler.get("/cases")
        assert listing.status_code == 200
        assert 'href="/cases/A"' in listing.text and 'href="/cases/W"' in listing.text
        assert "/cases/B" not in listing.text and "/cases/A2" not in listing.text
        numbers = [c["number"] for c in handler.get("/api/v1/cases").json()["cases"]]
        assert numbers == ["A", "W"]
        page = handler.get("/cases/A")
        assert page.status_code == 200
        assert f'href="/items/{world.ids["a1"]}"' in page.text and f'href="/items/{world.ids["a2"]}"' in page.text
        assert world.ids["r1"] not in page.text  # the same target, but a case not theirs
        assert 'action="/cases/A/target"' not in page.text  # no custodian's forms
        assert 'action="/cases/A/packages"' in page.text
        assert handler.get("/cases/B").status_code == 404
        assert handler.get("/api/v1/cases/B").status_code == 404

    def test_may_not_request_discs_of_another_case_nor_of_withheld_records(self, world: World) -> None:
        handler = world.browser("handler")
        assert _request(handler, "B").status_code == 404
        refused = _request(handler, "W")
        assert refused.status_code == 403
        assert world.ids["w2"] in refused.text
        assert world.events("package-requested") == []


class TestCustodian:
    def test_case_page_groups_the_same_target_and_changes_it(self, world: World) -> None:
        custodian = world.browser("custall")
        page = custodian.get("/cases/A")
        assert world.ids["r1"] in page.text and 'href="/cases/A2"' in page.text
        token = form_token(page)
        done = custodian.post("/cases/A/target", data={"csrf_token": token, "target": "王某"})
        assert done.status_code == 303
        assert "王某" in custodian.get(done.headers["location"]).text
        assert custodian.post("/cases/A/target", data={"target": "x"}).status_code == 403  # no CSRF token
        classified = custodian.post("/cases/A/classification", data={"csrf_token": token, "classification": "privacy"})
        assert classified.status_code == 303
        assert custodian.get("/api/v1/cases/A").json()["classification"] == "privacy"

    def test_requests_builds_downloads_and_verifies_a_package(self, world: World) -> None:
        custodian = world.browser("custall")
        asked = _request(custodian, "A")
        assert asked.status_code == 303, asked.text
        location = asked.headers["location"]
        package_id = re.fullmatch(r"/packages/(\w+)\?notice=queued(-later)?", location)
        assert package_id, location
        package = package_id.group(1)
        [(requested, details)] = world.events("package-requested")
        assert requested.actor == "custall" and details["client"] == "testclient"
        assert details["purpose"] == "court hearing"

        waiting = custodian.get(location)
        assert '<meta http-equiv="refresh" content="5">' in waiting.text

        result = build_package(package_context(world.settings), package)
        assert result.status == "verified", result.error
        page = custodian.get(f"/packages/{package}")
        assert 'http-equiv="refresh"' not in page.text
        with Session(world.app.state.engine) as session:
            [disc] = session.exec(select(PackageDisc).where(PackageDisc.package_id == package)).all()
        assert disc.sha256 in page.text and f"{disc.size:,}" in page.text

        image = custodian.get(f"/packages/{package}/discs/1/image")
        assert image.status_code == 200
        assert image.headers["content-disposition"].startswith("attachment")
        assert hashlib.sha256(image.content).hexdigest() == disc.sha256
        assert hashlib.sha256(Path(disc.path).read_bytes()).hexdigest() == disc.sha256
        part = custodian.get(f"/packages/{package}/discs/1/image", headers={"Range": "bytes=32768-32799"})
        assert part.status_code == 206 and part.content == image.content[32768:32800]
        digest = custodian.get(f"/packages/{package}/discs/1/sha256")
        assert digest.text.startswith(disc.sha256)
        description = custodian.get(f"/packages/{package}/discs/1/description").content.decode("utf-8-sig")
        assert "This disc holds classified records: privacy" in description
        assert "密级 Class: 个人隐私 privacy" in description and "密级 Class: 无 none" in description

        downloads = world.events("downloaded")
        assert [d["what"] for _, d in downloads] == [
            "package-image",
            "package-image",
            "package-sha256",
            "package-description",
        ]
        assert all(e.actor == "custall" and d["client"] == "testclient" for e, d in downloads)
        assert all(e.target == f"package:{package}" for e, _ in downloads)

        verified = custodian.post(f"/packages/{package}/verify", data={"csrf_token": form_token(page)})
        assert verified.status_code == 200
        assert "all" in verified.text and 'class="ok"' in verified.text
        api = custodian.get(f"/api/v1/packages/{package}").json()
        assert api["status"] == "verified" and api["discs"][0]["sha256"] == disc.sha256

        # whoever may not see every record of it gets nothing of it
        uncleared = world.browser("cust")
        assert uncleared.get(f"/packages/{package}").status_code == 404
        assert uncleared.get(f"/packages/{package}/discs/1/image").status_code == 404
        assert uncleared.get(f"/api/v1/packages/{package}").status_code == 404
        assert len(world.events("downloaded")) == 4
        handler = world.browser("handler")
        assert handler.get(f"/packages/{package}").status_code == 200


class TestScriptsAndOutages:
    def test_a_script_requests_builds_and_verifies_a_package_with_its_token(self, world: World) -> None:
        """The API does what the pages do, with a bearer token and no form token."""
        from pipeline.accounts.tokens import create_token

        with session_scope(world.app.state.engine) as session:
            made = create_token(session, name="court-script", role="custodian", clearances=ALL, actor="t", tool=TOOL)
        client = TestClient(world.app, base_url="https://testserver", headers={"Authorization": f"Bearer {made.token}"})
        asked = client.post("/api/v1/cases/A/packages", json={"media": "cd", "purpose": "appeal"})
        assert asked.status_code == 202, asked.text
        answer = asked.json()
        assert answer["case"] == "A" and answer["queued"] is True and answer["status"] == "queued"
        package = str(answer["package"])
        [(requested, details)] = world.events("package-requested")
        assert requested.actor == "token:court-script" and details["purpose"] == "appeal"
        assert client.get(f"/api/v1/packages/{package}").json()["status"] == "requested"

        assert build_package(package_context(world.settings), package).status == "verified"
        listed = client.get("/api/v1/packages", params={"case": "A"}).json()
        assert listed["count"] == 1 and listed["packages"][0]["package"] == package
        shown = client.get(f"/api/v1/packages/{package}").json()
        assert shown["media"] == "cd" and len(shown["items"]) == 2 and shown["incomplete"] != []
        verified = client.post(f"/api/v1/packages/{package}/verify")
        assert verified.status_code == 200
        checks = verified.json()
        assert checks["ok"] is True and [d["ok"] for d in checks["discs"]] == [True]
        digest = client.get(f"/api/v1/packages/{package}/discs/1/sha256")
        assert digest.status_code == 200 and digest.text.startswith(shown["discs"][0]["sha256"])
        assert [e.actor for e, _ in world.events("downloaded")] == ["token:court-script"]

        refused = client.post("/api/v1/cases/A/packages", json={"media": "floppy", "purpose": "x"})
        assert refused.status_code == 422 and "floppy" in refused.text
        assert client.post("/api/v1/cases/NOPE/packages", json={"purpose": "x"}).status_code == 404
        assert len(world.events("package-requested")) == 1

    def test_a_request_made_while_the_queue_is_away_is_kept_and_said_so(
        self, world: World, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The broker cannot be reached: the request is recorded all the same, the page says it
        will be queued later, and no error reaches the person who asked."""
        from pipeline.settings import load_settings

        monkeypatch.setenv("EVIDENCE_BROKER_URL", "redis://127.0.0.1:9/0")  # the discard port: nothing listens
        away = create_web_app(load_settings())
        client = TestClient(away, base_url="https://testserver", follow_redirects=False)
        assert sign_in(client, "handler").status_code == 303
        asked = _request(client, "A", purpose="hearing on Monday")
        assert asked.status_code == 303, asked.text
        assert asked.headers["location"].endswith("?notice=queued-later")
        page = client.get(asked.headers["location"])
        assert page.status_code == 200
        assert "it will be queued automatically" in page.text or "自动" in page.text
        [(requested, details)] = world.events("package-requested")
        assert requested.actor == "handler" and details["purpose"] == "hearing on Monday"
        api = client.get(asked.headers["location"].split("?")[0].replace("/packages", "/api/v1/packages")).json()
        assert api["status"] == "requested" and api["requested_by"] == "handler"


class TestCaseNumbers:
    def test_a_case_number_with_slashes_and_spaces_has_its_pages(self, world: World) -> None:
        """Case numbers are written as units write them (``XF/2026 第7号``): the links of the
        catalog reach the case page, its forms and its API."""
        number = "XF/2026 第7号"
        assign_facts(probe_context(world.settings), ident=world.ids["b1"], facts={"case_number": number}, viewer=SERVER)
        custodian = world.browser("custall")
        listing = custodian.get("/cases")
        link = re.search(r'href="(/cases/XF[^"]*)"', listing.text)
        assert link, listing.text
        page = custodian.get(link.group(1))
        assert page.status_code == 200 and number in page.text and world.ids["b1"] in page.text
        done = custodian.post(f"{link.group(1)}/target", data={"csrf_token": form_token(page), "target": "李四"})
        assert done.status_code == 303 and custodian.get(done.headers["location"]).status_code == 200
        api = custodian.get(f"/api/v1{link.group(1)}").json()
        assert api["number"] == number and api["target"] == "李四"
