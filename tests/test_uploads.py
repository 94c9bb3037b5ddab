"""Resumable uploads (tus 1.0) as docks, recorders and custodians meet them, on SQLite and
PostgreSQL: a file sent in checked pieces becomes an item by the same intake as a watched folder's
file, under the uploader's dock and its original name; a broken piece, a wrong offset, a file too
large for the limit or the disk, an idle upload and someone else's upload are refused with the
status tus names, before anything is kept; and the independent client ``tuspy`` uploads to a real
``evidence web`` that is killed half-way through a piece and restarted, and finishes where the
recorded offset says."""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
import re
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlmodel import select
from tusclient import client as tus_client
from tusclient.uploader import Uploader

from pipeline.accounts.tokens import create_token
from pipeline.catalog.db import dispose_engines, session_scope
from pipeline.catalog.models import CustodyEvent, Item, Sighting, Upload, UploadStatus
from pipeline.catalog.types import utcnow
from pipeline.ingest import uploads as service
from pipeline.ingest.reconcile import reconcile_all
from pipeline.runtime import intake_context
from pipeline.settings import Settings, load_settings
from pipeline.stage import TOOL
from pipeline.storage.local import LocalStore
from pipeline.web.app import create_web_app
from pipeline.web.csrf import HEADER
from tests.conftest import EVIDENCE, sha256_of, wait_for
from tests.test_web import add_account, form_token, sign_in

TUS = {"Tus-Resumable": "1.0.0"}
STREAM = {"Content-Type": "application/offset+octet-stream"}
URL = "/api/v1/uploads"


class Sha256Uploader(Uploader):
    """tuspy's uploader sending every chunk's SHA-256 (tuspy sends SHA-1 unless told)."""

    CHECKSUM_ALGORITHM_PAIR = ("sha256", hashlib.sha256)


# ---------------------------------------------------------------------------------------- fixtures
@pytest.fixture
def app(settings: Settings) -> Iterator[FastAPI]:
    yield create_web_app(settings)
    dispose_engines()


@pytest.fixture
def tokens(app: FastAPI) -> dict[str, str]:
    """Bearer tokens: two docks, a custodian, a case handler, an auditor and an admin."""
    made = {}
    with session_scope(app.state.engine) as session:
        for name, role, dock in (
            ("dock1", "dock", "dock1"),
            ("dock2", "dock", "dock2"),
            ("keeper", "custodian", None),
            ("handler", "case-handler", None),
            ("reader", "auditor", None),
            ("root", "admin", None),
        ):
            made[name] = create_token(session, name=name, role=role, dock=dock, actor="tester", tool=TOOL).token
    return made


@pytest.fixture
def client(app: FastAPI) -> TestClient:
    return TestClient(app, base_url="https://testserver", follow_redirects=False)


def auth(token: str, **more: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **TUS, **more}


def metadata(**values: bytes | str) -> str:
    """An ``Upload-Metadata`` header: each value's bytes in base64."""
    return ",".join(
        f"{key} {base64.b64encode(v if isinstance(v, bytes) else v.encode()).decode()}" for key, v in values.items()
    )


def chunk_checksum(data: bytes) -> str:
    return "sha256 " + base64.b64encode(hashlib.sha256(data).digest()).decode()


def create(client: TestClient, token: str, length: int, **meta: bytes | str) -> str:
    response = client.post(URL, headers=auth(token, **{"Upload-Length": str(length)}, **_meta(meta)))
    assert response.status_code == 201, response.text
    location = response.headers["location"]
    assert location.startswith(f"{URL}/")
    return str(location)


def _meta(meta: dict[str, bytes | str]) -> dict[str, str]:
    return {"Upload-Metadata": metadata(**meta)} if meta else {}


def patch(client: TestClient, token: str, location: str, offset: int, data: bytes, *, checksum: str | None = None):
    headers = auth(token, **STREAM, **{"Upload-Offset": str(offset)})
    if checksum is not None:
        headers["Upload-Checksum"] = checksum
    return client.patch(location, headers=headers, content=data)


