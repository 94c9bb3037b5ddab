"""Every route of the web application walked as every role (ACCESS.md, STYLE.md 16), on SQLite and
PostgreSQL, over one world of real clips of each class: the status each role gets for each item
class, a stranger sent to the sign-in page everywhere but the few open routes, nothing of a record
a viewer may not know exists (its ID, name, hash, facts) in any answer, withheld records by ID and
class only, and counts of what the viewer may know. A route missing from :data:`RULES` fails the
walk, so no route is added unprotected by accident."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
from click.testing import CliRunner
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text
from starlette.routing import Mount

from pipeline.accounts.tokens import create_token
from pipeline.accounts.users import add_user
from pipeline.accounts.views import find_user, viewer_for_user
from pipeline.catalog.access_requests import approve_access, request_access
from pipeline.catalog.cases import assign_case_member, set_classification
from pipeline.catalog.db import dispose_engines, session_scope
from pipeline.catalog.models import Package
from pipeline.catalog.viewer import Viewer
from pipeline.cli import main
from pipeline.probe.assign import assign_facts
from pipeline.runtime import probe_context
from pipeline.settings import load_settings
from pipeline.stage import TOOL
from pipeline.web.app import create_web_app
from pipeline.web.csrf import HEADER
from tests.conftest import MediaMaker
from tests.test_web import PASSWORD, form_token, sign_in

SERVER = Viewer.local("root")
ALL = ("privacy", "trade-secret", "state-secret")
SECRET = {"trade-secret", "state-secret"}
CASE_A, CASE_B = "CASE-ALPHA", "CASE-BRAVO"
MISSING = "0" * 26  # an item ID nothing has
# item: (its own class, its case, a marker found in its name and facts only)
ITEMS: dict[str, tuple[str, str, str]] = {
    "n": ("none", CASE_A, "harbor"),
    "p": ("privacy", CASE_A, "meadow"),
    "t": ("trade-secret", CASE_A, "orchard"),
    "s": ("state-secret", CASE_A, "glacier"),
    "x": ("none", CASE_B, "canyon"),  # the class of its case: state-secret
}
CLASS_OF = {"n": "none", "p": "privacy", "t": "trade-secret", "s": "state-secret", "x": "state-secret"}
# case: (number, class); Z is a number nothing has (a case is a number: its page is empty until used)
CASES = {"A": (CASE_A, "none"), "B": (CASE_B, "state-secret"), "Z": (MISSING, "none")}
# disc packages recorded (no discs made yet): package: (case, items in it)
PACKAGES = {"Pn": ("A", "n"), "Pnt": ("A", "nt"), "Px": ("B", "x")}


@dataclass(frozen=True)
class Role:
    """Who a walker is: roles, clearances, cases assigned, items granted by an approved request."""

    roles: frozenset[str] = frozenset()
    clearances: frozenset[str] = frozenset()
    cases: frozenset[str] = frozenset()
    grants: frozenset[str] = frozenset()
    token: bool = False  # signs with a bearer token, not a browser session

    def knows(self, item: str) -> bool:
        """Whether the viewer may know ``item`` exists (ACCESS.md)."""
        if item not in ITEMS or not self.roles & {"custodian", "auditor", "case-handler"}:
            return False
        if CLASS_OF[item] != "none" and CLASS_OF[item] not in self.clearances:
            return False
        return bool(self.roles & {"custodian", "auditor"}) or ITEMS[item][1] in self.cases

    def withheld(self, item: str) -> bool:
        return self.knows(item) and CLASS_OF[item] in SECRET and item not in self.grants

    def knows_case(self, case: str) -> bool:
        """Whether the viewer may know the case exists: their roles reach it, cleared for its class."""
        number, classification = CASES[case]
        if case == "Z" or (classification != "none" and classification not in self.clearances):
            return False
        return self.may("custodian", "auditor") or number in self.cases

    def case_withheld(self, case: str) -> bool:
        return self.knows_case(case) and CASES[case][1] in SECRET and case not in self.grants

    def knows_package(self, package: str) -> bool:
        """A package is known to a viewer who may know its case and every item in it."""
        case, items = PACKAGES[package]
        return self.knows_case(case) and all(self.knows(item) for item in items)

    def may(self, *roles: str) -> bool:
        return bool(self.roles & set(roles))


def role(*roles: str, clearances: tuple[str, ...] = (), cases: tuple[str, ...] = (), grants: str = "") -> Role:
    """Grants: item names, and case names for a grant on a whole case (its items granted too)."""
    granted = set(grants) | {
        item for item, (_, number, _) in ITEMS.items() if any(CASES.get(c, ("",))[0] == number for c in grants)
    }
    return Role(frozenset(roles), frozenset(clearances), frozenset(cases), frozenset(granted))


ANON = "anonymous"
ROLES: dict[str, Role] = {
    "admin": role("admin", clearances=ALL),
    "cust0": role("custodian"),
    "custC": role("custodian", clearances=ALL),
    "custG": role("custodian", clearances=ALL, grants="tsxB"),
    "aud": role("auditor", clearances=("privacy",)),
    "handA": role("case-handler", clearances=ALL, cases=(CASE_A,)),
    "handB": role("case-handler", cases=(CASE_B,)),
    "dock": Role(frozenset({"dock"}), token=True),
}

# ------------------------------------------------------------------------------ expectation table
OK = frozenset({200, 201, 202, 204, 206, 303})
Outcome = frozenset[int]
Rule = Callable[[str, str | None], Outcome]  # (walker, item or None) -> the statuses expected


def _is(*statuses: int) -> Outcome:
    return frozenset(statuses)


REFUSED = _is(403)


def public(walker: str, item: str | None) -> Outcome:
    """Open to anyone, signed in or not."""
    return OK | _is(403, 422)  # a form posted without its token, or nonsense, is refused, never sent to /login


def signed_in(walker: str, item: str | None) -> Outcome:
    """Anyone signed in, whatever their roles."""
    return OK


def refused_as_invalid(walker: str, item: str | None) -> Outcome:
    """Anyone signed in, and what the walk sends is refused for what it says (two new passwords
    that differ), never for who sends it."""
    return _is(422)


def only(*allowed: str, ok: Outcome = OK) -> Rule:
    """Only viewers holding one of ``allowed`` roles; the others are refused (403)."""

    def rule(walker: str, item: str | None) -> Outcome:
        return ok if ROLES[walker].may(*allowed) else _is(403)

    rule.__doc__ = f"only {', '.join(allowed)}"
    return rule


def on_item(*allowed: str, withheld: Outcome = REFUSED) -> Rule:
    """An action on one item: 404 unless the viewer may know the item exists; then 403 unless they
    hold one of ``allowed`` roles; then ``withheld`` for a secret record without a grant."""

    def rule(walker: str, item: str | None) -> Outcome:
        who = ROLES[walker]
        if item is None or not who.knows(item):
            return _is(404)
        if not who.may(*allowed):
            return _is(403)
        return withheld if who.withheld(item) else OK

    rule.__doc__ = f"items the viewer knows, for {', '.join(allowed)}"
    return rule


def asking(walker: str, item: str | None) -> Outcome:
    """Asking for access to an item: not found unless the viewer may know it; a record that needs
    no request (not secret), or a token without an account, is refused as invalid (422)."""
    who = ROLES[walker]
    if who.token:
        return _is(422)
    if item is None or not who.knows(item):
        return _is(404)
    return OK if CLASS_OF[item] in SECRET else _is(422)


def on_case(*allowed: str, withheld: Outcome = REFUSED, ok: Outcome = OK) -> Rule:
    """An action on one case: 404 unless the viewer may know the case; then 403 unless they hold
    one of ``allowed`` roles; then ``withheld`` for a secret case without a grant."""

    def rule(walker: str, case: str | None) -> Outcome:
        who = ROLES[walker]
        if case is None or not who.knows_case(case):
            return _is(404)
        if not who.may(*allowed):
            return _is(403)
        return withheld if who.case_withheld(case) else ok

    rule.__doc__ = f"cases the viewer knows, for {', '.join(allowed)}"
    return rule


def assigning(walker: str, case: str | None) -> Outcome:
    """Assigning a case handler (already assigned: 409): custodians, for cases they may know
    (withheld or not: it shows nothing of the records), and admins, for any case
    (pipeline.catalog.cases.assign_case_member: admins manage who handles what)."""
    if ROLES[walker].may("admin"):
        return OK | _is(409)
    return on_case("custodian", withheld=OK | _is(409), ok=OK | _is(409))(walker, case)


def packaging(walker: str, case: str | None) -> Outcome:
    """Requesting a case's disc package: 404 unless the viewer may know the case; 403 unless a
    custodian or one of its handlers; 403 when any record of it is withheld from them, or 404 when
    any is hidden (the package would hold what they may not see)."""
    who = ROLES[walker]
    if case is None or not who.knows_case(case):
        return _is(404)
    if not who.may(*CONTENT):
        return _is(403)
    items = [item for item, (_, number, _) in ITEMS.items() if number == CASES[case][0]]
    if not items:
        return _is(422)  # nothing to package
    if not all(who.knows(item) for item in items):
        return _is(404)
    return _is(403) if any(who.withheld(item) for item in items) else OK


def on_package(*allowed: str, ok: Outcome = OK) -> Rule:
    """A disc package: 404 unless the viewer may know it (its case and every item in it); then
    403 unless they hold one of ``allowed`` roles."""

    def rule(walker: str, package: str | None) -> Outcome:
        who = ROLES[walker]
        if package is None or not who.knows_package(package):
            return _is(404)
        return ok if who.may(*allowed) else _is(403)

    rule.__doc__ = f"packages the viewer knows, for {', '.join(allowed)}"
    return rule


def on_request(walker: str, item: str | None) -> Outcome:
    """Deciding an access request: only an approver who is not the requester (none of the walkers
    is one); a request the viewer may not see is not found."""
    return _is(403, 404)


CONTENT = ("custodian", "case-handler")
FACTS = ("custodian", "case-handler", "auditor")
AUDIT = ("admin", "auditor")
ADMIN_OK = OK | _is(409, 422)  # adding what is there already is refused, and changes nothing
UPLOADERS = ("dock", "custodian")

# Every route of the application, "METHOD path" -> who may use it.
RULES: dict[str, Rule] = {
    "GET /api/v1/health": public,
    "GET /login": public,
    "POST /login": public,
    "GET /language/{code}": public,
    "POST /logout": signed_in,
    "GET /": signed_in,
    "GET /account/password": signed_in,
    "POST /account/password": refused_as_invalid,
    "GET /api/v1/me": signed_in,
    "GET /openapi.json": signed_in,
    # the catalog
    "GET /items": signed_in,  # each viewer lists what they may know: nothing for an admin or a dock
    "GET /queues": signed_in,
    "GET /api/v1/items": signed_in,
    "GET /items/{ident}": on_item(*FACTS),
    "GET /api/v1/items/{ident}": on_item(*FACTS),
    "PATCH /api/v1/items/{ident}": on_item("custodian"),
    "POST /items/{ident}/facts": on_item("custodian"),
    "POST /items/{ident}/classification": on_item("custodian"),
    "POST /items/{ident}/purpose": on_item(*FACTS),
    # content
    "GET /items/{ident}/media/access": on_item(*CONTENT),
    "GET /items/{ident}/media/poster": on_item(*CONTENT),
    "GET /items/{ident}/media/sheet": on_item(*CONTENT),
    "GET /items/{ident}/original": on_item(*CONTENT),
    "POST /items/{ident}/original": on_item(*CONTENT),
    "GET /api/v1/items/{ident}/media/{what}": on_item(*CONTENT),
    # the custody log
    "GET /reports": only("admin", "custodian", "auditor"),
    "GET /api/v1/reports": only("admin", "custodian", "auditor"),
    "GET /audit": only(*AUDIT),
    "POST /audit/verify": only(*AUDIT),
    "GET /audit/retrievals": only(*AUDIT),
    "GET /api/v1/audit/events": only(*AUDIT),
    "POST /api/v1/audit/verify": only(*AUDIT),
    "GET /api/v1/audit/retrievals": only(*AUDIT),
    # access requests
    "GET /access": signed_in,
    "GET /access/new": signed_in,
    "POST /access": asking,
    "POST /api/v1/access-requests": asking,
    "GET /api/v1/access-requests": signed_in,
    "POST /access/{ident}/approve": on_request,
    "POST /access/{ident}/deny": on_request,
    "POST /api/v1/access-requests/{ident}/approve": on_request,
    "POST /api/v1/access-requests/{ident}/deny": on_request,
    # accounts and tokens (the world's "spare" account and "spare-token" are what they act on)
    "GET /admin/users": only("admin"),
    "POST /admin/users": only("admin", ok=ADMIN_OK),
    "POST /admin/users/{name}/disable": only("admin"),
    "POST /admin/users/{name}/enable": only("admin"),
    "POST /admin/users/{name}/password": only("admin"),
    "POST /admin/users/{name}/roles": only("admin"),
    "GET /admin/tokens": only("admin"),
    "POST /admin/tokens": only("admin", ok=ADMIN_OK),
    "POST /admin/tokens/{name}/revoke": only("admin", ok=ADMIN_OK),  # revoked already: 409
    "GET /api/v1/users": only("admin"),
    "POST /api/v1/users": only("admin", ok=ADMIN_OK),
    "POST /api/v1/users/{name}/disable": only("admin"),
    "POST /api/v1/users/{name}/enable": only("admin"),
    "POST /api/v1/users/{name}/password": only("admin"),
    "POST /api/v1/users/{name}/roles": only("admin"),
    "GET /api/v1/tokens": only("admin"),
    "POST /api/v1/tokens": only("admin", ok=ADMIN_OK),
    "POST /api/v1/tokens/{name}/revoke": only("admin", ok=ADMIN_OK),
    # cases
    "GET /cases": signed_in,
    "GET /api/v1/cases": signed_in,
    "GET /cases/{number:path}": on_case(*FACTS, withheld=OK),  # a withheld case is shown without its target
    "GET /api/v1/cases/{number:path}": on_case(*FACTS, withheld=OK),
    "POST /cases/{number:path}/target": on_case("custodian"),
    "POST /cases/{number:path}/classification": on_case("custodian"),
    "POST /cases/{number:path}/handlers": assigning,
    # disc packages
    "POST /cases/{number:path}/packages": packaging,
    "POST /api/v1/cases/{number:path}/packages": packaging,
    "GET /api/v1/packages": signed_in,
    "GET /packages/{package_id}": on_package(*FACTS),
    "GET /api/v1/packages/{package_id}": on_package(*FACTS),
    "POST /packages/{package_id}/verify": on_package(*CONTENT, ok=_is(422)),  # no discs to read back
    "POST /api/v1/packages/{package_id}/verify": on_package(*CONTENT, ok=_is(422)),
    "GET /packages/{package_id}/discs/{index}/{what}": on_package(*CONTENT, ok=_is(404)),  # no discs made
    "GET /api/v1/packages/{package_id}/discs/{index}/{what}": on_package(*CONTENT, ok=_is(404)),
    # the upload page (only a form: the uploads themselves are /api/v1/uploads)
    "GET /upload": only("custodian"),
    # resumable uploads (tus): discovery is open; the walk sends no Tus-Resumable header, so an
    # uploader is answered 412 (its uploads are looked up only after that), anyone else 403
    "OPTIONS /api/v1/uploads": public,
    "POST /api/v1/uploads": only(*UPLOADERS, ok=_is(412)),
    "PATCH /api/v1/uploads/{upload_id}": only(*UPLOADERS, ok=_is(412)),
    "DELETE /api/v1/uploads/{upload_id}": only(*UPLOADERS, ok=_is(412)),
}
OPEN = {"GET /api/v1/health", "GET /login", "POST /login", "GET /language/{code}", "OPTIONS /api/v1/uploads"}
# Routes whose answers may name an item the viewer may not see by its ID (the custody log shows an
# event's target, never what the record holds: pipeline.catalog.queries.audit).
SHOWS_TARGETS = {"GET /audit", "GET /audit/retrievals", "GET /api/v1/audit/events", "GET /api/v1/audit/retrievals"}


# ------------------------------------------------------------------------------------------ world
@dataclass
class World:
    app: FastAPI
    ids: dict[str, str]
    sha: dict[str, str]
    request_id: str  # a pending access request (custC's, for t)
    packages: dict[str, str]  # package name -> ID
    clients: dict[str, TestClient] = field(default_factory=dict)
    csrf: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)

    def client(self, walker: str) -> TestClient:
        """The walker's browser (or token client), signed in once."""
        if walker not in self.clients:
            client = TestClient(self.app, base_url="https://testserver", follow_redirects=False)
            if walker == ANON:
                pass
            elif ROLES[walker].token:
                client.headers["Authorization"] = f"Bearer {self.tokens[walker]}"
            else:
                assert sign_in(client, walker).status_code == 303, walker
                self.csrf[walker] = form_token(client.get("/account/password"))
                client.headers[HEADER] = self.csrf[walker]
            self.clients[walker] = client
        return self.clients[walker]

    def markers(self, item: str) -> dict[str, str]:
        """What of ``item`` a viewer who may not see it must never be shown."""
        _, number, marker = ITEMS[item]
        found = {"id": self.ids[item], "sha256": self.sha[item], "name": f"evidence-{marker}", "fact": marker}
        if number == CASE_B:  # a case of a class the viewer is not cleared for is not known either
            found["case"] = number
        return found


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, media_dir: Path) -> Iterator[World]:
    """The items of ITEMS (real clips, taken in and derived, their facts set and classified), the
    walkers of ROLES (custG holding approved requests for t, s and case B) and a pending request."""
    home = tmp_path_factory.mktemp("matrix")
    database, schema = "", None
    if request.param == "postgresql":
        admin_url = str(request.getfixturevalue("postgres_admin"))
        schema = f"t_{uuid.uuid4().hex[:12]}"
        with create_engine(admin_url, isolation_level="AUTOCOMMIT").connect() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        database = f"{admin_url}?options=-csearch_path%3D{schema}"
    values = {
        "EVIDENCE_HOME": str(home / "data"),
        "EVIDENCE_DATABASE_URL": database,
        "EVIDENCE_QUEUE_PREFIX": f"test{uuid.uuid4().hex[:8]}",
        "EVIDENCE_ACTOR": "tester",
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in values.items():
            patch.setenv(key, value)
        settings = load_settings()
        media = MediaMaker(media_dir)
        for n, (_, _, marker) in enumerate(ITEMS.values(), start=1):
            media.variant("clip.mp4", settings.inbox_dir / "dock1" / f"evidence-{marker}.mp4", n)
        result = CliRunner().invoke(main, ["ingest", str(settings.inbox_dir), "--json"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        records = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
        by_marker = {marker: name for name, (_, _, marker) in ITEMS.items()}
        ids = {by_marker[Path(str(r["path"])).stem.removeprefix("evidence-")]: str(r["item"]) for r in records}
        sha = {by_marker[Path(str(r["path"])).stem.removeprefix("evidence-")]: str(r["sha256"]) for r in records}
        ctx = probe_context(settings)
        for name, (_, case, marker) in ITEMS.items():
            facts = {
                "case_number": case,
                "captured_at": "2025-09-30T10:00",
                "collector": f"officer-{marker}",
                "captured_place": f"street-{marker}",
            }  # proof_object left out: every record is in that queue
            assign_facts(ctx, ident=ids[name], facts=facts, viewer=SERVER)
        app = create_web_app(settings)
        with session_scope(app.state.engine) as session:
            for name, (own, _, _) in ITEMS.items():
                set_classification(session, viewer=SERVER, item_id=ids[name], classification=own, tool=TOOL)
            set_classification(session, viewer=SERVER, case_number=CASE_B, classification="state-secret", tool=TOOL)
            for walker, who in ROLES.items():
                if not who.token:
                    add_user(
                        session,
                        name=walker,
                        roles=sorted(who.roles),
                        clearances=sorted(who.clearances),
                        password=PASSWORD,
                        actor="tester",
                        tool=TOOL,
                    )
            add_user(session, name="spare", roles=["custodian"], actor="tester", tool=TOOL)
            create_token(session, name="spare-token", role="custodian", actor="tester", tool=TOOL)
            add_user(session, name="boss", roles=["auditor"], clearances=ALL, approver=True, actor="tester", tool=TOOL)
            session.flush()
            for walker, who in ROLES.items():
                for case in who.cases:
                    assign_case_member(session, viewer=SERVER, case_number=case, user_name=walker, tool=TOOL)
            tokens = {
                "dock": create_token(session, name="dock-1", role="dock", dock="dock1", actor="t", tool=TOOL).token
            }
        with session_scope(app.state.engine) as session:
            boss = viewer_for_user(find_user(session, "boss"))
            granted = viewer_for_user(find_user(session, "custG"))
            until = datetime.now(UTC) + timedelta(days=1)
            for target in ({"item_id": ids["t"]}, {"item_id": ids["s"]}, {"case_number": CASE_B}):
                asked = request_access(session, viewer=granted, purpose="复核", tool=TOOL, **target)
                approve_access(session, viewer=boss, request_id=asked.id, until=until, tool=TOOL)
            pending = request_access(
                session,
                viewer=viewer_for_user(find_user(session, "custC")),
                item_id=ids["t"],
                purpose="审查",
                tool=TOOL,
            )
            packages = {}
            for label, (case, members) in PACKAGES.items():
                package = Package(
                    case_number=CASES[case][0],
                    item_ids=[ids[m] for m in members],
                    requested_by="root",
                    producer="root",
                    media="dvd",
                    capacity=4_700_000_000,
                    out_dir=str(settings.home),
                )
                session.add(package)
                session.flush()
                packages[label] = package.id
        yield World(app, ids, sha, pending.id, packages, tokens=tokens)
        dispose_engines()
    if schema is not None:
        with create_engine(str(request.getfixturevalue("postgres_admin")), isolation_level="AUTOCOMMIT").connect() as c:
            c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


# ------------------------------------------------------------------------------------------- walk
def app_routes(app: FastAPI) -> list[tuple[str, APIRoute]]:
    """Every "METHOD path" of the application (HEAD left out: it answers as GET)."""
    found = []
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute):
            found += [(f"{method} {context.path}", route) for method in sorted((context.methods or set()) - {"HEAD"})]
        else:
            assert isinstance(route, Mount) and route.path == "/static", f"a route the walk does not know: {route}"
    return found


@dataclass(frozen=True)
class Call:
    key: str  # "METHOD path" of the route
    method: str
    url: str
    item: str | None  # the item named by the path (or the body), if any
    data: dict[str, str] | None = None
    json: dict[str, object] | None = None
    echoed: tuple[str, ...] = ()  # what the caller sent that the answer may show back


def calls(world: World, key: str, route: APIRoute) -> Iterator[Call]:
    """The requests that try ``route``: once per item (and an ID nothing has) for a route about an
    item, once otherwise; bodies that change nothing of the world."""
    method, path = key.split(" ", 1)
    queries = {p.alias for p in route.dependant.query_params}
    params = {"purpose": "walk"} if "purpose" in queries else {}
    targets: list[str | None] = [None]
    names: dict[str, str] = {}  # target -> what stands for it in the path
    about_item = "{ident}" in path and not path.startswith(("/access/", "/api/v1/access-requests/"))
    if about_item or key in ("POST /access", "POST /api/v1/access-requests"):
        targets, names = [*ITEMS, MISSING], world.ids
    elif "{number:path}" in path:
        # a number nothing has is tried where it cannot make a case: not on the forms that would
        targets, names = [*CASES], {case: number for case, (number, _) in CASES.items()}
        if method == "POST" and not key.endswith("/packages"):
            targets.remove("Z")
    elif "{package_id}" in path:
        targets, names = [*PACKAGES, MISSING], world.packages
    for item in targets:
        ident = names.get(item or "", MISSING) if item else world.request_id
        spare = "spare-token" if "/tokens/" in path else "spare"
        url = path.replace("{ident}", ident).replace("{code}", "en").replace("{name}", spare)
        url = url.replace("{number:path}", ident).replace("{package_id}", ident).replace("{index}", "1")
        url = url.replace("{what}", "image" if "{package_id}" in path else "access").replace("{upload_id}", MISSING)
        assert "{" not in url, f"{key}: say what its path parameters are filled with"
        if params:
            url += "?" + urlencode(params)
        data: dict[str, str] | None = None
        body: dict[str, object] | None = None
        if method != "GET":
            data, body = _body(key, item, ident)
        yield Call(key, method, url, item if item != MISSING else None, data, body, (ident,) if item else ())


Body = tuple[dict[str, str] | None, dict[str, object] | None]  # a form, or JSON


def _body(key: str, item: str | None, ident: str) -> Body:
    """A body that passes validation and leaves the world as it was."""
    _, _, marker = ITEMS.get(item or "", ("", "", ""))
    if key == "PATCH /api/v1/items/{ident}":
        return None, {"facts": {"collector": f"officer-{marker}" if marker else "nobody"}}
    if key == "POST /items/{ident}/facts":
        return {"collector": f"officer-{marker}" if marker else "nobody"}, None
    if key == "POST /items/{ident}/classification":
        return {"classification": ITEMS[item][0] if item in ITEMS else "none"}, None
    if key in ("POST /access", "POST /api/v1/access-requests"):
        target = {"item": ident, "purpose": "walk"}
        return (target, None) if key == "POST /access" else (None, dict(target))
    if key.endswith("/approve"):
        until = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
        return ({"until": until}, None) if not key.startswith("POST /api/") else (None, {"until": until})
    if key.endswith("/deny") and key.startswith("POST /api/"):
        return None, {}
    if key in ("POST /admin/users", "POST /admin/tokens"):
        return {"name": "spare" if key.endswith("users") else "spare-token", "role": "custodian"}, None
    if key == "POST /api/v1/users":
        return None, {"name": "spare", "roles": ["custodian"]}
    if key == "POST /api/v1/tokens":
        return None, {"name": "spare-token", "role": "custodian"}
    if key.endswith("/roles"):
        return ({"role": "custodian"}, None) if key.startswith("POST /admin/") else (None, {"roles": ["custodian"]})
    if key.startswith("POST /cases/{number:path}/"):
        classification = CASES.get(item or "", ("", "none"))[1]
        handler = "handA" if item == "A" else "handB"
        fields = {"target": {"target": "Target Co"}, "classification": {"classification": classification}}
        fields["handlers"] = {"user": handler, "action": "add"}
        fields["packages"] = {"media": "dvd", "purpose": "walk"}
        return fields[key.rsplit("/", 1)[1]], None
    if key == "POST /api/v1/cases/{number:path}/packages":
        return None, {"media": "dvd", "purpose": "walk"}
    if key == "POST /account/password":
        return {"old": "wrong", "new": "one", "repeat": "two"}, None
    if key in ("POST /items/{ident}/purpose", "POST /items/{ident}/original"):
        return {"purpose": "walk"}, None
    return {}, None


def send(world: World, walker: str, call: Call) -> httpx.Response:
    """``call`` made as ``walker``; signing in and out with a browser of their own, so the walker's
    session stays (and no failed sign-in is counted against the test client's address)."""
    client = world.client(walker)
    if call.key == "POST /login":
        fresh = TestClient(world.app, base_url="https://testserver", follow_redirects=False)
        if walker == ANON or ROLES[walker].token:
            return fresh.post("/login", data={"name": "nobody"})
        signed: httpx.Response = sign_in(fresh, walker)
        return signed
    if call.key == "POST /logout" and walker != ANON and not ROLES[walker].token:
        client = TestClient(world.app, base_url="https://testserver", follow_redirects=False)
        assert sign_in(client, walker).status_code == 303
        client.headers[HEADER] = form_token(client.get("/account/password"))
    response: httpx.Response = client.request(call.method, call.url, data=call.data, json=call.json)
    return response


def leaks(world: World, walker: str, call: Call, body: str) -> list[str]:
    """What of the records ``walker`` may not see (or sees withheld) ``body`` shows."""
    for echoed in call.echoed:
        body = body.replace(echoed, "")
    found = []
    who = ROLES[walker]
    for item in ITEMS:
        if who.knows(item) and not who.withheld(item):
            continue
        for what, value in world.markers(item).items():
            if who.knows(item) and what in ("id", "sha256"):
                continue  # a withheld record is listed by its ID and hash, without its name and facts
            if what in ("id", "case") and call.key in SHOWS_TARGETS:
                continue  # the log names its events' targets
            if what == "case" and who.knows_case("B"):
                continue
            if value in body:
                found.append(f"{item}'s {what}")
    for package, package_id in world.packages.items():
        if not who.knows_package(package) and package_id in body and call.key not in SHOWS_TARGETS:
            found.append(f"package {package}")
    return found


def knows(walker: str, key: str, target: str | None) -> bool:
    """Whether the walker may know the item, case or package ``target`` of route ``key`` exists."""
    who = ROLES[walker]
    if target in PACKAGES and "{package_id}" in key:
        return who.knows_package(target)
    if target in CASES and "{number:path}" in key:
        return who.knows_case(target) and target != "Z"
    return target in ITEMS and who.knows(target)


class TestEveryRoute:
    def test_every_route_has_a_rule(self, world: World) -> None:
        """A route added to the application without a line in RULES fails here."""
        keys = [key for key, _ in app_routes(world.app)]
        assert sorted(set(keys) - set(RULES)) == [], "routes without a rule in RULES"

    def test_strangers_only_reach_the_open_routes(self, world: World) -> None:
        """Without credentials every route but health, sign-in and the language switch sends the
        browser to /login (pages) or answers 401 (API)."""
        for key, route in app_routes(world.app):
            for call in calls(world, key, route):
                response = send(world, ANON, call)
                if key in OPEN:
                    assert response.status_code in public(ANON, None), (key, response.status_code)
                    assert not response.headers.get("location", "").startswith("/login"), key
                elif call.url.startswith("/api/") or call.url.startswith("/openapi.json"):
                    assert response.status_code == 401, (call.url, response.status_code)
                elif call.method == "GET":
                    assert response.status_code == 303, (call.url, response.status_code)
                    assert response.headers["location"].startswith("/login"), call.url
                else:  # a form without a session: refused for its token, or sent to sign in
                    assert response.status_code in (303, 403), (call.url, response.status_code)
                    assert response.headers.get("location", "/login").startswith("/login"), call.url
                assert not leaks(world, "cust0", call, response.text), call.url
        assert world.client(ANON).get("/static/style.css").status_code == 200

    @pytest.mark.parametrize("walker", sorted(ROLES))
    def test_each_role_gets_what_the_table_says_and_sees_nothing_it_may_not(self, world: World, walker: str) -> None:
        """Each route, with each item class where it takes an item, answers the walker as RULES
        says; no answer shows what the walker may not know of a record."""
        wrong: list[str] = []
        for key, route in app_routes(world.app):
            not_found: dict[str, str] = {}  # the 404 answers, without the ID asked for, by item
            for call in calls(world, key, route):
                response = send(world, walker, call)
                if response.status_code == 404 and call.echoed and not knows(walker, key, call.item):
                    not_found[str(call.item)] = response.text.replace(call.echoed[0], "ID")
                expected = RULES[key](walker, call.item)
                if response.status_code not in expected:
                    got = response.status_code
                    wrong.append(f"{walker}: {call.method} {call.url} ({call.item}): {got} not in {sorted(expected)}")
                if response.status_code == 303 and key != "POST /logout":
                    assert not response.headers["location"].startswith("/login"), (walker, call.url)
                shown = leaks(world, walker, call, response.text)
                if shown:
                    wrong.append(f"{walker}: {call.method} {call.url}: shows {', '.join(shown)}")
            if len(set(not_found.values())) > 1:  # a record hidden from the walker is "not found" as one nothing has
                wrong.append(f"{key}: the 404s of {sorted(not_found)} differ")
        assert wrong == [], "\n".join(wrong)

    @pytest.mark.parametrize("walker", sorted(ROLES))
    def test_a_search_for_what_is_not_seen_finds_nothing(self, world: World, walker: str) -> None:
        """Searching by the facts of a record the walker may not see (or sees withheld) finds
        nothing and counts nothing, on the page and in the API; a record they may see is found."""
        who = ROLES[walker]
        client = world.client(walker)
        for item, (_, _, marker) in ITEMS.items():
            for query in ({"q": marker}, {"officer": f"officer-{marker}"}, {"q": f"street-{marker}"}):
                api = client.get("/api/v1/items", params=query)
                page = client.get("/items", params=query)
                seen = who.knows(item) and not who.withheld(item)
                found = [entry["id"] for entry in api.json()["items"]]
                assert (found, api.json()["count"]) == (([world.ids[item]], 1) if seen else ([], 0)), (walker, query)
                echoed = Call("GET /items", "GET", "/items", None, echoed=tuple(query.values()))
                assert leaks(world, walker, echoed, page.text) == [], (walker, query)
                assert (world.ids[item] in page.text) == seen, (walker, query)

    @pytest.mark.parametrize("walker", sorted(ROLES))
    def test_counts_are_of_what_the_viewer_may_know(self, world: World, walker: str) -> None:
        """The API's count and every queue's size count only the records the walker may know."""
        who = ROLES[walker]
        client = world.client(walker)
        known = {world.ids[item] for item in ITEMS if who.knows(item)}
        listed = client.get("/api/v1/items").json()
        assert listed["count"] == len(known) and {i["id"] for i in listed["items"]} == known
        sizes = re.findall(
            r'<a href="/items\?([^"]*)">[^<]*</a></td>\s*<td class="number">(\d+)</td>', client.get("/queues").text
        )
        assert sizes, "no queue sizes found on /queues"
        for query, size in sizes:
            params = dict(parse_qsl(query.replace("&amp;", "&")))
            queued = client.get("/api/v1/items", params=params).json()
            assert queued["count"] == int(size), (walker, query)
            assert {i["id"] for i in queued["items"]} <= known, (walker, query)
        # every record lacks its proof object, but a withheld one's facts are not searched
        unwithheld = [item for item in ITEMS if who.knows(item) and not who.withheld(item)]
        assert ("missing=proof_object", str(len(unwithheld))) in sizes
