"""The content-addressed store: one read pass, verified, durable, read-only."""

from __future__ import annotations

import hashlib
import os
import stat
import tempfile
import time
from pathlib import Path

import pytest

from pipeline.errors import DigestMismatch, StoreError
from pipeline.storage import LocalStore
from pipeline.storage.transfer import PIPELINE_THRESHOLD, hashing_copy


def put_file(store: LocalStore, path: Path, **kwargs: object):
    return _with_fd(store.put, path, **kwargs)


def _with_fd(call, path: Path, **kwargs: object):
    """``call`` (a store's put or adopt) on the file at ``path``, opened for reading."""
    fd = os.open(path, os.O_RDONLY)
    try:
        return call(fd, **kwargs)
    finally:
        os.close(fd)


class TestLocalStore:
    def test_object_is_filed_under_its_sha256_and_read_only(self, tmp_path: Path, media) -> None:
        """The stored copy has the source's bytes, sits under its digest and cannot be written."""
        clip = media.variant("clip.mp4", tmp_path / "clip.mp4")
        store = LocalStore(tmp_path / "store")
        stored = put_file(store, clip)
        expected = hashlib.sha256(clip.read_bytes()).hexdigest()
        assert stored.sha256 == expected
        path = store.path(expected)
        assert path == tmp_path / "store" / "sha256" / expected[:2] / expected
        assert path.read_bytes() == clip.read_bytes()
        assert not path.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
        assert list((tmp_path / "store" / "tmp").iterdir()) == []

    def test_extra_digest_computed_in_the_same_pass(self, tmp_path: Path, media) -> None:
        """SM3 (the national-standard hash) comes out of the same read as SHA-256."""
        clip = media.variant("clip.mp4", tmp_path / "clip.mp4")
        stored = put_file(LocalStore(tmp_path / "store"), clip, algorithms=("sm3",))
        assert stored.digests == {"sm3": hashlib.new("sm3", clip.read_bytes()).hexdigest()}

    def test_large_file_goes_through_the_threaded_copy(self, tmp_path: Path) -> None:
        """Files above the threshold hash on their own threads and still match hashlib."""
        big = tmp_path / "big.bin"
        data = os.urandom(PIPELINE_THRESHOLD + 12345)
        big.write_bytes(data)
        stored = put_file(LocalStore(tmp_path / "store", chunk_size=1 << 16), big, algorithms=("sm3",))
        assert stored.sha256 == hashlib.sha256(data).hexdigest()
        assert stored.digests["sm3"] == hashlib.new("sm3", data).hexdigest()
        assert stored.size == len(data)

    def test_second_copy_of_same_bytes_reports_existing(self, tmp_path: Path, media) -> None:
        clip = media.variant("clip.mp4", tmp_path / "clip.mp4")
        store = LocalStore(tmp_path / "store")
        first = put_file(store, clip)
        second = put_file(store, clip)
        assert (first.existed, second.existed) == (False, True)
        assert list(store.objects()) == [first.sha256]

    def test_truncated_object_is_replaced_by_a_verified_copy(self, tmp_path: Path, media) -> None:
        """A damaged object under a digest is repaired when the same bytes arrive again."""
        clip = media.variant("clip.mp4", tmp_path / "clip.mp4")
        store = LocalStore(tmp_path / "store")
        stored = put_file(store, clip)
        path = store.path(stored.sha256)
        path.chmod(0o600)
        path.write_bytes(clip.read_bytes()[:100])
        again = put_file(store, clip)
        assert again.repaired
        assert store.digest(stored.sha256) == (stored.sha256, clip.stat().st_size)

    def test_readback_mismatch_is_refused(self, tmp_path: Path) -> None:
        """If what reads back from the destination differs from what was hashed, the copy fails."""
        source = tmp_path / "src.bin"
        source.write_bytes(os.urandom(5000))
        liar = tmp_path / "liar.bin"
        liar.write_bytes(b"\0" * 5000)  # the read-back descriptor sees other bytes
        src, dst, back = (
            os.open(source, os.O_RDONLY),
            os.open(tmp_path / "dst.bin", os.O_WRONLY | os.O_CREAT),
            os.open(liar, os.O_RDONLY),
        )
        with pytest.raises(StoreError, match="read-back of the stored copy differs"):
            hashing_copy(src, dst, back)

    @pytest.mark.parametrize("unnamed", [True, False], ids=["unnamed-temporary", "named-temporary"])
    def test_failed_copy_leaves_nothing_behind(self, tmp_path: Path, monkeypatch, unnamed: bool) -> None:
        """A copy that fails half-way is neither filed nor left in tmp/, however its temporary was made."""
        source = tmp_path / "src.bin"
        source.write_bytes(os.urandom(5000))
        store = LocalStore(tmp_path / "store")
        store._unnamed = store._unnamed and unnamed

        def fail(*_args: object, **_kwargs: object) -> None:
            raise StoreError("read-back of the stored copy differs from the source at byte offset 0")

        monkeypatch.setattr("pipeline.storage.local.hashing_copy", fail)
        with pytest.raises(StoreError, match="read-back"):
            put_file(store, source)
        assert list(store.tmp_dir.iterdir()) == []
        assert list(store.objects()) == []

    def test_named_temporaries_where_the_file_system_has_no_unnamed_ones(self, tmp_path: Path, media) -> None:
        """Without O_TMPFILE the copy is written under tmp/ and renamed: filed, repaired and
        recognised as existing just the same."""
        clip = media.variant("clip.mp4", tmp_path / "clip.mp4")
        store = LocalStore(tmp_path / "store")
        store._unnamed = False
        first = put_file(store, clip)
        assert store.path(first.sha256).read_bytes() == clip.read_bytes()
        assert put_file(store, clip).existed
        path = store.path(first.sha256)
        path.chmod(0o600)
        path.write_bytes(b"truncated")
        assert put_file(store, clip).repaired
        assert store.digest(first.sha256) == (first.sha256, clip.stat().st_size)
        assert list(store.tmp_dir.iterdir()) == []

    def test_leftover_partials_are_removed(self, tmp_path: Path) -> None:
        store = LocalStore(tmp_path / "store")
        partial = store.tmp_dir / "dead-writer.part"
        partial.write_bytes(b"half")
        os.utime(partial, (0, 0))
        assert store.remove_partials(older_than=60) == 1
        assert not partial.exists()

    def test_a_dead_transcodes_output_is_removed_only_once_long_untouched(self, tmp_path: Path) -> None:
        """A derivative a killed worker left in tmp/ goes after a day; one touched lately stays
        (a long transcode or its verification may still be using it)."""
        store = LocalStore(tmp_path / "store")
        dead = store.tmp_dir / ".01ABC.mp4.partial"
        alive = store.tmp_dir / "01ABD.mp4"
        dead.write_bytes(b"old")
        alive.write_bytes(b"new")
        os.utime(dead, (0, 0))
        os.utime(alive, (time.time() - 3600, time.time() - 3600))
        assert store.remove_partials(older_than=60) == 1
        assert not dead.exists() and alive.exists()

    def test_bad_digest_is_refused(self, tmp_path: Path) -> None:
        with pytest.raises(StoreError, match="not a SHA-256"):
            LocalStore(tmp_path / "store").path("../../etc/passwd")


