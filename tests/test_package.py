"""Disc packages: names every file system accepts, spanning, ISO images read back by independent
tools (xorriso, isoinfo, 7z), BagIt and `sha256sum -c` on the disc, and `verify-package` catching a
flipped byte and a missing file."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import bagit
import pytest
from sqlmodel import Session, col, select

from pipeline.catalog.db import get_engine
from pipeline.catalog.models import CustodyEvent, Item, Package, PackageDisc, PackageFile
from pipeline.package.contents import DiscFile
from pipeline.package.errors import ItemTooLarge, PackageError
from pipeline.package.image import read_back, write_image
from pipeline.package.media import BASE_OVERHEAD, footprint, medium, parse_size
from pipeline.package.names import FolderNames, safe_name, volume_label
from pipeline.package.plan import PlannedItem, plan_discs
from tests.conftest import flip_byte, sha256_of

CASE = "沪公(浦)刑立字[2025]0123号"
ROOT = Path(__file__).resolve().parent.parent


def run(*args: str, cwd: Path | None = None) -> str:
    done = subprocess.run(args, capture_output=True, check=True, cwd=cwd)
    return done.stdout.decode("utf-8", "replace")


def extract(image: Path, into: Path) -> Path:
    """Every file of the image, extracted by xorriso through Rock Ridge (what Linux shows)."""
    into.mkdir(parents=True)
    run("xorriso", "-osirrox", "on", "-indev", str(image), "-extract", "/", str(into))
    for path in into.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)  # the disc's files are read-only
    into.chmod(0o755)
    return into


# ------------------------------------------------------------------------------------------ units
class TestNames:
    def test_names_windows_refuses_are_made_safe(self) -> None:
        """Characters Windows refuses, device names and trailing dots never reach the disc."""
        assert safe_name('a<b>c:"d"|e?f*.mp4') == "a_b_c__d__e_f_.mp4"
        assert safe_name("CON.txt") == "_CON.txt"
        assert safe_name("report. ") == "report"
        assert safe_name("执法记录仪 视频.MP4") == "执法记录仪 视频.MP4"

    def test_long_names_fit_joliet_and_keep_their_extension(self) -> None:
        """Joliet holds 64 characters; a longer Chinese name is shortened, its extension kept."""
        name = safe_name("现场" * 50 + ".mp4")
        assert len(name) == 64 and name.endswith(".mp4")

    def test_names_are_unique_ignoring_case(self) -> None:
        """Two originals whose names differ only in case both get their own file on the disc."""
        folder = FolderNames()
        assert folder.claim("clip.MP4") == "clip.MP4"
        assert folder.claim("CLIP.mp4") == "CLIP (2).mp4"
        assert folder.claim("clip.mp4") == "clip (3).mp4"

    def test_percent_is_replaced_so_bagit_tools_agree(self) -> None:
        """A '%' would need escaping in BagIt manifests that bagit-python does not read back."""
        assert "%" not in safe_name("100%.jpg")

    def test_volume_label_carries_the_case_numbers_digits(self) -> None:
        """The label keeps the case number's letters and digits and says which disc it is."""
        assert volume_label(CASE, 2, 3) == "2025_0123_2"
        assert volume_label("A2025-77", 1, 1) == "A2025_77"
        assert len(volume_label("X" * 40, 10, 12)) <= 16


class TestPlan:
    def test_items_spread_over_as_few_discs_as_hold_them(self) -> None:
        """Six items of 40% of a disc each need three discs, never split, in time order on each."""
        disc = medium("cd", margin=0.0, capacity=BASE_OVERHEAD + 10 * footprint([100_000]))
        size = 4 * 100_000
        items = [PlannedItem(f"item{n}", (size,), order=f"2025-01-0{n}") for n in range(1, 7)]
        discs = plan_discs(items, disc, margin=0.0)
        assert len(discs) == 3
        assert sorted(item.item_id for d in discs for item in d) == sorted(item.item_id for item in items)
        for planned in discs:
            assert [item.order for item in planned] == sorted(item.order for item in planned)

    def test_an_item_larger_than_the_medium_is_refused_naming_one_that_fits(self) -> None:
        """A 1 GB recording cannot go on a CD; the error says a DVD holds it."""
        items = [PlannedItem("big", (1_000_000_000,), order="a")]
        with pytest.raises(ItemTooLarge, match=r"item big needs .* more than a cd .*; a dvd \(4\.70 GB\) holds it"):
            plan_discs(items, medium("cd", margin=0.03), margin=0.03)

    def test_sizes_are_read_as_people_write_them(self) -> None:
        assert parse_size("700MB") == 700_000_000
        assert parse_size("4.7 GB") == 4_700_000_000
        assert parse_size("512MiB") == 512 << 20
        with pytest.raises(PackageError, match="cannot read the size 'lots'"):
            parse_size("lots")


