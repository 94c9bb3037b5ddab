"""The content-addressed store: one read pass, verified, durable, read-only."""

from __future__ import annotations

import hashlib
import os
import stat
import time
from pathlib import Path

import pytest

from pipeline.errors import StoreError
from pipeline.storage import LocalStore
from pipeline.storage.transfer import PIPELINE_THRESHOLD, hashing_copy


def put_file(store: LocalStore, path: Path, **kwargs: object):
    fd = os.open(path, os.O_RDONLY)
    try:
        return store.put(fd, **kwargs)  # type: ignore[arg-type]
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
