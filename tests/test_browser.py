"""Journeys through the web application in a real headless Chromium (Debian's, driven by
Playwright), against `evidence web` running as its own process on a real catalog. Each page a
journey passes is saved as a screenshot under the test's temporary folder."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Route, expect, sync_playwright
from sqlmodel import col, select

from pipeline.catalog.db import session_scope
from pipeline.catalog.models import Item, Upload
from pipeline.runtime import open_catalog
from pipeline.settings import Settings
from tests.conftest import EVIDENCE, ffmpeg, sha256_of, wait_for

CHROMIUM = "/usr/bin/chromium"
NEW_PASSWORD = "correct horse battery 42"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class WebProcess:
    """`evidence web` on a free port, with what it printed."""

    def __init__(self, env: dict[str, str], folder: Path) -> None:
        self.port = free_port()
        self.log = folder / "web.log"
        self.process = subprocess.Popen(
            [*EVIDENCE, "web", "--bind", f"127.0.0.1:{self.port}"],
            env={**os.environ, **env},
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        listening = re.compile(r"web: (http://\S+/)")
        found = wait_for(lambda: listening.search(self.output()), 60, f"the web application ({self.log})")
        assert isinstance(found, re.Match)
        self.url: str = found.group(1)

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def first_password(self) -> str:
        found = re.search(r"first login: admin / (\S+) ", self.output())
        assert found, self.output()
        return found.group(1)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def web(env: dict[str, str], tmp_path: Path) -> Iterator[WebProcess]:
    server = WebProcess(env, tmp_path)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


class Shots:
    """Screenshots of a journey, numbered in the order taken."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder / "screenshots"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.count = 0

    def __call__(self, page: Page, name: str) -> Path:
        self.count += 1
        path = self.folder / f"{self.count:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def shots(tmp_path: Path) -> Shots:
    return Shots(tmp_path)


class TestFirstLogin:
    def test_first_admin_signs_in_with_the_printed_password_and_must_change_it(
        self, web: WebProcess, browser: Browser, shots: Shots
    ) -> None:
        """The one-time password printed at first start signs the admin in, the first page asks
        for a new password, and the new one works after signing out while the old one no longer does."""
        password = web.first_password()
        page = browser.new_page(locale="zh-CN")
        page.goto(web.url)
        expect(page).to_have_url(re.compile(r"/login"))
        expect(page.locator("html")).to_have_attribute("lang", re.compile(r"^zh"))
        shots(page, "login")

        page.fill("input[name=name]", "admin")
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        expect(page).to_have_url(re.compile(r"/account/password"))
        shots(page, "password-forced")

        page.fill("input[name=old]", password)
        page.fill("input[name=new]", NEW_PASSWORD)
        page.fill("input[name=repeat]", NEW_PASSWORD)
        page.click("form[action='/account/password'] button[type=submit]")
        expect(page).not_to_have_url(re.compile(r"/account/password|/login"))
        shots(page, "home")

        page.click("form[action='/logout'] button[type=submit]")
        expect(page).to_have_url(re.compile(r"/login"))
        page.fill("input[name=name]", "admin")
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        expect(page.locator("[role=alert]")).to_be_visible()
        shots(page, "old-password-refused")
        page.fill("input[name=name]", "admin")
        page.fill("input[name=password]", NEW_PASSWORD)
        page.click("button[type=submit]")
        expect(page).not_to_have_url(re.compile(r"/login|/account/password"))
        assert [p.name for p in sorted(shots.folder.iterdir())] == [
            "01-login.png",
            "02-password-forced.png",
            "03-home.png",
            "04-old-password-refused.png",
        ]
        page.close()

    def test_the_pages_speak_english_when_asked(self, web: WebProcess, browser: Browser, shots: Shots) -> None:
        page = browser.new_page(locale="en-US", extra_http_headers={"Accept-Language": "en-US,en;q=0.9"})
        page.goto(web.url)
        expect(page.locator("html")).to_have_attribute("lang", "en")
        shots(page, "login-en")
        page.close()


KEEPER_PASSWORD = "Locker horse battery 7"


@pytest.fixture
def clip_item(env: dict[str, str], settings: Settings) -> str:
    """A three-second clip taken in, probed and derived (access copy, poster, contact sheet), and a
    custodian ``keeper``; both made before the web application starts."""
    folder = settings.inbox_dir / "dock1"
    folder.mkdir(parents=True, exist_ok=True)
    clip = folder / "walk.mp4"
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25:duration=3",
        "-f", "lavfi", "-i", "sine=frequency=440:duration=3",
        "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(clip),
    )  # fmt: skip
    run_env = {**os.environ, **env}
    taken = subprocess.run([*EVIDENCE, "ingest", str(clip), "--json"], env=run_env, capture_output=True, text=True)
    assert taken.returncode == 0, taken.stdout + taken.stderr
    item = next(line for line in taken.stdout.splitlines() if line.startswith("{"))
    added = subprocess.run(
        [*EVIDENCE, "user", "add", "keeper", "--role", "custodian", "--password-stdin"],
        env=run_env,
        input=KEEPER_PASSWORD + "\n",
        capture_output=True,
        text=True,
    )
    assert added.returncode == 0, added.stdout + added.stderr
    return str(json.loads(item)["item"])