# ----------------------------------------------------------------------------------------- images
def disc_file(path: Path, disc_path: str) -> DiscFile:
    return DiscFile(disc_path=disc_path, size=path.stat().st_size, sha256=sha256_of(path), source=path)


class TestImage:
    def test_chinese_names_read_back_by_independent_tools(self, tmp_path: Path) -> None:
        """xorriso through Rock Ridge and through Joliet, and 7z through UDF, all list the Chinese name; the
        bytes extracted equal the original's."""
        source = tmp_path / "src.bin"
        source.write_bytes(os.urandom(300_000))
        name = "执法记录仪 现场视频.mp4"
        image = tmp_path / "disc.iso"
        write_image(image, [disc_file(source, f"data/originals/{name}")], label="TEST_1")

        for tree in ("nojoliet", "norock"):  # Rock Ridge (Linux), then Joliet (Windows without UDF)
            listing = run("xorriso", "-read_fs", tree, "-indev", str(image), "-find", "/", "-type", "f")
            assert f"/data/originals/{name}" in listing
        assert "/DATA/ORIGINALS/F00001.MP4" in run("xorriso", "-read_fs", "ecma119", "-indev", str(image), "-find", "/")
        if shutil.which("7z"):  # 7-Zip reads the UDF tree
            assert f"data/originals/{name}" in run("7z", "l", str(image))
            out = tmp_path / "7z"
            run("7z", "x", f"-o{out}", str(image))
            assert sha256_of(out / "data" / "originals" / name) == sha256_of(source)
        extracted = extract(image, tmp_path / "xorriso")
        assert sha256_of(extracted / "data" / "originals" / name) == sha256_of(source)
        assert "Volume Id    : TEST_1" in run("xorriso", "-indev", str(image), "-pvd_info")

    def test_a_file_over_4_gib_is_kept_whole(self, tmp_path: Path) -> None:
        """A 4.5 GiB (sparse) recording becomes a multi-extent file every reader sees whole, and its
        bytes hash the same when 7z streams it out of the image."""
        big = tmp_path / "long-recording.mp4"
        with big.open("wb") as handle:
            handle.truncate((4 << 30) + (512 << 20))
            handle.seek(5 << 20)
            handle.write(b"evidence in the middle")
            handle.seek((4 << 30) + (100 << 20))
            handle.write(b"evidence past four GiB")
        expected = sha256_of(big)
        image = tmp_path / "big.iso"
        write_image(
            image, [DiscFile("data/originals/long-recording.mp4", big.stat().st_size, expected, big)], label="BIG"
        )

        found = read_back(image)
        assert found.files["data/originals/long-recording.mp4"].sha256 == expected
        assert found.problems == ()
        listing = run("xorriso", "-indev", str(image), "-find", "/data/originals", "-type", "f", "-exec", "lsdl")
        assert str(big.stat().st_size) in listing
        isoinfo = run("isoinfo", "-l", "-i", str(image))
        assert isoinfo.count("LONG_RECORDING.MP4;1") == 2  # two extents of one multi-extent file
        if shutil.which("7z"):
            stream = subprocess.Popen(
                ["7z", "x", "-so", str(image), "data/originals/long-recording.mp4"], stdout=subprocess.PIPE
            )
            digest = hashlib.sha256()
            assert stream.stdout is not None
            while chunk := stream.stdout.read(8 << 20):
                digest.update(chunk)
            assert stream.wait() == 0
            assert digest.hexdigest() == expected

    def test_a_disc_of_many_files_needs_few_open_files(self, tmp_path: Path) -> None:
        """300 originals go on one disc by a process allowed 64 open files: a large case never runs
        out of file descriptors."""
        sources = tmp_path / "sources"
        sources.mkdir()
        for n in range(300):
            (sources / f"{n:03d}.wav").write_bytes(os.urandom(2000))
        image = tmp_path / "many.iso"
        script = (
            "import hashlib, resource, sys\n"
            "from pathlib import Path\n"
            "from pipeline.package.contents import DiscFile\n"
            "from pipeline.package.image import read_back, write_image\n"
            "resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))\n"
            "files = [DiscFile('data/originals/' + p.name, p.stat().st_size,"
            " hashlib.sha256(p.read_bytes()).hexdigest(), p) for p in sorted(Path(sys.argv[1]).iterdir())]\n"
            "write_image(Path(sys.argv[2]), files, label='MANY')\n"
            "found = read_back(Path(sys.argv[2]))\n"
            "assert all(found.files[f.disc_path].sha256 == f.sha256 for f in files), 'a file differs'\n"
            "print(len(found.files))\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", script, str(sources), str(image)], capture_output=True, text=True, cwd=ROOT
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "300"

    def test_an_existing_image_is_never_overwritten(self, tmp_path: Path) -> None:
        source = tmp_path / "a.txt"
        source.write_bytes(b"a")
        image = tmp_path / "disc.iso"
        image.write_bytes(b"earlier image")
        with pytest.raises(PackageError, match="already exists"):
            write_image(image, [disc_file(source, "data/a.txt")], label="X")
        assert image.read_bytes() == b"earlier image"