def upload_whole(client: TestClient, token: str, data: bytes, *, piece: int = 4096, **meta: bytes | str):
    """Create an upload of ``data`` and send it in checked pieces; the last answer."""
    location = create(client, token, len(data), **meta)
    offset, answer = 0, None
    while offset < len(data):
        chunk = data[offset : offset + piece]
        answer = patch(client, token, location, offset, chunk, checksum=chunk_checksum(chunk))
        assert answer.status_code == 204, answer.text
        offset = int(answer.headers["upload-offset"])
    assert answer is not None
    return location, answer


def row(app: FastAPI, location: str) -> Upload:
    with session_scope(app.state.engine) as session:
        found = session.get(Upload, location.rsplit("/", 1)[1])
        assert found is not None
        return found


def events(app: FastAPI, target: str) -> list[str]:
    with session_scope(app.state.engine) as session:
        return list(session.exec(select(CustodyEvent.action).where(CustodyEvent.target == target)).all())


def items(app: FastAPI) -> list[Item]:
    with session_scope(app.state.engine) as session:
        return list(session.exec(select(Item)).all())


def part(settings: Settings, location: str) -> Path:
    return settings.uploads_dir / f"{location.rsplit('/', 1)[1]}.part"


# ------------------------------------------------------------------------------------------- tests
class TestDiscovery:
    def test_options_says_what_is_offered_without_credentials(self, client: TestClient, settings: Settings) -> None:
        """A tus client learns the version, extensions, checksum algorithm and the largest size."""
        response = client.options(URL)
        assert response.status_code == 204
        assert response.headers["tus-resumable"] == "1.0.0"
        assert response.headers["tus-version"] == "1.0.0"
        assert response.headers["tus-extension"] == "creation,creation-with-upload,checksum,termination,expiration"
        assert response.headers["tus-checksum-algorithm"] == "sha256"
        assert response.headers["tus-max-size"] == str(settings.upload_max_bytes)

    def test_everything_else_needs_credentials_and_the_version(self, client: TestClient, tokens) -> None:
        """Without a token 401; without Tus-Resumable 412 naming the version offered."""
        response = client.post(URL, headers={**TUS, "Upload-Length": "5"})
        assert response.status_code == 401 and response.headers["tus-resumable"] == "1.0.0"
        response = client.post(URL, headers={"Authorization": f"Bearer {tokens['dock1']}", "Upload-Length": "5"})
        assert response.status_code == 412 and response.headers["tus-version"] == "1.0.0"


