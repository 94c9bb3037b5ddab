"""The admin's pages and API for accounts and tokens, on SQLite and PostgreSQL: an account added
from the page signs in with the one-time password shown once and must change it; that password and
a token's secret appear in that one answer and nowhere else (custody log, later pages); disabling
and resetting end the account's sessions; a change of roles holds from the next request; a revoked
token is refused; only admins reach any of it; forms need their token; hostile names are refused
with the message escaped; the last admin stays."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlmodel import select

from pipeline.accounts.users import add_user
from pipeline.catalog.db import dispose_engines, session_scope
from pipeline.catalog.models import CustodyEvent
from pipeline.settings import Settings
from pipeline.stage import TOOL
from pipeline.web.app import create_web_app
from pipeline.web.routes import admin
from tests.test_web import PASSWORD, form_token, sign_in

HOSTILE_NAMES = ("<script>alert(1)</script>", "x" * 300, "../x", "a b", "名字")


@pytest.fixture
def app(settings: Settings) -> Iterator[FastAPI]:
    made = create_web_app(settings)
    add(made, "boss", roles=("admin",))
    yield made
    dispose_engines()


def add(app: FastAPI, name: str, *, roles: tuple[str, ...] = ("custodian",), **extra: Any) -> None:
    with session_scope(app.state.engine) as session:
        add_user(session, name=name, roles=roles, password=PASSWORD, actor="tester", tool=TOOL, **extra)


def browser(app: FastAPI, name: str | None = None, password: str = PASSWORD) -> TestClient:
    """A browser, signed in as ``name`` when given."""
    client = TestClient(app, base_url="https://testserver", follow_redirects=False)
    if name is not None:
        assert sign_in(client, name, password).status_code == 303
    return client


@pytest.fixture
def boss(app: FastAPI) -> TestClient:
    return browser(app, "boss")


def post(
    client: TestClient, path: str, data: dict[str, object] | None = None, page: str = "/admin/users"
) -> httpx.Response:
    """Send a form from ``page`` to ``path`` with the page's token."""
    token = form_token(client.get(page))
    return client.post(path, data={"csrf_token": token, **(data or {})})


CONFIRMED = {"confirm": "yes"}  # what the confirmation page sends back


def shown_secret(answer: httpx.Response) -> str:
    found = re.search(r"<code id=\"secret\" data-secret>([^<]+)</code>", answer.text)
    assert found, "the answer shows no secret"
    return html.unescape(found.group(1))


def custody_text(app: FastAPI) -> str:
    with session_scope(app.state.engine) as session:
        rows = session.exec(select(CustodyEvent)).all()
        return "\n".join(f"{e.actor} {e.action} {e.target} {e.details}" for e in rows)


def actions(app: FastAPI) -> list[tuple[str, str, str]]:
    with session_scope(app.state.engine) as session:
        return [(e.actor, e.action, e.target) for e in session.exec(select(CustodyEvent)).all()]


def api_headers(client: TestClient) -> dict[str, str]:
    return {"X-CSRF-Token": form_token(client.get("/admin/users"))}


