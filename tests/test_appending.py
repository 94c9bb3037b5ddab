"""Appending upload pieces: around the page cache where the file system allows it, through it
elsewhere, and the same bytes in the file either way, wherever a piece begins and ends."""

from __future__ import annotations

import errno
import os
import random
from pathlib import Path

import pytest

from pipeline.ingest import appending
from pipeline.ingest.appending import ALIGN, STAGE, CachedAppender, DirectAppender, appender


def _direct_works(folder: Path) -> bool:
    probe = folder / "direct-probe"
    probe.touch()
    try:
        out = appender(os.open(probe, os.O_WRONLY), probe, 0)
        return isinstance(out, DirectAppender)
    finally:
        probe.unlink()


def _send(path: Path, pieces: list[list[bytes]]) -> type:
    """Append ``pieces`` (each a list of buffers) as the uploads do: one appender per piece, which
    is finished and flushed before the next begins."""
    kinds = set()
    position = 0
    for buffers in pieces:
        fd = os.open(path, os.O_WRONLY)
        out = appender(fd, path, position)
        kinds.add(type(out))
        try:
            out.write(buffers)
            out.finish()
            os.fsync(fd)
            position = out.position
        finally:
            out.close()
            os.close(fd)
    assert len(kinds) == 1
    return kinds.pop()


def _pieces(data: bytes, seed: int) -> list[list[bytes]]:
    """``data`` cut into pieces of odd sizes (some inside one block, some spanning many stages),
    each cut again into buffers of odd sizes, the way a network delivers them."""
    rng = random.Random(seed)
    pieces, at = [], 0
    while at < len(data):
        size = rng.choice([1, 100, ALIGN - 1, ALIGN, ALIGN + 7, STAGE, STAGE + 12_345, 3 * STAGE - 5])
        piece, at = data[at : at + size], at + size
        buffers, cut = [], 0
        while cut < len(piece):
            step = rng.choice([1, 511, 65_536, 262_144, 1_000_003])
            buffers.append(piece[cut : cut + step])
            cut += step
        pieces.append(buffers)
    return pieces


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_file_holds_every_byte_in_order_wherever_pieces_begin_and_end(tmp_path: Path, seed: int) -> None:
    data = random.Random(seed).randbytes(9 * STAGE + 3_001)
    path = tmp_path / "upload.part"
    path.touch()
    kind = _send(path, _pieces(data, seed))
    assert path.read_bytes() == data
    if _direct_works(tmp_path):
        assert kind is DirectAppender


def test_a_file_system_without_direct_writes_is_written_through_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = os.open

    def no_direct(path: str, flags: int, *args: int) -> int:
        if flags & getattr(os, "O_DIRECT", 0):
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_open(path, flags, *args)

    monkeypatch.setattr(appending.os, "open", no_direct)
    path = tmp_path / "upload.part"
    path.touch()
    data = random.Random(7).randbytes(2 * STAGE + 5)
    assert _send(path, _pieces(data, 7)) is CachedAppender
    assert path.read_bytes() == data


def test_a_direct_write_refused_part_way_goes_on_through_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not _direct_works(tmp_path):
        pytest.skip("this file system takes no direct writes")
    calls = {"direct": 0}
    real_pwrite = os.pwrite

    def refusing(fd: int, data: memoryview, offset: int) -> int:
        calls["direct"] += 1
        if calls["direct"] > 2:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real_pwrite(fd, data, offset)

    monkeypatch.setattr(appending.os, "pwrite", refusing)
    data = random.Random(11).randbytes(6 * STAGE + 77)
    path = tmp_path / "upload.part"
    path.touch()
    _send(path, _pieces(data, 11))
    assert calls["direct"] > 3  # refused from the third on: each piece tried once, then the cache
    assert path.read_bytes() == data


def test_a_full_disk_is_reported_not_written_around(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not _direct_works(tmp_path):
        pytest.skip("this file system takes no direct writes")

    def full(fd: int, data: memoryview, offset: int) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(appending.os, "pwrite", full)
    path = tmp_path / "upload.part"
    path.touch()
    with pytest.raises(OSError) as raised:
        _send(path, [[bytes(STAGE)]])
    assert raised.value.errno == errno.ENOSPC
    assert path.stat().st_size == 0
