"""Uploads read back while they arrive: the digests handed to the store at completion are those of
the file as it lies on disk, and only when every piece was followed."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from pipeline.ingest.readback import ReadBack


def grow(path: Path, data: bytes) -> None:
    with path.open("ab") as handle:
        handle.write(data)


def test_pieces_followed_in_order_give_the_files_digests(tmp_path: Path) -> None:
    """SHA-256 and the extra digest of the whole file, its first bytes, read from the file."""
    path = tmp_path / "u.part"
    data = os.urandom(3 * 1024 * 1024 + 17)
    reader = ReadBack(("sm3",))
    offset = 0
    for size in (5, 1 << 20, 2 << 20, 12):
        grow(path, data[offset : offset + size])
        reader.follow("u", path, offset, offset + size)
        offset += size
    found = reader.digests("u", len(data))
    assert found is not None
    assert found.digests == {"sha256": hashlib.sha256(data).hexdigest(), "sm3": hashlib.new("sm3", data).hexdigest()}
    assert (found.size, found.head) == (len(data), data[:64])


def test_what_is_read_is_the_file_not_what_was_sent(tmp_path: Path) -> None:
    """Bytes that reached the file differently from what the piece carried show in the digest."""
    path = tmp_path / "u.part"
    path.write_bytes(b"as it lies on disk")
    reader = ReadBack()
    reader.follow("u", path, 0, path.stat().st_size)
    found = reader.digests("u", path.stat().st_size)
    assert found is not None and found.digests["sha256"] == hashlib.sha256(b"as it lies on disk").hexdigest()


def test_an_upload_not_followed_from_its_start_has_no_digests(tmp_path: Path) -> None:
    """Pieces taken by another process (or before a restart): the store reads the file itself."""
    path = tmp_path / "u.part"
    path.write_bytes(b"x" * 100)
    reader = ReadBack()
    reader.follow("u", path, 50, 100)
    assert reader.digests("u", 100) is None


def test_a_missed_piece_or_a_short_file_gives_no_digests(tmp_path: Path) -> None:
    path = tmp_path / "u.part"
    path.write_bytes(b"y" * 100)
    reader = ReadBack()
    reader.follow("u", path, 0, 40)
    reader.follow("u", path, 60, 100)  # 40..60 never followed
    assert reader.digests("u", 100) is None
    reader.follow("v", path, 0, 150)  # the file holds fewer bytes than recorded
    assert reader.digests("v", 150) is None


def test_a_forgotten_upload_has_no_digests(tmp_path: Path) -> None:
    path = tmp_path / "u.part"
    path.write_bytes(b"z" * 10)
    reader = ReadBack()
    reader.follow("u", path, 0, 10)
    reader.forget("u")
    assert reader.digests("u", 10) is None
