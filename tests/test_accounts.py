"""Accounts, sign-in, web sessions and API tokens, on SQLite and PostgreSQL: passwords only as
Argon2id hashes, one refusal for every wrong sign-in, lock-outs, revocation, and a custody event
for every change and attempt that never holds a secret."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta

import pytest
from click.testing import CliRunner
from sqlmodel import Session, select

from pipeline.accounts.passwords import check_strength, random_password, verify_password
from pipeline.accounts.sessions import check_csrf, revoke_sessions, sign_in, sign_out, viewer_for_session
from pipeline.accounts.tokens import create_token, list_tokens, revoke_token, viewer_for_token
from pipeline.accounts.users import (
    add_user,
    change_own_password,
    disable_user,
    ensure_first_admin,
    find_user,
    list_users,
    set_password,
    set_roles,
)
from pipeline.catalog.models import CustodyEvent
from pipeline.catalog.people import ApiToken, LoginAttempt, Role, WebSession
from pipeline.catalog.types import utcnow
from pipeline.cli import main
from pipeline.custody import check_chain
from pipeline.errors import (
    AccountLocked,
    ConflictError,
    InvalidValueError,
    LoginRefused,
    LoginThrottled,
    PasswordRejected,
)
from pipeline.stage import TOOL

PASSWORD = "Correct horse 42 battery"
HOURS = timedelta(hours=8)
HOSTILE_NAMES = ["x" * 101, "../x", "<script>alert(1)</script>", "a\x1b[2Jb", "bob\x00", "名字", " alice", ""]


@pytest.fixture
def db(ctx) -> Iterator[Session]:
    with Session(ctx.engine, expire_on_commit=False) as session:
        yield session


def add(db: Session, name: str = "alice", roles: tuple[str, ...] = ("custodian",), **extra) -> None:
    add_user(db, name=name, roles=roles, password=extra.pop("password", PASSWORD), actor="root", tool=TOOL, **extra)
    db.commit()


def login(db: Session, name: str = "alice", password: str = PASSWORD, client: str | None = "10.0.0.1"):
    return sign_in(db, name=name, password=password, client=client, lifetime=HOURS, tool=TOOL)


def actions(db: Session) -> Counter[str]:
    return Counter(db.exec(select(CustodyEvent.action)).all())


def custody_text(db: Session) -> str:
    """Everything the custody log holds, as one text to search for secrets in."""
    rows = db.exec(select(CustodyEvent)).all()
    return "\n".join(f"{e.actor} {e.action} {e.target} {e.details}" for e in rows)


class TestPasswords:
    def test_a_password_is_stored_only_as_an_argon2id_hash(self, db) -> None:
        """The catalog holds an Argon2id hash, never the password itself."""
        add(db)
        user = find_user(db, "alice")
        assert user.password_hash is not None and user.password_hash.startswith("$argon2id$")
        assert PASSWORD not in user.password_hash
        assert verify_password(user.password_hash, PASSWORD)
        assert not verify_password(user.password_hash, PASSWORD.upper())
        assert "password_hash" not in json.dumps([v.as_json() for v in list_users(db)])

    @pytest.mark.parametrize(
        ("password", "reason"),
        [
            ("Short1!", "at least 12 characters"),
            ("alice-Alice-2024", "contains the account's name"),
            ("abcdefghijklmnop", "only one kind of character"),
            ("123412341234", "only one kind of character"),
            ("aaAAaaAAaaAA", "too few different characters"),
            ("Good password\n2", "control characters"),
        ],
    )
    def test_weak_passwords_are_refused_with_the_reason(self, password: str, reason: str) -> None:
        """A guessable password is refused, saying why and without quoting it."""
        with pytest.raises(PasswordRejected, match=reason) as refused:
            check_strength(password, name="alice")
        assert password not in str(refused.value)

    def test_random_passwords_are_strong_readable_and_different(self) -> None:
        """A one-time password passes the strength check and is never made twice."""
        made = {random_password() for _ in range(50)}
        assert len(made) == 50
        for password in made:
            check_strength(password, name="alice")
            assert not set(password) & set("0o1lI")


class TestSignIn:
    def test_a_wrong_password_and_an_unknown_name_are_refused_alike(self, db) -> None:
        """Nobody can tell from the refusal whether the name exists; both attempts are kept."""
        add(db)
        with pytest.raises(LoginRefused) as wrong:
            login(db, password="Wrong horse 42 battery")
        with pytest.raises(LoginRefused) as unknown:
            login(db, name="mallory")
        assert str(wrong.value) == str(unknown.value) == "wrong name or password"
        assert len(db.exec(select(LoginAttempt).where(LoginAttempt.ok == False)).all()) == 2  # noqa: E712
        assert actions(db)["login-failed"] == 2
        targets = db.exec(select(CustodyEvent.target).where(CustodyEvent.action == "login-failed")).all()
        assert sorted(targets) == ["user:alice", "user:mallory"]

    def test_signing_in_opens_a_session_kept_only_as_a_hash(self, db) -> None:
        """The cookie secret finds the session; the catalog holds only its SHA-256."""
        add(db, clearances=("privacy",))
        signed = login(db)
        assert signed.user.name == "alice" and not signed.must_change_password
        assert db.get(WebSession, signed.secret) is None
        assert db.get(WebSession, hashlib.sha256(signed.secret.encode()).hexdigest()) is not None
        found = viewer_for_session(db, secret=signed.secret, client="10.0.0.1")
        assert found is not None
        viewer, web = found
        assert (viewer.name, viewer.roles, viewer.session_id) == ("alice", frozenset({Role.CUSTODIAN}), web.id)
        assert viewer.cleared_for("privacy") and not viewer.cleared_for("state-secret")
        assert viewer_for_session(db, secret=signed.secret + "x", client=None) is None
        assert actions(db)["login"] == 1

    def test_five_wrong_passwords_lock_the_account_until_the_window_passes(self, db) -> None:
        """The fifth wrong password locks the account; even the right one is refused until it opens."""
        add(db)
        for _ in range(4):
            with pytest.raises(LoginRefused):
                login(db, password="Wrong horse 42 battery")
        with pytest.raises(AccountLocked) as locked:
            login(db, password="Wrong horse 42 battery")
        with pytest.raises(AccountLocked):
            login(db)
        assert locked.value.until > utcnow() + timedelta(minutes=14)
        assert list_users(db)[0].locked
        user = find_user(db, "alice")
        user.locked_until = utcnow() - timedelta(seconds=1)  # the 15 minutes have passed
        db.add(user)
        db.commit()
        assert login(db).user.name == "alice"
        assert not list_users(db)[0].locked
        assert actions(db)["login-failed"] == 6 and actions(db)["login"] == 1

    def test_an_unknown_name_locks_like_an_account(self, db) -> None:
        """Guessing at a name nobody holds locks it too, so a lock-out does not reveal accounts."""
        for _ in range(4):
            with pytest.raises(LoginRefused):
                login(db, name="ghost")
        with pytest.raises(AccountLocked):
            login(db, name="ghost")
        with pytest.raises(AccountLocked):
            login(db, name="ghost")

    def test_attempts_older_than_kept_are_dropped_and_their_streak_forgotten_alike(self, db) -> None:
        """Attempts past KEEP_ATTEMPTS leave the table at the next sign-in (the custody log keeps
        them); four old wrong passwords then no longer count towards a lock, for an account and for
        a name nobody holds alike."""
        from pipeline.accounts.rules import KEEP_ATTEMPTS

        add(db)
        for name in ("alice", "ghost"):
            for _ in range(4):
                with pytest.raises(LoginRefused):
                    login(db, name=name, password="Wrong horse 42 battery")
        for attempt in db.exec(select(LoginAttempt)).all():
            attempt.at -= KEEP_ATTEMPTS + timedelta(minutes=1)
            db.add(attempt)
        db.commit()
        for name in ("alice", "ghost"):
            with pytest.raises(LoginRefused) as refused:  # the fifth in a row would lock
                login(db, name=name, password="Wrong horse 42 battery")
            assert not isinstance(refused.value, AccountLocked)
        assert len(db.exec(select(LoginAttempt)).all()) == 2
        assert actions(db)["login-failed"] == 10

    def test_a_client_with_too_many_failures_is_refused_unchecked(self, db) -> None:
        """After 20 failures from one address, even a right password from it is refused for a while;
        other addresses still sign in."""
        add(db)
        for n in range(20):
            with pytest.raises(LoginRefused):
                login(db, name=f"guess{n}", client="203.0.113.9")
        with pytest.raises(LoginThrottled) as throttled:
            login(db, client="203.0.113.9")
        assert throttled.value.until > utcnow()
        assert login(db, client="10.0.0.2").user.name == "alice"
        reasons = [json.loads(d)["reason"] for d in db.exec(select(CustodyEvent.details)) if "reason" in d]
        assert reasons.count("throttled") == 1

    def test_a_disabled_account_cannot_sign_in_and_its_sessions_stop(self, db) -> None:
        """Disabling ends the open sessions at once and refuses the right password like a wrong one."""
        add(db, "boss", ("admin",))
        add(db)
        signed = login(db)
        disable_user(db, name="alice", actor="root", tool=TOOL)
        db.commit()
        assert viewer_for_session(db, secret=signed.secret, client=None) is None
        with pytest.raises(LoginRefused, match=r"^wrong name or password$"):
            login(db)
        disable_user(db, name="alice", actor="root", tool=TOOL, enabled=True)
        db.commit()
        assert login(db).user.name == "alice"
        assert actions(db)["user-disabled"] == 1 and actions(db)["user-enabled"] == 1

    def test_the_last_admin_cannot_be_disabled_or_demoted(self, db) -> None:
        """Somebody must always be able to manage accounts."""
        add(db, "boss", ("admin",))
        with pytest.raises(ConflictError, match="only enabled admin"):
            disable_user(db, name="boss", actor="root", tool=TOOL)
        with pytest.raises(ConflictError, match="only enabled admin"):
            set_roles(db, name="boss", roles=["auditor"], actor="root", tool=TOOL)

    def test_sessions_expire_idle_out_and_end_at_sign_out(self, db) -> None:
        """An expired, idle or signed-out session no longer signs anyone in."""
        add(db)
        first, second, third = login(db), login(db), login(db)
        web = db.get(WebSession, first.session_id)
        web.expires_at = utcnow() - timedelta(seconds=1)
        db.add(web)
        web = db.get(WebSession, second.session_id)
        web.last_seen_at = utcnow() - timedelta(hours=2)
        db.add(web)
        db.commit()
        assert viewer_for_session(db, secret=first.secret, client=None) is None
        assert viewer_for_session(db, secret=second.secret, client=None, idle=timedelta(hours=1)) is None
        assert viewer_for_session(db, secret=second.secret, client=None, idle=timedelta(hours=3)) is not None
        assert sign_out(db, secret=third.secret, tool=TOOL)
        db.commit()
        assert viewer_for_session(db, secret=third.secret, client=None) is None
        assert not sign_out(db, secret=third.secret, tool=TOOL)
        assert actions(db)["logout"] == 1

    def test_a_form_needs_its_sessions_csrf_token(self, db) -> None:
        """Only the token handed out with the session passes."""
        add(db)
        signed, other = login(db), login(db)
        web = db.get(WebSession, signed.session_id)
        assert check_csrf(web, signed.csrf_token)
        assert not check_csrf(web, other.csrf_token)
        assert not check_csrf(web, "")
        assert not check_csrf(web, "é" * 43)

    def test_changing_ones_password_needs_the_old_one_and_ends_other_sessions(self, db) -> None:
        """The current password is required; the session used stays, the others end."""
        add(db)
        here, elsewhere = login(db), login(db)
        with pytest.raises(PasswordRejected, match="current password"):
            change_own_password(
                db, viewer=here.viewer, old="Not the password 1", new="A new horse 43 staple", tool=TOOL
            )
        with pytest.raises(PasswordRejected, match="at least 12"):
            change_own_password(db, viewer=here.viewer, old=PASSWORD, new="short", tool=TOOL)
        change_own_password(db, viewer=here.viewer, old=PASSWORD, new="A new horse 43 staple", tool=TOOL)
        db.commit()
        assert viewer_for_session(db, secret=here.secret, client=None) is not None
        assert viewer_for_session(db, secret=elsewhere.secret, client=None) is None
        with pytest.raises(LoginRefused):
            login(db)
        assert login(db, password="A new horse 43 staple").user.name == "alice"
        assert actions(db)["password-changed"] == 1

    def test_an_admin_sets_a_one_time_password_and_signs_the_owner_out(self, db) -> None:
        """A reset unlocks the account, ends its sessions and asks for a new password at sign-in."""
        add(db)
        old = login(db)
        set_password(db, name="alice", password="Reset horse 44 staple", must_change=True, actor="root", tool=TOOL)
        db.commit()
        assert viewer_for_session(db, secret=old.secret, client=None) is None
        assert login(db, password="Reset horse 44 staple").must_change_password
        assert revoke_sessions(db, user_id=old.viewer.user_id) == 1


class TestAccounts:
    def test_the_first_admin_is_made_once_and_must_change_its_password(self, db) -> None:
        """A new catalog gets one admin with a one-time password; later starts make none."""
        password = ensure_first_admin(db, tool=TOOL)
        db.commit()
        assert password is not None
        assert ensure_first_admin(db, tool=TOOL) is None
        assert [(u.name, u.roles, u.must_change_password) for u in list_users(db)] == [("admin", ("admin",), True)]
        signed = login(db, name="admin", password=password)
        assert signed.must_change_password
        change_own_password(db, viewer=signed.viewer, old=password, new="Chief horse 45 staple", tool=TOOL)
        db.commit()
        assert not list_users(db)[0].must_change_password
        assert actions(db)["user-added"] == 1

    @pytest.mark.parametrize("name", HOSTILE_NAMES)
    def test_hostile_names_are_refused(self, db, name: str) -> None:
        """Names with paths, markup, control characters or no end are refused, quoted harmlessly."""
        with pytest.raises(InvalidValueError, match="account name") as refused:
            add(db, name)
        message = str(refused.value)
        assert message.isprintable() and len(message) < 200
        assert list_users(db) == []

    def test_a_name_is_taken_once_and_roles_and_clearances_are_checked(self, db) -> None:
        """A duplicate, an unknown role or clearance, or a dock role without its dock are refused."""
        add(db)
        with pytest.raises(ConflictError, match="already exists"):
            add(db)
        with pytest.raises(InvalidValueError, match="unknown role"):
            add(db, "bob", ("janitor",))
        with pytest.raises(InvalidValueError, match="unknown clearance"):
            add(db, "bob", clearances=("none",))
        with pytest.raises(InvalidValueError, match="needs the dock"):
            add(db, "bob", ("dock",))
        set_roles(db, name="alice", roles=["auditor"], clearances=["state-secret"], approver=True, actor="r", tool=TOOL)
        db.commit()
        view = list_users(db)[0]
        assert (view.roles, view.clearances, view.approver) == (("auditor",), ("state-secret",), True)
        assert actions(db) == Counter({"user-added": 1, "roles-changed": 1})


class TestTokens:
    def test_a_token_is_shown_once_and_kept_only_as_its_hash(self, db) -> None:
        """The secret is in the result and nowhere in the catalog; the token acts as its dock."""
        made = create_token(db, name="dock1", role="dock", dock="dock1", actor="root", tool=TOOL)
        db.commit()
        assert made.token.startswith("evd_")
        row = db.exec(select(ApiToken)).one()
        assert row.secret_hash == hashlib.sha256(made.token.encode()).hexdigest()
        stored = json.dumps(row.model_dump(), default=str)
        assert made.token.split("_", 2)[2] not in stored
        listed = json.dumps([t.as_json() for t in list_tokens(db)])
        assert made.token not in listed and row.secret_hash not in listed
        viewer = viewer_for_token(db, token=made.token, client="10.0.0.5")
        assert viewer is not None
        assert (viewer.name, viewer.roles, viewer.dock) == ("token:dock1", frozenset({Role.DOCK}), "dock1")
        db.commit()
        assert list_tokens(db)[0].last_used_at is not None

    def test_a_dock_token_needs_its_dock(self, db) -> None:
        with pytest.raises(InvalidValueError, match="needs the dock"):
            create_token(db, name="dock1", role="dock", actor="root", tool=TOOL)

    def test_revoked_expired_and_altered_tokens_stop_working(self, db) -> None:
        """A revoked or expired token, or one with a character changed, signs nobody in."""
        kept = create_token(db, name="kept", role="auditor", actor="root", tool=TOOL)
        gone = create_token(db, name="gone", role="auditor", actor="root", tool=TOOL)
        old = create_token(db, name="old", role="auditor", expires_at=utcnow() + HOURS, actor="root", tool=TOOL)
        db.commit()
        revoke_token(db, name="gone", actor="root", tool=TOOL)
        row = db.exec(select(ApiToken).where(ApiToken.name == "old")).one()
        row.expires_at = utcnow() - timedelta(seconds=1)
        db.add(row)
        db.commit()
        altered = kept.token[:-1] + ("A" if kept.token[-1] != "A" else "B")
        assert viewer_for_token(db, token=kept.token, client=None) is not None
        for token in (gone.token, old.token, altered, "evd_short_x", "Bearer nonsense", ""):
            assert viewer_for_token(db, token=token, client=None) is None
        with pytest.raises(ConflictError, match="already revoked"):
            revoke_token(db, name="gone", actor="root", tool=TOOL)
        states = {t.name: t.usable for t in list_tokens(db)}
        assert states == {"gone": False, "kept": True, "old": False}
        assert actions(db) == Counter({"token-created": 3, "token-revoked": 1})


class TestCustody:
    def test_every_account_action_is_recorded_and_no_secret_reaches_the_log(self, db) -> None:
        """A day of account work: each step is one custody event, the chain holds, and no password,
        cookie, CSRF token or API token appears in it."""
        first = ensure_first_admin(db, tool=TOOL)
        db.commit()
        add(db)
        signed = login(db)
        with pytest.raises(LoginRefused):
            login(db, password="Wrong horse 42 battery")
        change_own_password(db, viewer=signed.viewer, old=PASSWORD, new="A new horse 43 staple", tool=TOOL)
        set_password(db, name="alice", password="Reset horse 44 staple", actor="root", tool=TOOL)
        set_roles(db, name="alice", roles=["auditor"], actor="root", tool=TOOL)
        made = create_token(db, name="dock1", role="dock", dock="dock1", actor="root", tool=TOOL)
        revoke_token(db, name="dock1", actor="root", tool=TOOL)
        db.commit()
        again = login(db, password="Reset horse 44 staple")
        sign_out(db, secret=again.secret, tool=TOOL)
        disable_user(db, name="alice", actor="root", tool=TOOL)
        db.commit()
        assert actions(db) == Counter(
            {
                "user-added": 2,
                "login": 2,
                "login-failed": 1,
                "password-changed": 1,
                "password-set": 1,
                "roles-changed": 1,
                "token-created": 1,
                "token-revoked": 1,
                "logout": 1,
                "user-disabled": 1,
            }
        )
        assert check_chain(db).ok
        log = custody_text(db)
        secret_part = made.token.split("_", 2)[2]  # evd_PREFIX_SECRET; the secret may hold underscores
        secrets = [first, PASSWORD, "Wrong horse", "A new horse", "Reset horse", made.token, secret_part]
        secrets += [signed.secret, signed.csrf_token, again.secret, again.csrf_token, signed.session_id]
        assert [s for s in secrets if s and s in log] == []


class TestCommands:
    def test_user_add_then_list(self, cli) -> None:
        """A new account is listed with its roles; its one-time password is printed once."""
        added = cli("user", "add", "alice", "--role", "custodian", "--clearance", "privacy", "--json")
        assert added.exit_code == 0, added.errors
        record = added.records[0]
        assert record["must_change_password"] and len(record["password"]) >= 20
        listed = cli("user", "list", "--json")
        assert [(r["name"], r["roles"], r["clearances"]) for r in listed.records] == [
            ("alice", ["custodian"], ["privacy"])
        ]
        assert record["password"] not in listed.output
        human = cli("user", "add", "bob", "--role", "auditor")
        assert "one-time password for bob" in human.output

    def test_a_weak_password_from_stdin_is_refused_with_the_reason(self, env) -> None:
        """--password-stdin checks the password's strength and names what is wrong with it."""
        runner = CliRunner()
        weak = runner.invoke(main, ["user", "add", "alice", "--role", "auditor", "--password-stdin"], input="abc\n")
        assert weak.exit_code == 1
        assert weak.stderr.strip() == "error: password refused: it must be at least 12 characters long (it has 3)"
        good = runner.invoke(main, ["user", "add", "alice", "--role", "auditor", "--password-stdin"], input=PASSWORD)
        assert good.exit_code == 0 and PASSWORD not in good.output and "one-time" not in good.output
        changed = runner.invoke(main, ["user", "passwd", "alice", "--password-stdin"], input="alice-alice-1\n")
        assert changed.exit_code == 1 and "contains the account's name" in changed.stderr

    @pytest.mark.parametrize("name", HOSTILE_NAMES[:5])
    def test_hostile_names_are_refused_with_a_clear_error(self, cli, name: str) -> None:
        """One printable error line naming the problem; nothing is added."""
        result = cli("user", "add", name, "--role", "auditor")
        assert result.exit_code == 1
        lines = result.errors.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: account name") and lines[0].isprintable()
        assert cli("user", "list", "--json").records == []

    def test_a_token_secret_is_printed_once_and_never_listed(self, cli) -> None:
        """token create shows the secret; token list shows the token without it."""
        made = cli("token", "create", "dock1", "--role", "dock", "--dock", "dock1", "--expires", "30", "--json")
        assert made.exit_code == 0, made.errors
        secret = made.records[0]["token"]
        assert secret.startswith("evd_")
        listed = cli("token", "list", "--json")
        assert [r["name"] for r in listed.records] == ["dock1"]
        assert secret not in listed.output and "token" not in listed.records[0]
        assert listed.records[0]["expires_at"] is not None
        assert cli("token", "revoke", "dock1").exit_code == 0
        again = cli("token", "revoke", "dock1")
        assert again.exit_code == 1 and again.errors.startswith("error: token dock1 was already revoked")

    def test_disable_enable_and_roles_from_the_command_line(self, cli) -> None:
        """An account is disabled, enabled and given other roles; unknown names are an error."""
        cli("user", "add", "boss", "--role", "admin")
        cli("user", "add", "alice", "--role", "custodian")
        assert cli("user", "disable", "alice").exit_code == 0
        assert cli("user", "list", "--json").records[0]["disabled"]
        assert cli("user", "enable", "alice").exit_code == 0
        role = cli("user", "role", "alice", "--role", "auditor", "--clearance", "privacy", "--approver", "--json")
        assert (role.records[0]["roles"], role.records[0]["approver"]) == (["auditor"], True)
        missing = cli("user", "disable", "nobody")
        assert missing.exit_code == 1 and missing.errors.strip() == "error: no account named 'nobody'"
