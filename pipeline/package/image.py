"""ISO 9660 + Joliet + Rock Ridge + UDF images (pycdlib), and reading them back.

Every file gets a readable name in Joliet, Rock Ridge and UDF and a plain ISO 9660 name; files over
4 GiB are written as multi-extent files (ISO 9660 level 3) and as UDF extents. The image is written
under a temporary name, flushed to disk, and only then renamed into place. :func:`read_back` hashes
the image and every file in it in one sequential pass, reading from the disk rather than the page
cache where the system allows.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from queue import Full, Queue
from typing import BinaryIO, cast

import pycdlib

from pipeline.package.contents import DiscFile
from pipeline.package.errors import PackageError
from pipeline.package.names import IsoNames
from pipeline.storage.local import fsync_dir

BLOCK = 1 << 20
READ_CHUNK = 8 << 20
APPLICATION = "EVIDENCE PIPELINE"
FILE_MODE = 0o100444
DIRECTORY_MODE = 0o040555

Progress = Callable[[int, int], None]
_ZEROS = bytes(BLOCK)


def pycdlib_version() -> str:
    from importlib.metadata import version

    return f"pycdlib {version('pycdlib')}"


class _SparseWriter(io.RawIOBase):
    """Writes the image; whole blocks of zeros become holes, so a mostly empty image (a test's sparse
    file) costs no disk. Everything else is written as given."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.position = 0
        self.end = 0

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        length = len(data)
        if length >= 65536 and data == (_ZEROS if length == BLOCK else bytes(length)):
            self.position += length
        else:
            view = memoryview(data)
            while view:
                written = os.pwrite(self.fd, view, self.position)
                self.position += written
                view = view[written:]
        self.end = max(self.end, self.position)
        return length

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_SET:
            self.position = offset
        elif whence == os.SEEK_CUR:
            self.position += offset
        else:
            self.position = self.end + offset
        return self.position

    def tell(self) -> int:
        return self.position

    def finish(self) -> int:
        os.ftruncate(self.fd, self.end)
        os.fsync(self.fd)
        return self.end


def _iso_path(parts: list[str]) -> str:
    return "/" + "/".join(parts)


def write_image(
    path: Path,
    files: Sequence[DiscFile],
    *,
    label: str,
    title: str | None = None,
    disc_index: int = 1,
    disc_count: int = 1,
    publisher: str = "",
    preparer: str = "",
    progress: Progress | None = None,
) -> int:
    """Write ``files`` as an ISO image at ``path`` (which must not exist) and return its size.

    ``label`` (at most 16 of A-Z, 0-9 and _) names the volume in ISO 9660; ``title`` (any text, such
    as a Chinese case number) replaces it where the format allows: UDF, which Windows, macOS and
    Linux show, and Joliet."""
    if path.exists():
        raise PackageError(f"{path}: already exists; packages never overwrite an image")
    iso = pycdlib.PyCdlib()
    iso.new(
        interchange_level=3,
        joliet=3,
        rock_ridge="1.09",
        udf="2.60",
        vol_ident=label,
        vol_set_ident=label,
        set_size=disc_count,
        seqnum=disc_index,
        pub_ident_str=publisher.encode("ascii", "replace").decode("ascii")[:128],
        preparer_ident_str=preparer.encode("ascii", "replace").decode("ascii")[:128],
        app_ident_str=APPLICATION,
    )
    if title:
        _set_title(iso, title)
    iso_dirs: dict[str, list[str]] = {"": []}
    names: dict[str, IsoNames] = {"": IsoNames()}

    def directory(folder: PurePosixPath) -> list[str]:
        key = str(folder) if str(folder) != "." else ""
        if key not in iso_dirs:
            parent = directory(folder.parent)
            parent_key = str(folder.parent) if str(folder.parent) != "." else ""
            iso_name = names[parent_key].claim(folder.name, directory=True)
            iso_dirs[key] = [*parent, iso_name]
            names[key] = IsoNames()
            iso.add_directory(
                iso_path=_iso_path(iso_dirs[key]),
                rr_name=folder.name,
                joliet_path="/" + key,
                udf_path="/" + key,
                file_mode=DIRECTORY_MODE,
            )
        return iso_dirs[key]

    for entry in sorted(files, key=lambda f: f.disc_path):
        disc_path = PurePosixPath(entry.disc_path)
        if disc_path.is_absolute() or ".." in disc_path.parts:
            raise PackageError(f"{entry.disc_path}: not a safe path on a disc")
        parent_key = str(disc_path.parent) if str(disc_path.parent) != "." else ""
        parts = [*directory(disc_path.parent), names[parent_key].claim(disc_path.name)]
        iso_path, joliet_path = _iso_path(parts) + ";1", "/" + entry.disc_path
        if entry.source is not None:
            # By name: pycdlib opens each file only while it copies it, so a case of thousands of
            # items never holds thousands of descriptors.
            size = os.stat(entry.source).st_size
            if size != entry.size:
                raise PackageError(f"{entry.source}: {size} bytes, the catalog says {entry.size}")
            iso.add_file(
                str(entry.source),
                iso_path=iso_path,
                rr_name=disc_path.name,
                joliet_path=joliet_path,
                udf_path=joliet_path,
                file_mode=FILE_MODE,
            )
        elif entry.content is not None:
            iso.add_fp(
                io.BytesIO(entry.content),
                len(entry.content),
                iso_path=iso_path,
                rr_name=disc_path.name,
                joliet_path=joliet_path,
                udf_path=joliet_path,
                file_mode=FILE_MODE,
            )
        else:
            raise PackageError(f"{entry.disc_path}: no source and no content")

    partial = path.with_name(path.name + ".part")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
    try:
        os.fchmod(fd, 0o640)  # whatever the umask: the case's records are not for other accounts
        writer = _SparseWriter(fd)
        callback = (lambda done, total, _opaque: progress(done, total)) if progress else None
        iso.write_fp(cast(BinaryIO, writer), blocksize=BLOCK, progress_cb=callback)
        writer.finish()
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    finally:
        os.close(fd)
    iso.close()
    os.replace(partial, path)
    fsync_dir(path.parent)
    return writer.end


