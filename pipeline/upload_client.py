"""A client of the application's resumable uploads (tus 1.0 at ``/api/v1/uploads``), for docks and
scripts that send files over the network instead of writing them to a watched folder.

The server is asked first what it offers (``OPTIONS``): a server that does not speak tus 1.0 or does
not check chunks with SHA-256 is refused, and a file larger than its ``Tus-Max-Size`` is reported
failed before it is read. Each file is hashed whole first (SHA-256, read in blocks) and the digest
is declared in the upload's metadata, so the server refuses to catalogue anything but those bytes;
every chunk then carries its own SHA-256 (``Upload-Checksum``), so a chunk damaged on the way is
refused (460) and sent again. A dropped connection, a time-out, a 409 (offset mismatch), a 429 or a
5xx is met with a pause (doubling, with jitter) and a ``HEAD`` asking where the server stands; the
upload goes on from the server's offset, never from where this side thinks it was. Unfinished
uploads are kept in a small state file (:class:`UploadState`), so the same command run again after a
crash or Ctrl+C resumes them instead of starting over. Only one chunk is ever held in memory.

Nothing here prints or knows about the command line (``evidence upload`` in
:mod:`pipeline.cli.upload` shows the results); the bearer token is only ever put in the
``Authorization`` header, never in a result or a message.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import hashlib
import json
import os
import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urljoin

import httpx

from pipeline.errors import PipelineError

TUS_VERSION = "1.0.0"
ENDPOINT = "api/v1/uploads"
CHUNK_SIZE = 8 * 1024 * 1024
READ_BLOCK = 1024 * 1024
RETRIES = 5
PAUSE = 0.5  # seconds before the first retry; doubled each time, up to MAX_PAUSE
MAX_PAUSE = 30.0
# Answers that say the upload can never succeed as it stands: nothing is retried after them.
REFUSALS = {
    401: "the token was refused (401)",
    403: "not allowed to upload (403)",
    404: "the upload is gone from the server (404)",
    410: "the upload expired on the server (410)",
    413: "the file is larger than the server accepts (413)",
    507: "the server has no room for the file (507)",
}
UPLOADED, DUPLICATE, FAILED = "uploaded", "duplicate", "failed"
_T = TypeVar("_T")


class UploadRefused(PipelineError):
    """The server refused the upload for good (``status``, 0 when no answer came); ``reason`` says why."""

    def __init__(self, reason: str, status: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class _Retry(Exception):
    """A failure worth another try after a pause: the network, a time-out, 409, 429, 5xx."""

    def __init__(self, reason: str, wait: float | None = None) -> None:
        super().__init__(reason)
        self.wait = wait


@dataclass(frozen=True)
class UploadResult:
    """What became of one file: ``status`` is ``uploaded``, ``duplicate`` or ``failed``; ``item``
    is the catalogue's item (None when failed); ``upload`` the upload's URL once made; ``sent``
    the bytes sent this time (less than ``size`` when an earlier run had sent some)."""

    path: str
    size: int | None
    sha256: str | None
    upload: str | None
    item: str | None
    status: str
    error: str | None = None
    sent: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "item": self.item,
            "sha256": self.sha256,
            "size": self.size,
            "upload": self.upload,
            "status": self.status,
            "error": self.error,
            "sent": self.sent,
        }


def file_sha256(path: Path, progress: Callable[[int], None] | None = None) -> str:
    """The hex SHA-256 of the file, read a block at a time."""
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while block := source.read(READ_BLOCK):
            digest.update(block)
            if progress:
                progress(len(block))
    return digest.hexdigest()


def encode_metadata(values: dict[str, str]) -> str:
    """tus ``Upload-Metadata``: ``key base64(value)`` pairs joined by commas."""
    return ",".join(f"{key} {base64.b64encode(value.encode('utf-8')).decode('ascii')}" for key, value in values.items())


def chunk_checksum(chunk: bytes) -> str:
    """The ``Upload-Checksum`` of one chunk: ``sha256`` and the base64 of its digest."""
    return "sha256 " + base64.b64encode(hashlib.sha256(chunk).digest()).decode("ascii")


def default_state_path() -> Path:
    """``$XDG_CACHE_HOME/evidence/uploads.json`` (``~/.cache`` when unset)."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "evidence" / "uploads.json"