class TestUpload:
    def test_a_file_in_checked_pieces_becomes_an_item_of_the_docks(
        self, app: FastAPI, client: TestClient, tokens, media, tmp_path: Path, settings: Settings
    ) -> None:
        """The last piece's answer names the item; the item is the file's bytes, under the token's
        dock and the original name; the partial file is gone; the custody log says so."""
        data = media.variant("clip.mp4", tmp_path / "clip.mp4", 3).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        location, answer = upload_whole(client, tokens["dock1"], data, filename="执法记录 01.mp4", sha256=digest)
        item_id = answer.headers["evidence-item"]
        assert answer.headers["tus-resumable"] == "1.0.0"
        (item,) = items(app)
        assert (item.id, item.sha256, item.size, item.dock_id) == (item_id, digest, len(data), "dock1")
        assert item.original_name == "执法记录 01.mp4" and item.media_kind == "video"
        assert not part(settings, location).exists()
        head = client.head(location, headers=auth(tokens["dock1"]))
        assert head.status_code == 200 and head.headers["evidence-item"] == item_id
        assert head.headers["upload-offset"] == head.headers["upload-length"] == str(len(data))
        assert head.headers["cache-control"] == "no-store"
        upload_id = location.rsplit("/", 1)[1]
        assert events(app, f"upload:{upload_id}") == ["upload-started", "upload-completed"]
        assert "ingested" in events(app, f"item:{item_id}")
        with session_scope(app.state.engine) as session:
            sighting = session.exec(select(Sighting)).one()
        assert (sighting.status, sighting.disposition, sighting.dock_id) == ("stored", "deleted", "dock1")

    def test_creation_with_upload_takes_the_whole_file_at_once(self, app: FastAPI, client: TestClient, tokens) -> None:
        """A POST with the bytes as its body is created, received and taken in in one request."""
        data = b"recorded audio " * 500
        headers = auth(
            tokens["keeper"],
            **STREAM,
            **{"Upload-Length": str(len(data)), "Upload-Metadata": metadata(filename="a.wav", dock="station9")},
        )
        response = client.post(URL, headers=headers, content=data)
        assert response.status_code == 201, response.text
        assert response.headers["upload-offset"] == str(len(data))
        (item,) = items(app)
        assert item.id == response.headers["evidence-item"] and item.dock_id == "station9"

    def test_the_same_content_again_is_a_duplicate_of_the_item(self, app: FastAPI, client: TestClient, tokens) -> None:
        """A second upload of the same bytes names the item already kept; no second item."""
        data = b"the same recording" * 300
        _, first = upload_whole(client, tokens["dock1"], data, filename="one.mp4")
        _, second = upload_whole(client, tokens["dock2"], data, filename="two.mp4")
        assert first.headers["evidence-item"] == second.headers["evidence-item"]
        assert first.headers["evidence-status"] == "stored" and second.headers["evidence-status"] == "duplicate"
        assert len(items(app)) == 1
        assert "duplicate-received" in events(app, f"item:{first.headers['evidence-item']}")

    def test_a_wrong_declared_sha256_fails_the_upload_and_catalogues_nothing(
        self, app: FastAPI, client: TestClient, tokens, settings: Settings
    ) -> None:
        """The whole file's digest differs from the one declared: Evidence-Error, no item, nothing
        in the store; the bytes that arrived are kept in quarantine, not lost."""
        data = b"bytes that were changed on the way" * 100
        location, answer = upload_whole(client, tokens["dock1"], data, sha256="0" * 64)
        assert "evidence-item" not in answer.headers
        assert "not the declared " + "0" * 64 in answer.headers["evidence-error"]
        assert items(app) == [] and not part(settings, location).exists()
        assert not LocalStore(settings.store_dir).exists(hashlib.sha256(data).hexdigest())
        (kept,) = (settings.quarantine_dir / "dock1").iterdir()
        assert kept.read_bytes() == data
        assert row(app, location).status == UploadStatus.FAILED
        assert events(app, f"upload:{location.rsplit('/', 1)[1]}") == ["upload-started", "upload-failed"]
        head = client.head(location, headers=auth(tokens["dock1"]))
        assert "evidence-error" in head.headers

    def test_a_new_server_finishes_an_upload_another_began(
        self, settings: Settings, client: TestClient, tokens
    ) -> None:
        """Nothing of an upload lives in a server's memory: a second application (a restarted
        server) takes the next piece and the completed file is the one declared."""
        data = os.urandom(50_000)
        location = create(client, tokens["dock1"], len(data), sha256=hashlib.sha256(data).hexdigest())
        assert patch(client, tokens["dock1"], location, 0, data[:20_000]).status_code == 204
        with TestClient(create_web_app(settings)) as restarted:
            answer = patch(restarted, tokens["dock1"], location, 20_000, data[20_000:])
        assert answer.status_code == 204
        stored = LocalStore(settings.store_dir).path(hashlib.sha256(data).hexdigest())
        assert stored.read_bytes() == data and answer.headers["evidence-item"]

    def test_the_stored_object_is_the_received_file_made_read_only(
        self, app: FastAPI, client: TestClient, tokens, settings: Settings
    ) -> None:
        """The received file is filed as it lies on disk (one name left, in the store, read-only),
        not copied, and its partial name is gone."""
        data = os.urandom(70_000)
        location = create(client, tokens["dock1"], len(data))
        inode = part(settings, location).stat().st_ino
        answer = patch(client, tokens["dock1"], location, 0, data)
        stored = LocalStore(settings.store_dir).path(hashlib.sha256(data).hexdigest())
        info = stored.stat()
        assert answer.headers["evidence-status"] == "stored"
        assert (info.st_ino, info.st_nlink, info.st_mode & 0o777) == (inode, 1, 0o440)
        assert not part(settings, location).exists() and stored.read_bytes() == data
        assert not any(settings.store_dir.joinpath("tmp").iterdir())

    def test_bytes_past_the_recorded_offset_are_cut_away_before_the_next_piece(
        self, app: FastAPI, client: TestClient, tokens, settings: Settings
    ) -> None:
        """Bytes a dead server wrote but never recorded are not part of the file."""
        data = os.urandom(30_000)
        location = create(client, tokens["dock1"], len(data), sha256=hashlib.sha256(data).hexdigest())
        assert patch(client, tokens["dock1"], location, 0, data[:10_000]).status_code == 204
        with part(settings, location).open("ab") as handle:
            handle.write(b"never recorded" * 100)
        answer = patch(client, tokens["dock1"], location, 10_000, data[10_000:])
        assert answer.status_code == 204 and "evidence-item" in answer.headers
        assert items(app)[0].sha256 == hashlib.sha256(data).hexdigest()