# --------------------------------------------------------------------------------- the whole path
@pytest.fixture
def case_items(cli, tmp_path: Path, media) -> list[str]:
    """Three items of one case (video, audio, photo with Chinese names), ingested and assigned."""
    folder = tmp_path / "arrivals"
    media.variant("clip.mp4", folder / "执法记录仪 现场.mp4")
    media.variant("voice.wav", folder / "询问录音.wav")
    media.variant("photo.jpg", folder / "现场照片.jpg")
    ingested = cli("ingest", str(folder), "--dock", "dock1", "--no-derive", "--json")
    assert ingested.exit_code == 0, ingested.output
    ids = [str(record["item"]) for record in ingested.records]
    assigned = cli(
        "assign",
        *ids,
        "--case",
        CASE,
        "--collector",
        "张警官",
        "--place",
        "上海市浦东新区",
        "--proof-object",
        "现场执法过程",
    )
    assert assigned.exit_code == 0, assigned.output
    return ids


def package(cli, *args: str) -> dict[str, object]:
    result = cli("package", CASE, *args, "--json")
    record = result.records[-1]
    assert (result.exit_code == 0) == (record["status"] == "verified"), result.output
    return record


class TestPackageCommand:
    def test_a_case_becomes_a_verified_disc_that_standard_tools_accept(
        self, cli, case_items, settings, tmp_path
    ) -> None:
        """The disc holds every original unaltered, a description naming producer and production
        time, a `sha256sum -c` manifest, a valid BagIt bag, and the custody log records it."""
        record = package(cli, "--producer", "李档案员", "--purpose", "移送起诉")
        assert record["status"] == "verified" and record["items"] == 3
        [disc] = record["discs"]
        assert disc["verified"] and disc["problems"] == []
        assert disc["write_seconds"] > 0 and disc["verify_seconds"] > 0
        image = Path(disc["path"])
        assert sha256_of(image) == disc["sha256"]
        assert (image.parent / (image.name + ".sha256")).read_text().split()[0] == disc["sha256"]

        # The volume label: the case number's digits in ISO 9660, the whole case number in UDF.
        assert f"ID_FS_LABEL={CASE}" in run("blkid", "-p", "-o", "udev", str(image)).splitlines()
        assert "Volume Id    : 2025_0123" in run("xorriso", "-indev", str(image), "-pvd_info")

        root = extract(image, tmp_path / "disc")
        assert subprocess.run(["sha256sum", "--quiet", "-c", "MANIFEST.sha256"], cwd=root).returncode == 0
        bagit.Bag(str(root)).validate()
        text = (root / "DESCRIPTION.txt").read_bytes().decode("utf-8-sig")
        assert CASE in text and "李档案员" in text and "第 1 张，共 1 张" in text
        manifest = json.loads((root / "MANIFEST.json").read_text(encoding="utf-8"))
        assert manifest["package_id"] == record["package"]

        engine = get_engine(settings.effective_database_url)
        with Session(engine) as session:
            items = session.exec(select(Item).where(col(Item.id).in_(case_items))).all()
            for item in items:
                on_disc = root / "data" / "originals" / item.original_name
                assert sha256_of(on_disc) == item.sha256
            events = session.exec(select(CustodyEvent).where(CustodyEvent.action == "packaged")).all()
            assert sorted(e.target for e in events) == sorted(
                [f"item:{i}" for i in case_items] + [f"package:{record['package']}"]
            )
            stored = session.get(Package, record["package"])
            assert stored is not None and stored.requested_by == "tester" and stored.purpose == "移送起诉"
            assert stored.status == "verified" and stored.disc_count == 1
        assert cli("audit", "verify").exit_code == 0
        [listed] = cli("packages", "--case", CASE, "--json").records
        assert listed["status"] == "verified" and listed["discs"][0]["sha256"] == disc["sha256"]
        shown = cli("item", case_items[0], "--json").records[0]
        assert shown["packages"] == [
            {"package": record["package"], "disc": 1, "path": shown["packages"][0]["path"], "status": "verified"}
        ]
        assert shown["packages"][0]["path"].startswith("data/originals/")

    def test_items_lacking_required_facts_are_packaged_with_a_warning(self, cli, case_items, tmp_path) -> None:
        """A disc may be needed before every fact is known: it is made, and the handler is told
        which items lack which facts; once they are set the warning is gone."""
        shown = {i: cli("item", i, "--json").records[0]["facts"]["captured_at"]["value"] for i in case_items}
        lacking = sorted(i for i, captured in shown.items() if captured is None)
        assert lacking, "the sample media are expected to carry no capture time"
        result = cli("package", CASE, "--out", str(tmp_path / "first"))
        assert result.exit_code == 0
        assert "lack facts the regulation requires" in result.errors
        assert all(item in result.errors for item in lacking)
        record = package(cli, "--out", str(tmp_path / "second"))
        assert record["incomplete"] == [{"item": i, "missing": ["captured_at"]} for i in lacking]
        assert cli("assign", *lacking, "--captured-at", "2025-01-23T09:30").exit_code == 0
        done = cli("package", CASE, "--out", str(tmp_path / "third"))
        assert done.exit_code == 0 and done.errors == ""
        assert package(cli, "--out", str(tmp_path / "fourth"))["incomplete"] == []

    def test_items_spread_over_several_discs_each_self_describing(self, cli, case_items, settings) -> None:
        """With a small disc the three items go on two discs; every item is on exactly one, and each
        disc's description says which of the two it is."""
        with Session(get_engine(settings.effective_database_url)) as session:
            sizes = sorted(item.size for item in session.exec(select(Item)).all())
        capacity = int((BASE_OVERHEAD + footprint(sizes[-2:]) + 1024) / (1 - settings.package_margin))
        record = package(cli, "--capacity", str(capacity))
        discs = record["discs"]
        assert len(discs) == 2 and all(d["verified"] for d in discs)
        assert [Path(d["path"]).stem for d in discs] == ["2025_0123_1", "2025_0123_2"]
        with Session(get_engine(settings.effective_database_url)) as session:
            rows = session.exec(select(PackageFile).where(PackageFile.role == "original")).all()
            assert sorted(r.item_id for r in rows) == sorted(case_items)
            assert len(session.exec(select(PackageDisc)).all()) == 2
        for disc in discs:
            found = read_back(Path(disc["path"]))
            text = found.content(Path(disc["path"]), "DESCRIPTION.txt").decode("utf-8-sig")
            assert f"第 {disc['index']} 张，共 2 张" in text

    def test_an_item_too_large_for_the_medium_is_refused_with_advice(self, cli, case_items, settings) -> None:
        """Nothing is recorded, and the message names the item and a medium that holds it."""
        result = cli("package", CASE, "--capacity", str(BASE_OVERHEAD + 4096), "--json")
        assert result.exit_code == 1
        [record] = result.records
        assert record["status"] == "refused"
        assert f"more than a disc of {BASE_OVERHEAD + 4096:,} bytes holds; a cd (0.74 GB) holds it" in record["error"]
        with Session(get_engine(settings.effective_database_url)) as session:
            assert session.exec(select(Package)).all() == []

    def test_only_the_named_items_and_only_of_this_case(self, cli, case_items, media, tmp_path) -> None:
        """--items packages just those; an item of another case is refused by name."""
        record = package(cli, "--items", case_items[0], case_items[1])
        assert record["items"] == 2
        other = media.variant("voice.wav", tmp_path / "other" / "other.wav", 7)
        [ingested] = cli("ingest", str(other), "--json").records
        cli("assign", str(ingested["item"]), "--case", "OTHER-1")
        result = cli("package", CASE, "--items", f"{case_items[0]},{ingested['item']}", "--json")
        assert result.exit_code == 1
        assert f"item {ingested['item']} belongs to case OTHER-1" in result.records[0]["error"]

    def test_an_altered_original_in_the_store_fails_the_package(self, cli, case_items, settings) -> None:
        """The image is compared with the catalog, not with the store: a stored original that changed
        since intake fails the package, names the file, and leaves no image that looks verified."""
        with Session(get_engine(settings.effective_database_url)) as session:
            item = session.get(Item, case_items[1])
            assert item is not None
            stored = settings.store_dir / "sha256" / item.sha256[:2] / item.sha256
        flip_byte(stored, 100)
        result = cli("package", CASE, "--json")
        assert result.exit_code == 1
        [record] = result.records
        assert record["status"] == "failed"
        assert f"data/originals/{item.original_name}: expected sha256 {item.sha256}" in record["error"]
        assert not list(Path(record["discs"][0]["path"]).parent.glob("*.sha256"))
        with Session(get_engine(settings.effective_database_url)) as session:
            stored_package = session.get(Package, record["package"])
            assert stored_package is not None and stored_package.status == "failed"
            actions = session.exec(
                select(CustodyEvent.action).where(CustodyEvent.target == f"package:{record['package']}")
            )
            assert list(actions) == ["package-requested", "package-failed"]

    def test_an_output_folder_that_cannot_be_written_fails_cleanly(self, cli, case_items) -> None:
        """The request is recorded as failed with the reason; no traceback, nothing half-made."""
        result = cli("package", CASE, "--out", "/dev/null/discs", "--json")
        assert result.exit_code == 1
        [record] = result.records
        assert record["status"] == "failed"
        assert "cannot write the images" in record["error"] and "/dev/null/discs" in record["error"]

    def test_access_copies_travel_with_their_originals(self, cli, case_items, tmp_path) -> None:
        """--with-access-copies puts each verified access copy under data/access, in the manifest."""
        assert cli("derive", *case_items).exit_code == 0
        record = package(cli, "--with-access-copies")
        root = extract(Path(record["discs"][0]["path"]), tmp_path / "disc")
        copies = sorted(p.name for p in (root / "data" / "access").iterdir())
        assert any(name.endswith(".mp4") for name in copies) and any(name.endswith(".jpg") for name in copies)
        assert subprocess.run(["sha256sum", "--quiet", "-c", "MANIFEST.sha256"], cwd=root).returncode == 0