def adopt_file(store: LocalStore, path: Path, **kwargs: object):
    return _with_fd(store.adopt, path, **kwargs)


class TestAdoption:
    """The pipeline's own files (uploads received in full) are filed without a copy."""

    def test_the_file_itself_is_filed_read_only_under_its_digest(self, tmp_path: Path) -> None:
        """One inode, now also named by its SHA-256 (computed by reading it), read-only; with the
        second digest from the same read."""
        data = os.urandom(PIPELINE_THRESHOLD + 4321)  # large enough for the threaded digests
        own = tmp_path / "uploads" / "one.part"
        own.parent.mkdir()
        own.write_bytes(data)
        store = LocalStore(tmp_path / "store", chunk_size=1 << 16)
        stored = adopt_file(store, own, algorithms=("sm3",))
        assert stored is not None and stored.sha256 == hashlib.sha256(data).hexdigest()
        assert stored.digests == {"sm3": hashlib.new("sm3", data).hexdigest()}
        assert (stored.size, stored.head, stored.existed) == (len(data), data[:64], False)
        path = store.path(stored.sha256)
        assert path.stat().st_ino == own.stat().st_ino and path.stat().st_mode & 0o777 == 0o440
        assert list((tmp_path / "store" / "tmp").iterdir()) == []

    def test_a_file_that_is_not_the_declared_one_is_not_filed(self, tmp_path: Path) -> None:
        """DigestMismatch names both digests; nothing is filed and the file is left as it was."""
        own = tmp_path / "one.part"
        own.write_bytes(b"changed on the way" * 100)
        store = LocalStore(tmp_path / "store")
        with pytest.raises(DigestMismatch, match="not the declared " + "a" * 64):
            adopt_file(store, own, expect_sha256="a" * 64)
        with pytest.raises(DigestMismatch):
            put_file(store, own, expect_sha256="a" * 64)
        assert list(store.objects()) == [] and list((tmp_path / "store" / "tmp").iterdir()) == []
        assert own.stat().st_mode & 0o200 and own.stat().st_nlink == 1

    def test_the_declared_digest_lets_it_in(self, tmp_path: Path) -> None:
        data = b"as sent" * 1000
        own = tmp_path / "one.part"
        own.write_bytes(data)
        stored = adopt_file(LocalStore(tmp_path / "store"), own, expect_sha256=hashlib.sha256(data).hexdigest())
        assert stored is not None and stored.sha256 == hashlib.sha256(data).hexdigest()

    def test_bytes_kept_already_are_a_duplicate_and_keep_their_object(self, tmp_path: Path) -> None:
        data = os.urandom(5000)
        (tmp_path / "first").write_bytes(data)
        (tmp_path / "second.part").write_bytes(data)
        store = LocalStore(tmp_path / "store")
        first = put_file(store, tmp_path / "first")
        second = adopt_file(store, tmp_path / "second.part")
        assert second is not None and second.existed and second.sha256 == first.sha256
        assert store.path(first.sha256).stat().st_ino != (tmp_path / "second.part").stat().st_ino
        assert list((tmp_path / "store" / "tmp").iterdir()) == []

    def test_a_file_on_another_file_system_is_left_to_be_copied(self, tmp_path: Path) -> None:
        """A link cannot cross file systems: None, nothing filed, and put copies it instead."""
        shm = Path("/dev/shm")
        if not shm.is_dir() or os.stat(shm).st_dev == os.stat(tmp_path).st_dev:
            pytest.skip("needs a second file system (/dev/shm)")
        data = os.urandom(3000)
        fd, name = tempfile.mkstemp(dir=shm)
        try:
            os.write(fd, data)
            store = LocalStore(tmp_path / "store")
            assert adopt_file(store, Path(name)) is None
            assert list(store.objects()) == [] and list((tmp_path / "store" / "tmp").iterdir()) == []
            assert put_file(store, Path(name)).sha256 == hashlib.sha256(data).hexdigest()
        finally:
            os.close(fd)
            os.unlink(name)
