"""The web application as a browser and a script meet it: health without credentials, every other
route refused until signed in, security headers on every answer, pages in Chinese or English,
forms refused without their token, sign-in cookies that stay on this site, a password to change
first, the project's errors as statuses without tracebacks, and hostile input shown escaped."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import create_engine

from pipeline import errors
from pipeline.accounts.tokens import create_token
from pipeline.accounts.users import add_user, ensure_first_admin
from pipeline.catalog.db import dispose_engines, session_scope
from pipeline.settings import Settings, load_settings
from pipeline.stage import TOOL
from pipeline.web.app import create_web_app
from pipeline.web.errors import status_for
from pipeline.web.headers import CSP
from pipeline.web.i18n import Translations, preferred
from pipeline.web.routes import ROUTERS
from tests.conftest import Service, wait_for

WEB = Path(__file__).resolve().parent.parent / "pipeline" / "web"
PASSWORD = "Seventeen chars 9"
PUBLIC = {
    ("GET", "/api/v1/health"),
    ("GET", "/login"),
    ("POST", "/login"),
    ("GET", "/language/{code}"),
    ("OPTIONS", "/api/v1/uploads"),  # tus discovery: what the server offers, before any credential
}
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
}


@pytest.fixture
def app(settings: Settings) -> Iterator[FastAPI]:
    yield create_web_app(settings)
    dispose_engines()


@pytest.fixture
def client(app: FastAPI) -> TestClient:
    """A browser on https (the session cookie is Secure), not following redirects."""
    return TestClient(app, base_url="https://testserver", follow_redirects=False)


def add_account(app: FastAPI, name: str, *, roles: tuple[str, ...] = ("custodian",), must_change: bool = False) -> None:
    with session_scope(app.state.engine) as session:
        add_user(
            session,
            name=name,
            roles=roles,
            password=PASSWORD,
            must_change_password=must_change,
            actor="tester",
            tool=TOOL,
        )


def form_token(page: httpx.Response) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert found, "the page has no form token"
    return found.group(1)


def sign_in(client: TestClient, name: str, password: str = PASSWORD) -> httpx.Response:
    token = form_token(client.get("/login"))
    return client.post("/login", data={"csrf_token": token, "name": name, "password": password})


def signed_in(app: FastAPI, name: str = "clerk") -> TestClient:
    add_account(app, name)
    browser = TestClient(app, base_url="https://testserver", follow_redirects=False)
    assert sign_in(browser, name).status_code == 303
    return browser


def routes() -> list[tuple[str, str]]:
    """Every method and path of the application's routers."""
    found = [route for router in ROUTERS for route in router.routes if isinstance(route, APIRoute)]
    return sorted((method, route.path) for route in found for method in route.methods)


def concrete(path: str) -> str:
    return path.replace("{code}", "en")


class TestHealth:
    def test_answers_without_credentials(self, client: TestClient) -> None:
        """A load balancer asks without signing in and learns the version and the catalog's state."""
        response = client.get("/api/v1/health")
        assert response.status_code == 200
        assert response.json() == {"status": "ok", "version": "0.1.0", "catalog": "ok"}

    def test_says_when_the_catalog_is_unreachable(self, app: FastAPI, client: TestClient) -> None:
        """With the database away the application still answers, and says the catalog is not there."""
        app.state.engine = create_engine(
            "postgresql+psycopg://nobody@127.0.0.1:1/none", connect_args={"connect_timeout": 2}
        )
        response = client.get("/api/v1/health")
        assert response.status_code == 200
        assert response.json()["catalog"] == "unreachable"