class UploadState:
    """The URLs of unfinished uploads, kept in a JSON file keyed by server, absolute path, size,
    modification time and SHA-256, so the same file unchanged resumes its upload and a changed
    file starts a new one. Each change rewrites the file whole (atomically) under a lock, so
    commands running side by side do not lose each other's entries."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @staticmethod
    def key(server: str, path: Path, size: int, mtime_ns: int, sha256: str) -> str:
        return json.dumps([server, str(path.absolute()), size, mtime_ns, sha256])

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, str]]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            entries = self._read()
            before = dict(entries)
            yield entries
            if entries != before:
                temporary = self.path.with_name(f".{self.path.name}.{os.getpid()}")
                temporary.write_text(json.dumps(entries, indent=1, sort_keys=True), encoding="utf-8")
                os.replace(temporary, self.path)

    def _read(self) -> dict[str, str]:
        try:
            found = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}

    def get(self, key: str) -> str | None:
        return self._read().get(key)

    def put(self, key: str, url: str) -> None:
        with self._locked() as entries:
            entries[key] = url

    def forget(self, key: str) -> None:
        with self._locked() as entries:
            entries.pop(key, None)


@dataclass(frozen=True)
class Offer:
    """What the server offers of tus, from its answer to ``OPTIONS``."""

    versions: tuple[str, ...]
    extensions: frozenset[str]
    checksums: frozenset[str]
    max_size: int | None  # None: the server names no limit

    @classmethod
    def of(cls, answer: httpx.Response) -> Offer:
        def listed(name: str) -> list[str]:
            return [part.strip().lower() for part in answer.headers.get(name, "").split(",") if part.strip()]

        given = answer.headers.get("tus-max-size", "").strip()
        return cls(
            tuple(listed("tus-version")),
            frozenset(listed("tus-extension")),
            frozenset(listed("tus-checksum-algorithm")),
            int(given) if given.isascii() and given.isdigit() else None,
        )

    def refusal(self) -> str | None:
        """Why this client cannot upload to the server (None when it can)."""
        if TUS_VERSION not in self.versions:
            return f"the server does not speak tus {TUS_VERSION} (it offers {', '.join(self.versions) or 'none'})"
        if "creation" not in self.extensions:
            return "the server does not let clients create uploads (tus creation)"
        if "checksum" not in self.extensions or "sha256" not in self.checksums:
            return "the server does not check chunks with SHA-256 (tus checksum), so nothing is sent to it"
        return None


@dataclass(frozen=True)
class _Standing:
    """The server's answer about one upload: its offset, and once complete its item or error."""

    offset: int
    item: str | None
    error: str | None
    duplicate: bool

    @property
    def done(self) -> bool:
        return self.item is not None or self.error is not None