class TestRefusals:
    def test_a_piece_with_a_wrong_checksum_is_refused_and_the_offset_stays(
        self, app: FastAPI, client: TestClient, tokens, settings: Settings
    ) -> None:
        """460, nothing of the piece kept: the offset and the partial file are as before."""
        location = create(client, tokens["dock1"], 3000)
        assert patch(client, tokens["dock1"], location, 0, b"a" * 1000).status_code == 204
        answer = patch(client, tokens["dock1"], location, 1000, b"b" * 1000, checksum=chunk_checksum(b"c" * 1000))
        assert answer.status_code == 460 and answer.headers["tus-resumable"] == "1.0.0"
        assert "do not match their sha256 checksum" in answer.json()["detail"]
        assert client.head(location, headers=auth(tokens["dock1"])).headers["upload-offset"] == "1000"
        assert part(settings, location).stat().st_size == 1000
        assert row(app, location).offset == 1000

    def test_an_unsupported_checksum_algorithm_is_a_bad_request(self, client: TestClient, tokens) -> None:
        location = create(client, tokens["dock1"], 10)
        answer = patch(client, tokens["dock1"], location, 0, b"0123456789", checksum="md5 AAAA")
        assert answer.status_code == 400 and "md5" in answer.json()["detail"]

    def test_a_piece_at_the_wrong_offset_is_a_conflict(self, client: TestClient, tokens) -> None:
        """409 with the offset the server holds."""
        location = create(client, tokens["dock1"], 100)
        answer = patch(client, tokens["dock1"], location, 10, b"x" * 10)
        assert answer.status_code == 409 and answer.headers["upload-offset"] == "0"

    def test_a_piece_of_another_type_is_refused(self, client: TestClient, tokens) -> None:
        location = create(client, tokens["dock1"], 10)
        headers = auth(tokens["dock1"], **{"Upload-Offset": "0", "Content-Type": "application/octet-stream"})
        assert client.patch(location, headers=headers, content=b"0123456789").status_code == 415

    def test_a_piece_past_the_declared_length_is_refused(self, client: TestClient, tokens, settings) -> None:
        location = create(client, tokens["dock1"], 10)
        assert patch(client, tokens["dock1"], location, 0, b"x" * 11).status_code == 413
        assert part(settings, location).stat().st_size == 0

    def test_more_than_the_largest_size_is_refused_up_front(
        self, client: TestClient, tokens, settings: Settings
    ) -> None:
        """413 at creation, no upload made."""
        length = settings.upload_max_bytes + 1
        response = client.post(URL, headers=auth(tokens["dock1"], **{"Upload-Length": str(length)}))
        assert response.status_code == 413 and "largest upload" in response.json()["detail"]
        assert not settings.uploads_dir.exists() or list(settings.uploads_dir.iterdir()) == []

    def test_not_enough_disk_is_refused_before_receiving(
        self, tokens, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
    ) -> None:
        """507 at creation when the declared length (and its stored copy) would eat into the reserve."""
        monkeypatch.setenv("EVIDENCE_UPLOAD_RESERVE_BYTES", str(1 << 60))
        app = create_web_app(load_settings())
        with session_scope(app.state.engine) as session:
            token = create_token(session, name="dock9", role="dock", dock="dock9", actor="t", tool=TOOL).token
        response = TestClient(app).post(URL, headers=auth(token, **{"Upload-Length": "1000"}))
        assert response.status_code == 507 and "not enough disk space" in response.json()["detail"]
        with session_scope(app.state.engine) as session:
            assert session.exec(select(Upload)).all() == []

    def test_too_many_incomplete_uploads_at_once_are_refused(
        self, client: TestClient, tokens, settings: Settings
    ) -> None:
        """429 past upload_max_concurrent for one token; another token is not held back."""
        for _ in range(settings.upload_max_concurrent):
            create(client, tokens["dock1"], 10)
        response = client.post(URL, headers=auth(tokens["dock1"], **{"Upload-Length": "10"}))
        assert response.status_code == 429
        create(client, tokens["dock2"], 10)

    @pytest.mark.parametrize(
        ("header", "fragment"),
        [
            ("filename %%%", "not base64"),
            ("filename", None),  # a key without a value: an unnamed upload
            (metadata(filename=b"a\x00b.mp4"), "NUL"),
            (metadata(filename="x" * 10_000), "at most"),
            ("filename aGk=,filename aGk=", "given twice"),
            (metadata(sha256="abc"), "64 hexadecimal"),
            (metadata(dock="../etc"), "not allowed"),
        ],
    )
    def test_hostile_metadata_is_refused_or_kept_as_a_name(
        self, client: TestClient, tokens, header: str, fragment: str | None
    ) -> None:
        """Malformed metadata is a 400 saying what is wrong; nothing of it is used as a path."""
        response = client.post(URL, headers=auth(tokens["keeper"], **{"Upload-Length": "3", "Upload-Metadata": header}))
        if fragment is None:
            assert response.status_code == 201
        else:
            assert response.status_code == 400, response.text
            assert fragment in response.json()["detail"]

    @pytest.mark.parametrize(
        "name", [b"../../etc/passwd", b"a/b\\c.mp4", b"..", "录像\u202e4pm.exe".encode(), b"\xff\xfe\xb8\xc3.mp4"]
    )
    def test_a_hostile_name_is_kept_as_the_original_name_and_never_a_path(
        self, app: FastAPI, client: TestClient, tokens, settings: Settings, tmp_path: Path, name: bytes
    ) -> None:
        """Separators, dot-dot, control characters and bytes that are not UTF-8 are the item's
        original name, byte for byte; the file lives only under the store."""
        before = set(tmp_path.rglob("*"))
        _, answer = upload_whole(client, tokens["dock1"], b"hostile " + name, filename=name)
        (item,) = items(app)
        assert item.id == answer.headers["evidence-item"] and item.original_name_raw == name
        made = {p for p in set(tmp_path.rglob("*")) - before if p.is_file()}
        assert all(settings.home_dir in p.parents for p in made)
        assert not (settings.home_dir.parent / "etc").exists()