class TestCredentials:
    def test_every_other_route_refuses_without_credentials(self, app: FastAPI, client: TestClient) -> None:
        """Pages send a stranger to the sign-in page, the API answers 401, forms are refused."""
        walked = 0
        for method, path in routes():
            if (method, path) in PUBLIC:
                continue
            walked += 1
            response = client.request(method, concrete(path))
            if path.startswith("/api/") or path == "/openapi.json":
                assert response.status_code == 401, (method, path)
                assert response.headers["www-authenticate"] == "Bearer"
            elif method == "GET":
                assert response.status_code == 303, (method, path)
                assert response.headers["location"].startswith("/login"), (method, path)
            else:
                assert response.status_code in (303, 403), (method, path)
                assert "set-cookie" not in response.headers or "evidence_session" not in response.headers["set-cookie"]
        assert walked >= 4

    def test_a_wrong_bearer_token_is_refused(self, client: TestClient) -> None:
        for header in ("Bearer evk_nonsense_token", "Basic YWRtaW46YWRtaW4=", "Bearer "):
            assert client.get("/api/v1/me", headers={"Authorization": header}).status_code == 401

    def test_a_bearer_token_acts_as_its_role(self, app: FastAPI, client: TestClient) -> None:
        """A script with a token reads the API without a session or a form token."""
        with session_scope(app.state.engine) as session:
            made = create_token(session, name="dock-7", role="dock", dock="dock7", actor="tester", tool=TOOL)
        response = client.get("/api/v1/me", headers={"Authorization": f"Bearer {made.token}"})
        assert response.status_code == 200
        assert response.json()["name"] == "token:dock-7" and response.json()["roles"] == ["dock"]

    def test_no_docs_page_and_the_schema_only_for_the_signed_in(self, app: FastAPI, client: TestClient) -> None:
        """There is no Swagger page (it loads scripts from a CDN); the OpenAPI document is served
        to a signed-in user."""
        assert client.get("/docs").status_code == 404
        assert client.get("/redoc").status_code == 404
        assert client.get("/openapi.json").status_code == 401
        schema = signed_in(app).get("/openapi.json")
        assert schema.status_code == 200
        assert "/api/v1/health" in schema.json()["paths"]

    def test_a_page_refused_goes_on_after_signing_in(self, app: FastAPI) -> None:
        """The sign-in page remembers where the person was going (only paths on this site)."""
        add_account(app, "clerk")
        browser = TestClient(app, base_url="https://testserver", follow_redirects=False)
        assert browser.get("/account/password").headers["location"] == "/login?next=/account/password"
        page = browser.get("/login?next=/account/password")
        answer = browser.post(
            "/login",
            data={"csrf_token": form_token(page), "name": "clerk", "password": PASSWORD, "next": "/account/password"},
        )
        assert answer.headers["location"] == "/account/password"
        for elsewhere in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
            page = browser.get("/login", params={"next": elsewhere})
            assert elsewhere not in page.text


class TestSecurityHeaders:
    def test_every_answer_carries_them(self, app: FastAPI, client: TestClient) -> None:
        """Pages, API answers, redirects, static files, errors and a crash alike."""

        @app.get("/api/v1/crash")
        def crash() -> None:
            raise RuntimeError("secret detail of a bug")

        crashing = TestClient(app, base_url="https://testserver", follow_redirects=False, raise_server_exceptions=False)
        answers = [
            client.get("/api/v1/health"),
            client.get("/login"),
            client.get("/"),
            client.get("/api/v1/me"),
            client.get("/static/style.css"),
            client.get("/nowhere"),
            client.post("/login", data={}),
            client.get("/language/en"),
            crashing.get("/api/v1/crash"),
        ]
        for response in answers:
            for name, value in SECURITY_HEADERS.items():
                assert response.headers.get(name) == value, (response.request.url, name)
        assert [r.status_code for r in answers] == [200, 200, 303, 401, 200, 404, 403, 303, 500]
        assert "secret detail" not in answers[-1].text and "Traceback" not in answers[-1].text
        assert answers[1].headers["cache-control"] == "no-store"

    def test_no_inline_script_no_inline_style_no_external_address(self) -> None:
        """The templates and static files load nothing from elsewhere and run nothing inline, so
        the Content-Security-Policy holds without exceptions."""
        files = [p for p in WEB.rglob("*") if p.suffix in (".html", ".css", ".js")]
        assert files
        for path in files:
            text = path.read_text(encoding="utf-8")
            assert not re.search(r"https?://|//cdn|@import", text), path
            assert not re.search(r"<script(?![^>]*\bsrc=)", text), path
            assert not re.search(r"\sstyle=|\son[a-z]+=", text), path

    def test_pages_autoescape(self, app: FastAPI) -> None:
        assert app.state.templates.autoescape is True