def _set_title(iso: pycdlib.PyCdlib, title: str) -> None:
    """Put ``title`` into the UDF volume identifiers (63 characters) and Joliet's (16).

    pycdlib gives every file system the one ASCII volume identifier ISO 9660 allows; these fields
    hold Unicode, so they are set on its descriptors directly. If a pycdlib release moves them, the
    image keeps the ASCII label rather than failing."""
    from pycdlib import udf

    try:
        for descriptors in (iso.udf_main_descs, iso.udf_reserve_descs):
            for volume in descriptors.pvds:
                volume.vol_ident = udf._ostaunicode_zero_pad(title[:15], 32)
            for logical in descriptors.logical_volumes:
                logical.logical_vol_ident = udf._ostaunicode_zero_pad(title[:63], 128)
        file_set = iso.udf_file_set
        file_set.log_vol_ident = udf._ostaunicode_zero_pad(title[:63], 128)
        file_set.file_set_ident = udf._ostaunicode_zero_pad(title[:15], 32)
        if iso.joliet_vd is not None:
            iso.joliet_vd.volume_identifier = title[:16].ljust(16).encode("utf-16-be")
    except AttributeError:
        return


@dataclass(frozen=True)
class FileReadBack:
    size: int
    sha256: str


@dataclass(frozen=True)
class ImageReadBack:
    """What an image holds, as read back from it: its own hash and size, each file's, and the
    problems found in its structure (trees that disagree)."""

    size: int
    sha256: str
    files: dict[str, FileReadBack]
    problems: tuple[str, ...] = ()

    def content(self, path: Path, disc_path: str) -> bytes:
        """The bytes of one (small) file on the image, for the manifests."""
        return file_on_image(path, disc_path)


def file_on_image(path: Path, disc_path: str) -> bytes:
    """The bytes of one (small) file on the image ``path``, by its path on the disc."""
    iso = pycdlib.PyCdlib()
    with open(path, "rb") as image:
        iso.open_fp(image)
        out = io.BytesIO()
        iso.get_file_from_iso_fp(out, udf_path="/" + disc_path)
        iso.close()
    return out.getvalue()


def _listing(iso: pycdlib.PyCdlib, tree: str) -> dict[str, tuple[int, int]]:
    """Each file of one directory tree: its size and where its data starts.

    Rock Ridge names live in ISO 9660's records, which pycdlib resolves to the last extent of a
    multi-extent file, so for that tree only the names are compared (sizes come from Joliet's and
    UDF's records)."""
    found: dict[str, tuple[int, int]] = {}
    for folder, _dirs, names in iso.walk(**{tree: "/"}):
        for name in set(names):
            full = f"{folder.rstrip('/')}/{name}"
            if tree == "rr_path":
                found[full.lstrip("/")] = (0, 0)
                continue
            extents = iso.get_file_byte_extents(**{tree: full})
            found[full.lstrip("/")] = (sum(length for _o, length in extents), extents[0][0] if extents else 0)
    return found