class TestWhoMayUpload:
    def test_only_docks_and_custodians_upload(self, client: TestClient, tokens) -> None:
        """A case handler's, an auditor's and an admin's token are refused (403): an admin manages
        accounts and handles no evidence (ACCESS.md)."""
        for who in ("handler", "reader", "root"):
            response = client.post(URL, headers=auth(tokens[who], **{"Upload-Length": "5"}))
            assert response.status_code == 403, who

    def test_a_dock_uploads_for_its_own_dock_only(self, client: TestClient, tokens) -> None:
        response = client.post(URL, headers=auth(tokens["dock1"], **{"Upload-Length": "5"}, **_meta({"dock": "dock2"})))
        assert response.status_code == 403 and "dock1 only" in response.json()["detail"]

    def test_another_docks_token_cannot_see_resume_or_end_an_upload(self, client: TestClient, tokens) -> None:
        """To anyone but its uploader the upload does not exist (404), as one nothing has."""
        location = create(client, tokens["dock1"], 10)
        other = tokens["dock2"]
        assert client.head(location, headers=auth(other)).status_code == 404
        assert patch(client, other, location, 0, b"0123456789").status_code == 404
        assert client.delete(location, headers=auth(other)).status_code == 404
        assert client.head(location, headers=auth(tokens["keeper"])).status_code == 404
        nothing = client.head(f"{URL}/{'0' * 26}", headers=auth(other))
        assert nothing.status_code == 404
        assert client.head(location, headers=auth(tokens["dock1"])).headers["upload-offset"] == "0"

    def test_a_dock_token_reads_nothing_else(self, app: FastAPI, client: TestClient, tokens) -> None:
        """With an item in the catalog, the dock that uploaded it can neither find nor read it,
        nor the custody log, accounts, cases or packages."""
        _, answer = upload_whole(client, tokens["dock1"], b"mine" * 100)
        item_id = answer.headers["evidence-item"]
        headers = {"Authorization": f"Bearer {tokens['dock1']}"}
        assert client.get("/api/v1/items", headers=headers).json()["count"] == 0
        for path in (f"/api/v1/items/{item_id}", f"/api/v1/items/{item_id}/media/access"):
            assert client.get(path, headers=headers).status_code == 404, path
        for path in ("/api/v1/audit/events", "/api/v1/users", "/api/v1/tokens"):
            assert client.get(path, headers=headers).status_code == 403, path
        assert client.get("/api/v1/cases", headers=headers).json().get("cases", []) == []
        assert item_id not in client.get("/api/v1/packages", headers=headers).text

    def test_a_signed_in_browser_sends_its_csrf_token(self, app: FastAPI, tokens) -> None:
        """A custodian's browser uploads with its session, and is refused without X-CSRF-Token."""
        add_account(app, "clerk")
        browser = TestClient(app, base_url="https://testserver", follow_redirects=False)
        assert sign_in(browser, "clerk").status_code == 303
        headers = {**TUS, "Upload-Length": "4"}
        assert browser.post(URL, headers=headers).status_code == 403
        headers[HEADER] = form_token(browser.get("/account/password"))
        response = browser.post(URL, headers={**headers, **STREAM}, content=b"four")
        assert response.status_code == 201 and response.headers["evidence-item"]
        assert items(app)[0].dock_id == service.DEFAULT_DOCK