class TestAddingAccounts:
    def test_the_shown_password_signs_in_once_and_must_be_changed(self, app: FastAPI, boss: TestClient) -> None:
        """An admin adds a custodian from the page; the password shown signs them in, straight to
        the password form, and nothing else until it is changed."""
        answer = post(
            boss,
            "/admin/users",
            {"name": "clerk", "display_name": "张三", "role": ["custodian"], "clearance": ["privacy"]},
        )
        assert answer.status_code == 200
        password = shown_secret(answer)
        clerk = browser(app)
        signed = sign_in(clerk, "clerk", password)
        assert signed.status_code == 303 and signed.headers["location"] == "/account/password"
        assert clerk.get("/items").headers["location"] == "/account/password"
        new = "Fresh start 2026 ok"
        changed = post(
            clerk, "/account/password", {"old": password, "new": new, "repeat": new}, page="/account/password"
        )
        assert changed.status_code == 303
        assert clerk.get("/items").status_code == 200
        assert ("boss", "user-added", "user:clerk") in actions(app)

        listing = boss.get("/admin/users")
        row = re.search(r'<tr data-user="clerk">.*?</tr>', listing.text, re.S)
        assert row and "张三" in row.group(0) and "$argon2" not in listing.text
        for later in (listing, boss.get("/admin/tokens"), boss.get("/audit"), boss.get("/api/v1/users")):
            assert password not in later.text
        assert password not in custody_text(app)

    def test_the_list_shows_every_field_but_no_hash(self, app: FastAPI, boss: TestClient) -> None:
        add(app, "depot", roles=("dock",), dock="dock7")
        add(app, "chief", roles=("custodian",), clearances=["trade-secret"], approver=True)
        users = {u["name"]: u for u in boss.get("/api/v1/users").json()["users"]}
        assert users["depot"]["dock"] == "dock7" and users["chief"]["approver"] is True
        assert users["chief"]["clearances"] == ["trade-secret"]
        assert set(users["boss"]) >= {
            "roles",
            "clearances",
            "approver",
            "dock",
            "disabled",
            "locked",
            "must_change_password",
        }
        page = boss.get("/admin/users", headers={"Accept-Language": "en"})
        assert "dock7" in page.text and "Trade secret" in page.text and "argon2" not in page.text

    def test_a_duplicate_name_is_a_conflict_shown_on_the_form(self, app: FastAPI, boss: TestClient) -> None:
        add(app, "clerk")
        answer = post(boss, "/admin/users", {"name": "clerk", "role": ["auditor"]})
        assert answer.status_code == 409
        assert "clerk already exists" in answer.text and 'value="clerk"' in answer.text
        assert (
            boss.post(
                "/api/v1/users", json={"name": "clerk", "roles": ["auditor"]}, headers=api_headers(boss)
            ).status_code
            == 409
        )

    @pytest.mark.parametrize("name", HOSTILE_NAMES)
    def test_hostile_names_are_refused_and_shown_escaped(self, app: FastAPI, boss: TestClient, name: str) -> None:
        """A name that cannot be an account's is refused with the message, escaped; never a 500."""
        answer = post(boss, "/admin/users", {"name": name, "role": ["custodian"]})
        assert answer.status_code == 422
        assert 'role="alert"' in answer.text
        assert "<script>alert(1)" not in answer.text
        api = boss.post("/api/v1/users", json={"name": name, "roles": ["custodian"]}, headers=api_headers(boss))
        assert api.status_code == 422 and api.json()["detail"]
        token = post(boss, "/admin/tokens", {"name": name, "role": "custodian"}, page="/admin/tokens")
        assert token.status_code == 422 and "<script>alert(1)" not in token.text
        for action in ("disable", "enable", "password", "roles"):
            answer = post(boss, f"/admin/users/{name.replace('/', '%2F')}/{action}", {"role": ["auditor"], **CONFIRMED})
            assert answer.status_code in (404, 422), (action, answer.status_code)
            assert "<script>alert(1)" not in answer.text

    def test_unknown_roles_and_a_dock_without_the_dock_role_are_refused(self, boss: TestClient) -> None:
        assert post(boss, "/admin/users", {"name": "x1", "role": ["<b>god</b>"]}).status_code == 422
        answer = post(boss, "/admin/users", {"name": "x2", "role": ["custodian"], "dock": "d1"})
        assert answer.status_code == 422 and "dock" in answer.text
        assert (
            post(boss, "/admin/users", {"name": "x3", "role": ["custodian"], "clearance": ["top"]}).status_code == 422
        )


