"""A worker's scratch folder of originals fetched from S3 (a real SeaweedFS): the bytes are the
object's, fetched once, checked against their SHA-256, kept under the folder's cap by letting go of
the least recently used files no work holds, never one in use."""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import uuid
from pathlib import Path

import pytest

from pipeline.errors import StoreError, SystemFault
from pipeline.storage.local import LocalStore
from pipeline.storage.s3 import MIN_PART_SIZE, S3Store
from pipeline.storage.scratch import Scratch, ScratchFullError
from tests.conftest import ffmpeg
from tests.s3server import SeaweedServer


@pytest.fixture
def store(s3_server: SeaweedServer) -> S3Store:
    return S3Store(
        bucket=f"scratch-{uuid.uuid4().hex[:12]}",
        access_key=s3_server.access_key,
        secret_key=s3_server.secret_key,
        endpoint=s3_server.endpoint,
        lock_mode="off",
        part_size=MIN_PART_SIZE,
        backoff=0.05,
    )


def clip(folder: Path, tone: int) -> Path:
    """A small real recording, different for every tone."""
    path = folder / f"clip-{tone}.mp4"
    ffmpeg(
        "-f", "lavfi", "-i", "testsrc=size=160x120:rate=10:duration=1",
        "-f", "lavfi", "-i", f"sine=frequency={tone}:duration=1",
        "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-shortest", str(path),
    )  # fmt: skip
    return path


def put(store: S3Store, path: Path) -> tuple[str, int]:
    fd = os.open(path, os.O_RDONLY)
    try:
        stored = store.put(fd)
    finally:
        os.close(fd)
    return stored.sha256, stored.size


def count_gets(store: S3Store) -> list[str]:
    """Every GetObject the store's client sends from now on."""
    seen: list[str] = []
    store.client.meta.events.register("before-call.s3.GetObject", lambda **kw: seen.append("get"))
    return seen


class TestFetching:
    def test_the_object_is_fetched_once_and_is_its_own_bytes(self, store: S3Store, tmp_path: Path) -> None:
        source = clip(tmp_path, 440)
        sha, size = put(store, source)
        gets = count_gets(store)
        scratch = Scratch(tmp_path / "scratch", 10 * size, store)
        with scratch.local(sha, size) as path:
            assert path.read_bytes() == source.read_bytes()
            assert hashlib.sha256(path.read_bytes()).hexdigest() == sha
            assert not os.access(path, os.W_OK) or os.getuid() == 0
            assert path.stat().st_mode & 0o777 == 0o440
        with scratch.local(sha, size) as again:
            assert again == path
        assert len(gets) == 1
        assert scratch.used() == size

    def test_a_local_store_s_own_file_is_used_where_it_lies(self, tmp_path: Path) -> None:
        local = LocalStore(tmp_path / "store")
        source = clip(tmp_path, 550)
        fd = os.open(source, os.O_RDONLY)
        try:
            stored = local.put(fd)
        finally:
            os.close(fd)
        scratch = Scratch(tmp_path / "scratch", 1, local)
        with scratch.local(stored.sha256, stored.size) as path:
            assert path == local.path(stored.sha256)
        assert not (tmp_path / "scratch").exists()

    def test_a_copy_that_differs_is_not_kept(self, store: S3Store, tmp_path: Path) -> None:
        """The server hands back other bytes under the digest's key: a store fault naming the
        object, and nothing in the folder that could be taken for the original."""
        source = clip(tmp_path, 660)
        sha, size = put(store, source)
        store.client.put_object(Bucket=store.bucket, Key=store.key(sha), Body=b"not the recording")
        scratch = Scratch(tmp_path / "scratch", 10 * size, store)
        with pytest.raises(StoreError, match=store.key(sha)), scratch.local(sha, size):
            pass
        assert scratch.used() == 0
        assert not any(p.is_file() for p in (tmp_path / "scratch").rglob("*") if ".locks" not in p.parts)

    def test_a_missing_object_is_a_store_fault_naming_it(self, store: S3Store, tmp_path: Path) -> None:
        store.ensure_bucket()
        scratch = Scratch(tmp_path / "scratch", 1 << 20, store)
        sha = "ab" * 32
        with pytest.raises(SystemFault, match=store.key(sha)), scratch.local(sha, 10):
            pass


class TestCap:
    def test_the_least_recently_used_file_no_work_holds_goes_first(self, store: S3Store, tmp_path: Path) -> None:
        objects = [put(store, clip(tmp_path, tone)) for tone in (300, 400, 500)]
        largest = max(size for _, size in objects)
        scratch = Scratch(tmp_path / "scratch", 2 * largest + 1, store)
        (a, a_size), (b, b_size), (c, c_size) = objects
        with scratch.local(a, a_size):
            pass
        with scratch.local(b, b_size):
            pass
        with scratch.local(a, a_size):  # a is now the more recently used
            os.utime(scratch.path(b), (1, 1))  # and b was used long ago
        with scratch.local(c, c_size):
            assert scratch.path(a).exists() and not scratch.path(b).exists()
        assert scratch.used() <= scratch.cap

    def test_a_file_in_use_is_never_removed(self, store: S3Store, tmp_path: Path) -> None:
        (a, a_size), (b, b_size) = (put(store, clip(tmp_path, tone)) for tone in (700, 800))
        scratch = Scratch(tmp_path / "scratch", max(a_size, b_size) + 1, store)
        with scratch.local(a, a_size) as held:
            with pytest.raises(ScratchFullError, match="in use"), scratch.local(b, b_size):
                pass
            assert held.read_bytes()  # still there, whole
            assert hashlib.sha256(held.read_bytes()).hexdigest() == a
        with scratch.local(b, b_size):  # once let go, it makes room
            assert not scratch.path(a).exists()

    def test_an_object_larger_than_the_cap_is_refused_up_front(self, store: S3Store, tmp_path: Path) -> None:
        sha, size = put(store, clip(tmp_path, 900))
        gets = count_gets(store)
        scratch = Scratch(tmp_path / "scratch", size - 1, store)
        with pytest.raises(ScratchFullError, match="larger than"), scratch.local(sha, size):
            pass
        assert gets == []


def _fetch_in_child(args: tuple[str, dict[str, object], str, int, str]) -> str:
    root, options, sha, size, out = args
    store = S3Store(**options)  # type: ignore[arg-type]
    gets = count_gets(store)
    with Scratch(Path(root), 1 << 30, store).local(sha, size) as path:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
    Path(out).write_text(f"{digest} {len(gets)}")
    return digest


def test_processes_sharing_a_folder_fetch_an_object_once(
    store: S3Store, s3_server: SeaweedServer, tmp_path: Path
) -> None:
    """Four workers asking for the same original at once: every one reads the right bytes, and it
    is fetched from the store once."""
    sha, size = put(store, clip(tmp_path, 1000))
    options = {
        "bucket": store.bucket,
        "access_key": s3_server.access_key,
        "secret_key": s3_server.secret_key,
        "endpoint": s3_server.endpoint,
        "lock_mode": "off",
    }
    outs = [str(tmp_path / f"out-{n}") for n in range(4)]
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        digests = pool.map(_fetch_in_child, [(str(tmp_path / "scratch"), options, sha, size, out) for out in outs])
    assert digests == [sha] * 4
    fetches = sum(int(Path(out).read_text().split()[1]) for out in outs)
    assert fetches == 1