class TestEndingAndExpiry:
    def test_termination_removes_the_partial_file_and_is_recorded(
        self, app: FastAPI, client: TestClient, tokens, settings: Settings
    ) -> None:
        location = create(client, tokens["dock1"], 100)
        assert patch(client, tokens["dock1"], location, 0, b"x" * 50).status_code == 204
        response = client.delete(location, headers=auth(tokens["dock1"]))
        assert response.status_code == 204 and response.headers["tus-resumable"] == "1.0.0"
        assert not part(settings, location).exists()
        assert client.head(location, headers=auth(tokens["dock1"])).status_code == 404
        assert events(app, f"upload:{location.rsplit('/', 1)[1]}") == ["upload-started", "upload-terminated"]

    def test_an_idle_upload_is_gone_and_removed(
        self, app: FastAPI, client: TestClient, tokens, settings: Settings
    ) -> None:
        """Past its expiry an upload answers 410 and its partial file is removed."""
        location = create(client, tokens["dock1"], 100)
        assert "upload-expires" in client.head(location, headers=auth(tokens["dock1"])).headers
        _age(app, location)
        assert patch(client, tokens["dock1"], location, 0, b"x").status_code == 410
        assert client.head(location, headers=auth(tokens["dock1"])).status_code == 410
        assert not part(settings, location).exists()

    def test_the_reconciler_removes_idle_uploads_and_logs_it(
        self, app: FastAPI, client: TestClient, tokens, settings: Settings, caplog: pytest.LogCaptureFixture
    ) -> None:
        """An idle upload nobody asks about again is removed by the reconciler's pass; a live one stays."""
        idle, live = create(client, tokens["dock1"], 100), create(client, tokens["dock1"], 100)
        _age(app, idle)
        with caplog.at_level("WARNING"):
            report = reconcile_all(intake_context(settings), settings, _Queue())
        assert report.uploads_expired == 1
        assert not part(settings, idle).exists() and part(settings, live).exists()
        assert row(app, idle).status == UploadStatus.EXPIRED and row(app, live).status == UploadStatus.RECEIVING
        assert any(idle.rsplit("/", 1)[1] in record.getMessage() for record in caplog.records)
        assert "upload-expired" in events(app, f"upload:{idle.rsplit('/', 1)[1]}")


def _age(app: FastAPI, location: str) -> None:
    with session_scope(app.state.engine) as session:
        upload = session.get(Upload, location.rsplit("/", 1)[1])
        assert upload is not None
        upload.expires_at = utcnow() - timedelta(minutes=1)
        session.add(upload)


class _Queue:
    """A stage queue that takes everything and sends nothing (the reconciler's uploads are the point)."""

    def intake(self, ids) -> None: ...
    def probe(self, ids) -> None: ...
    def derive(self, ids) -> None: ...
    def package(self, ids) -> None: ...
    def fixity(self, ids) -> None: ...


