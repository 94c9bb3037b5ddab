"""Confidentiality and supervised retrieval (ACCESS.md), walked as every kind of viewer: which
records each may list, count, find, open, see in a case, in the overdue list and in disc packages;
what is withheld until an access request is approved; purposes stated once per item and session;
and the custody events every retrieval and decision leaves."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine
from sqlmodel import Session, select

from pipeline.catalog import queries
from pipeline.catalog.access_requests import approve_access, deny_access, list_access_requests, request_access
from pipeline.catalog.cases import assign_case_member, remove_case_member, set_case_target, set_classification
from pipeline.catalog.models import CustodyEvent, Item, Package
from pipeline.catalog.people import AccessRequest, CaseMember, UserAccount
from pipeline.catalog.viewer import Viewer
from pipeline.cli.inputs import account_viewer
from pipeline.custody import check_chain
from pipeline.errors import (
    ConflictError,
    ForbiddenError,
    InvalidValueError,
    NotFoundError,
    PurposeRequiredError,
    WithheldError,
)
from pipeline.ingest.intake import IntakeContext
from pipeline.probe.assign import assign_facts
from pipeline.runtime import open_store, probe_context
from pipeline.settings import Settings
from pipeline.stage import TOOL

SERVER = Viewer.local("root")
ALL = ["privacy", "trade-secret", "state-secret"]
# name: (the item's own class, its case); case O is "none", case S "state-secret", "u" has none.
ITEMS = {
    "n": ("none", "O"),
    "u": ("unclassified", None),
    "p": ("privacy", "O"),
    "t": ("trade-secret", "O"),
    "s": ("state-secret", "O"),
    "x": ("none", "S"),
}
# account name: (roles, clearances, approver)
ACCOUNTS = {
    "cust0": (["custodian"], [], False),
    "custP": (["custodian"], ["privacy"], False),
    "custT": (["custodian"], ["trade-secret"], False),
    "aud": (["auditor"], ALL, False),
    "handler": (["case-handler"], ALL, False),
    "outsider": (["case-handler"], ALL, False),
    "admin": (["admin"], ALL, False),
    "dock": (["dock"], ALL, False),
    "boss": ([], ALL, True),
}
# What each viewer may know exists, and which of those are withheld (no access request approved).
VISIBLE = {
    "cust0": ({"n", "u"}, set()),
    "custP": ({"n", "u", "p"}, set()),
    "custT": ({"n", "u", "t"}, {"t"}),
    "aud": ({"n", "u", "p", "t", "s", "x"}, {"t", "s", "x"}),
    "handler": ({"n", "p", "t", "s"}, {"t", "s"}),
    "outsider": (set(), set()),
    "admin": (set(), set()),
    "dock": (set(), set()),
}
# The disc packages recorded: name -> (case, items in it).
PACKAGES = {"P-n": ("O", ["n"]), "P-np": ("O", ["n", "p"]), "P-nt": ("O", ["n", "t"]), "P-x": ("S", ["x"])}


@dataclass(frozen=True)
class World:
    engine: Engine
    settings: Settings
    ids: dict[str, str]  # item name -> ID
    sha: dict[str, str]  # item name -> SHA-256
    viewers: dict[str, Viewer]
    packages: dict[str, str]  # package name -> ID

    def name_of(self, item_id: str) -> str:
        return {v: k for k, v in self.ids.items()}[item_id]

    def names(self, item_ids: object) -> set[str]:
        return {self.name_of(i) for i in item_ids}  # type: ignore[attr-defined]


def events(session: Session, *actions: str) -> list[CustodyEvent]:
    query = select(CustodyEvent).where(CustodyEvent.action.in_(actions)).order_by(CustodyEvent.seq)  # type: ignore[attr-defined]
    return list(session.exec(query).all())


def detail_of(session: Session, world: World, name: str, viewer: Viewer, purpose: str | None = None) -> object:
    return queries.item_detail(
        session,
        ident=world.ids[name],
        viewer=viewer,
        via="web",
        store=open_store(world.settings),
        tool=TOOL,
        purpose=purpose,
    )


@pytest.fixture
def world(cli, settings: Settings, ctx: IntakeContext, media_dir: Path) -> Iterator[World]:
    """Six late records of the classes in ITEMS, the accounts in ACCOUNTS (``handler`` assigned to
    case O), and the packages in PACKAGES; made with the server's own authority."""
    for name in ITEMS:
        dest = settings.inbox_dir / "dock1" / f"{name}.wav"
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes((media_dir / "voice.wav").read_bytes() + name.encode())
    result = cli("ingest", str(settings.inbox_dir), "--no-derive", "--json")
    assert result.exit_code == 0, result.output
    ids = {Path(str(r["path"])).stem: str(r["item"]) for r in result.records}
    sha = {Path(str(r["path"])).stem: str(r["sha256"]) for r in result.records}
    probe_ctx = probe_context(settings)
    for name, (_, case) in ITEMS.items():
        facts = {"captured_at": "2025-09-30T10:00", "collector": f"officer-{name}"}
        assign_facts(
            probe_ctx, ident=ids[name], facts={**facts, **({"case_number": case} if case else {})}, viewer=SERVER
        )
    viewers: dict[str, Viewer] = {}
    with Session(ctx.engine, expire_on_commit=False) as session:
        for name, (own, _) in ITEMS.items():
            if own != "unclassified":
                set_classification(session, viewer=SERVER, item_id=ids[name], classification=own, tool=TOOL)
        set_classification(session, viewer=SERVER, case_number="S", classification="state-secret", tool=TOOL)
        for name, (roles, clearances, approver) in ACCOUNTS.items():
            account = UserAccount(name=name, roles=roles, clearances=clearances, approver=approver)
            session.add(account)
            session.flush()
            viewers[name] = replace(account_viewer(account), session_id=f"session-{name}", client="10.1.2.3")
        set_case_target(session, number="O", target="某某公司", viewer=SERVER, tool=TOOL)
        assign_case_member(session, viewer=SERVER, case_number="O", user_name="handler", tool=TOOL)
        packages = {}
        for label, (case, members) in PACKAGES.items():
            package = Package(
                case_number=case,
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
        session.commit()
    yield World(ctx.engine, settings, ids, sha, viewers, packages)


class TestVisibility:
    @pytest.mark.parametrize("who", sorted(VISIBLE))
    def test_each_viewer_lists_counts_and_finds_exactly_what_they_may_know(self, world: World, who: str) -> None:
        """Listings, counts, lookups by ID and by hash prefix show a viewer exactly the records their
        roles, cases and clearances allow, withheld ones flagged and stripped of name and facts;
        every other record is "not found", never "forbidden"."""
        viewer = world.viewers[who]
        visible, withheld = VISIBLE[who]
        with Session(world.engine) as session:
            listed = queries.list_items(session, viewer=viewer)
            assert world.names(i.id for i in listed) == visible
            assert {world.name_of(i.id) for i in listed if i.withheld} == withheld
            assert queries.count_items(session, viewer=viewer) == len(visible)
            for summary in listed:
                data = summary.as_json()
                assert data["classification"] == summary.classification and data["withheld"] == summary.withheld
                if summary.withheld:
                    assert data["original_name"] is None and data["collector"] is None
                    assert data["case_number"] is None and data["captured_at"] is None
                else:
                    assert data["original_name"] == f"{world.name_of(summary.id)}.wav"
            for name in ITEMS:
                for ident in (world.ids[name], world.sha[name][:10]):
                    if name in visible:
                        found = queries.find_summary(session, ident, viewer=viewer)
                        assert (found.id, found.withheld) == (world.ids[name], name in withheld)
                    else:
                        with pytest.raises(NotFoundError) as refused:
                            queries.find_summary(session, ident, viewer=viewer)
                        assert not isinstance(refused.value, ForbiddenError)
                        assert type(refused.value) is NotFoundError  # never "ambiguous" either
            # a filter by facts must not reveal a withheld record's facts
            by_officer = {
                name: [
                    i.id
                    for i in queries.list_items(
                        session, viewer=viewer, filters=queries.ItemFilter(officer=f"officer-{name}")
                    )
                ]
                for name in ITEMS
            }
            assert {n for n, found in by_officer.items() if found} == visible - withheld

    def test_classes_follow_the_stricter_of_item_and_case(self, world: World) -> None:
        """An item's class as it applies is its own or its case's, whichever is stricter."""
        with Session(world.engine) as session:
            classes = {world.name_of(i.id): i.classification for i in queries.list_items(session, viewer=SERVER)}
        assert classes == {
            "n": "none",
            "u": "unclassified",
            "p": "privacy",
            "t": "trade-secret",
            "s": "state-secret",
            "x": "state-secret",
        }

    def test_the_servers_own_authority_sees_everything_in_full(self, world: World) -> None:
        with Session(world.engine) as session:
            listed = queries.list_items(session, viewer=SERVER)
            assert world.names(i.id for i in listed) == set(ITEMS) and not any(i.withheld for i in listed)
            assert queries.count_items(session, viewer=SERVER) == len(ITEMS)
            assert len(queries.list_packages(session, viewer=SERVER)) == len(PACKAGES)


class TestCasesOverduePackages:
    @pytest.mark.parametrize("who", sorted(VISIBLE))
    def test_cases_overdue_and_packages_follow_the_items(self, world: World, who: str) -> None:
        """A case shows the records of it the viewer may see; a case they are not cleared for or
        (a case handler) not assigned to is not found; the overdue list leaves out what is hidden or
        withheld; a package is listed only when every record on it is visible."""
        viewer = world.viewers[who]
        visible, withheld = VISIBLE[who]
        with Session(world.engine) as session:
            for number in ("O", "S"):
                members = {n for n, (_, case) in ITEMS.items() if case == number} & visible
                may_know = {
                    "O": who in ("cust0", "custP", "custT", "aud", "handler"),
                    "S": who == "aud",
                }[number]
                if may_know:
                    case = queries.case_detail(session, number=number, viewer=viewer)
                    assert world.names(i.id for i in case.items) == members
                    assert case.as_json()["count"] == len(members)
                else:
                    with pytest.raises(NotFoundError) as refused:
                        queries.case_detail(session, number=number, viewer=viewer)
                    assert type(refused.value) is NotFoundError
            late = {i.id for g in queries.overdue_groups(session, viewer=viewer) for i in g.items}
            assert world.names(late) == visible - withheld
            listed = {p.id for p in queries.list_packages(session, viewer=viewer)}
            expected = {label for label, (_, members) in PACKAGES.items() if set(members) <= visible}
            assert listed == {world.packages[label] for label in expected}
            assert {p.id for p in queries.list_packages(session, viewer=viewer, case_number="O")} == {
                world.packages[label] for label in expected if PACKAGES[label][0] == "O"
            }
            for label, package_id in world.packages.items():
                if label in expected:
                    lacking = queries.incomplete_items(session, package_id=package_id, viewer=viewer)
                    assert world.names(e.item for e in lacking) == set(PACKAGES[label][1]) - withheld
                else:
                    with pytest.raises(NotFoundError):
                        queries.incomplete_items(session, package_id=package_id, viewer=viewer)

    def test_a_withheld_case_hides_its_target(self, world: World) -> None:
        """The target of a secret case is withheld from a cleared viewer without a grant."""
        with Session(world.engine) as session:
            set_case_target(session, number="S", target="某甲", viewer=SERVER, tool=TOOL)
            session.commit()
            seen = queries.case_detail(session, number="S", viewer=world.viewers["aud"])
            assert (seen.target, seen.withheld, seen.classification) == (None, True, "state-secret")
            assert queries.case_detail(session, number="S", viewer=SERVER).target == "某甲"
            by_target = queries.list_items(
                session, viewer=world.viewers["aud"], filters=queries.ItemFilter(target="某甲")
            )
            assert by_target == []


class TestRetrieval:
    @pytest.mark.parametrize("who", sorted(VISIBLE))
    def test_detail_as_every_viewer(self, world: World, who: str) -> None:
        """Opening a record: hidden ones are not found, withheld ones need an access request,
        privacy ones a purpose; the others open and leave one viewed event each, with the client."""
        viewer = world.viewers[who]
        visible, withheld = VISIBLE[who]
        with Session(world.engine) as session:
            before = len(events(session, "viewed"))
            opened = set()
            for name in ITEMS:
                if name not in visible:
                    with pytest.raises(NotFoundError) as refused:
                        detail_of(session, world, name, viewer)
                    assert type(refused.value) is NotFoundError
                elif name in withheld:
                    with pytest.raises(WithheldError, match="access request"):
                        detail_of(session, world, name, viewer)
                elif name == "p":
                    with pytest.raises(PurposeRequiredError):
                        detail_of(session, world, name, viewer)
                else:
                    detail_of(session, world, name, viewer)
                    opened.add(name)
            session.commit()
            viewed = events(session, "viewed")[before:]
            assert {world.name_of(e.target.removeprefix("item:")) for e in viewed} == opened
            assert all(e.actor == who and '"client":"10.1.2.3"' in e.details for e in viewed)

    def test_a_privacy_record_needs_a_purpose_once_per_session(self, world: World) -> None:
        """Without a purpose the record is refused; the purpose given is recorded with the view and
        remembered for that session only."""
        viewer = world.viewers["custP"]
        with Session(world.engine) as session:
            with pytest.raises(PurposeRequiredError, match="state the purpose"):
                detail_of(session, world, "p", viewer)
            with pytest.raises(PurposeRequiredError):
                detail_of(session, world, "p", viewer, purpose="   ")
            shown = detail_of(session, world, "p", viewer, purpose="复核 2025-17 号案件")
            again = detail_of(session, world, "p", viewer)
            session.commit()
            assert shown.summary.id == again.summary.id == world.ids["p"]  # type: ignore[attr-defined]
            with pytest.raises(PurposeRequiredError):
                detail_of(session, world, "p", replace(viewer, session_id="another-session"))
            viewed = [e for e in events(session, "viewed") if e.target == f"item:{world.ids['p']}"]
            assert len(viewed) == 2
            for event in viewed:
                assert '"purpose":"复核 2025-17 号案件"' in event.details and '"client":"10.1.2.3"' in event.details
                assert '"via":"web"' in event.details and event.actor == "custP"

    def test_the_retrieval_history_is_for_auditors(self, world: World) -> None:
        """A custodian's view of a record shows its custody trail without who looked at it; an auditor's includes it."""
        with Session(world.engine) as session:
            mine = detail_of(session, world, "n", world.viewers["cust0"])
            audited = detail_of(session, world, "n", world.viewers["aud"])
            assert "viewed" not in {e.action for e in mine.events}  # type: ignore[attr-defined]
            assert [e.action for e in audited.events][-2:] == ["viewed", "viewed"]  # type: ignore[attr-defined]

    def test_the_servers_own_authority_needs_no_grant_but_is_logged(self, world: World) -> None:
        with Session(world.engine) as session:
            before = len(events(session, "viewed"))
            for name in ITEMS:
                detail_of(session, world, name, SERVER)
            session.commit()
            assert len(events(session, "viewed")) == before + len(ITEMS)
            assert len(events(session, "access-used")) == 0


class TestAccessRequests:
    def test_request_approve_use_and_expiry(self, world: World) -> None:
        """A cleared custodian asks for a withheld record; they may not approve it themselves; an
        approver grants it; the record then opens (access-used and viewed recorded with the
        purpose), is listed in full, until the grant expires."""
        cust, boss = world.viewers["custT"], world.viewers["boss"]
        until = datetime.now(UTC) + timedelta(days=2)
        with Session(world.engine) as session:
            with pytest.raises(InvalidValueError, match="needs no access request"):
                request_access(session, viewer=cust, item_id=world.ids["n"], purpose="x", tool=TOOL)
            with pytest.raises(NotFoundError):
                request_access(session, viewer=cust, item_id=world.ids["s"], purpose="x", tool=TOOL)
            asked = request_access(session, viewer=cust, item_id=world.sha["t"][:12], purpose="查账", tool=TOOL)
            assert (asked.item, asked.status, asked.requester) == (world.ids["t"], "pending", "custT")
            with pytest.raises(ForbiddenError, match="approver"):
                approve_access(session, viewer=cust, request_id=asked.id, until=until, tool=TOOL)
            own_boss = replace(cust, approver=True)
            with pytest.raises(ForbiddenError, match="their own request"):
                approve_access(session, viewer=own_boss, request_id=asked.id, until=until, tool=TOOL)
            with pytest.raises(InvalidValueError, match="more than 30 days"):
                approve_access(session, viewer=boss, request_id=asked.id, until=until + timedelta(days=40), tool=TOOL)
            with pytest.raises(InvalidValueError, match="not in the future"):
                approve_access(session, viewer=boss, request_id=asked.id, until=until - timedelta(days=3), tool=TOOL)
            with pytest.raises(WithheldError):
                detail_of(session, world, "t", cust)
            granted = approve_access(session, viewer=boss, request_id=asked.id, until=until, note="ok", tool=TOOL)
            assert granted.status == "approved" and granted.decided_by == "boss" and granted.in_force()
            with pytest.raises(ConflictError, match="approved already"):
                deny_access(session, viewer=boss, request_id=asked.id, tool=TOOL)
            session.commit()

            shown = detail_of(session, world, "t", cust)
            assert shown.summary.original_name == "t.wav"  # type: ignore[attr-defined]
            listed = {i.id: i for i in queries.list_items(session, viewer=cust)}
            assert listed[world.ids["t"]].withheld is False
            session.commit()
            used = events(session, "access-used")
            assert len(used) == 1 and asked.id in used[0].details and '"client":"10.1.2.3"' in used[0].details
            assert '"purpose":"查账"' in events(session, "viewed")[-1].details

            request = session.get(AccessRequest, asked.id)
            assert request is not None
            request.valid_until = datetime.now(UTC) - timedelta(seconds=1)
            session.add(request)
            session.commit()
            with pytest.raises(WithheldError):
                detail_of(session, world, "t", cust)
            listed = {i.id: i for i in queries.list_items(session, viewer=cust)}
            assert listed[world.ids["t"]].withheld is True
            decisions = Counter(e.action for e in events(session, "access-requested", "access-approved", "access-used"))
            assert decisions == {"access-requested": 1, "access-approved": 1, "access-used": 1}
            assert check_chain(session).ok

    def test_a_case_grant_opens_its_records_and_denial_is_recorded(self, world: World) -> None:
        """A grant for a case opens every secret record of it the viewer may see; a denied request
        opens nothing. Each listing shows the requests a viewer may see."""
        aud, boss, cust = world.viewers["aud"], world.viewers["boss"], world.viewers["custT"]
        until = datetime.now(UTC) + timedelta(days=1)
        with Session(world.engine) as session:
            denied = request_access(session, viewer=cust, item_id=world.ids["t"], purpose="看看", tool=TOOL)
            deny_access(session, viewer=boss, request_id=denied.id, note="理由不足", tool=TOOL)
            with pytest.raises(WithheldError):
                detail_of(session, world, "t", cust)
            asked = request_access(session, viewer=aud, case_number="S", purpose="审计", tool=TOOL)
            approve_access(session, viewer=boss, request_id=asked.id, until=until, tool=TOOL)
            session.commit()
            assert queries.case_detail(session, number="S", viewer=aud).withheld is False
            assert detail_of(session, world, "x", aud).summary.original_name == "x.wav"  # type: ignore[attr-defined]
            with pytest.raises(WithheldError):
                detail_of(session, world, "s", aud)  # of case O: not covered
            assert {r.id for r in list_access_requests(session, viewer=cust)} == {denied.id}
            assert {r.id for r in list_access_requests(session, viewer=boss)} == {denied.id, asked.id}
            assert {r.id for r in list_access_requests(session, viewer=aud, status="denied")} == {denied.id}
            assert list_access_requests(session, viewer=world.viewers["cust0"]) == []
            # an approver not cleared for the record neither sees nor decides the request
            uncleared_boss = replace(boss, clearances=frozenset())
            pending = request_access(session, viewer=cust, item_id=world.ids["t"], purpose="再看", tool=TOOL)
            assert list_access_requests(session, viewer=uncleared_boss) == []
            with pytest.raises(NotFoundError):
                approve_access(session, viewer=uncleared_boss, request_id=pending.id, until=until, tool=TOOL)
            session.commit()
            actions = Counter(e.action for e in events(session, "access-requested", "access-approved", "access-denied"))
            assert actions == {"access-requested": 3, "access-approved": 1, "access-denied": 1}
            assert all('"client":"10.1.2.3"' in e.details for e in events(session, "access-denied"))

    def test_requests_need_an_account(self, world: World) -> None:
        with Session(world.engine) as session, pytest.raises(InvalidValueError, match="made by an account"):
            request_access(session, viewer=SERVER, item_id=world.ids["t"], purpose="x", tool=TOOL)


class TestActions:
    def test_only_custodians_change_what_they_may_see(self, world: World) -> None:
        """Setting facts, targets and classes: forbidden to a viewer who may see the record but is no
        custodian, not found for one who may not see it, withheld without a grant."""
        probe_ctx = probe_context(world.settings)
        facts = {"collector": "999"}
        with pytest.raises(ForbiddenError, match="custodian"):
            assign_facts(probe_ctx, ident=world.ids["n"], facts=facts, viewer=world.viewers["aud"])
        with pytest.raises(NotFoundError):
            assign_facts(probe_ctx, ident=world.ids["n"], facts=facts, viewer=world.viewers["admin"])
        with pytest.raises(NotFoundError):
            assign_facts(probe_ctx, ident=world.ids["p"], facts=facts, viewer=world.viewers["cust0"])
        with pytest.raises(WithheldError):
            assign_facts(probe_ctx, ident=world.ids["t"], facts=facts, viewer=world.viewers["custT"])
        with pytest.raises(NotFoundError):
            assign_facts(probe_ctx, ident=world.ids["n"], facts={"case_number": "S"}, viewer=world.viewers["custT"])
        done = assign_facts(probe_ctx, ident=world.ids["n"], facts=facts, viewer=world.viewers["cust0"])
        assert done.changes["collector"] == {"old": "officer-n", "new": "999"}
        with Session(world.engine) as session:
            with pytest.raises(ForbiddenError):
                set_case_target(session, number="O", target="x", viewer=world.viewers["handler"], tool=TOOL)
            with pytest.raises(NotFoundError):
                set_case_target(session, number="S", target="x", viewer=world.viewers["custT"], tool=TOOL)
            with pytest.raises(NotFoundError):
                set_case_target(session, number="NEW", target="x", viewer=world.viewers["aud"], tool=TOOL)
            with pytest.raises(ForbiddenError):
                set_classification(
                    session, viewer=world.viewers["aud"], item_id=world.ids["n"], classification="privacy", tool=TOOL
                )
            with pytest.raises(ForbiddenError, match="not cleared for state-secret"):
                set_classification(
                    session,
                    viewer=world.viewers["custP"],
                    item_id=world.ids["n"],
                    classification="state-secret",
                    tool=TOOL,
                )
            with pytest.raises(NotFoundError):
                set_classification(
                    session, viewer=world.viewers["cust0"], item_id=world.ids["p"], classification="none", tool=TOOL
                )

    def test_classes_set_on_items_and_cases_are_logged_and_apply(self, world: World) -> None:
        """A case's class raises its items; an item may be raised above its case, never below it in effect."""
        with Session(world.engine) as session:
            raised = set_classification(session, viewer=SERVER, case_number="O", classification="privacy", tool=TOOL)
            assert (raised.old, raised.new) == ("none", "privacy")
            lowered = set_classification(
                session, viewer=SERVER, item_id=world.ids["p"], classification="none", tool=TOOL
            )
            assert (lowered.old, lowered.new, lowered.effective) == ("privacy", "none", "privacy")
            session.commit()
            classes = {world.name_of(i.id): i.classification for i in queries.list_items(session, viewer=SERVER)}
            assert classes["n"] == classes["p"] == "privacy" and classes["t"] == "trade-secret"
            assert world.names(i.id for i in queries.list_items(session, viewer=world.viewers["cust0"])) == {"u"}
            logged = [(e.target, e.details) for e in events(session, "classified")][-2:]
            assert logged[0][0] == "case:O" and '"classification":{"new":"privacy","old":"none"}' in logged[0][1]
            assert logged[1][0] == f"item:{world.ids['p']}" and '"new":"none","old":"privacy"' in logged[1][1]

    def test_case_handlers_are_assigned_and_removed_by_custodians_and_admins(self, world: World) -> None:
        outsider = world.viewers["outsider"]
        with Session(world.engine) as session:
            with pytest.raises(ForbiddenError):
                assign_case_member(
                    session, viewer=world.viewers["aud"], case_number="O", user_name="outsider", tool=TOOL
                )
            with pytest.raises(NotFoundError):
                assign_case_member(
                    session, viewer=world.viewers["custT"], case_number="S", user_name="outsider", tool=TOOL
                )
            with pytest.raises(InvalidValueError, match="not a case handler"):
                assign_case_member(session, viewer=world.viewers["admin"], case_number="O", user_name="aud", tool=TOOL)
            with pytest.raises(NotFoundError, match="no account"):
                assign_case_member(
                    session, viewer=world.viewers["admin"], case_number="O", user_name="nobody", tool=TOOL
                )
            assign_case_member(session, viewer=world.viewers["admin"], case_number="S", user_name="outsider", tool=TOOL)
            with pytest.raises(ConflictError):
                assign_case_member(
                    session, viewer=world.viewers["cust0"], case_number="O", user_name="handler", tool=TOOL
                )
            session.commit()
            assert world.names(i.id for i in queries.list_items(session, viewer=outsider)) == {"x"}
            remove_case_member(session, viewer=world.viewers["cust0"], case_number="O", user_name="handler", tool=TOOL)
            session.commit()
            assert queries.list_items(session, viewer=world.viewers["handler"]) == []
            assert session.exec(select(CaseMember)).all()[0].user_id == outsider.user_id
            assert [e.action for e in events(session, "case-member-added", "case-member-removed")] == [
                "case-member-added",
                "case-member-added",
                "case-member-removed",
            ]


class TestCommandLine:
    def test_as_names_the_account_that_acts(self, world: World, cli) -> None:
        """`evidence --as NAME` lists, opens and signs as that account; an unknown or disabled one is refused."""
        listed = cli("--as", "custT", "items", "--json").records
        assert {world.name_of(str(r["id"])): r["withheld"] for r in listed} == {"n": False, "u": False, "t": True}
        assert all("classification" in r for r in listed)
        assert len(cli("items", "--json").records) == len(ITEMS)  # the server's own authority
        hidden = cli("--as", "cust0", "item", world.ids["p"], "--json")
        assert hidden.exit_code == 1 and "no item matches" in hidden.errors
        refused = cli("--as", "custT", "item", world.ids["t"])
        assert refused.exit_code == 1 and "access request" in refused.errors
        opened = cli("--as", "custP", "item", world.ids["p"], "--purpose", "复核", "--json")
        assert opened.exit_code == 0 and opened.records[0]["classification"] == "privacy"
        with Session(world.engine) as session:
            last = events(session, "viewed")[-1]
            assert last.actor == "custP" and '"purpose":"复核"' in last.details and '"via":"cli"' in last.details
            account = session.exec(select(UserAccount).where(UserAccount.name == "cust0")).one()
            account.disabled = True
            session.add(account)
            session.commit()
        # (the console script shows the error as one line and exits 1)
        with pytest.raises(NotFoundError, match="no account 'nobody'"):
            cli("--as", "nobody", "items")
        with pytest.raises(NotFoundError, match="no account 'cust0' \\(or it is disabled\\)"):
            cli("--as", "cust0", "items")

    def test_assign_and_case_classification_log_old_and_new(self, world: World, cli) -> None:
        """`assign ID --classification` alone and `case N --classification` change the class and log
        old and new; `case N --add-member` assigns a handler."""
        result = cli("assign", world.ids["u"], "--classification", "privacy", "--json")
        assert result.exit_code == 0, result.output
        assert result.records[0]["changes"] == {"classification": {"old": "unclassified", "new": "privacy"}}
        case = cli("case", "O", "--classification", "trade-secret", "--json")
        assert case.exit_code == 0 and case.records[0]["classification"] == "trade-secret"
        assert cli("--as", "custP", "assign", world.ids["u"], "--classification", "none").exit_code == 0
        denied = cli("--as", "aud", "assign", world.ids["u"], "--classification", "none", "--json")
        assert denied.exit_code == 1 and "custodian" in str(denied.records[0]["error"])
        added = cli("case", "S", "--add-member", "outsider", "--json")
        assert added.exit_code == 0
        with Session(world.engine) as session:
            logged = [(e.actor, e.target, e.details) for e in events(session, "classified")][-3:]
            assert logged[0][1] == f"item:{world.ids['u']}" and '{"new":"privacy","old":"unclassified"}' in logged[0][2]
            assert logged[1][1] == "case:O" and '{"new":"trade-secret","old":"none"}' in logged[1][2]
            assert logged[2][0] == "custP" and '{"new":"none","old":"privacy"}' in logged[2][2]
            assert events(session, "case-member-added")[-1].target == "case:S"
            item = session.get(Item, world.ids["n"])
            assert item is not None and item.classification == "none"
        listed = cli("--as", "custT", "items", "--json").records
        # case O is trade-secret now: its records are withheld from custT, u (own class none) is not
        assert {world.name_of(str(r["id"])): r["withheld"] for r in listed} == {
            "n": True,
            "u": False,
            "p": True,
            "t": True,
        }

    def test_access_commands(self, world: World, cli) -> None:
        """Request, approve (not one's own), deny and list access requests from the command line."""
        asked = cli("--as", "custT", "access", "request", "--item", world.ids["t"], "--purpose", "查账", "--json")
        assert asked.exit_code == 0, asked.errors
        request_id = str(asked.records[0]["request"])
        until = (datetime.now(UTC) + timedelta(days=3)).date().isoformat()
        own = cli("--as", "custT", "access", "approve", request_id, "--until", until)
        assert own.exit_code == 1 and "approver" in own.errors
        approved = cli("--as", "boss", "access", "approve", request_id, "--until", until, "--json")
        assert approved.exit_code == 0, approved.errors
        assert approved.records[0]["status"] == "approved" and approved.records[0]["in_force"] is True
        assert cli("--as", "custT", "item", world.ids["t"], "--json").exit_code == 0
        assert cli("access", "request", "--item", world.ids["t"], "--purpose", "x").exit_code == 1
        assert cli("--as", "custT", "access", "request", "--purpose", "x").exit_code == 2
        listed = cli("--as", "custT", "access", "list", "--json").records
        assert [r["request"] for r in listed] == [request_id]
        assert cli("--as", "cust0", "access", "list", "--json").records == []
        far = (datetime.now(UTC) + timedelta(days=45)).date().isoformat()
        second = cli("--as", "custT", "access", "request", "--case", "O", "--purpose", "y", "--json").records[0]
        assert cli("--as", "boss", "access", "approve", str(second["request"]), "--until", far).exit_code == 1
        assert cli("--as", "boss", "access", "deny", str(second["request"]), "--note", "no").exit_code == 0
        assert [r["status"] for r in cli("access", "list", "--status", "denied", "--json").records] == ["denied"]
