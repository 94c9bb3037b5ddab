"""``evidence upload`` against a small tus 1.0 server of this file's own (the application's
contract: creation with metadata, per-chunk SHA-256, HEAD, ``Evidence-Item``), run on a loopback
port and told to misbehave once at a given offset: drop the connection before or after keeping a
chunk, answer 409, 460 or 500. The command must finish every file with the server holding exactly
the file's bytes, resume from the server's offset (not its own), and pick up an upload a killed
run left behind."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from pipeline.cli import main
from tests.conftest import EVIDENCE, wait_for

TOKEN = "tok_3c1f-very-secret-upload-token"
CHUNK = 64 * 1024


@dataclass
class Stored:
    """One upload as the test server holds it."""

    length: int
    metadata: dict[str, str]
    data: bytearray = field(default_factory=bytearray)
    item: str | None = None
    error: str | None = None
    duplicate: bool = False


@dataclass
class Fault:
    """Misbehave once when a PATCH at ``offset`` arrives: ``drop`` (close without keeping the chunk),
    ``keep-drop`` (keep it, then close without answering), or answer ``409``, ``460`` or ``500``."""

    offset: int
    kind: str
    times: int = 1


class TusServer:
    """A tus 1.0 server in a thread, with the application's upload contract."""

    def __init__(self, *, throttle: float = 0.0, max_size: int = 1 << 30) -> None:
        self.uploads: dict[str, Stored] = {}
        self.items: dict[str, str] = {}  # sha256 -> item
        self.faults: list[Fault] = []
        self.received = 0  # bytes of PATCH bodies read, kept or not
        self.throttle = throttle
        self.max_size = max_size
        self.checksums = "sha256"
        self.options_asked = 0
        self.seen_headers: list[dict[str, str]] = []
        self.lock = threading.Lock()
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def only(self) -> Stored:
        (found,) = self.uploads.values()
        return found

    def _fault(self, offset: int) -> str | None:
        with self.lock:
            for fault in self.faults:
                if fault.offset == offset and fault.times:
                    fault.times -= 1
                    return fault.kind
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: object) -> None:
                pass

            def answer(self, status: int, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Tus-Resumable", "1.0.0")
                self.send_header("Content-Length", "0")
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()

            def upload(self) -> Stored | None:
                ident = self.path.removeprefix("/api/v1/uploads/")
                return server.uploads.get(ident)

            def authorized(self) -> bool:
                server.seen_headers.append(dict(self.headers))
                if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                    self.answer(401)
                    return False
                return True

            def do_OPTIONS(self) -> None:
                server.options_asked += 1
                self.answer(
                    204,
                    {
                        "Tus-Version": "1.0.0",
                        "Tus-Extension": "creation,creation-with-upload,checksum,termination,expiration",
                        "Tus-Checksum-Algorithm": server.checksums,
                        "Tus-Max-Size": str(server.max_size),
                    },
                )

            def do_POST(self) -> None:
                if not self.authorized():
                    return
                length = int(self.headers["Upload-Length"])
                if length > server.max_size:
                    self.answer(413)
                    return
                pairs = (p.strip().split(" ") for p in self.headers.get("Upload-Metadata", "").split(",") if p)
                metadata = {k: base64.b64decode(v).decode() for k, v in pairs}
                ident = hashlib.sha256(os.urandom(8)).hexdigest()[:20]
                stored = Stored(length, metadata)
                server.uploads[ident] = stored
                if length == 0:
                    self.complete(stored)
                self.answer(201, {"Location": f"/api/v1/uploads/{ident}", "Upload-Expires": "never"})

            def do_HEAD(self) -> None:
                if not self.authorized():
                    return
                stored = self.upload()
                if stored is None:
                    self.answer(404)
                    return
                self.answer(200, {"Upload-Offset": str(len(stored.data)), **self.outcome(stored)})

            def do_DELETE(self) -> None:
                if self.authorized():
                    server.uploads.pop(self.path.removeprefix("/api/v1/uploads/"), None)
                    self.answer(204)

            def do_PATCH(self) -> None:
                if not self.authorized():
                    return
                stored = self.upload()
                size = int(self.headers.get("Content-Length", "0"))
                body = bytearray()
                while len(body) < size:
                    piece = self.rfile.read(min(16384, size - len(body)))
                    if not piece:
                        break
                    body += piece
                    with server.lock:
                        server.received += len(piece)
                time.sleep(server.throttle)
                if stored is None:
                    self.answer(404)
                    return
                offset = int(self.headers["Upload-Offset"])
                fault = server._fault(offset)
                if fault == "drop":
                    self.close_connection = True
                    return
                if fault in ("409", "460", "500"):
                    self.answer(int(fault))
                    return
                if offset != len(stored.data):
                    self.answer(409)
                    return
                algorithm, _, digest = self.headers.get("Upload-Checksum", "").partition(" ")
                if algorithm != "sha256" or base64.b64decode(digest) != hashlib.sha256(body).digest():
                    self.answer(460)
                    return
                stored.data += body
                if len(stored.data) == stored.length:
                    self.complete(stored)
                if fault == "keep-drop":
                    self.close_connection = True
                    return
                self.answer(204, {"Upload-Offset": str(len(stored.data)), **self.outcome(stored)})

            def complete(self, stored: Stored) -> None:
                digest = hashlib.sha256(stored.data).hexdigest()
                if digest != stored.metadata.get("sha256"):
                    stored.error = "the file's SHA-256 is not the one declared"
                elif digest in server.items:
                    stored.item, stored.duplicate = server.items[digest], True
                else:
                    stored.item = server.items[digest] = f"ITEM{len(server.items) + 1:04d}"

            def outcome(self, stored: Stored) -> dict[str, str]:
                found = {"Upload-Length": str(stored.length)}
                if stored.item:
                    found["Evidence-Item"] = stored.item
                if stored.duplicate:
                    found["Evidence-Status"] = "duplicate"
                if stored.error:
                    found["Evidence-Error"] = stored.error
                return found

        return Handler


@pytest.fixture
def tus() -> Iterator[TusServer]:
    server = TusServer()
    yield server
    server.stop()


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where the command keeps its unfinished uploads during the test."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(folder))
    return folder


def data_file(path: Path, size: int, seed: int = 1) -> Path:
    """A file of ``size`` bytes, different for each seed."""
    block = hashlib.sha256(str(seed).encode()).digest() * 1024
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes((block * (size // len(block) + 1))[:size])
    return path


def upload(server: TusServer, *args: str) -> Result:
    return CliRunner().invoke(
        main,
        ["upload", "--server", server.url, "--chunk-size", str(CHUNK), *args],
        env={"EVIDENCE_TOKEN": TOKEN},
        catch_exceptions=False,
    )


def lines(result: Result) -> list[dict[str, object]]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class TestUpload:
    def test_files_and_a_folder_arrive_whole_with_one_json_line_each(
        self, tus: TusServer, cache: Path, tmp_path: Path
    ) -> None:
        """Each file named and every file under a folder (sorted) arrive byte for byte, with their
        name and SHA-256 declared, and each gets a JSON line naming its item and upload."""
        one = data_file(tmp_path / "one.mp4", 300_000, 1)
        data_file(tmp_path / "dock" / "b.wav", 70_000, 2)
        data_file(tmp_path / "dock" / "a" / "c.jpg", 10, 3)
        empty = data_file(tmp_path / "dock" / "empty.bin", 0, 4)
        result = upload(tus, str(one), str(tmp_path / "dock"), "--json")
        assert result.exit_code == 0, result.output
        found = lines(result)
        assert [Path(str(r["path"])).name for r in found] == ["one.mp4", "c.jpg", "b.wav", "empty.bin"]
        for record in found:
            path = Path(str(record["path"]))
            assert set(record) >= {"path", "item", "sha256", "size", "upload", "status", "error"}
            assert record["status"] == "uploaded" and record["error"] is None
            assert record["sha256"] == sha(path) and record["size"] == path.stat().st_size
            ident = str(record["upload"]).rsplit("/", 1)[1]
            assert str(record["upload"]).startswith(tus.url + "api/v1/uploads/")
            stored = tus.uploads[ident]
            assert bytes(stored.data) == path.read_bytes()
            assert stored.metadata == {"filename": path.name, "sha256": sha(path)}
            assert record["item"] == stored.item
        assert empty.stat().st_size == 0
        assert tus.received == 300_000 + 70_000 + 10
        assert json.loads((cache / "evidence" / "uploads.json").read_text()) == {}

    def test_people_get_one_line_per_file_and_the_token_is_never_shown(
        self, tus: TusServer, cache: Path, tmp_path: Path
    ) -> None:
        """Without --json each file is one line (status, item, path); the token, given by the
        environment, appears nowhere in what the command prints, and is sent as a bearer token."""
        one = data_file(tmp_path / "one.mp4", 1000)
        result = upload(tus, str(one), "--dock", "dock7")
        assert result.exit_code == 0, result.output
        assert result.stdout.split() == ["uploaded", "ITEM0001", str(one)]
        assert TOKEN not in result.stdout + result.stderr
        assert tus.only().metadata["dock"] == "dock7"
        assert {h["Authorization"] for h in tus.seen_headers} == {f"Bearer {TOKEN}"}

    def test_the_same_file_again_is_reported_a_duplicate(self, tus: TusServer, cache: Path, tmp_path: Path) -> None:
        """When the server says the bytes are catalogued already, the line says duplicate, with the item."""
        one = data_file(tmp_path / "one.mp4", 5000)
        twin = data_file(tmp_path / "twin.mp4", 5000)
        found = lines(upload(tus, str(one), str(twin), "--json"))
        assert [(r["status"], r["item"]) for r in found] == [("uploaded", "ITEM0001"), ("duplicate", "ITEM0001")]


class TestResume:
    @pytest.mark.parametrize(
        ("kind", "extra"),
        [("keep-drop", 0), ("drop", CHUNK), ("409", CHUNK), ("460", CHUNK), ("500", CHUNK)],
    )
    def test_a_failure_mid_file_resumes_from_the_servers_offset(
        self, tus: TusServer, cache: Path, tmp_path: Path, kind: str, extra: int
    ) -> None:
        """A dropped connection (the chunk kept or not), a 409, a damaged chunk (460) or a server
        error at the third chunk: the command asks the server's offset and goes on from there; a
        chunk the server kept is not sent again, one it did not keep is sent once more."""
        path = data_file(tmp_path / "clip.mp4", 5 * CHUNK + 123)
        tus.faults.append(Fault(2 * CHUNK, kind))
        result = upload(tus, str(path), "--json")
        assert result.exit_code == 0, result.output
        (record,) = lines(result)
        assert record["status"] == "uploaded"
        assert bytes(tus.only().data) == path.read_bytes()
        assert tus.received == path.stat().st_size + extra

    def test_a_file_whose_uploads_keep_failing_is_reported_and_resumed_by_the_next_run(
        self, tus: TusServer, cache: Path, tmp_path: Path
    ) -> None:
        """After the retries are spent the file is reported failed (its name and why, exit status
        1) while the other files are still sent; the next run resumes that upload, not a new one."""
        stuck = data_file(tmp_path / "stuck.mp4", 4 * CHUNK, 1)
        other = data_file(tmp_path / "other.mp4", 1000, 2)
        tus.faults.append(Fault(2 * CHUNK, "500", times=2))
        result = upload(tus, str(stuck), str(other), "--json", "--retries", "1")
        assert result.exit_code == 1
        first, second = lines(result)
        assert first["status"] == "failed" and first["item"] is None
        assert "500" in str(first["error"]) and "gave up after 1 retries" in str(first["error"])
        assert second["status"] == "uploaded"
        human = upload(tus, str(tmp_path / "missing.mp4"))
        assert human.exit_code == 1
        assert human.stdout.strip() == f"failed    {tmp_path / 'missing.mp4'}: no such file or folder"

        again = upload(tus, str(stuck), "--json")
        assert again.exit_code == 0, again.output
        (record,) = lines(again)
        assert record["upload"] == first["upload"] and record["sent"] == 2 * CHUNK
        assert len(tus.uploads) == 2 and bytes(tus.uploads[str(record["upload"]).rsplit("/", 1)[1]].data) == (
            stuck.read_bytes()
        )

    def test_an_upload_the_server_forgot_starts_again(self, tus: TusServer, cache: Path, tmp_path: Path) -> None:
        """A remembered upload the server no longer has (expired: 404) is started afresh."""
        path = data_file(tmp_path / "clip.mp4", 3 * CHUNK)
        tus.faults.append(Fault(CHUNK, "500", times=5))
        assert upload(tus, str(path), "--retries", "0").exit_code == 1
        tus.uploads.clear()
        result = upload(tus, str(path), "--json")
        assert result.exit_code == 0, result.output
        assert bytes(tus.only().data) == path.read_bytes()

    def test_a_killed_run_is_resumed_by_the_next_without_sending_the_file_again(
        self, cache: Path, tmp_path: Path
    ) -> None:
        """The command killed (SIGKILL) half-way through a slow upload, then run again: the file
        arrives whole, and no more than one chunk was sent twice."""
        server = TusServer(throttle=0.05)
        try:
            path = data_file(tmp_path / "long.mp4", 40 * CHUNK + 7)
            command = [*EVIDENCE, "upload", str(path), "--server", server.url, "--chunk-size", str(CHUNK), "--json"]
            env = {**os.environ, "EVIDENCE_TOKEN": TOKEN, "XDG_CACHE_HOME": str(cache)}
            first = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            wait_for(lambda: server.uploads and len(server.only().data) >= 10 * CHUNK, 60, "ten chunks")
            first.send_signal(signal.SIGKILL)
            first.wait()
            kept = len(server.only().data)
            assert 0 < kept < path.stat().st_size
            second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
            assert second.returncode == 0, second.stderr
            (record,) = [json.loads(line) for line in second.stdout.splitlines()]
            assert record["status"] == "uploaded" and record["item"] == "ITEM0001"
            assert bytes(server.only().data) == path.read_bytes()
            assert server.received <= path.stat().st_size + CHUNK
            assert TOKEN not in second.stdout + second.stderr
        finally:
            server.stop()


class TestRefusals:
    def test_bad_addresses_and_missing_tokens_are_refused_before_anything_is_sent(self, tmp_path: Path) -> None:
        """A --server that is not http(s) and a missing token are refused up front (usage errors)."""
        path = data_file(tmp_path / "one.mp4", 10)
        bad = CliRunner().invoke(main, ["upload", str(path), "--server", "ftp://host/", "--token", "x"])
        assert bad.exit_code == 2 and "--server" in bad.output
        missing = CliRunner().invoke(main, ["upload", str(path), "--server", "http://127.0.0.1:9/"], env={})
        assert missing.exit_code == 2 and "--token" in missing.output

    def test_a_refused_token_and_a_file_too_large_fail_with_the_reason(
        self, tus: TusServer, cache: Path, tmp_path: Path
    ) -> None:
        """A file over the server's Tus-Max-Size fails before a byte is sent (the server asked
        once for the whole run); a refused token (401) is not retried."""
        tus.max_size = 100
        big = data_file(tmp_path / "big.mp4", 101)
        small = data_file(tmp_path / "small.mp4", 100)
        result = upload(tus, str(big), str(small), "--json")
        assert result.exit_code == 1
        failed, done = lines(result)
        assert failed["status"] == "failed" and "101 bytes, more than the server takes (100)" in str(failed["error"])
        assert done["status"] == "uploaded" and tus.only().metadata["filename"] == "small.mp4"
        assert tus.options_asked == 1
        wrong = CliRunner().invoke(
            main, ["upload", str(small), "--server", tus.url, "--token", "wrong", "--json"], catch_exceptions=False
        )
        assert "token was refused (401)" in str(lines(wrong)[0]["error"])

    def test_a_server_that_does_not_check_sha256_chunks_gets_nothing(
        self, tus: TusServer, cache: Path, tmp_path: Path
    ) -> None:
        """Chunks unchecked could be stored damaged: such a server is refused before any upload."""
        tus.checksums = "sha1,md5"
        result = upload(tus, str(data_file(tmp_path / "one.mp4", 500)), "--json")
        assert result.exit_code == 1 and tus.uploads == {} and tus.received == 0
        assert "does not check chunks with SHA-256" in str(lines(result)[0]["error"])

    def test_an_address_that_is_not_a_tus_server_is_named(self, cache: Path, tmp_path: Path) -> None:
        """A web server that is not this application: the file fails, saying the address does
        not answer as a tus server (and with what)."""
        plain = ThreadingHTTPServer(("127.0.0.1", 0), SimpleHTTPRequestHandler)
        threading.Thread(target=plain.serve_forever, daemon=True).start()
        try:
            url = f"http://127.0.0.1:{plain.server_address[1]}/"
            result = CliRunner().invoke(
                main,
                ["upload", str(data_file(tmp_path / "one.mp4", 10)), "--server", url, "--token", TOKEN, "--json"],
                catch_exceptions=False,
            )
        finally:
            plain.shutdown()
            plain.server_close()
        assert result.exit_code == 1
        error = str(lines(result)[0]["error"])
        assert "does not answer as a tus 1.0.0 server" in error and "501" in error
        assert TOKEN not in result.output

    def test_a_server_address_with_a_path_and_a_chinese_file_name(
        self, tus: TusServer, cache: Path, tmp_path: Path
    ) -> None:
        """The file's own name, in any script, is declared as it is; the address may end without a slash."""
        path = data_file(tmp_path / "执法记录 2025-09-30.mp4", 1234)
        result = CliRunner().invoke(
            main,
            ["upload", str(path), "--server", tus.url.rstrip("/"), "--json"],
            env={"EVIDENCE_TOKEN": TOKEN},
            catch_exceptions=False,
        )
        assert result.exit_code == 0, result.output
        assert tus.only().metadata["filename"] == "执法记录 2025-09-30.mp4"


class TestAgainstTheApplication:
    def test_a_dock_token_uploads_two_clips_and_both_are_catalogued(
        self, env: dict[str, str], tmp_path: Path, cache: Path
    ) -> None:
        """``evidence upload`` with a dock's token, against `evidence web` as its own process: both
        clips become items, listed by ``evidence items``, each with the SHA-256 declared."""
        from tests.conftest import make_clip
        from tests.test_browser import WebProcess

        run_env = {**os.environ, **env}

        def evidence(*args: str) -> str:
            done = subprocess.run([*EVIDENCE, *args], env=run_env, capture_output=True, text=True, timeout=120)
            assert done.returncode == 0, done.stdout + done.stderr
            return done.stdout

        token = json.loads(evidence("token", "create", "gate-dock", "--role", "dock", "--dock", "dock1", "--json"))
        clips = [make_clip(tmp_path / name, "-metadata", f"title={name}") for name in ("gate.mp4", "yard.mp4")]
        server = WebProcess(env, tmp_path)
        try:
            sent = subprocess.run(
                [*EVIDENCE, "upload", *map(str, clips), "--server", server.url, "--json"],
                env={**run_env, "EVIDENCE_TOKEN": str(token["token"]), "XDG_CACHE_HOME": str(cache)},
                capture_output=True,
                text=True,
                timeout=120,
            )
        finally:
            server.stop()
        assert sent.returncode == 0, sent.stdout + sent.stderr
        assert str(token["token"]) not in sent.stdout + sent.stderr
        records = [json.loads(line) for line in sent.stdout.splitlines()]
        assert [r["status"] for r in records] == ["uploaded", "uploaded"]
        assert [r["sha256"] for r in records] == [sha(clip) for clip in clips]
        listed = {json.loads(line)["id"] for line in evidence("items", "--json").splitlines() if line}
        assert {str(r["item"]) for r in records} <= listed