class TestChangingAccounts:
    def test_disabling_ends_the_sessions_at_once(self, app: FastAPI, boss: TestClient) -> None:
        add(app, "clerk")
        clerk = browser(app, "clerk")
        assert clerk.get("/").status_code == 200
        assert post(boss, "/admin/users/clerk/disable", CONFIRMED).status_code == 303
        assert clerk.get("/").headers["location"] == "/login"
        assert sign_in(browser(app), "clerk").status_code == 401
        assert post(boss, "/admin/users/clerk/enable").status_code == 303
        assert browser(app, "clerk").get("/").status_code == 200
        done = [a for _, a, target in actions(app) if target == "user:clerk"]
        assert "user-disabled" in done and "user-enabled" in done

    def test_disabling_resetting_and_revoking_ask_first(self, app: FastAPI, boss: TestClient) -> None:
        """The buttons lead to a page saying what will happen; only its own button does it, and
        nothing has changed before (nor for an account or token that does not exist)."""
        add(app, "clerk")
        clerk = browser(app, "clerk")
        post(boss, "/admin/tokens", {"name": "dock-7", "role": "dock", "dock": "dock7"}, page="/admin/tokens")
        for path, page in (
            ("/admin/users/clerk/disable", "/admin/users"),
            ("/admin/users/clerk/password", "/admin/users"),
            ("/admin/tokens/dock-7/revoke", "/admin/tokens"),
        ):
            asked = post(boss, path, page=page)
            assert asked.status_code == 200, path
            assert f'action="{path}"' in asked.text and 'name="confirm" value="yes"' in asked.text
            assert f'href="{page}"' in asked.text and path.split("/")[3] in asked.text
            assert "data-secret" not in asked.text
        assert clerk.get("/").status_code == 200
        assert not any(a in ("user-disabled", "password-set", "token-revoked") for _, a, _ in actions(app))
        assert "停用账户 clerk" in post(boss, "/admin/users/clerk/disable").text
        assert post(boss, "/admin/users/nobody/disable").status_code == 404
        assert post(boss, "/admin/tokens/nothing/revoke", page="/admin/tokens").status_code == 404
        done = post(boss, "/admin/users/clerk/disable", CONFIRMED)
        assert done.status_code == 303 and clerk.get("/").headers["location"] == "/login"

    def test_the_last_admin_cannot_be_disabled(self, app: FastAPI, boss: TestClient) -> None:
        answer = post(boss, "/admin/users/boss/disable", CONFIRMED)
        assert answer.status_code == 409 and "only enabled admin" in answer.text
        assert boss.post("/api/v1/users/boss/disable", headers=api_headers(boss)).status_code == 409
        taken = boss.post("/api/v1/users/boss/roles", json={"roles": ["auditor"]}, headers=api_headers(boss))
        assert taken.status_code == 409
        assert boss.get("/admin/users").status_code == 200

    def test_a_reset_shows_a_new_password_once_and_ends_the_sessions(self, app: FastAPI, boss: TestClient) -> None:
        add(app, "clerk")
        clerk = browser(app, "clerk")
        answer = post(boss, "/admin/users/clerk/password", CONFIRMED)
        assert answer.status_code == 200
        password = shown_secret(answer)
        assert clerk.get("/").headers["location"] == "/login"
        assert sign_in(browser(app), "clerk").status_code == 401
        again = sign_in(browser(app), "clerk", password)
        assert again.headers["location"] == "/account/password"
        for later in (boss.get("/admin/users"), boss.get("/api/v1/users"), boss.get("/audit")):
            assert password not in later.text
        assert password not in custody_text(app)
        api = boss.post("/api/v1/users/clerk/password", headers=api_headers(boss))
        assert api.status_code == 200 and api.json()["must_change_password"] is True
        assert sign_in(browser(app), "clerk", api.json()["password"]).status_code == 303

    def test_roles_take_effect_on_the_next_request(self, app: FastAPI, boss: TestClient) -> None:
        add(app, "clerk")
        clerk = browser(app, "clerk")
        assert clerk.get("/items").status_code == 200
        assert clerk.get("/audit").status_code == 403
        changed = post(
            boss, "/admin/users/clerk/roles", {"role": ["auditor"], "clearance": ["privacy"], "approver": "on"}
        )
        assert changed.status_code == 303
        me = clerk.get("/api/v1/me").json()
        assert me["roles"] == ["auditor"] and me["clearances"] == ["privacy"] and me["approver"] is True
        assert clerk.get("/audit").status_code == 200
        assert ("boss", "roles-changed", "user:clerk") in actions(app)
        api = boss.post("/api/v1/users/clerk/roles", json={"roles": ["admin"]}, headers=api_headers(boss))
        assert api.status_code == 200 and api.json()["clearances"] == ["privacy"]
        assert clerk.get("/admin/users").status_code == 200

    def test_the_api_adds_an_account_with_its_one_time_password(self, app: FastAPI, boss: TestClient) -> None:
        body = {"name": "aud", "roles": ["auditor"], "clearances": ["privacy"], "display_name": "审计员"}
        made = boss.post("/api/v1/users", json=body, headers=api_headers(boss))
        assert made.status_code == 201
        assert made.json()["must_change_password"] is True and made.json()["roles"] == ["auditor"]
        assert sign_in(browser(app), "aud", made.json()["password"]).headers["location"] == "/account/password"
        assert made.json()["password"] not in boss.get("/api/v1/users").text
        assert boss.post("/api/v1/users/aud/disable", headers=api_headers(boss)).json()["disabled"] is True
        assert boss.post("/api/v1/users/aud/enable", headers=api_headers(boss)).json()["disabled"] is False