def _drop_cache(fd: int) -> None:
    advise = getattr(os, "posix_fadvise", None)
    if advise is not None:
        os.fdatasync(fd)
        advise(fd, 0, 0, os.POSIX_FADV_DONTNEED)


def read_back(path: Path, *, progress: Progress | None = None) -> ImageReadBack:
    """Hash the image and every file in it (by its UDF path) in one pass over the image."""
    iso = pycdlib.PyCdlib()
    problems: list[str] = []
    with ExitStack() as stack:
        image = stack.enter_context(open(path, "rb"))
        try:
            iso.open_fp(image)
        except pycdlib.pycdlibexception.PyCdlibException as exc:
            raise PackageError(f"{path}: not a readable ISO image ({exc})") from exc
        if not iso.has_udf():
            raise PackageError(f"{path}: the image has no UDF file system; it was not made by this pipeline")
        runs: list[tuple[int, int, str]] = []
        udf = _listing(iso, "udf_path")
        sizes = {key: size for key, (size, _start) in udf.items()}
        for key in udf:
            runs += [
                (offset, length, key) for offset, length in iso.get_file_byte_extents(udf_path="/" + key) if length
            ]
        joliet = _listing(iso, "joliet_path") if iso.has_joliet() else {}
        if joliet != udf:
            differ = sorted(set(joliet.items()) ^ set(udf.items()))
            problems.append(f"the Joliet (Windows) tree differs from the UDF tree: {differ[:5]}")
        rock_ridge = set(_listing(iso, "rr_path")) if iso.has_rock_ridge() else set()
        if rock_ridge != set(udf):
            differ_names = sorted(rock_ridge ^ set(udf))
            problems.append(f"the Rock Ridge (Linux) tree differs from the UDF tree: {differ_names[:5]}")
        iso.close()

        fd = image.fileno()
        _drop_cache(fd)
        image.seek(0)
        total = os.fstat(fd).st_size
        hashers = {key: hashlib.sha256() for key in sizes}
        whole = hashlib.sha256()
        runs.sort()
        for previous, current in itertools.pairwise(runs):
            if current[0] < previous[0] + previous[1]:
                problems.append(f"{current[2]} overlaps {previous[2]} on the image")
        index = 0
        position = 0
        pool = stack.enter_context(ThreadPoolExecutor(max_workers=1))  # the image's hash beside the files'
        for chunk in _chunks(image):
            whole_done = pool.submit(whole.update, chunk)
            end = position + len(chunk)
            while index < len(runs) and runs[index][0] < end:
                start, length, key = runs[index]
                lo, hi = max(start, position), min(start + length, end)
                if lo < hi:
                    hashers[key].update(chunk[lo - position : hi - position])
                if start + length <= end:
                    index += 1
                else:
                    break
            whole_done.result()
            position = end
            if progress:
                progress(position, total)
        if index < len(runs):
            problems.append(f"{runs[index][2]} lies beyond the end of the image")
    files = {key: FileReadBack(size=sizes[key], sha256=hashers[key].hexdigest()) for key in sizes}
    return ImageReadBack(size=position, sha256=whole.hexdigest(), files=files, problems=tuple(problems))


def _chunks(image: BinaryIO, depth: int = 2) -> Iterator[memoryview]:
    """The image in chunks, read ahead on a thread of its own so the disk works while we hash.

    Buffers are reused: each chunk is valid until the next one is asked for. With ``depth`` chunks
    queued, one being filled and one in the caller's hands, ``depth + 2`` buffers never overlap."""
    buffers = [bytearray(READ_CHUNK) for _ in range(depth + 2)]
    queue: Queue[memoryview | BaseException | None] = Queue(maxsize=depth)
    stop = threading.Event()

    def hand_over(item: memoryview | BaseException | None) -> None:
        while not stop.is_set():
            try:
                queue.put(item, timeout=0.1)
                return
            except Full:
                continue

    def reader() -> None:
        try:
            for number in itertools.count():
                buffer = buffers[number % len(buffers)]
                got = image.readinto(buffer)  # type: ignore[attr-defined]
                hand_over(memoryview(buffer)[:got] if got else None)
                if not got or stop.is_set():
                    return
        except BaseException as exc:  # handed to the caller, who raises it
            hand_over(exc)

    thread = threading.Thread(target=reader, name="image-reader", daemon=True)
    thread.start()
    try:
        while True:
            item = queue.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()
