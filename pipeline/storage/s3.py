"""Content-addressed store in an S3 bucket (boto3), write-once by Object Lock.

Layout: the key of an original is ``sha256/ab/abcd…``, as in the local store. ``put`` reads the
source once to learn its digests (a duplicate is then verified and not sent again), and a second
time to send it as a multipart upload (parts sent a few at a time on threads of their own): each part
carries its own SHA-256 (``x-amz-checksum-sha256``, computed here), which the server checks on
arrival, and the whole object is hashed again on the way. The upload completes only if the key is
still free (``If-None-Match``), so two writers of the same bytes file one object.
Once the upload is complete the object is read back from the server and hashed; only when that
digest is the one the source had is the object locked (retention mode and period from the settings)
and reported stored. The server's own checksums are never taken as proof.

Transient failures (connections refused or cut, time-outs, 5xx answers, throttling) are retried
with exponential back-off and jitter; a refusal (4xx: a part whose bytes do not match its checksum,
denied access, a lock) is not. A delete refused by the lock raises :class:`ObjectLockedError`.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import io
import logging
import os
import random
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, BinaryIO, Literal, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError, IncompleteReadError, SSLError
from botocore.exceptions import ConnectionError as BotoConnectionError

from pipeline.errors import DigestMismatch, ForbiddenError, SourceChangedError, SourceReadError, StoreError
from pipeline.storage.base import Heartbeat, StoredObject
from pipeline.storage.transfer import Transfer, hash_descriptor, new_hashers

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_s3.type_defs import CompletedPartTypeDef, ObjectLockRetentionTypeDef

    from pipeline.settings import Settings

log = logging.getLogger(__name__)

HEX = frozenset("0123456789abcdef")
PREFIX = "sha256/"
MIN_PART_SIZE = 5 << 20  # S3's smallest part but the last (SeaweedFS refuses smaller: EntityTooSmall)
MAX_PARTS = 10_000
LockMode = Literal["compliance", "governance", "off"]

# Answers that say "try again later" rather than "no".
_TRANSIENT_CODES = frozenset(
    {
        "InternalError",
        "ServiceUnavailable",
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "RequestTimeout",
        "TooManyRequests",
        "TooManyRequestsException",
    }
)
# Refusals of bytes that did not arrive as they were sent (their checksum does not match).
_DIGEST_CODES = frozenset({"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch"})
_MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound", "NoSuchVersion"})
# Answers meaning "this object has no retention (or no legal hold) set".
_NO_LOCK_CODES = frozenset(
    {"NoSuchObjectLockConfiguration", "ObjectLockConfigurationNotFoundError", "NoSuchObjectLegalHold"}
)

T = TypeVar("T")


class ObjectLockedError(ForbiddenError):
    """The S3 store refused to delete an object: Object Lock (its retention period or a legal hold)
    keeps it. ``key`` names the object."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(f"{key}: the S3 store refused to delete it ({reason})")
        self.key = key


def is_transient(exc: BaseException) -> bool:
    """True for a failure that may pass if the same request is sent again."""
    if isinstance(exc, SSLError):  # a certificate that does not match will not match next time
        return False
    # Refused, reset and timed-out connections, streams cut short.
    if isinstance(exc, (BotoConnectionError, HTTPClientError, IncompleteReadError)):
        return True
    if isinstance(exc, ClientError):
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if _code(exc) == "NotImplemented":  # 501: it will not be implemented on the next attempt
            return False
        return status >= 500 or status == 429 or _code(exc) in _TRANSIENT_CODES
    return False


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _missing(exc: BaseException) -> bool:
    return isinstance(exc, ClientError) and _code(exc) in _MISSING_CODES


def _b64_sha256(data: bytes | memoryview) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode("ascii")