def sign_in_as(page: Page, url: str, name: str, password: str) -> None:
    page.goto(url + "login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    expect(page).not_to_have_url(re.compile(r"/login"))


def until(page: Page, expression: str, what: str, timeout: float = 20) -> None:
    """Wait until ``expression`` is true in the page (polled from here: the page's CSP forbids the
    evaluated strings Playwright's own waiting would use)."""
    wait_for(lambda: page.evaluate(expression), timeout, what, interval=0.1)


def play_and_seek(page: Page, video: str) -> dict[str, float]:
    """Play the muted ``video`` (a selector), see its time advance, seek to 0.5 s and see it play on
    from there; returns what the element read."""
    element = f"document.querySelector('{video}')"
    until(page, f"{element}.readyState >= 1", "the video's metadata")
    duration = page.evaluate(f"{element}.duration")
    page.evaluate(f"(() => {{ const v = {element}; v.muted = true; return v.play(); }})()")
    until(page, f"{element}.currentTime > 0.2", "the video playing")
    page.evaluate(f"(() => {{ const v = {element}; v.pause(); v.currentTime = 0.5; }})()")
    until(page, f"!{element}.seeking", "the seek")
    seeked = page.evaluate(f"{element}.currentTime")
    page.evaluate(f"{element}.play()")
    until(page, f"{element}.currentTime > 0.8", "the video playing on after the seek")
    error = page.evaluate(f"{element}.error && {element}.error.code")
    return {"duration": duration, "seeked": seeked, "error": error or 0}


class TestPlayback:
    def test_the_access_copy_plays_and_seeks_in_chromium(
        self, clip_item: str, web: WebProcess, browser: Browser, shots: Shots
    ) -> None:
        """A custodian's browser plays the access copy streamed from /items/{id}/media/access (H.264
        in MP4) and seeks in it, which it does by byte-range requests."""
        page = browser.new_page(locale="en-US")
        ranges: list[str] = []
        page.on(
            "request",
            lambda request: ranges.append(request.headers.get("range", "")) if "/media/access" in request.url else None,
        )
        sign_in_as(page, web.url, "keeper", KEEPER_PASSWORD)
        assert page.evaluate("document.createElement('video').canPlayType('video/mp4; codecs=\"avc1.64001F\"')")
        page.goto(web.url + f"items/{clip_item}")
        video = page.locator("section.media video")
        expect(video).to_have_attribute("src", f"/items/{clip_item}/media/access")
        expect(video).to_have_attribute("poster", f"/items/{clip_item}/media/poster")
        expect(page.locator("section.media .sheet img")).to_have_attribute("src", f"/items/{clip_item}/media/sheet")
        until(page, "document.querySelector('section.media .sheet img').naturalWidth > 0", "the contact sheet")
        read = play_and_seek(page, "section.media video")
        assert 2.5 < read["duration"] < 3.5, read
        assert abs(read["seeked"] - 0.5) < 0.1, read
        assert read["error"] == 0, read
        assert any(r.startswith("bytes=") for r in ranges), ranges
        shots(page, "playback")
        page.close()


AUDITOR_PASSWORD = "Ledger horse battery 8"


@pytest.fixture
def audited_item(env: dict[str, str], settings: Settings, media_dir: Path) -> str:
    """A recording taken in, an auditor ``inspector`` and a custodian ``reader`` who has looked at
    the recording twice (each look a ``viewed`` event); all made before the web application starts."""
    folder = settings.inbox_dir / "dock1"
    folder.mkdir(parents=True, exist_ok=True)
    sound = folder / "statement.wav"
    sound.write_bytes((media_dir / "voice.wav").read_bytes())
    run_env = {**os.environ, **env}

    def evidence(*args: str, stdin: str | None = None) -> str:
        done = subprocess.run([*EVIDENCE, *args], env=run_env, input=stdin, capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    taken = evidence("ingest", str(sound), "--no-derive", "--json")
    item = str(json.loads(next(line for line in taken.splitlines() if line.startswith("{")))["item"])
    evidence("user", "add", "inspector", "--role", "auditor", "--password-stdin", stdin=AUDITOR_PASSWORD + "\n")
    evidence("user", "add", "reader", "--role", "custodian", "--password-stdin", stdin=AUDITOR_PASSWORD + "\n")
    for _ in range(2):
        evidence("--as", "reader", "item", item, "--json")
    return item


class TestAudit:
    def test_the_auditor_reads_the_log_verifies_it_and_sees_the_retrievals(
        self, audited_item: str, web: WebProcess, browser: Browser, shots: Shots
    ) -> None:
        """An auditor opens the custody log, verifies the hash chain (ok, with the head hash) and
        finds the two looks the custodian just took at the recording in the retrieval history."""
        page = browser.new_page(locale="en-US", extra_http_headers={"Accept-Language": "en-US,en;q=0.9"})
        sign_in_as(page, web.url, "inspector", AUDITOR_PASSWORD)
        page.click("nav a[href='/audit']")
        expect(page).to_have_url(re.compile(r"/audit$"))
        expect(page.locator("table.log tbody tr").first).to_be_visible()
        expect(page.locator("table.log")).to_contain_text(f"item:{audited_item}")
        shots(page, "audit-log")

        page.click("form[action='/audit/verify'] button[type=submit]")
        verdict = page.locator("[data-verdict]")
        expect(verdict).to_have_attribute("data-verdict", "ok")
        expect(verdict).to_have_text("ok")
        head = page.locator("code.hash").inner_text().strip()
        assert re.fullmatch(r"[0-9a-f]{64}", head), head
        shots(page, "audit-verified")

        page.goto(web.url + "audit")
        page.fill("input[name=action]", "audit-verified")
        page.click("form.filters button[type=submit]")
        expect(page.locator("table.log tbody tr")).to_have_count(1)
        expect(page.locator("table.log")).to_contain_text(head)

        page.click("a[href='/audit/retrievals']")
        page.fill("input[name=user]", "reader")
        page.click("form.filters button[type=submit]")
        rows = page.locator("table.log tbody tr")
        expect(rows).to_have_count(2)
        for index in range(2):
            expect(rows.nth(index)).to_contain_text("viewed")
            expect(rows.nth(index)).to_contain_text(f"item:{audited_item}")
        shots(page, "audit-retrievals")
        assert [p.name for p in sorted(shots.folder.iterdir())] == [
            "01-audit-log.png",
            "02-audit-verified.png",
            "03-audit-retrievals.png",
        ]
        page.close()


CUSTODIAN_PASSWORD = "Catalog horse battery 3"


@pytest.fixture
def two_clips(env: dict[str, str], settings: Settings) -> list[str]:
    """Two tiny clips taken in (without facts: both wait in the missing-facts queues) and a
    custodian ``clerk``; made before the web application starts."""
    from tests.conftest import make_clip

    folder = settings.inbox_dir / "dock1"
    folder.mkdir(parents=True, exist_ok=True)
    clips = [make_clip(folder / name, "-metadata", f"title={name}") for name in ("gate.mp4", "yard.mp4")]
    run_env = {**os.environ, **env}
    taken = subprocess.run(
        [*EVIDENCE, "ingest", *map(str, clips), "--no-derive", "--json"], env=run_env, capture_output=True, text=True
    )
    assert taken.returncode == 0, taken.stdout + taken.stderr
    records = [json.loads(line) for line in taken.stdout.splitlines() if line.startswith("{")]
    added = subprocess.run(
        [*EVIDENCE, "user", "add", "clerk", "--role", "custodian", "--password-stdin"],
        env=run_env,
        input=CUSTODIAN_PASSWORD + "\n",
        capture_output=True,
        text=True,
    )
    assert added.returncode == 0, added.stdout + added.stderr
    return [str(record["item"]) for record in records]


class TestCatalog:
    def test_the_custodian_searches_opens_fixes_from_the_queue_and_classifies(
        self, two_clips: list[str], web: WebProcess, browser: Browser, shots: Shots
    ) -> None:
        """Search by text, open the record, go through the missing-case-number queue, set the case
        number there (the record leaves the queue), and classify it."""
        page = browser.new_page(locale="en-US", extra_http_headers={"Accept-Language": "en-US,en;q=0.9"})
        sign_in_as(page, web.url, "clerk", CUSTODIAN_PASSWORD)
        page.click("nav >> text=Catalog")
        expect(page).to_have_url(re.compile(r"/items$"))
        expect(page.locator(".count")).to_have_text("2 records found")
        page.fill("input[name=q]", "GATE")
        page.click("form.search button[type=submit]")
        expect(page.locator(".count")).to_have_text("1 records found")
        expect(page.locator("table.items tbody tr")).to_have_count(1)
        shots(page, "catalog-search")

        page.click("table.items tbody a")
        expect(page.locator("h1")).to_contain_text(re.compile(r"Record [0-9A-Z]{26}"))
        expect(page.locator("dd.name")).to_have_text("gate.mp4")
        expect(page.locator("table.facts tr.missing", has_text="Case number")).to_be_visible()
        shots(page, "catalog-item")

        page.click("nav >> text=Review queues")
        expect(page).to_have_url(re.compile(r"/queues$"))
        row = page.locator("table.queues tr", has_text="Missing case number")
        expect(row.locator("td.number")).to_have_text("2")
        shots(page, "review-queues")
        row.locator("a").click()
        expect(page).to_have_url(re.compile(r"/items\?missing=case_number$"))
        page.locator("table.items tbody a").first.click()
        first = page.url.split("/items/")[1].split("?")[0]
        assert first == two_clips[0]
        expect(page.locator("a[rel=next]")).to_have_attribute("href", f"/items/{two_clips[1]}?missing=case_number")
        page.fill("form.facts-form input[name=case_number]", "C-2026-017")
        page.fill("form.facts-form input[name=proof_object]", "Gate incident")
        page.click("form.facts-form button[type=submit]")
        expect(page.locator("p.notice")).to_have_text("Facts saved; the record was assessed again.")
        expect(page.locator("table.facts tr", has_text="Case number")).to_contain_text("C-2026-017")
        expect(page.locator("table.facts tr", has_text="Case number")).to_contain_text("manual:clerk")
        shots(page, "fact-fixed")

        page.select_option("form.class-form select[name=classification]", "none")
        page.click("form.class-form button[type=submit]")
        expect(page.locator("p.notice")).to_have_text("Class saved.")
        expect(page.locator("h1 .tag")).to_have_text("None")
        expect(page.locator("table.custody")).to_contain_text("classified")
        expect(page.locator("table.custody")).to_contain_text("assigned")
        shots(page, "classified")

        page.click("a[rel=next]")
        expect(page).to_have_url(re.compile(rf"/items/{two_clips[1]}\?missing=case_number"))
        page.goto(web.url + "queues")
        row = page.locator("table.queues tr", has_text="Missing case number")
        expect(row.locator("td.number")).to_have_text("1")
        assert len(list(shots.folder.iterdir())) == 5
        page.close()


class TestAccounts:
    def test_the_first_admin_adds_a_custodian_who_signs_in_with_the_shown_password(
        self, web: WebProcess, browser: Browser, shots: Shots
    ) -> None:
        """After the forced password change the admin adds a custodian on the accounts page, sees
        the one-time password once, signs out, and the custodian signs in with it and must change it."""
        first = web.first_password()
        page = browser.new_page(locale="en-GB")
        sign_in_as(page, web.url, "admin", first)
        page.fill("input[name=old]", first)
        page.fill("input[name=new]", NEW_PASSWORD)
        page.fill("input[name=repeat]", NEW_PASSWORD)
        page.click("form[action='/account/password'] button[type=submit]")
        expect(page).not_to_have_url(re.compile(r"/account/password|/login"))

        page.click("nav a[href='/admin/users']")
        expect(page.locator("h1")).to_have_text("Accounts")
        expect(page.locator("tr[data-user=admin]")).to_contain_text("Administrator")
        shots(page, "accounts")
        form = page.locator("form.add-user")
        form.locator("input[name=name]").fill("clerk")
        form.locator("input[name=display_name]").fill("张三")
        form.locator("input[name=role][value=custodian]").check()
        form.locator("input[name=clearance][value=privacy]").check()
        form.locator("button[type=submit]").click()
        expect(page.locator("h1")).to_have_text("Account added")
        password = page.locator("#secret").inner_text().strip()
        assert re.fullmatch(r"[a-z0-9]{5}(-[a-z0-9]{5}){3}", password)
        shots(page, "one-time-password")

        page.click("a[href='/admin/users']")
        row = page.locator("tr[data-user=clerk]")
        expect(row).to_contain_text("Evidence custodian")
        expect(row).to_contain_text("Must change password")
        assert password not in page.content()
        shots(page, "accounts-with-clerk")
        page.click("form[action='/logout'] button[type=submit]")
        expect(page).to_have_url(re.compile(r"/login"))

        sign_in_as(page, web.url, "clerk", password)
        expect(page).to_have_url(re.compile(r"/account/password"))
        shots(page, "clerk-must-change")
        assert password not in web.output()
        assert len(list(shots.folder.iterdir())) == 4
        page.close()


HANDLER_PASSWORD = "Verdict horse battery 5"
CASE = "C-2026-031"


def evidence_cli(env: dict[str, str], *args: str, stdin: str | None = None) -> str:
    """``evidence ARGS…`` as its own process; its output, after checking it succeeded."""
    done = subprocess.run([*EVIDENCE, *args], env={**os.environ, **env}, input=stdin, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def taken_in(env: dict[str, str], *paths: Path) -> list[str]:
    """Ingest ``paths`` (no derivatives) and return their item IDs in order."""
    out = evidence_cli(env, "ingest", *map(str, paths), "--no-derive", "--json")
    return [str(json.loads(line)["item"]) for line in out.splitlines() if line.startswith("{")]


@pytest.fixture
def handled_case(env: dict[str, str], settings: Settings) -> str:
    """A clip with all five facts in case ``CASE`` and a case handler ``judge`` assigned to it."""
    from tests.conftest import make_clip

    folder = settings.inbox_dir / "dock1"
    folder.mkdir(parents=True, exist_ok=True)
    [item] = taken_in(env, make_clip(folder / "gate.mp4"))
    evidence_cli(
        env, "assign", item, "--case", CASE, "--proof-object", "Gate incident", "--place", "North gate",
        "--collector", "officer-7", "--captured-at", "2026-11-27T09:30",
    )  # fmt: skip
    evidence_cli(
        env, "user", "add", "judge", "--role", "case-handler", "--password-stdin", stdin=HANDLER_PASSWORD + "\n"
    )
    evidence_cli(env, "case", CASE, "--add-member", "judge")
    return item


class TestPackages:
    def test_the_case_handler_requests_a_disc_follows_it_and_downloads_the_image(
        self, handled_case: str, web: WebProcess, start, browser: Browser, shots: Shots
    ) -> None:
        """From the case page the handler asks for a CD; the package page follows the worker until
        the disc is verified; the downloaded image is the one whose SHA-256 the page shows, an ISO 9660
        holding the record; verifying it again from the page finds every file."""
        import hashlib

        start("worker", "--queues", "package", "--concurrency", "1")
        page = browser.new_page(locale="en-US", accept_downloads=True)
        sign_in_as(page, web.url, "judge", HANDLER_PASSWORD)
        page.click("nav a[href='/cases']")
        expect(page.locator("table.cases tbody tr")).to_have_count(1)
        page.click(f"table.cases a:text('{CASE}')")
        expect(page.locator("h1")).to_contain_text(CASE)
        expect(page.locator("form.target-form")).to_have_count(0)  # a custodian's form, not theirs
        shots(page, "case")

        form = page.locator("form.package-form")
        form.locator("select[name=media]").select_option("cd")
        form.locator("input[name=purpose]").fill("Court hearing 2026-12-03")
        form.locator("button[type=submit]").click()
        expect(page).to_have_url(re.compile(r"/packages/\w+\?notice=queued$"))
        expect(page.locator("p.notice").first).to_have_text("Request recorded and queued for a worker.")
        shots(page, "package-requested")

        # the page refreshes itself while the discs are being made
        expect(page.locator("h1 .tag")).to_have_text("verified", timeout=120_000)
        row = page.locator("table.discs tbody tr")
        expect(row).to_have_count(1)
        shown = row.locator("code").inner_text().strip()
        assert re.fullmatch(r"[0-9a-f]{64}", shown), shown
        expect(page.locator("dl.fields")).to_contain_text("Court hearing 2026-12-03")
        shots(page, "package-verified")

        with page.expect_download() as waiting:
            row.locator("a", has_text="Image (ISO)").click()
        download = waiting.value
        assert download.suggested_filename.endswith(".iso"), download.suggested_filename
        image = Path(download.path()).read_bytes()
        assert hashlib.sha256(image).hexdigest() == shown
        assert image[0x8001:0x8006] == b"CD001"  # an ISO 9660 primary volume descriptor
        assert len(image) < 700 * 1000**2

        page.click("form[action$='/verify'] button[type=submit]")
        expect(page.locator("ul.checks strong.ok")).to_contain_text("Disc 1: all")
        shots(page, "package-reverified")
        assert len(list(shots.folder.iterdir())) == 4
        page.close()


@pytest.fixture
def secret_and_open(env: dict[str, str], settings: Settings) -> dict[str, str]:
    """Two clips without facts, ``vault.mp4`` classed state-secret and ``lobby.mp4`` not, with
    posters; a custodian ``novice`` cleared for nothing."""
    from tests.conftest import make_clip

    folder = settings.inbox_dir / "dock1"
    folder.mkdir(parents=True, exist_ok=True)
    clips = [make_clip(folder / name, "-metadata", f"title={name}") for name in ("vault.mp4", "lobby.mp4")]
    out = evidence_cli(env, "ingest", *map(str, clips), "--json")
    ids = [str(json.loads(line)["item"]) for line in out.splitlines() if line.startswith("{")]
    evidence_cli(env, "assign", ids[0], "--classification", "state-secret")
    evidence_cli(
        env, "user", "add", "novice", "--role", "custodian", "--password-stdin", stdin=CUSTODIAN_PASSWORD + "\n"
    )
    return {"vault": ids[0], "lobby": ids[1]}


class TestConfidentiality:
    def test_a_user_not_cleared_cannot_find_the_classified_record(
        self, secret_and_open: dict[str, str], web: WebProcess, browser: Browser, shots: Shots
    ) -> None:
        """Searching, counting, the review queues, a direct link, its poster and the API: nothing
        tells the uncleared custodian that the state-secret record exists."""
        vault, lobby = secret_and_open["vault"], secret_and_open["lobby"]
        page = browser.new_page(locale="en-US", extra_http_headers={"Accept-Language": "en-US,en;q=0.9"})
        sign_in_as(page, web.url, "novice", CUSTODIAN_PASSWORD)
        page.click("nav >> text=Catalog")
        expect(page.locator(".count")).to_have_text("1 records found")
        expect(page.locator("table.items tbody tr")).to_have_count(1)
        expect(page.locator("table.items")).to_contain_text("lobby.mp4")
        assert vault not in page.content()
        shots(page, "catalog-uncleared")

        page.fill("input[name=q]", "vault")
        page.click("form.search button[type=submit]")
        expect(page.locator(".count")).to_have_text("0 records found")
        page.fill("input[name=q]", vault)
        page.click("form.search button[type=submit]")
        expect(page.locator(".count")).to_have_text("0 records found")
        shots(page, "search-finds-nothing")

        page.goto(web.url + "queues")
        row = page.locator("table.queues tr", has_text="Missing case number")
        expect(row.locator("td.number")).to_have_text("1")

        opened = page.goto(web.url + f"items/{vault}")
        assert opened is not None and opened.status == 404
        withheld = page.locator("main").inner_text().replace(vault, "ID")
        assert "vault.mp4" not in page.content()
        made_up = "01AAAAAAAAAAAAAAAAAAAAAAAA"
        page.goto(web.url + f"items/{made_up}")
        assert page.locator("main").inner_text().replace(made_up, "ID") == withheld  # as if it did not exist
        shots(page, "direct-link-not-found")
        for path in (f"items/{vault}/media/poster", f"items/{vault}/media/original", f"api/v1/items/{vault}"):
            assert page.request.get(web.url + path).status == 404, path
        assert page.request.get(web.url + f"items/{lobby}/media/poster").status == 200
        listed = page.request.get(web.url + "api/v1/items?q=vault").json()
        assert listed["count"] == 0 and listed["items"] == []
        assert page.request.get(web.url + "api/v1/items").json()["count"] == 1
        assert len(list(shots.folder.iterdir())) == 3
        page.close()


SUPERVISOR_PASSWORD = "Figures horse battery 6"
DOCK_PASSWORD = "Harbour horse battery 2"


@pytest.fixture
def three_officers(env: dict[str, str], settings: Settings) -> list[str]:
    """Four clips collected by three officers (``Officer A`` two, one on time and one late;
    ``Officer B`` one late; ``Officer C`` one with no capture time), a custodian ``supervisor`` and
    a dock account ``dockhand``; the titles of the officers' bars (on time / late / unknown)."""
    from tests.conftest import make_clip

    folder = settings.inbox_dir / "dock1"
    folder.mkdir(parents=True, exist_ok=True)
    names = ("a-fresh.mp4", "a-old.mp4", "b-old.mp4", "c-unknown.mp4")
    a_fresh, a_old, b_old, c_unknown = taken_in(
        env, *(make_clip(folder / name, "-metadata", f"title={name}") for name in names)
    )
    just_now = (datetime.now(settings.zone) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M")
    evidence_cli(env, "assign", a_fresh, "--collector", "Officer A", "--captured-at", just_now)
    evidence_cli(env, "assign", a_old, b_old, "--captured-at", "2026-03-02T09:30")  # months before receipt
    evidence_cli(env, "assign", a_old, "--collector", "Officer A")
    evidence_cli(env, "assign", b_old, "--collector", "Officer B")
    evidence_cli(env, "assign", c_unknown, "--collector", "Officer C")
    evidence_cli(
        env, "user", "add", "supervisor", "--role", "custodian", "--password-stdin", stdin=SUPERVISOR_PASSWORD + "\n"
    )
    evidence_cli(
        env, "user", "add", "dockhand", "--role", "dock", "--dock", "dock1", "--password-stdin",
        stdin=DOCK_PASSWORD + "\n",
    )  # fmt: skip
    return ["Officer A: 1 / 1 / 0", "Officer B: 0 / 1 / 0", "Officer C: 0 / 0 / 1"]


class TestReports:
    def test_the_custodian_opens_the_report_from_the_menu_and_sees_a_bar_per_officer(
        self, three_officers: list[str], web: WebProcess, browser: Browser, shots: Shots
    ) -> None:
        """The menu's Reports link opens the report; its charts are drawn SVG, the per-officer one
        with a bar for each of the three officers carrying their on-time, late and unknown counts;
        in Chinese the link and the heading are Chinese."""
        page = browser.new_page(locale="en-US", extra_http_headers={"Accept-Language": "en-US,en;q=0.9"})
        sign_in_as(page, web.url, "supervisor", SUPERVISOR_PASSWORD)
        link = page.locator("nav a[href='/reports']")
        expect(link).to_have_text("Reports")
        link.click()
        expect(page).to_have_url(re.compile(r"/reports$"))
        expect(page.locator("h1")).to_have_text("Statistics and supervision report")
        expect(page.locator("table.summary tr", has_text="Records received").locator("td")).to_have_text("4")
        charts = page.locator("figure.chart > svg")
        expect(charts).to_have_count(3)
        assert page.evaluate(
            "[...document.querySelectorAll('figure.chart > svg')].every(s => s instanceof SVGSVGElement)"
        )
        per_officer = page.locator("svg[aria-label^='On time and late per group']")
        bars = per_officer.locator("g.bar")
        expect(bars).to_have_count(3)
        titles = sorted(bars.locator("title").all_text_contents())
        assert titles == three_officers
        drawn = [rect.bounding_box() for rect in bars.locator("rect").all()]
        assert len(drawn) == 4 and all(box is not None and box["width"] > 0 for box in drawn)  # one part per record
        expect(page.locator("table.groups tbody tr")).to_have_count(3)
        expect(page.locator("table.groups tbody tr", has_text="Officer A").locator("td.number").first).to_have_text("2")
        shots(page, "report")

        page.click("a[lang=zh]")
        expect(page).to_have_url(re.compile(r"/reports$"))
        expect(page.locator("nav a[href='/reports']")).to_have_text("统计报告")
        expect(page.locator("h1")).to_have_text("执法音视频记录统计与监督报告")
        expect(page.locator("svg[aria-label^='各组按时与逾期'] g.bar")).to_have_count(3)
        shots(page, "report-zh")
        page.close()

    def test_a_dock_has_no_link_and_gets_the_403_page(
        self, three_officers: list[str], web: WebProcess, browser: Browser, shots: Shots
    ) -> None:
        """A dock account's menu has no Reports link, and typing the address gives the 403 page
        with no chart and no officer named."""
        page = browser.new_page(locale="en-US", extra_http_headers={"Accept-Language": "en-US,en;q=0.9"})
        sign_in_as(page, web.url, "dockhand", DOCK_PASSWORD)
        expect(page.locator("nav")).to_be_attached()
        expect(page.locator("nav a[href='/reports']")).to_have_count(0)
        expect(page.locator("nav")).not_to_contain_text("Reports")
        opened = page.goto(web.url + "reports")
        assert opened is not None and opened.status == 403
        expect(page.locator("h1")).to_have_text("403 · Forbidden")
        expect(page.locator("svg")).to_have_count(0)
        assert "Officer A" not in page.content()
        shots(page, "report-forbidden")
        page.close()


UPLOADER_PASSWORD = "Carrier horse battery 5"


class TestUpload:
    def test_the_custodian_drops_two_clips_both_complete_and_appear_in_the_catalog(
        self, env: dict[str, str], web: WebProcess, browser: Browser, shots: Shots, tmp_path: Path
    ) -> None:
        """Two clips dropped on the upload page each reach 100 % with a link to their item (their
        SHA-256 declared and checked by the server), and both are then in the catalog."""
        from tests.conftest import make_clip

        evidence_cli(env, "user", "add", "porter", "--role", "custodian", "--password-stdin", stdin=UPLOADER_PASSWORD)
        clips = [make_clip(tmp_path / name, "-metadata", f"title={name}") for name in ("gate.mp4", "yard.mp4")]
        page = browser.new_page(locale="en-US", extra_http_headers={"Accept-Language": "en-US,en;q=0.9"})
        sign_in_as(page, web.url, "porter", UPLOADER_PASSWORD)
        page.click("nav >> text=Upload")
        expect(page).to_have_url(re.compile(r"/upload$"))
        expect(page.locator("#upload-no-script")).to_be_hidden()
        page.fill("#upload-dock", "dock1")
        shots(page, "upload-empty")

        dropped = page.evaluate_handle(
            """(files) => {
                const transfer = new DataTransfer();
                for (const [name, bytes] of files) {
                    transfer.items.add(new File([new Uint8Array(bytes)], name, {type: "video/mp4"}));
                }
                return transfer;
            }""",
            [[clip.name, list(clip.read_bytes())] for clip in clips],
        )
        page.dispatch_event("#upload-drop", "drop", {"dataTransfer": dropped})
        rows = page.locator("#upload-list tbody tr")
        expect(rows).to_have_count(2)
        expect(page.locator("#upload-list tbody tr[data-state=done]")).to_have_count(2, timeout=60_000)
        items = []
        for index, clip in enumerate(clips):
            row = rows.nth(index)
            expect(row.locator("td.name")).to_have_text(clip.name)
            assert row.locator("progress").evaluate("bar => bar.value") == 100
            link = row.locator("td.status a")
            expect(link).to_have_text("Open the item")
            href = str(link.get_attribute("href"))
            assert re.fullmatch(r"/items/[0-9A-Z]{26}", href), href
            items.append(href.removeprefix("/items/"))
        assert page.evaluate("Object.keys(localStorage).filter(k => k.startsWith('evidence-upload:'))") == []
        shots(page, "upload-done")

        page.click("nav >> text=Catalog")
        expect(page.locator(".count")).to_have_text("2 records found")
        for item in items:
            expect(page.locator(f"table.items a[href^='/items/{item}']")).to_have_count(1)
        shots(page, "catalog-after-upload")
        page.close()

    def test_an_upload_broken_off_by_a_reload_goes_on_from_the_servers_offset(
        self, env: dict[str, str], settings: Settings, web: WebProcess, browser: Browser, shots: Shots, tmp_path: Path
    ) -> None:
        """The page is reloaded while a file's fifth piece is on its way; choosing the same file
        again asks the server where it stands and sends only the pieces it lacks, to the same
        upload, which becomes an item whose SHA-256 is the file's."""
        source = tmp_path / "long.mp4"
        source.write_bytes(os.urandom(3 << 20))
        page = upload_page(env, web, browser)
        gate = Gate(page, allowed=4)
        page.set_input_files("#upload-files", str(source))
        gate.wait_until_holding(page)
        [kept] = stored_uploads(page)
        [upload] = uploads_of(settings)
        assert kept == f"{web.url}api/v1/uploads/{upload.id}"
        assert (upload.status, upload.offset, upload.length) == ("receiving", 4 * CHUNK, source.stat().st_size)
        shots(page, "upload-broken-off")

        gate.open()
        page.reload()
        expect(page.locator("#upload-list")).to_be_hidden()
        page.set_input_files("#upload-files", str(source))
        row = page.locator("#upload-list tbody tr")
        expect(row).to_have_attribute("data-state", "done", timeout=60_000)
        link = row.locator("td.status a")
        expect(link).to_have_text("Open the item")
        item = str(link.get_attribute("href")).removeprefix("/items/")
        assert stored_uploads(page) == []
        shots(page, "upload-resumed")

        assert gate.offsets == list(range(0, source.stat().st_size, CHUNK))  # each piece sent once
        [upload] = uploads_of(settings)
        assert (upload.status, upload.item_id) == ("completed", item)
        assert item_digest(settings, item) == sha256_of(source)
        link.click()
        expect(page.locator("dd.name")).to_have_text("long.mp4")
        page.close()

    def test_cancel_ends_the_upload_on_the_server_and_the_next_file_goes_on(
        self, env: dict[str, str], settings: Settings, web: WebProcess, browser: Browser, shots: Shots, tmp_path: Path
    ) -> None:
        """Of three files chosen together, the first is cancelled from the keyboard while its
        fifth piece is on its way and the third while it still waits: both say so, the first's
        upload is ended on the server with its partial file removed, neither becomes an item,
        nothing is left to resume, and the second file is uploaded."""
        from tests.conftest import make_clip

        long = tmp_path / "long.mp4"
        long.write_bytes(os.urandom(3 << 20))
        chosen = [long, make_clip(tmp_path / "yard.mp4"), make_clip(tmp_path / "gate.mp4")]
        page = upload_page(env, web, browser)
        gate = Gate(page, allowed=4)
        page.set_input_files("#upload-files", [str(path) for path in chosen])
        rows = page.locator("#upload-list tbody tr")
        expect(rows).to_have_count(3)
        gate.wait_until_holding(page)
        [upload] = uploads_of(settings)
        assert (upload.status, upload.offset) == ("receiving", 4 * CHUNK)
        partial = settings.uploads_dir / f"{upload.id}.part"
        assert partial.exists()
        assert len(stored_uploads(page)) == 1
        for row in (rows.nth(0), rows.nth(1), rows.nth(2)):
            expect(row.get_by_role("button", name=re.compile(r"^Cancel: "))).to_be_visible()
        shots(page, "upload-under-way")

        rows.nth(2).get_by_role("button", name="Cancel: gate.mp4").click()
        expect(rows.nth(2)).to_have_attribute("data-state", "cancelled")
        expect(rows.nth(2).locator("td.status")).to_have_text("Cancelled")
        gate.open()
        rows.nth(0).get_by_role("button", name="Cancel: long.mp4").press("Enter")
        expect(rows.nth(0)).to_have_attribute("data-state", "cancelled")
        expect(rows.nth(0).locator("td.status")).to_have_text("Cancelled")
        expect(rows.nth(1)).to_have_attribute("data-state", "done", timeout=60_000)
        expect(rows.nth(1).locator("td.status a")).to_have_text("Open the item")
        expect(page.get_by_role("button", name=re.compile(r"^Cancel"))).to_have_count(0)
        assert stored_uploads(page) == []
        shots(page, "upload-cancelled")

        first, second = uploads_of(settings)
        assert (first.id, first.status, second.original_name, second.status) == (
            upload.id, "terminated", "yard.mp4", "completed"
        )  # fmt: skip
        assert not partial.exists()
        assert first.item_id is None
        page.click("nav >> text=Catalog")
        expect(page.locator(".count")).to_have_text("1 records found")
        expect(page.locator("table.items")).to_contain_text("yard.mp4")
        page.close()


CHUNK = 256 << 10  # bytes per piece the upload page sends in these tests (8 MiB as served)


def upload_page(env: dict[str, str], web: WebProcess, browser: Browser) -> Page:
    """The upload page, signed in as a new custodian ``porter``, sending pieces of ``CHUNK`` bytes
    (the page as served is changed on its way to the browser, before and after any reload)."""

    def smaller_pieces(route: Route) -> None:
        served = route.fetch()
        html = re.sub(r'data-chunk-size="\d+"', f'data-chunk-size="{CHUNK}"', served.text())
        route.fulfill(response=served, body=html)

    evidence_cli(env, "user", "add", "porter", "--role", "custodian", "--password-stdin", stdin=UPLOADER_PASSWORD)
    page = browser.new_page(locale="en-US", extra_http_headers={"Accept-Language": "en-US,en;q=0.9"})
    page.route(web.url + "upload", smaller_pieces)
    sign_in_as(page, web.url, "porter", UPLOADER_PASSWORD)
    page.goto(web.url + "upload")
    expect(page.locator("#upload")).to_have_attribute("data-chunk-size", str(CHUNK))
    return page


class Gate:
    """Between the page and the uploads: the first ``allowed`` pieces (PATCH) pass, the ones after
    are held back (never answered, as over a connection that stalled) until the gate opens; the
    offsets of the pieces that passed are noted."""

    def __init__(self, page: Page, allowed: int) -> None:
        self.allowed: int | None = allowed
        self.offsets: list[int] = []
        self.held: list[Route] = []
        page.route(re.compile(r"/api/v1/uploads/\w+$"), self.meet)

    def meet(self, route: Route) -> None:
        if route.request.method != "PATCH":
            route.continue_()
        elif self.allowed is not None and len(self.offsets) >= self.allowed:
            self.held.append(route)
        else:
            self.offsets.append(int(route.request.headers["upload-offset"]))
            route.continue_()

    def wait_until_holding(self, page: Page) -> None:
        # Playwright hands the page's requests to `meet` while it talks to the page: ask it something.
        wait_for(lambda: page.evaluate("true") and self.held, 30, "a piece held back")

    def open(self) -> None:
        self.allowed = None


def stored_uploads(page: Page) -> list[str]:
    """The unfinished uploads the page remembers (their addresses)."""
    found = page.evaluate(
        "Object.keys(localStorage).filter(k => k.startsWith('evidence-upload:')).map(k => localStorage.getItem(k))"
    )
    return [str(url) for url in found]


def uploads_of(settings: Settings) -> list[Upload]:
    """The catalog's uploads, oldest first."""
    with session_scope(open_catalog(settings)) as session:
        return list(session.exec(select(Upload).order_by(col(Upload.created_at))).all())


def item_digest(settings: Settings, item_id: str) -> str:
    with session_scope(open_catalog(settings)) as session:
        item = session.get(Item, item_id)
        assert item is not None
        return item.sha256