class TestLanguage:
    def test_chinese_by_default(self, client: TestClient) -> None:
        page = client.get("/login")
        assert '<html lang="zh-CN">' in page.text and "用户名" in page.text

    def test_the_browser_language_is_followed(self, client: TestClient) -> None:
        page = client.get("/login", headers={"Accept-Language": "en-GB,en;q=0.9,zh;q=0.5"})
        assert '<html lang="en">' in page.text and "User name" in page.text

    def test_switching_to_english_is_remembered(self, client: TestClient) -> None:
        """The switch sets a cookie and goes back; Chinese again by the same way."""
        switched = client.get("/language/en", params={"next": "/login"})
        assert switched.status_code == 303 and switched.headers["location"] == "/login"
        assert "Sign in" in client.get("/login").text
        client.get("/language/zh")
        assert "登录" in client.get("/login").text
        assert client.get("/language/fr").status_code == 404

    def test_a_missing_text_falls_back_to_english_then_the_key(self, tmp_path: Path) -> None:
        (tmp_path / "zh.toml").write_text('[a]\nboth = "两者"\n', encoding="utf-8")
        (tmp_path / "en.toml").write_text('[a]\nboth = "both"\nonly_en = "English {n}"\n', encoding="utf-8")
        texts = Translations.load(tmp_path)
        assert texts.text("zh", "a.both") == "两者"
        assert texts.text("zh", "a.only_en", n=3) == "English 3"
        assert texts.text("zh", "a.nowhere") == "a.nowhere"

    def test_every_key_is_in_both_languages(self) -> None:
        texts = Translations.load()
        assert set(texts.texts["zh"]) == set(texts.texts["en"])

    def test_odd_accept_language_headers(self) -> None:
        assert preferred("zh-CN;q=0.2, en;q=0.8, *;q=0.1") == ["en", "zh"]
        assert preferred("en;q=x, fr;q=0, \udcff, de") == ["de"]


class TestCsrf:
    def test_sign_in_without_or_with_a_wrong_token_is_refused(self, app: FastAPI, client: TestClient) -> None:
        add_account(app, "clerk")
        client.get("/login")
        for data in ({}, {"csrf_token": ""}, {"csrf_token": "x" * 43}):
            response = client.post("/login", data={**data, "name": "clerk", "password": PASSWORD})
            assert response.status_code == 403
            assert "evidence_session" not in response.headers.get("set-cookie", "")

    def test_a_token_from_another_browser_is_refused(self, app: FastAPI, client: TestClient) -> None:
        add_account(app, "clerk")
        other = TestClient(app, base_url="https://testserver")
        stolen = form_token(other.get("/login"))
        client.get("/login")
        response = client.post("/login", data={"csrf_token": stolen, "name": "clerk", "password": PASSWORD})
        assert response.status_code == 403

    def test_signed_in_forms_need_the_session_token(self, app: FastAPI) -> None:
        """Signing out needs the token of this session (not the sign-in page's, not none)."""
        browser = signed_in(app)
        home = browser.get("/")
        assert browser.post("/logout").status_code == 403
        assert browser.post("/logout", data={"csrf_token": "y" * 43}).status_code == 403
        assert browser.get("/").status_code == 200  # still signed in
        out = browser.post("/logout", data={"csrf_token": form_token(home)})
        assert out.status_code == 303 and out.headers["location"] == "/login"
        assert browser.get("/").status_code == 303


class TestSignIn:
    def test_the_session_cookie_stays_on_this_site(self, app: FastAPI, client: TestClient) -> None:
        add_account(app, "clerk")
        response = sign_in(client, "clerk")
        assert response.status_code == 303 and response.headers["location"] == "/"
        cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith("evidence_session="))
        flags = {part.strip().lower() for part in cookie.split(";")[1:]}
        assert {"httponly", "samesite=strict", "secure", "path=/"} <= flags
        home = client.get("/")
        assert home.status_code == 200 and "clerk" in home.text

    def test_plain_http_cookies_only_when_the_setting_says_so(self, env: dict[str, str]) -> None:
        app = create_web_app(load_settings(web_insecure_cookies=True))
        add_account(app, "clerk")
        browser = TestClient(app, base_url="http://testserver", follow_redirects=False)
        response = sign_in(browser, "clerk")
        cookie = next(c for c in response.headers.get_list("set-cookie") if c.startswith("evidence_session="))
        assert "secure" not in cookie.lower()
        assert browser.get("/").status_code == 200

    def test_a_wrong_password_is_refused_on_the_page(self, app: FastAPI, client: TestClient) -> None:
        add_account(app, "clerk")
        response = sign_in(client, "clerk", "not the password")
        assert response.status_code == 401
        assert "用户名或密码不正确" in response.text
        assert "evidence_session" not in response.headers.get("set-cookie", "")