class TestTokens:
    def test_a_token_is_shown_once_used_and_revoked(self, app: FastAPI, boss: TestClient) -> None:
        answer = post(
            boss,
            "/admin/tokens",
            {"name": "dock-7", "role": "dock", "dock": "dock7", "days": "30"},
            page="/admin/tokens",
        )
        assert answer.status_code == 200
        secret = shown_secret(answer)
        assert secret.startswith("evd_")
        listing = boss.get("/admin/tokens")
        assert "dock-7" in listing.text and secret not in listing.text
        assert secret not in boss.get("/api/v1/tokens").text and secret not in custody_text(app)
        bearer = {"Authorization": f"Bearer {secret}"}
        client = browser(app)
        assert client.get("/api/v1/me", headers=bearer).json()["name"] == "token:dock-7"
        assert post(boss, "/admin/tokens/dock-7/revoke", CONFIRMED, page="/admin/tokens").status_code == 303
        assert client.get("/api/v1/me", headers=bearer).status_code == 401
        again = post(boss, "/admin/tokens/dock-7/revoke", CONFIRMED, page="/admin/tokens")
        assert again.status_code == 409 and "already revoked" in again.text
        assert ("boss", "token-revoked", "token:dock-7") in actions(app)

    def test_the_api_makes_lists_and_revokes_tokens(self, app: FastAPI, boss: TestClient) -> None:
        made = boss.post(
            "/api/v1/tokens",
            json={"name": "script", "role": "auditor", "clearances": ["privacy"], "expires_days": 2},
            headers=api_headers(boss),
        )
        assert made.status_code == 201 and made.json()["expires_at"]
        secret = made.json()["token"]
        listed = boss.get("/api/v1/tokens").json()["tokens"]
        assert [t["name"] for t in listed] == ["script"] and "token" not in listed[0]
        bearer = {"Authorization": f"Bearer {secret}"}
        assert browser(app).get("/api/v1/audit/events", headers=bearer).status_code == 200
        revoked = boss.post("/api/v1/tokens/script/revoke", headers=api_headers(boss))
        assert revoked.status_code == 200 and revoked.json()["usable"] is False
        assert browser(app).get("/api/v1/audit/events", headers=bearer).status_code == 401

    def test_an_admin_token_manages_accounts_without_a_form_token(self, app: FastAPI, boss: TestClient) -> None:
        made = boss.post("/api/v1/tokens", json={"name": "ops", "role": "admin"}, headers=api_headers(boss)).json()
        bearer = {"Authorization": f"Bearer {made['token']}"}
        client = browser(app)
        added = client.post("/api/v1/users", json={"name": "clerk", "roles": ["custodian"]}, headers=bearer)
        assert added.status_code == 201
        assert ("token:ops", "user-added", "user:clerk") in actions(app)

    @pytest.mark.parametrize("days", ["0", "-3", "abc", "99999"])
    def test_a_bad_expiry_is_refused_on_the_form(self, boss: TestClient, days: str) -> None:
        answer = post(boss, "/admin/tokens", {"name": "t1", "role": "auditor", "days": days}, page="/admin/tokens")
        assert answer.status_code == 422 and 'role="alert"' in answer.text


