"""The S3 store against a real S3 server (SeaweedFS): multipart uploads with our per-part SHA-256,
read-back verification, duplicates, refusals, Object Lock, legal holds, retries, and the secret key."""

from __future__ import annotations

import hashlib
import io
import logging
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, ConnectionClosedError
from botocore.response import StreamingBody
from pydantic import ValidationError

from pipeline.errors import (
    ContentError,
    DigestMismatch,
    ForbiddenError,
    SourceChangedError,
    StoreError,
    SystemFault,
)
from pipeline.settings import Settings, load_settings
from pipeline.storage.s3 import MIN_PART_SIZE, LockMode, ObjectLockedError, S3Store
from tests.conftest import ffmpeg
from tests.s3server import SeaweedServer

PART = MIN_PART_SIZE  # the smallest part SeaweedFS takes (it refuses smaller ones: EntityTooSmall)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real video of about 6.9 MB (uncompressed frames): more than one 5 MiB part."""
    path = tmp_path_factory.mktemp("s3media") / "clip.avi"
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc=size=640x480:rate=10:duration=1.5",
        "-c:v", "rawvideo", "-pix_fmt", "yuv420p", str(path),
    )  # fmt: skip
    assert path.stat().st_size > PART
    return path


@pytest.fixture(scope="module")
def photo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("s3photo") / "photo.jpg"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:duration=1", "-frames:v", "1", str(path))
    return path


StoreMaker = Callable[..., S3Store]


@pytest.fixture
def make_store(s3_server: SeaweedServer) -> StoreMaker:
    """A store on a bucket of its own (so tests never see each other's objects)."""
    bucket = f"evidence-{uuid.uuid4().hex[:12]}"

    def make(lock_mode: LockMode = "compliance", **options: Any) -> S3Store:
        values: dict[str, Any] = {
            "bucket": bucket,
            "access_key": s3_server.access_key,
            "secret_key": s3_server.secret_key,
            "endpoint": s3_server.endpoint,
            "lock_mode": lock_mode,
            "retention_days": 1,
            "part_size": PART,
            "backoff": 0.05,
        }
        values.update(options)
        return S3Store(**values)

    return make


@pytest.fixture
def store(make_store: StoreMaker) -> S3Store:
    return make_store()


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def put(store: S3Store, path: Path, **options: Any) -> Any:
    fd = os.open(path, os.O_RDONLY)
    try:
        return store.put(fd, **options)
    finally:
        os.close(fd)


def versions(store: S3Store, key: str) -> list[dict[str, Any]]:
    listing = store.client.list_object_versions(Bucket=store.bucket, Prefix=key)
    return [dict(entry) for entry in listing.get("Versions", []) if entry.get("Key") == key]