class TusClient:
    """Uploads files to one server with one bearer token (:meth:`upload`, one file at a time)."""

    def __init__(
        self,
        server: str,
        token: str,
        *,
        chunk_size: int = CHUNK_SIZE,
        retries: int = RETRIES,
        timeout: float = 60.0,
        state: UploadState | None = None,
        pause: float = PAUSE,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least one byte")
        self.server = server.rstrip("/") + "/"
        self.endpoint = urljoin(self.server, ENDPOINT)
        self.chunk_size = chunk_size
        self.retries = retries
        self.state = state
        self.pause = pause
        self.sleep = sleep
        self._offer: Offer | None = None
        self.http = httpx.Client(
            headers={"Tus-Resumable": TUS_VERSION, "Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 15.0)),
            follow_redirects=False,
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> TusClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------ upload
    def upload(
        self,
        path: Path,
        *,
        dock: str | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> UploadResult:
        """Send one file and return what became of it; a failure is a result, never raised."""
        shown = str(path)
        size: int | None = None
        digest: str | None = None
        url: str | None = None
        key: str | None = None
        sent = 0
        try:
            offer = self.offer()
            info = path.stat()
            size = info.st_size
            if offer.max_size is not None and size > offer.max_size:
                reason = (
                    f"the file is {size:,} bytes, more than the server takes ({offer.max_size:,}); nothing was sent"
                )
                return UploadResult(shown, size, None, None, None, FAILED, reason, 0)
            digest = file_sha256(path)
            key = UploadState.key(self.server, path, size, info.st_mtime_ns, digest)
            url, standing = self._resume(key)
            if url is None or standing is None:
                url, standing = self._create(path.name, size, digest, dock)
                if self.state is not None:
                    self.state.put(key, url)
            if progress:
                progress(standing.offset)
            standing, sent = self._send(path, url, size, standing, progress)
            if self.state is not None:
                self.state.forget(key)
            if standing.error is not None:
                return UploadResult(shown, size, digest, url, None, FAILED, standing.error, sent)
            status = DUPLICATE if standing.duplicate else UPLOADED
            return UploadResult(shown, size, digest, url, standing.item, status, None, sent)
        except UploadRefused as exc:
            if self.state is not None and key is not None and exc.status in (404, 410):
                self.state.forget(key)
            return UploadResult(shown, size, digest, url, None, FAILED, exc.reason, sent)
        except OSError as exc:
            return UploadResult(shown, size, digest, url, None, FAILED, f"cannot read the file: {exc.strerror or exc}")

    def offer(self) -> Offer:
        """What the server offers (asked once); :class:`UploadRefused` when it is not a server
        this client can upload to."""
        if self._offer is None:

            def ask() -> Offer:
                answer = self._request("OPTIONS", self.endpoint)
                if answer.status_code == 429 or (answer.status_code >= 500 and answer.status_code != 501):
                    raise _Retry(f"the server answered {answer.status_code} to OPTIONS", _retry_after(answer))
                if answer.status_code not in (200, 204):
                    refused = f"{self.endpoint} does not answer as a tus {TUS_VERSION} server"
                    raise UploadRefused(f"{refused} ({_unexpected('to OPTIONS', answer)})", answer.status_code)
                return Offer.of(answer)

            found = self._retrying(ask)
            refusal = found.refusal()
            if refusal is not None:
                raise UploadRefused(refusal)
            self._offer = found
        return self._offer

    def _resume(self, key: str) -> tuple[str | None, _Standing | None]:
        """The remembered upload of this file and where the server stands with it; (None, None)
        when there is none, or the server no longer has it."""
        url = self.state.get(key) if self.state is not None else None
        if url is None:
            return None, None
        try:
            return url, self._retrying(lambda: self._head(url))
        except UploadRefused as exc:
            if exc.status not in (404, 410):
                raise
            assert self.state is not None
            self.state.forget(key)
            return None, None

    def _create(self, name: str, size: int, digest: str, dock: str | None) -> tuple[str, _Standing]:
        metadata = {"filename": name, "sha256": digest} | ({"dock": dock} if dock else {})

        def create() -> tuple[str, _Standing]:
            answer = self._request(
                "POST",
                self.endpoint,
                headers={"Upload-Length": str(size), "Upload-Metadata": encode_metadata(metadata)},
            )
            _raise_for(answer, "creating the upload")
            if answer.status_code != 201 or "location" not in answer.headers:
                raise UploadRefused(_unexpected("creating the upload", answer), answer.status_code)
            url = urljoin(self.endpoint, answer.headers["location"])
            return url, _standing(answer, 0)

        return self._retrying(create)

    def _send(
        self, path: Path, url: str, size: int, standing: _Standing, progress: Callable[[int], None] | None
    ) -> tuple[_Standing, int]:
        """PATCH the rest of the file from the server's offset, chunk by chunk, until the server
        names the item (or the error); the bytes sent on the way."""
        sent = 0
        failures = 0
        with path.open("rb") as source:
            while not standing.done:
                if standing.offset >= size:
                    # every byte is there but the answer naming the item was lost: ask again
                    standing = self._await_outcome(url, size)
                    break
                source.seek(standing.offset)
                chunk = source.read(min(self.chunk_size, size - standing.offset))
                if not chunk:
                    raise UploadRefused(f"the file is shorter than when it was hashed ({standing.offset} bytes)")
                try:
                    answer = self._request(
                        "PATCH",
                        url,
                        headers={
                            "Content-Type": "application/offset+octet-stream",
                            "Upload-Offset": str(standing.offset),
                            "Upload-Checksum": chunk_checksum(chunk),
                        },
                        content=chunk,
                    )
                    sent += len(chunk)
                    if answer.status_code == 460:
                        raise _Retry("the server received a damaged chunk (460)")
                    _raise_for(answer, "sending a chunk")
                    if answer.status_code != 204:
                        raise UploadRefused(_unexpected("sending a chunk", answer), answer.status_code)
                    before = standing.offset
                    standing = _standing(answer, standing.offset)
                    if standing.offset <= before and not standing.done:
                        raise _Retry("the server did not take the chunk")
                    failures = 0
                    if progress:
                        progress(standing.offset - before)
                except _Retry as exc:
                    failures += 1
                    if failures > self.retries:
                        raise UploadRefused(f"{exc}; gave up after {self.retries} retries") from None
                    self._wait(failures, exc.wait)
                    before = standing.offset
                    standing = self._retrying(lambda: self._head(url))
                    if progress and standing.offset != before:
                        progress(standing.offset - before)
        return standing, sent

    def _await_outcome(self, url: str, size: int) -> _Standing:
        """HEAD until a complete upload names its item or its error (the server may still be
        taking the file in)."""
        for attempt in range(self.retries + 1):
            standing = self._retrying(lambda: self._head(url))
            if standing.done:
                return standing
            if standing.offset < size:
                return standing
            self._wait(attempt + 1, None)
        raise UploadRefused("the server received every byte but did not name the item")

    # ----------------------------------------------------------------------------------- helpers
    def _head(self, url: str) -> _Standing:
        answer = self._request("HEAD", url)
        _raise_for(answer, "asking for the upload's offset")
        if answer.status_code not in (200, 204):
            raise UploadRefused(_unexpected("asking for the upload's offset", answer), answer.status_code)
        return _standing(answer, None)

    def _request(self, method: str, url: str, **options: Any) -> httpx.Response:
        """One request; network failures and time-outs become :class:`_Retry`."""
        try:
            return self.http.request(method, url, **options)
        except httpx.TimeoutException:
            raise _Retry(f"{method} timed out") from None
        except httpx.TransportError as exc:
            raise _Retry(f"network error: {exc or type(exc).__name__}") from None

    def _retrying(self, attempt: Callable[[], _T]) -> _T:
        """``attempt()``, tried again after a pause while it fails in a way worth retrying."""
        failures = 0
        while True:
            try:
                return attempt()
            except _Retry as exc:
                failures += 1
                if failures > self.retries:
                    raise UploadRefused(f"{exc}; gave up after {self.retries} retries") from None
                self._wait(failures, exc.wait)

    def _wait(self, failures: int, hint: float | None) -> None:
        """Pause before retry number ``failures``: the server's ``Retry-After`` when it gave one
        (up to :data:`MAX_PAUSE`), else doubling from :attr:`pause`, with jitter."""
        if hint is not None:
            self.sleep(min(hint, MAX_PAUSE))
            return
        delay = min(self.pause * 2 ** (failures - 1), MAX_PAUSE)
        self.sleep(delay * random.uniform(0.5, 1.0))


def _standing(answer: httpx.Response, offset: int | None) -> _Standing:
    """What an answer says of the upload; ``offset`` when it names none."""
    given = answer.headers.get("upload-offset")
    try:
        found = int(given) if given is not None else offset
    except ValueError:
        found = None
    if found is None or found < 0:
        raise UploadRefused(_unexpected("reading the upload's offset", answer), answer.status_code)
    duplicate = answer.headers.get("evidence-status", "").strip().lower() == DUPLICATE
    return _Standing(found, answer.headers.get("evidence-item"), answer.headers.get("evidence-error"), duplicate)


def _raise_for(answer: httpx.Response, doing: str) -> None:
    """Raise for an answer that is not a success: :class:`_Retry` for what may pass (409, 429,
    5xx but 507), :class:`UploadRefused` for the rest."""
    status = answer.status_code
    if status < 300:
        return
    if status == 409:
        raise _Retry("the server holds a different offset (409)")
    if status == 429 or (status >= 500 and status != 507):
        raise _Retry(f"the server answered {status} {answer.reason_phrase} {doing}".rstrip(), _retry_after(answer))
    reason = REFUSALS.get(status)
    if reason is not None:
        raise UploadRefused(reason + _said(answer), status)
    raise UploadRefused(_unexpected(doing, answer), status)


def _retry_after(answer: httpx.Response) -> float | None:
    try:
        return max(0.0, float(answer.headers["retry-after"]))
    except (KeyError, ValueError):
        return None


def _said(answer: httpx.Response) -> str:
    """What the server said in its body, shortened to one line ("" when nothing)."""
    try:
        body = answer.text.strip()
    except (UnicodeDecodeError, httpx.ResponseNotRead):
        return ""
    if not body:
        return ""
    with contextlib.suppress(ValueError):
        found = json.loads(body)
        if isinstance(found, dict) and "detail" in found:
            body = str(found["detail"])
    line = " ".join(body.split())
    return f": {line[:200]}"


def _unexpected(doing: str, answer: httpx.Response) -> str:
    return f"unexpected answer {answer.status_code} {answer.reason_phrase} {doing}{_said(answer)}"