def admin_routes() -> list[tuple[str, str]]:
    found = [route for route in admin.router.routes if isinstance(route, APIRoute)]
    return sorted((method, route.path) for route in found for method in route.methods or ())


def concrete(path: str) -> str:
    return path.replace("{name}", "boss")


class TestOnlyAdmins:
    def test_the_routes_are_the_ones_promised(self) -> None:
        assert admin_routes() == sorted(
            [
                ("GET", "/admin/users"),
                ("POST", "/admin/users"),
                ("POST", "/admin/users/{name}/disable"),
                ("POST", "/admin/users/{name}/enable"),
                ("POST", "/admin/users/{name}/password"),
                ("POST", "/admin/users/{name}/roles"),
                ("GET", "/admin/tokens"),
                ("POST", "/admin/tokens"),
                ("POST", "/admin/tokens/{name}/revoke"),
                ("GET", "/api/v1/users"),
                ("POST", "/api/v1/users"),
                ("POST", "/api/v1/users/{name}/disable"),
                ("POST", "/api/v1/users/{name}/enable"),
                ("POST", "/api/v1/users/{name}/password"),
                ("POST", "/api/v1/users/{name}/roles"),
                ("GET", "/api/v1/tokens"),
                ("POST", "/api/v1/tokens"),
                ("POST", "/api/v1/tokens/{name}/revoke"),
            ]
        )

    @pytest.mark.parametrize("roles", [("custodian",), ("auditor",), ("case-handler",), ("dock",)])
    def test_everyone_else_is_refused_with_403(self, app: FastAPI, roles: tuple[str, ...]) -> None:
        """With a valid form token, a signed-in non-admin is refused every route, and nothing changes."""
        add(app, "other", roles=roles, dock="d1" if roles == ("dock",) else None)
        other = browser(app, "other")
        token = form_token(other.get("/account/password"))
        before = actions(app)
        for method, path in admin_routes():
            if method == "GET":
                answer = other.get(concrete(path))
            elif path.startswith("/api/"):
                answer = other.post(
                    concrete(path),
                    json={"name": "x", "roles": ["admin"], "role": "admin"},
                    headers={"X-CSRF-Token": token},
                )
            else:
                answer = other.post(concrete(path), data={"csrf_token": token, "name": "x", "role": ["admin"]})
            assert answer.status_code == 403, (roles, method, path, answer.status_code)
        assert actions(app)[len(before) :] == []
        assert "/admin/users" not in other.get("/account/password").text

    def test_a_non_admin_token_is_refused_with_403(self, app: FastAPI, boss: TestClient) -> None:
        made = boss.post("/api/v1/tokens", json={"name": "cust", "role": "custodian"}, headers=api_headers(boss)).json()
        bearer = {"Authorization": f"Bearer {made['token']}"}
        client = browser(app)
        assert client.get("/api/v1/users", headers=bearer).status_code == 403
        assert client.post("/api/v1/tokens", json={"name": "y", "role": "admin"}, headers=bearer).status_code == 403

    def test_an_admin_sees_the_link_others_do_not(self, app: FastAPI, boss: TestClient) -> None:
        assert 'href="/admin/users"' in boss.get("/").text
        add(app, "clerk")
        assert 'href="/admin/users"' not in browser(app, "clerk").get("/").text

    def test_a_form_without_its_token_is_refused(self, app: FastAPI, boss: TestClient) -> None:
        add(app, "clerk")
        for method, path in admin_routes():
            if method != "POST":
                continue
            answer = boss.post(path.replace("{name}", "clerk"), data={"name": "y", "role": ["auditor"]})
            assert answer.status_code == 403, path
            wrong = boss.post(path.replace("{name}", "clerk"), data={"csrf_token": "x" * 43, "name": "y"})
            assert wrong.status_code == 403, path
        assert [a for _, a, _ in actions(app) if a != "login"] == ["user-added", "user-added"]

    def test_an_admin_who_must_change_the_password_is_sent_there_first(self, app: FastAPI) -> None:
        add(app, "newboss", roles=("admin",), must_change_password=True)
        client = browser(app, "newboss")
        assert client.get("/admin/users").headers["location"] == "/account/password"
        assert client.get("/api/v1/users").status_code == 403