class TestVerifyPackage:
    def test_a_good_image_and_a_good_copied_folder_pass(self, cli, case_items, tmp_path) -> None:
        record = package(cli)
        image = Path(record["discs"][0]["path"])
        folder = extract(image, tmp_path / "copy")
        result = cli("verify-package", str(image), str(folder), "--json")
        assert result.exit_code == 0, result.output
        assert [r["ok"] for r in result.records] == [True, True]
        assert all(r["catalog"] for r in result.records)

    def test_a_flipped_byte_in_the_image_names_the_altered_file(self, cli, case_items, tmp_path) -> None:
        """One byte flipped inside a recording: the file is named altered, the image's hash differs."""
        record = package(cli)
        image = Path(record["discs"][0]["path"])
        found = read_back(image)
        target = next(name for name in found.files if name.endswith(".wav"))
        offset = _offset_of(image, target) + 1000
        flip_byte(image, offset)
        result = cli("verify-package", str(image), "--json")
        assert result.exit_code == 1
        [check] = result.records
        assert check["altered"] == [target]
        assert any("SHA-256" in problem for problem in check["problems"])  # the sidecar and the catalog disagree

    def test_a_copied_folder_with_a_missing_and_an_extra_file(self, cli, case_items, tmp_path) -> None:
        """A copy that lost a recording and gained a stray file: both are named, without the catalog too."""
        record = package(cli)
        folder = extract(Path(record["discs"][0]["path"]), tmp_path / "copy")
        lost = next((folder / "data" / "originals").glob("*.jpg"))
        lost.unlink()
        (folder / "data" / "originals" / "notes.txt").write_text("added later")
        for extra_args in ((), ("--no-catalog",)):
            result = cli("verify-package", str(folder), *extra_args, "--json")
            assert result.exit_code == 1
            [check] = result.records
            assert check["missing"] == [f"data/originals/{lost.name}"]
            assert check["extra"] == ["data/originals/notes.txt"]

    def test_something_that_is_not_a_package_is_said_to_be_so(self, cli, tmp_path) -> None:
        (tmp_path / "random").mkdir()
        (tmp_path / "random" / "a.txt").write_text("a")
        result = cli("verify-package", str(tmp_path / "random"), "--json")
        assert result.exit_code == 1
        assert "not a package disc" in result.records[0]["problems"][0]


def _offset_of(image: Path, disc_path: str) -> int:
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.open(str(image))
    try:
        return iso.get_file_byte_extents(udf_path="/" + disc_path)[0][0]
    finally:
        iso.close()