class TestPasswordChange:
    def test_the_first_admin_must_choose_a_password_first(self, app: FastAPI, client: TestClient) -> None:
        """Every page leads to the password form until a new password is chosen; then home."""
        with session_scope(app.state.engine) as session:
            first = ensure_first_admin(session, tool=TOOL)
        assert first
        response = sign_in(client, "admin", first)
        assert response.headers["location"] == "/account/password"
        assert client.get("/").headers["location"] == "/account/password"
        assert client.get("/api/v1/me").status_code == 403
        form = client.get("/account/password")
        assert form.status_code == 200 and "首次登录" in form.text
        token = form_token(form)
        differ = client.post(
            "/account/password", data={"csrf_token": token, "old": first, "new": PASSWORD, "repeat": "x"}
        )
        assert differ.status_code == 422 and "不一致" in differ.text
        weak = client.post(
            "/account/password", data={"csrf_token": token, "old": first, "new": "short", "repeat": "short"}
        )
        assert weak.status_code == 422
        assert client.get("/").status_code == 303
        done = client.post(
            "/account/password", data={"csrf_token": token, "old": first, "new": PASSWORD, "repeat": PASSWORD}
        )
        assert done.status_code == 303 and done.headers["location"] == "/"
        assert client.get("/").status_code == 200
        assert client.get("/api/v1/me").json()["roles"] == ["admin"]

    def test_the_form_needs_its_token(self, app: FastAPI) -> None:
        browser = signed_in(app)
        response = browser.post(
            "/account/password", data={"old": PASSWORD, "new": "A new one 12345", "repeat": "A new one 12345"}
        )
        assert response.status_code == 403


class TestErrors:
    @pytest.fixture
    def failing(self, app: FastAPI) -> TestClient:
        """Routes raising the project's errors, as a page and as the API."""
        raised = {
            "missing": errors.NotFoundError("item 01ABC not found"),
            "conflict": errors.ConflictError("capture time after arrival"),
            "invalid": errors.InvalidValueError("time '<b>x</b>' cannot be read"),
            "forbidden": errors.ForbiddenError("not yours"),
            "away": errors.TransientError("catalog database unavailable"),
        }

        def fail(what: str) -> None:
            raise raised[what]

        app.add_api_route("/api/v1/fail/{what}", fail)
        app.add_api_route("/fail/{what}", fail)
        return TestClient(app, base_url="https://testserver", follow_redirects=False)

    @pytest.mark.parametrize(
        ("what", "status"), [("missing", 404), ("conflict", 409), ("invalid", 422), ("forbidden", 403), ("away", 503)]
    )
    def test_the_api_answers_json(self, failing: TestClient, what: str, status: int) -> None:
        response = failing.get(f"/api/v1/fail/{what}")
        assert response.status_code == status
        assert set(response.json()) == {"detail", "error"}
        assert "Traceback" not in response.text

    def test_a_page_answers_a_page(self, failing: TestClient) -> None:
        response = failing.get("/fail/missing")
        assert response.status_code == 404
        assert response.headers["content-type"].startswith("text/html")
        assert "item 01ABC not found" in response.text and "未找到" in response.text
        escaped = failing.get("/fail/invalid")
        assert "&lt;b&gt;x&lt;/b&gt;" in escaped.text and "<b>x</b>" not in escaped.text

    def test_every_kind_of_project_error_has_a_status(self) -> None:
        assert status_for(errors.NotFoundError("x")) == 404
        assert status_for(errors.ConflictError("x")) == 409
        assert status_for(errors.InvalidValueError("x")) == 422
        assert status_for(errors.StoreFullError("x")) == 503
        forbidden = getattr(errors, "ForbiddenError", None)
        if forbidden is not None:
            assert status_for(forbidden("x")) == 403
        for name in ("WithheldError", "PurposeRequiredError"):
            if hasattr(errors, name):
                assert status_for(getattr(errors, name)("01ABC")) == 403
        assert status_for(errors.PasswordRejected("weak")) == 422

    def test_unknown_routes_and_methods(self, client: TestClient) -> None:
        assert client.get("/api/v1/nowhere").json() == {"detail": "Not Found"}
        assert client.delete("/api/v1/health").status_code == 405