# -------------------------------------------------------------------------- a real server, killed
def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Web:
    """``evidence web`` as its own process group on a free port."""

    def __init__(self, env: dict[str, str], log: Path, port: int) -> None:
        self.log = log
        self.port = port
        start = log.stat().st_size if log.exists() else 0
        self.process = subprocess.Popen(
            [*EVIDENCE, "web", "--bind", f"127.0.0.1:{port}"],
            env={**os.environ, **env},
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        listening = rf"web: http://127.0.0.1:{port}/"
        wait_for(lambda: re.search(listening, log.read_bytes()[start:].decode(errors="replace")), 60, "web")
        self.url = f"http://127.0.0.1:{port}"

    def kill(self) -> None:
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


@pytest.mark.slow
class TestKilledServer:
    def test_tuspy_resumes_from_the_recorded_offset_after_the_server_is_killed(
        self, env: dict[str, str], settings: Settings, tmp_path: Path
    ) -> None:
        """tuspy sends part of a file in checked chunks; the server is killed (SIGKILL) while a
        piece is arriving, restarted, and the upload goes on from the offset it recorded (the
        bytes after it cut away) to an item whose SHA-256 is the file's."""
        source = tmp_path / "long.mp4"
        source.write_bytes(os.urandom(3 << 20))
        digest = sha256_of(source)
        settings.ensure_dirs()
        from pipeline.runtime import open_catalog

        with session_scope(open_catalog(settings)) as session:
            token = create_token(session, name="dock1", role="dock", dock="dock1", actor="t", tool=TOOL).token
        dispose_engines()
        log, port = tmp_path / "web.log", free_port()
        server = Web(env, log, port)
        try:
            client = tus_client.TusClient(f"{server.url}{URL}", headers={"Authorization": f"Bearer {token}"})
            meta = {"filename": "long.mp4", "sha256": digest}
            first = Sha256Uploader(
                str(source), client=client, chunk_size=256 << 10, metadata=meta, upload_checksum=True
            )
            first.upload(stop_at=1 << 20)  # four chunks recorded
            assert first.offset == 1 << 20
            upload_id = first.url.rsplit("/", 1)[1]
            partial = settings.uploads_dir / f"{upload_id}.part"
            # A piece half sent when the server dies: its bytes reach the file, never the catalog.
            piece = source.read_bytes()[1 << 20 : 3 << 20]
            sender = _HalfPiece(port, token, f"{URL}/{upload_id}", 1 << 20, piece)
            sender.start()
            wait_for(lambda: partial.stat().st_size > (1 << 20) + (64 << 10), 30, "the half piece on disk")
            server.kill()
            sender.join(10)
            assert partial.stat().st_size > 1 << 20
            server = Web(env, log, port)
            resumed = Sha256Uploader(
                str(source), client=client, url=first.url, chunk_size=256 << 10, metadata=meta, upload_checksum=True
            )
            assert resumed.offset == 1 << 20  # the recorded offset, not what reached the disk
            resumed.upload()
            assert resumed.request is not None
            item_id = resumed.request.response_headers["evidence-item"]
        finally:
            server.kill()
        engine = open_catalog(load_settings())
        with session_scope(engine) as session:
            item = session.get(Item, item_id)
            assert item is not None and item.sha256 == digest and item.original_name == "long.mp4"
        assert not partial.exists()


class _HalfPiece(threading.Thread):
    """Sends the headers of a piece and three quarters of its bytes, then waits (the server dies
    meanwhile)."""

    def __init__(self, port: int, token: str, path: str, offset: int, data: bytes) -> None:
        super().__init__(daemon=True)
        self.port, self.token, self.path, self.offset, self.data = port, token, path, offset, data

    def run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.putrequest("PATCH", self.path)
            for name, value in {
                **auth(self.token, **STREAM),
                "Upload-Offset": str(self.offset),
                "Content-Length": str(len(self.data)),
            }.items():
                connection.putheader(name, value)
            connection.endheaders()
            connection.send(self.data[: len(self.data) * 3 // 4])
            time.sleep(20)
        except OSError:
            pass  # the server was killed: expected
        finally:
            connection.close()