class _BodyReader(io.RawIOBase):
    """An object's streamed body as a raw file (wrapped in a buffered reader by :meth:`S3Store.open`)."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        data = self._body.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


class S3Store:
    """Originals in an S3 bucket (created with Object Lock when missing)."""

    name = "s3"

    def __init__(
        self,
        *,
        bucket: str,
        access_key: str,
        secret_key: str,
        endpoint: str = "",
        region: str = "us-east-1",
        lock_mode: LockMode = "compliance",
        retention_days: int = 3650,
        part_size: int = 16 << 20,
        upload_concurrency: int = 2,
        chunk_size: int = 1 << 20,
        attempts: int = 6,
        backoff: float = 0.5,
        backoff_max: float = 30.0,
        connect_timeout: float = 10.0,
        read_timeout: float = 120.0,
    ) -> None:
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size {part_size:,} is below S3's smallest part ({MIN_PART_SIZE:,} bytes)")
        if lock_mode != "off" and retention_days < 1:
            raise ValueError(f"an Object Lock in {lock_mode} mode needs a retention of at least one day")
        self.bucket = bucket
        self.endpoint = endpoint
        self.region = region
        self.lock_mode = lock_mode
        self.retention_days = retention_days
        self.part_size = part_size
        self.upload_concurrency = max(1, upload_concurrency)
        self.chunk_size = chunk_size
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self.backoff_max = backoff_max
        config = Config(
            region_name=region,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            # One attempt per call: the store retries transient failures itself, and only those.
            retries={"total_max_attempts": 1, "mode": "standard"},
            # The store computes every checksum itself and checks what it reads back itself.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            s3={"addressing_style": "path" if endpoint else "auto"},
        )
        # The secret is handed to botocore's credentials and kept nowhere else here.
        self.client: S3Client = boto3.session.Session().client(
            "s3",
            endpoint_url=endpoint or None,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            config=config,
        )
        self._bucket_ready = False
        self._conditional = True  # the server takes If-None-Match on a completed upload

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Store:
        return cls(
            bucket=settings.s3_bucket,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key.get_secret_value(),
            endpoint=settings.s3_endpoint,
            region=settings.s3_region,
            lock_mode=settings.s3_lock_mode,
            retention_days=settings.s3_retention_days,
            part_size=settings.s3_part_size,
            chunk_size=settings.copy_chunk_size,
            attempts=settings.task_max_retries + 1,
        )

    def __repr__(self) -> str:
        where = self.endpoint or "AWS"
        return f"S3Store(endpoint={where!r}, bucket={self.bucket!r}, lock={self.lock_mode}/{self.retention_days}d)"

    # ------------------------------------------------------------------------------- requests
    def _call(self, what: str, request: Callable[[], T]) -> T:
        """Send ``request``, again after a back-off while it fails transiently; a refusal by the
        server is raised as botocore raised it (``ClientError``), any other failure, and one that
        outlasts every attempt, as :class:`StoreError`."""
        delay = self.backoff
        for attempt in range(1, self.attempts + 1):
            try:
                return request()
            except (BotoCoreError, ClientError) as exc:
                if isinstance(exc, ClientError) and not is_transient(exc):
                    raise  # the caller tells a refusal it expects (a missing object, a lock) from others
                if not is_transient(exc):  # no credentials, a parameter botocore refuses, a bad certificate
                    raise StoreError(f"S3 store at {self.endpoint or 'AWS'}: {what} failed: {_reason(exc)}") from exc
                if attempt == self.attempts:
                    raise StoreError(
                        f"S3 store at {self.endpoint or 'AWS'} failed {attempt} times while {what}: {_reason(exc)}"
                    ) from exc
                pause = min(delay, self.backoff_max) * random.uniform(0.5, 1.0)
                log.warning("S3 %s failed (%s); attempt %d of %d in %.1f s", what, _reason(exc), attempt + 1,
                            self.attempts, pause)  # fmt: skip
                time.sleep(pause)
                delay *= 2
        raise AssertionError("unreachable")

    def _refused(self, exc: BaseException, what: str) -> StoreError:
        return StoreError(f"S3 store refused {what}: {_reason(exc)}")

    def ensure_bucket(self) -> None:
        """Create the bucket, with Object Lock, when it is missing; refuse one without Object Lock
        when the settings ask for a lock."""
        if self._bucket_ready:
            return
        try:
            self._call("looking for the bucket", lambda: self.client.head_bucket(Bucket=self.bucket))
        except ClientError as exc:
            if not _missing(exc) and _code(exc) != "NoSuchBucket":
                raise self._refused(exc, f"access to bucket {self.bucket}") from exc
            self._create_bucket()
        if self.lock_mode != "off":
            try:
                found = self._call(
                    "reading the bucket's Object Lock",
                    lambda: self.client.get_object_lock_configuration(Bucket=self.bucket),
                )
                enabled = found.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") == "Enabled"
            except ClientError as exc:
                if _code(exc) != "ObjectLockConfigurationNotFoundError":
                    raise self._refused(exc, f"reading bucket {self.bucket}'s Object Lock") from exc
                enabled = False
            if not enabled:
                raise StoreError(
                    f"bucket {self.bucket} has no Object Lock, so originals in it could be deleted; "
                    "use a bucket created with Object Lock, or set s3_lock_mode to off"
                )
        self._bucket_ready = True

    def _create_bucket(self) -> None:
        # Always with Object Lock (which turns versioning on): it cannot be added to a bucket later,
        # and legal holds need it whatever the retention setting.
        options: dict[str, Any] = {"Bucket": self.bucket, "ObjectLockEnabledForBucket": True}
        if self.region != "us-east-1":
            options["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            self._call(f"creating bucket {self.bucket}", lambda: self.client.create_bucket(**options))
        except ClientError as exc:
            if _code(exc) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise self._refused(exc, f"creating bucket {self.bucket}") from exc
        log.info("created S3 bucket %s (Object Lock %s)", self.bucket, self.lock_mode)

    # ------------------------------------------------------------------------------ the protocol
    def key(self, sha256: str) -> str:
        if len(sha256) != 64 or not HEX.issuperset(sha256):
            raise StoreError(f"not a SHA-256 hex digest: {sha256!r}")
        return f"{PREFIX}{sha256[:2]}/{sha256}"

    def _head(self, key: str) -> dict[str, Any] | None:
        try:
            return dict(self._call(f"looking up {key}", lambda: self.client.head_object(Bucket=self.bucket, Key=key)))
        except ClientError as exc:
            if _missing(exc):
                return None
            raise self._refused(exc, f"looking up {key}") from exc

    def exists(self, sha256: str) -> bool:
        return self._head(self.key(sha256)) is not None

    def open(self, sha256: str) -> BinaryIO:
        """The object's bytes, streamed from the server as they are read."""
        key = self.key(sha256)
        try:
            answer = self._call(f"opening {key}", lambda: self.client.get_object(Bucket=self.bucket, Key=key))
        except ClientError as exc:
            if _missing(exc):
                raise FileNotFoundError(errno.ENOENT, "no such object in the S3 store", key) from exc
            raise self._refused(exc, f"reading {key}") from exc
        return io.BufferedReader(_BodyReader(answer["Body"]), buffer_size=self.chunk_size)

    def _read_hashed(self, key: str, version: str | None = None, algorithms: Sequence[str] = ()) -> Transfer:
        """Read an object (a version of it) from the server to its end and hash it; a transfer cut
        short is read again from the start."""
        options: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if version:
            options["VersionId"] = version

        def read() -> Transfer:
            body = self.client.get_object(**options)["Body"]
            hashers = new_hashers(algorithms)
            size = 0
            head = b""
            try:
                for chunk in body.iter_chunks(self.chunk_size):
                    if size == 0:
                        head = chunk[:64]
                    for hasher in hashers.values():
                        hasher.update(chunk)
                    size += len(chunk)
            finally:
                body.close()
            return Transfer(size, {name: h.hexdigest() for name, h in hashers.items()}, head)

        try:
            return self._call(f"reading {key} back", read)
        except ClientError as exc:
            if _missing(exc):
                raise FileNotFoundError(errno.ENOENT, "no such object in the S3 store", key) from exc
            raise self._refused(exc, f"reading {key}") from exc

    def digest(self, sha256: str) -> tuple[str, int]:
        """Read the object from the server and hash it now."""
        transfer = self._read_hashed(self.key(sha256))
        return transfer.digests["sha256"], transfer.size

    def objects(self) -> Iterator[str]:
        options: dict[str, Any] = {"Bucket": self.bucket, "Prefix": PREFIX}
        while True:
            try:
                page = self._call("listing objects", lambda: self.client.list_objects_v2(**options))
            except ClientError as exc:
                raise self._refused(exc, f"listing bucket {self.bucket}") from exc
            for entry in page.get("Contents", []):
                name = entry.get("Key", "").rpartition("/")[2]
                if len(name) == 64 and HEX.issuperset(name):
                    yield name
            if not page.get("IsTruncated"):
                return
            options["ContinuationToken"] = page["NextContinuationToken"]

    def sync(self) -> None:
        """Nothing to do: an object is durable on the server once its upload is complete."""

    def adopt(
        self,
        source_fd: int,
        *,
        algorithms: Sequence[str] = (),
        durable: bool = True,
        heartbeat: Heartbeat | None = None,
        expect_sha256: str | None = None,
        read_back: Transfer | None = None,
    ) -> StoredObject | None:
        """An S3 store cannot take a local file without copying it: :meth:`put` it."""
        return None

    def remove_partials(self, older_than: float) -> int:
        """Abort multipart uploads started more than ``older_than`` seconds ago (their writers died);
        the server then frees their parts."""
        limit = datetime.now(UTC) - timedelta(seconds=older_than)
        removed = 0
        options: dict[str, Any] = {"Bucket": self.bucket}
        while True:
            try:
                page = self._call("listing unfinished uploads", lambda: self.client.list_multipart_uploads(**options))
            except ClientError as exc:
                raise self._refused(exc, "listing unfinished uploads") from exc
            for upload in page.get("Uploads", []):
                started = upload.get("Initiated")
                if started is not None and started < limit and self._abort(upload["Key"], upload["UploadId"]):
                    removed += 1
            if not page.get("IsTruncated"):
                return removed
            options["KeyMarker"] = page.get("NextKeyMarker", "")
            options["UploadIdMarker"] = page.get("NextUploadIdMarker", "")

    def _abort(self, key: str, upload_id: str) -> bool:
        """Abort an unfinished upload; False when it could not be (it is then left for
        :meth:`remove_partials`) or was gone already."""
        try:
            self._call(
                f"aborting an upload of {key}",
                lambda: self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id),
            )
        except (ClientError, StoreError) as exc:
            if not _missing(exc) and _code_of(exc) != "NoSuchUpload":
                log.warning("could not abort an upload of %s: %s", key, _reason(exc))
            return False
        return True

    def put(
        self,
        source_fd: int,
        *,
        algorithms: Sequence[str] = (),
        durable: bool = True,
        heartbeat: Heartbeat | None = None,
        expect_sha256: str | None = None,
    ) -> StoredObject:
        """Hash the source, send it in parts each with its SHA-256, read the object back, compare,
        lock it. A duplicate is verified on the server and not sent again (``existed``); a copy on
        the server that no longer has its digest is replaced by a new version (``repaired``).

        Raises :class:`~pipeline.errors.DigestMismatch` (nothing sent) when the source is not
        ``expect_sha256``, :class:`~pipeline.errors.SourceChangedError` when it changed between
        reads, :class:`StoreError` for the server's failures and refusals. Only an object that read
        back as the source's bytes is locked; an unfinished upload is aborted."""
        self.ensure_bucket()
        start = os.lseek(source_fd, 0, os.SEEK_CUR)
        size_hint = os.fstat(source_fd).st_size - start
        source = hash_descriptor(
            source_fd, algorithms=algorithms, chunk_size=self.chunk_size, size_hint=size_hint, heartbeat=heartbeat
        )
        sha256 = source.digests["sha256"]
        if expect_sha256 is not None and sha256 != expect_sha256:
            raise DigestMismatch(
                "source", f"the file's SHA-256 is {sha256}, not the declared {expect_sha256}; it was changed on the way"
            )
        key = self.key(sha256)
        extra = {name: value for name, value in source.digests.items() if name != "sha256"}
        repaired = False
        if self._head(key) is not None:
            found = self._read_hashed(key)
            if found.digests["sha256"] == sha256 and found.size == source.size:
                self._ensure_locked(key, None)
                return StoredObject(sha256, source.size, key, extra, source.head, existed=True)
            log.warning("S3 object %s reads back as %s (%d bytes): storing a new version", key,
                        found.digests["sha256"], found.size)  # fmt: skip
            repaired = True
        version = self._upload(source_fd, start, key, source, heartbeat, replace=repaired)
        if version is None:  # another writer filed these bytes while we sent them
            found = self._read_hashed(key)
            if found.digests["sha256"] != sha256 or found.size != source.size:
                raise StoreError(f"S3 object {key} was filed by another writer meanwhile and does not read back right")
            self._ensure_locked(key, None)
            return StoredObject(sha256, source.size, key, extra, source.head, existed=True)
        back = self._read_hashed(key, version)
        if back.digests["sha256"] != sha256 or back.size != source.size:
            try:
                self._delete_version(key, version)
            except (ObjectLockedError, StoreError) as exc:  # a bucket's default retention keeps it
                log.warning("could not remove S3 object %s that read back wrong: %s", key, exc)
            raise StoreError(
                f"S3 object {key} read back as {back.digests['sha256']} ({back.size:,} bytes) after its upload, "
                f"not the {sha256} ({source.size:,} bytes) sent"
            )
        self._ensure_locked(key, version)
        return StoredObject(sha256, source.size, key, extra, source.head, existed=repaired, repaired=repaired)

    def _upload(
        self, source_fd: int, start: int, key: str, source: Transfer, heartbeat: Heartbeat | None, *, replace: bool
    ) -> str | None:
        """Send the source as a multipart upload, each part with the SHA-256 computed here; returns
        the new version's id (empty where the bucket keeps no versions), or None when another
        writer filed the key first (unless ``replace``: a new version over a damaged one)."""
        part_size = max(self.part_size, -(-source.size // MAX_PARTS))
        try:
            created = self._call(
                f"starting an upload of {key}",
                lambda: self.client.create_multipart_upload(Bucket=self.bucket, Key=key, ChecksumAlgorithm="SHA256"),
            )
        except ClientError as exc:
            raise self._refused(exc, f"an upload of {key}") from exc
        upload_id = created["UploadId"]
        completed = False
        # Parts go up on threads of their own (at most ``upload_concurrency`` at once, each holding
        # its part in memory) while this thread reads and hashes the next; progress is reported here.
        sending: deque[tuple[Future[CompletedPartTypeDef], int]] = deque()
        pool = ThreadPoolExecutor(self.upload_concurrency, thread_name_prefix="s3-part")
        try:
            whole = hashlib.sha256()
            parts: list[CompletedPartTypeDef] = []
            offset = sent = 0
            number = 0

            def collect_oldest() -> None:
                nonlocal sent
                future, length = sending.popleft()
                parts.append(future.result())
                sent += length
                if heartbeat is not None:
                    heartbeat(sent)

            while True:
                data = _pread_full(source_fd, part_size, start + offset)
                if not data and number > 0:
                    break
                number += 1
                whole.update(data)
                while len(sending) >= self.upload_concurrency:
                    collect_oldest()
                future = pool.submit(self._upload_part, key, upload_id, number, data, _b64_sha256(data))
                sending.append((future, len(data)))
                offset += len(data)
                if len(data) < part_size:
                    break
            while sending:
                collect_oldest()
            if whole.hexdigest() != source.digests["sha256"] or offset != source.size:
                raise SourceChangedError("source", "changed while it was being sent to the S3 store")
            options: dict[str, Any] = {
                "Bucket": self.bucket,
                "Key": key,
                "UploadId": upload_id,
                "MultipartUpload": {"Parts": parts},
            }
            if not replace and self._conditional:
                options["IfNoneMatch"] = "*"  # two writers of the same bytes: the second is a duplicate
            try:
                done = self._call(
                    f"completing the upload of {key}", lambda: self.client.complete_multipart_upload(**options)
                )
            except ClientError as exc:
                if _code(exc) == "PreconditionFailed":
                    return None
                if _code(exc) != "NotImplemented" or "IfNoneMatch" not in options:
                    raise self._refused(exc, f"completing the upload of {key}") from exc
                self._conditional = False  # a server without conditional writes
                del options["IfNoneMatch"]
                try:
                    done = self._call(
                        f"completing the upload of {key}", lambda: self.client.complete_multipart_upload(**options)
                    )
                except ClientError as again:
                    raise self._refused(again, f"completing the upload of {key}") from again
            completed = True
            return str(done.get("VersionId") or "")
        finally:
            for future, _length in sending:
                future.cancel()
            pool.shutdown(wait=True)
            if not completed:
                self._abort(key, upload_id)

    def _upload_part(self, key: str, upload_id: str, number: int, data: bytes, checksum: str) -> CompletedPartTypeDef:
        try:
            answer = self._call(
                f"sending part {number} of {key}",
                lambda: self.client.upload_part(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=data,
                    ChecksumSHA256=checksum,
                ),
            )
        except ClientError as exc:
            if _code(exc) in _DIGEST_CODES:
                raise StoreError(
                    f"S3 store refused part {number} of {key}: the bytes that arrived do not match the SHA-256 "
                    f"sent with them ({_code(exc)}); nothing was stored"
                ) from exc
            raise self._refused(exc, f"part {number} of {key}") from exc
        return {"PartNumber": number, "ETag": answer["ETag"], "ChecksumSHA256": checksum}

    # ------------------------------------------------------------------------------ Object Lock
    def _version_options(self, key: str, version: str | None) -> dict[str, Any]:
        options: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if version:
            options["VersionId"] = version
        return options

    def _ensure_locked(self, key: str, version: str | None) -> None:
        """Give the object the retention the settings ask for, unless it has one that has not ended
        (a retention can be lengthened but never shortened or lifted, so one found is kept)."""
        if self.lock_mode == "off":
            return
        options = self._version_options(key, version)
        now = datetime.now(UTC)
        kept = self.retention(key=key, version=version)
        if kept is not None and kept[1] > now:
            return
        until = now + timedelta(days=self.retention_days)
        retention: ObjectLockRetentionTypeDef = {
            "Mode": "COMPLIANCE" if self.lock_mode == "compliance" else "GOVERNANCE",
            "RetainUntilDate": until,
        }
        try:
            self._call(f"locking {key}", lambda: self.client.put_object_retention(**options, Retention=retention))
        except ClientError as exc:
            raise self._refused(exc, f"locking {key}") from exc

    def retention(self, sha256: str = "", *, key: str = "", version: str | None = None) -> tuple[str, datetime] | None:
        """The object's retention mode and the time it ends; None when it has none."""
        key = key or self.key(sha256)
        options = self._version_options(key, version)
        try:
            found = self._call(f"reading {key}'s retention", lambda: self.client.get_object_retention(**options))
        except ClientError as exc:
            if _code(exc) in _NO_LOCK_CODES:
                return None
            if _missing(exc):
                raise FileNotFoundError(errno.ENOENT, "no such object in the S3 store", key) from exc
            raise self._refused(exc, f"reading {key}'s retention") from exc
        retention = found.get("Retention", {})
        if "Mode" not in retention or "RetainUntilDate" not in retention:
            return None
        return str(retention["Mode"]), retention["RetainUntilDate"]

    def _legal_hold(self, sha256: str, status: Literal["ON", "OFF"]) -> None:
        key = self.key(sha256)
        # Looked up first: SeaweedFS answers a hold on a missing key with 500 (not 404), which
        # would be retried as if the server were failing.
        if self._head(key) is None:
            raise FileNotFoundError(errno.ENOENT, "no such object in the S3 store", key)
        try:
            self._call(
                f"setting {key}'s legal hold {status}",
                lambda: self.client.put_object_legal_hold(Bucket=self.bucket, Key=key, LegalHold={"Status": status}),
            )
        except ClientError as exc:
            if _missing(exc):
                raise FileNotFoundError(errno.ENOENT, "no such object in the S3 store", key) from exc
            raise self._refused(exc, f"setting {key}'s legal hold {status}") from exc

    def place_legal_hold(self, sha256: str) -> None:
        """Keep the object whatever its retention says until :meth:`release_legal_hold`."""
        self._legal_hold(sha256, "ON")

    def release_legal_hold(self, sha256: str) -> None:
        self._legal_hold(sha256, "OFF")

    def legal_hold(self, sha256: str) -> bool:
        key = self.key(sha256)
        try:
            found = self._call(
                f"reading {key}'s legal hold", lambda: self.client.get_object_legal_hold(Bucket=self.bucket, Key=key)
            )
        except ClientError as exc:
            if _code(exc) in _NO_LOCK_CODES:
                return False
            if _missing(exc):
                raise FileNotFoundError(errno.ENOENT, "no such object in the S3 store", key) from exc
            raise self._refused(exc, f"reading {key}'s legal hold") from exc
        return found.get("LegalHold", {}).get("Status") == "ON"

    def delete(self, sha256: str) -> int:
        """Delete every version of the object (never just hide it behind a delete marker); returns
        how many were deleted. A version the lock keeps raises :class:`ObjectLockedError`, logged."""
        key = self.key(sha256)
        try:
            listing = self._call(
                f"listing {key}'s versions",
                lambda: self.client.list_object_versions(Bucket=self.bucket, Prefix=key),
            )
        except ClientError as exc:
            raise self._refused(exc, f"listing {key}'s versions") from exc
        versions = [
            str(entry.get("VersionId"))
            for entry in [*listing.get("Versions", []), *listing.get("DeleteMarkers", [])]
            if entry.get("Key") == key
        ]
        if not versions:
            raise FileNotFoundError(errno.ENOENT, "no such object in the S3 store", key)
        for version in versions:
            self._delete_version(key, version)
        return len(versions)

    def _delete_version(self, key: str, version: str) -> None:
        options = self._version_options(key, version)
        try:
            self._call(f"deleting {key}", lambda: self.client.delete_object(**options))
        except ClientError as exc:
            if _missing(exc):
                return
            if _code(exc) == "AccessDenied":
                reason = self._why_kept(key, version)
                log.warning("deletion of S3 object %s (version %s) refused: %s", key, version, reason)
                raise ObjectLockedError(key, reason) from exc
            raise self._refused(exc, f"deleting {key}") from exc

    def _why_kept(self, key: str, version: str) -> str:
        """What keeps a version the server refused to delete, in words."""
        reasons = []
        kept = self.retention(key=key, version=version or None)
        if kept is not None:
            reasons.append(f"Object Lock {kept[0]} until {kept[1].astimezone(UTC):%Y-%m-%d %H:%M} UTC")
        hold: Mapping[str, Any]
        try:
            hold = self._call(
                f"reading {key}'s legal hold",
                lambda: self.client.get_object_legal_hold(**self._version_options(key, version)),
            )
        except ClientError:
            hold = {}
        if hold.get("LegalHold", {}).get("Status") == "ON":
            reasons.append("a legal hold")
        return " and ".join(reasons) or "access denied"


def _code_of(exc: BaseException) -> str:
    cause = exc if isinstance(exc, ClientError) else exc.__cause__
    return _code(cause) if isinstance(cause, ClientError) else ""


def _reason(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "")
        return f"{status} {error.get('Code', '')} {error.get('Message', '')}".strip()
    return str(exc) or type(exc).__name__


def _pread_full(fd: int, size: int, offset: int) -> bytes:
    """Up to ``size`` bytes at ``offset`` (fewer only at the end of the file)."""
    pieces: list[bytes] = []
    got = 0
    while got < size:
        try:
            piece = os.pread(fd, size - got, offset + got)
        except OSError as exc:
            raise SourceReadError("source", f"read failed at byte {offset + got}: {exc.strerror or exc}") from exc
        if not piece:
            break
        pieces.append(piece)
        got += len(piece)
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)