def unfinished_uploads(store: S3Store) -> list[str]:
    return [upload["Key"] for upload in store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", [])]


@pytest.fixture
def counted(store: S3Store) -> Iterator[dict[str, int]]:
    """How many times each operation reached the wire (attempts, retries included)."""
    counts: dict[str, int] = {}

    def count(request: Any, event_name: str, **_: Any) -> None:
        operation = event_name.rsplit(".", 1)[-1]
        counts[operation] = counts.get(operation, 0) + 1

    store.client.meta.events.register("before-send.s3.*", count)
    yield counts
    store.client.meta.events.unregister("before-send.s3.*", count)


# --------------------------------------------------------------------------------------- putting
def test_a_file_of_two_parts_is_stored_verified_and_read_back(store: S3Store, clip: Path) -> None:
    data = clip.read_bytes()
    stored = put(store, clip, algorithms=["md5"])
    assert stored.sha256 == hashlib.sha256(data).hexdigest()
    assert stored.size == len(data)
    assert stored.digests == {"md5": hashlib.md5(data).hexdigest()}
    assert stored.key == f"sha256/{stored.sha256[:2]}/{stored.sha256}" == store.key(stored.sha256)
    assert stored.head == data[:64]
    assert not stored.existed
    # It went up as a multipart upload of two parts, each with the SHA-256 we computed.
    head = store.client.head_object(Bucket=store.bucket, Key=stored.key, ChecksumMode="ENABLED")
    assert head["ETag"].strip('"').endswith("-2")
    with store.open(stored.sha256) as stream:
        assert stream.read() == data
    assert store.digest(stored.sha256) == (hashlib.sha256(data).hexdigest(), len(data))
    assert store.exists(stored.sha256)
    assert list(store.objects()) == [stored.sha256]
    assert unfinished_uploads(store) == []


def test_an_empty_file_is_stored_too(store: S3Store, tmp_path: Path) -> None:
    empty = tmp_path / "empty.mp4"
    empty.touch()
    stored = put(store, empty)
    assert (stored.sha256, stored.size) == (hashlib.sha256(b"").hexdigest(), 0)
    assert store.digest(stored.sha256) == (stored.sha256, 0)
    assert put(store, empty).existed


def test_every_original_is_locked_for_the_retention_period(store: S3Store, photo: Path) -> None:
    stored = put(store, photo)
    kept = store.retention(stored.sha256)
    assert kept is not None
    mode, until = kept
    assert mode == "COMPLIANCE"
    expected = datetime.now(UTC) + timedelta(days=1)
    assert abs((until - expected).total_seconds()) < 120


def test_a_duplicate_is_verified_and_not_sent_again(store: S3Store, photo: Path, counted: dict[str, int]) -> None:
    first = put(store, photo)
    sent = counted.get("UploadPart", 0)
    second = put(store, photo)
    assert second.existed and not second.repaired
    assert (second.sha256, second.size, second.key) == (first.sha256, first.size, first.key)
    assert counted.get("UploadPart", 0) == sent  # nothing sent the second time
    assert counted["GetObject"] >= 2  # but the copy on the server was read back both times
    assert len(versions(store, first.key)) == 1


def test_a_source_that_is_not_the_declared_digest_files_nothing(store: S3Store, photo: Path, clip: Path) -> None:
    with pytest.raises(DigestMismatch, match="not the declared"):
        put(store, photo, expect_sha256=sha256_of(clip))
    assert not store.exists(sha256_of(photo))
    assert not store.exists(sha256_of(clip))
    assert list(store.objects()) == []
    assert unfinished_uploads(store) == []


def test_a_part_damaged_on_the_way_is_refused_by_the_server_and_not_retried(
    store: S3Store, clip: Path, counted: dict[str, int]
) -> None:
    def damage(params: dict[str, Any], **_: Any) -> None:
        if params.get("PartNumber") == 2:
            body = bytearray(params["Body"])
            body[100] ^= 0xFF
            params["Body"] = bytes(body)

    store.client.meta.events.register("before-parameter-build.s3.UploadPart", damage)
    with pytest.raises(StoreError, match=r"part 2 of sha256/.*BadDigest") as refused:
        put(store, clip)
    assert isinstance(refused.value, SystemFault) and not isinstance(refused.value, ContentError)
    assert counted["UploadPart"] == 2  # part 1, and part 2 once: a refusal is not retried
    assert not store.exists(sha256_of(clip))
    assert unfinished_uploads(store) == []  # the upload was aborted


def test_an_object_that_reads_back_wrong_is_not_reported_stored(store: S3Store, photo: Path) -> None:
    """The server answers that all is well; the bytes it returns decide."""

    def damage(parsed: dict[str, Any], **_: Any) -> None:
        data = bytearray(parsed["Body"].read())
        data[-1] ^= 0xFF
        parsed["Body"] = StreamingBody(io.BytesIO(bytes(data)), len(data))

    store.client.meta.events.register("after-call.s3.GetObject", damage)
    with pytest.raises(StoreError, match=r"read back as [0-9a-f]{64} .* not the " + sha256_of(photo)):
        put(store, photo)
    store.client.meta.events.unregister("after-call.s3.GetObject", damage)
    assert not store.exists(sha256_of(photo))  # it was removed before any lock was put on it
    assert versions(store, store.key(sha256_of(photo))) == []


def test_a_damaged_copy_on_the_server_is_replaced_by_a_verified_version(store: S3Store, photo: Path) -> None:
    first = put(store, photo)
    # Someone writes other bytes under the key: a new version (the locked one stays beneath it).
    store.client.put_object(Bucket=store.bucket, Key=first.key, Body=b"not the photo")
    assert store.digest(first.sha256) != (first.sha256, first.size)
    again = put(store, photo)
    assert again.existed and again.repaired
    assert store.digest(first.sha256) == (first.sha256, first.size)
    assert len(versions(store, first.key)) == 3
    assert store.retention(first.sha256) is not None


def test_a_source_that_changes_while_it_is_sent_files_nothing(store: S3Store, clip: Path, tmp_path: Path) -> None:
    source = tmp_path / "growing.avi"
    source.write_bytes(clip.read_bytes())

    def rewrite_part_two(**_: Any) -> None:  # after it was hashed, before it is sent
        with source.open("r+b") as file:
            file.seek(PART + 10)
            file.write(b"changed")

    store.client.meta.events.register("before-parameter-build.s3.CreateMultipartUpload", rewrite_part_two)
    with pytest.raises(SourceChangedError, match="changed while it was being sent"):
        put(store, source)
    assert list(store.objects()) == []
    assert unfinished_uploads(store) == []


def test_progress_is_reported_part_by_part(store: S3Store, clip: Path) -> None:
    beats: list[int] = []
    put(store, clip, heartbeat=beats.append)
    size = clip.stat().st_size
    # After each part sent, in order (the hashing pass beats only every 64 MiB).
    assert beats[-2:] == [PART, size]


def test_a_missing_object_is_not_found(store: S3Store) -> None:
    store.ensure_bucket()
    missing = "f" * 64
    assert not store.exists(missing)
    with pytest.raises(FileNotFoundError):
        store.open(missing)
    with pytest.raises(FileNotFoundError):
        store.digest(missing)
    with pytest.raises(FileNotFoundError):
        store.place_legal_hold(missing)
    with pytest.raises(StoreError, match="not a SHA-256"):
        store.key("../etc")


# ------------------------------------------------------------------------------------ the lock
@pytest.mark.parametrize("mode", ["compliance", "governance"])
def test_a_locked_original_cannot_be_deleted(
    make_store: StoreMaker, photo: Path, mode: LockMode, caplog: pytest.LogCaptureFixture
) -> None:
    store = make_store(mode)
    stored = put(store, photo)
    with caplog.at_level(logging.WARNING), pytest.raises(ObjectLockedError) as refused:
        store.delete(stored.sha256)
    assert isinstance(refused.value, ForbiddenError)
    assert refused.value.key == stored.key
    assert stored.key in str(refused.value) and f"Object Lock {mode.upper()} until" in str(refused.value)
    assert any("refused" in record.getMessage() and stored.key in record.getMessage() for record in caplog.records)
    # Nor through boto3 itself, version by version.
    (version,) = versions(store, stored.key)
    with pytest.raises(ClientError, match="AccessDenied"):
        store.client.delete_object(Bucket=store.bucket, Key=stored.key, VersionId=version["VersionId"])
    assert store.digest(stored.sha256) == (stored.sha256, stored.size)


def test_a_legal_hold_keeps_an_object_until_it_is_released(make_store: StoreMaker, photo: Path) -> None:
    store = make_store("off")  # no retention: only the hold keeps it
    stored = put(store, photo)
    assert store.retention(stored.sha256) is None
    assert not store.legal_hold(stored.sha256)
    store.place_legal_hold(stored.sha256)
    assert store.legal_hold(stored.sha256)
    with pytest.raises(ObjectLockedError, match="legal hold"):
        store.delete(stored.sha256)
    assert store.exists(stored.sha256)
    store.release_legal_hold(stored.sha256)
    assert not store.legal_hold(stored.sha256)
    assert store.delete(stored.sha256) == 1
    assert not store.exists(stored.sha256)
    assert versions(store, stored.key) == []


def test_a_bucket_without_object_lock_is_refused(make_store: StoreMaker, photo: Path) -> None:
    store = make_store()
    store.client.create_bucket(Bucket=store.bucket)
    with pytest.raises(StoreError, match="has no Object Lock"):
        put(store, photo)


# ------------------------------------------------------------------------------------- failures
def test_a_connection_cut_once_is_retried_and_the_put_succeeds(
    store: S3Store, clip: Path, counted: dict[str, int]
) -> None:
    cuts: list[int] = []

    def cut_once(request: Any, **_: Any) -> None:
        if not cuts:
            cuts.append(1)
            raise ConnectionClosedError(endpoint_url=request.url)

    store.client.meta.events.register_first("before-send.s3.UploadPart", cut_once)
    stored = put(store, clip)
    assert cuts == [1]
    assert counted["UploadPart"] == 3  # two parts, the first sent twice
    assert store.digest(stored.sha256) == (sha256_of(clip), clip.stat().st_size)


def test_a_store_that_stays_unreachable_fails_as_a_system_fault_and_files_nothing(
    store: S3Store, photo: Path, counted: dict[str, int]
) -> None:
    store.ensure_bucket()

    def refuse(request: Any, **_: Any) -> None:
        raise ConnectionClosedError(endpoint_url=request.url)

    store.client.meta.events.register_first("before-send.s3.CompleteMultipartUpload", refuse)
    with pytest.raises(StoreError, match="failed 6 times while completing the upload"):
        put(store, photo)
    assert counted["CompleteMultipartUpload"] == 6
    store.client.meta.events.unregister("before-send.s3.CompleteMultipartUpload", refuse)
    assert not store.exists(sha256_of(photo))
    assert unfinished_uploads(store) == []


def test_a_put_survives_the_server_being_killed_and_restarted(
    s3_server: SeaweedServer, make_store: StoreMaker, clip: Path
) -> None:
    store = make_store(attempts=10, backoff=0.5, backoff_max=4.0, connect_timeout=2.0, read_timeout=5.0)
    store.ensure_bucket()
    restarted: list[threading.Thread] = []

    def kill_before_part_two(params: dict[str, Any], **_: Any) -> None:
        if params.get("PartNumber") == 2 and not restarted:
            s3_server.stop(kill=True)
            restarted.append(threading.Thread(target=s3_server.start))
            restarted[0].start()

    store.client.meta.events.register("before-parameter-build.s3.UploadPart", kill_before_part_two)
    stored = put(store, clip)
    restarted[0].join()
    assert store.digest(stored.sha256) == (sha256_of(clip), clip.stat().st_size)
    assert store.retention(stored.sha256) is not None


def test_two_writers_of_the_same_bytes_file_one_object(make_store: StoreMaker, clip: Path) -> None:
    first, second = make_store(), make_store()
    results: list[Any] = []

    def other_writer_finishes_first(**_: Any) -> None:
        if not results:
            results.append(put(second, clip))

    first.client.meta.events.register("before-parameter-build.s3.CompleteMultipartUpload", other_writer_finishes_first)
    stored = put(first, clip)
    (other,) = results
    assert not other.existed
    assert stored.existed and not stored.repaired and stored.sha256 == other.sha256
    assert len(versions(first, stored.key)) == 1
    assert unfinished_uploads(first) == []


def test_a_completion_whose_answer_is_lost_is_not_filed_twice(
    store: S3Store, clip: Path, counted: dict[str, int]
) -> None:
    lost: list[int] = []

    def lose_the_answer(**_: Any) -> None:
        if not lost:
            lost.append(1)
            raise ConnectionClosedError(endpoint_url=store.endpoint)

    store.client.meta.events.register("after-call.s3.CompleteMultipartUpload", lose_the_answer)
    stored = put(store, clip)
    assert lost == [1] and counted["CompleteMultipartUpload"] == 2
    assert store.digest(stored.sha256) == (sha256_of(clip), clip.stat().st_size)
    assert len(versions(store, stored.key)) == 1
    assert store.retention(stored.sha256) is not None


def test_remove_partials_aborts_stale_uploads_only(store: S3Store) -> None:
    store.ensure_bucket()
    store.client.create_multipart_upload(Bucket=store.bucket, Key="sha256/00/" + "0" * 64)
    assert store.remove_partials(older_than=3600) == 0
    assert len(unfinished_uploads(store)) == 1
    assert store.remove_partials(older_than=0) == 1
    assert unfinished_uploads(store) == []
    assert store.adopt(0) is None


# ------------------------------------------------------------------------------------- settings
def test_the_secret_key_is_never_shown(s3_server: SeaweedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "s3cret-" + uuid.uuid4().hex
    monkeypatch.setenv("EVIDENCE_STORE", "S3")
    monkeypatch.setenv("EVIDENCE_S3_ENDPOINT", s3_server.endpoint)
    monkeypatch.setenv("EVIDENCE_S3_BUCKET", "evidence-secrets")
    monkeypatch.setenv("EVIDENCE_S3_ACCESS_KEY", s3_server.access_key)
    monkeypatch.setenv("EVIDENCE_S3_SECRET_KEY", secret)
    monkeypatch.setenv("EVIDENCE_S3_LOCK_MODE", "Governance")
    monkeypatch.setenv("EVIDENCE_S3_RETENTION_DAYS", "30")
    settings = load_settings()
    assert (settings.store, settings.s3_lock_mode, settings.s3_retention_days) == ("s3", "governance", 30)
    assert settings.s3_secret_key.get_secret_value() == secret
    store = S3Store.from_settings(settings)
    shown = [repr(settings), str(settings), settings.model_dump_json(), repr(store), str(store)]
    assert all(secret not in text for text in shown)
    # A wrong secret is refused by the server, and the refusal does not quote it either.
    with pytest.raises(StoreError) as refused:
        store.ensure_bucket()
    assert secret not in str(refused.value)
    assert "evidence-secrets" in str(refused.value)


COMPLETE = {"store": "s3", "s3_bucket": "evidence", "s3_access_key": "a", "s3_secret_key": "b"}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"store": "s3"}, "needs EVIDENCE_S3_BUCKET, EVIDENCE_S3_ACCESS_KEY, EVIDENCE_S3_SECRET_KEY"),
        ({"store": "local+s3", "s3_bucket": "ab"}, "is not an S3 bucket name"),
        ({"s3_endpoint": "127.0.0.1:9000"}, "is not an http:// or https:// URL"),
        ({"s3_lock_mode": "forever"}, "'compliance', 'governance' or 'off'"),
        ({"store": "cloud"}, "'local', 'local\\+s3' or 's3'"),
        ({**COMPLETE, "s3_retention_days": 0}, "needs s3_retention_days of at least 1"),
    ],
)
def test_s3_settings_are_checked(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**values)


def test_the_local_store_stays_the_default() -> None:
    settings = load_settings()
    assert settings.store == "local"
    assert settings.s3_lock_mode == "compliance"
    assert Settings(**COMPLETE).store == "s3"  # complete S3 settings pass