class TestHostileInput:
    HOSTILE = ("<script>alert(1)</script>", "%ff%fe", "x" * 20000, "\x00\x1b[31m", "/%2e%2e/%2e%2e/etc/passwd")

    def test_query_parameters_never_fail_and_are_shown_escaped(self, client: TestClient) -> None:
        for value in self.HOSTILE:
            for path in ("/login", "/language/en", "/", "/api/v1/health"):
                response = client.get(path, params={"next": value, "q": value})
                assert response.status_code < 500, (path, value[:20])
                assert "<script>alert" not in response.text
        raw = client.get("/login?next=%ff%fe%3Cscript%3E&lang=%ff")
        assert raw.status_code == 200 and "<script>" not in raw.text

    def test_hostile_paths(self, client: TestClient) -> None:
        for path in ("/nowhere/%ff%fe", "/nowhere/<script>alert(1)</script>", "/language/%ff%fe", "/" + "y" * 5000):
            response = client.get(path)
            assert response.status_code == 404, path
            assert "<script>alert" not in response.text

    def test_a_hostile_name_is_shown_escaped(self, client: TestClient) -> None:
        name = '"><script>alert(1)</script>'
        token = form_token(client.get("/login"))
        response = client.post("/login", data={"csrf_token": token, "name": name, "password": "x"})
        assert response.status_code == 401
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in response.text
        assert "<script>alert" not in response.text

    def test_a_form_that_is_not_a_form(self, client: TestClient) -> None:
        token = form_token(client.get("/login"))
        odd = client.post(
            "/login", content=b"\xff\xfe" * 1000, headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        assert odd.status_code == 403
        assert client.post("/login", data={"csrf_token": token, "name": ["a", "b"]}).status_code < 500


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow
class TestServing:
    @pytest.fixture
    def database_url(self) -> str:
        """The embedded catalog: starting the application does not depend on the database."""
        return ""

    def test_serve_starts_the_web_application_and_shows_the_first_login_once(self, start) -> None:  # type: ignore[no-untyped-def]
        """`serve` says where the application listens once it does, and the first admin's
        password on the first start only."""
        port = free_port()
        line = f"web: http://127.0.0.1:{port}/"
        first: Service = start("serve", extra_env={"EVIDENCE_WEB_BIND": f"127.0.0.1:{port}"})
        wait_for(lambda: line in first.output(), 60, "serve to say where the web application listens")
        health = httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=10)
        assert health.json() == {"status": "ok", "version": "0.1.0", "catalog": "ok"}
        assert f"  web          http://127.0.0.1:{port}/" in first.output()
        logins = re.findall(r"^first login: admin / (\S+) \(change it at first login\)$", first.output(), re.M)
        assert len(logins) == 1
        first.stop()
        assert first.process.returncode == 0, first.output()[-2000:]
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=5)

        again: Service = start("serve", extra_env={"EVIDENCE_WEB_BIND": f"127.0.0.1:{port}"})
        wait_for(lambda: line in again.output(), 60, "serve to start again")
        assert "first login" not in again.output()

    def test_web_alone_listens_where_bind_says(self, start) -> None:  # type: ignore[no-untyped-def]
        port = free_port()
        service: Service = start("web", "--bind", f"127.0.0.1:{port}")
        wait_for(lambda: f"web: http://127.0.0.1:{port}/" in service.output(), 60, "the web application to listen")
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=10).status_code == 200
        assert "first login: admin / " in service.output()
        service.stop()
        assert service.process.returncode == 0, service.output()[-2000:]

    def test_web_refuses_a_bind_that_is_not_host_and_port(self, cli) -> None:  # type: ignore[no-untyped-def]
        result = cli("web", "--bind", "8000")
        assert result.exit_code == 2 and "--bind" in result.errors


class TestIdleSessions:
    def test_a_browser_left_unused_longer_than_the_setting_must_sign_in_again(self, app: FastAPI) -> None:
        """A session unused for ``session_idle_minutes`` no longer signs anyone in, even before its
        end; one in use stays signed in."""
        from datetime import timedelta

        from sqlmodel import Session, select

        from pipeline.accounts.rules import TOUCH_EVERY
        from pipeline.catalog.people import WebSession

        idle_for = timedelta(minutes=app.state.settings.session_idle_minutes)
        away, busy = signed_in(app, "clerk"), signed_in(app, "busy")
        with Session(app.state.engine) as session:
            for web in session.exec(select(WebSession)).all():
                web.last_seen_at -= idle_for - TOUCH_EVERY  # both nearly idle out
                session.add(web)
            session.commit()
        assert busy.get("/").status_code == 200  # seen again: its idle time starts over
        with Session(app.state.engine) as session:
            for web in session.exec(select(WebSession)).all():
                web.last_seen_at -= 2 * TOUCH_EVERY
                session.add(web)
            session.commit()
        gone = away.get("/items")
        assert gone.status_code == 303 and gone.headers["location"].startswith("/login")
        assert away.get("/api/v1/me").status_code == 401
        assert busy.get("/items").status_code == 200
