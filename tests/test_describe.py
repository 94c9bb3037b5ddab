"""The files at a disc's root: the written description, the manifests and the BagIt tag files, checked
with the tools a case handler or a court would use (``sha256sum -c``, the bagit library)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
import subprocess
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import bagit
import pytest

from pipeline.package.contents import AccessCopy, DiscFile, DiscInfo, ItemEntry
from pipeline.package.describe import (
    bag_info,
    bagit_txt,
    description_html,
    description_text,
    disc_root_files,
    manifest_json,
    payload_manifest,
    sha256_manifest,
    tag_manifest,
)
from tests.conftest import flip_byte

CASE = "京朝公（治）行罚决字〔2024〕0123号"
PRODUCER = "赵敏"
VIDEO = "data/originals/执法记录仪_张伟_20240506.mp4"
VIDEO_COPY = "data/access/执法记录仪_张伟_20240506.mp4"
PHOTO = "data/originals/现场照片.jpg"
AUDIO = "data/originals/询问录音 2024-05-06.wav"

needs_sha256sum = pytest.mark.skipif(shutil.which("sha256sum") is None, reason="GNU coreutils sha256sum not installed")


@dataclasses.dataclass(frozen=True)
class Disc:
    info: DiscInfo
    payload: list[DiscFile]
    root: list[DiscFile]

    def file(self, name: str) -> DiscFile:
        return next(f for f in self.root if f.disc_path == name)


def _stored(folder: Path, disc_path: str, content: bytes) -> DiscFile:
    source = folder / hashlib.sha256(content).hexdigest()
    source.write_bytes(content)
    return DiscFile(disc_path=disc_path, size=len(content), sha256=hashlib.sha256(content).hexdigest(), source=source)


@pytest.fixture
def disc(tmp_path: Path) -> Disc:
    store = tmp_path / "store"
    store.mkdir()
    video = _stored(store, VIDEO, b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    video_copy = _stored(store, VIDEO_COPY, b"\x00\x00\x00\x18ftypisom" + bytes(range(200)))
    photo = _stored(store, PHOTO, b"\xff\xd8\xff\xe0" + b"JFIF" * 300 + b"\xff\xd9")
    audio = _stored(store, AUDIO, b"RIFF\x24\x00\x00\x00WAVEfmt " + b"\x01\x00" * 500)
    items = (
        ItemEntry(
            item_id="01HX3Q8Z6V2N4K7M9P1R5T8W0A",
            disc_path=VIDEO,
            original_name="DSJ_20240506_143000.MP4",
            media_kind="video",
            size=video.size,
            sha256=video.sha256,
            case_number=CASE,
            captured_at=datetime(2024, 5, 6, 6, 30, tzinfo=UTC),
            captured_place="北京市朝阳区建国路 88 号",
            collector="张伟（警号 012345）",
            proof_object="当事人拒不配合检查",
            access_copies=(
                AccessCopy(disc_path=VIDEO_COPY, profile="h264-720p", size=video_copy.size, sha256=video_copy.sha256),
            ),
        ),
        ItemEntry(
            item_id="01HX3Q8Z6V2N4K7M9P1R5T8W0B",
            disc_path=PHOTO,
            original_name="IMG_0042.JPG",
            media_kind="photo",
            size=photo.size,
            sha256=photo.sha256,
            case_number=CASE,
            captured_at=None,
            captured_place="北京市朝阳区建国路 88 号",
            collector="李娜",
            proof_object=None,
        ),
        ItemEntry(
            item_id="01HX3Q8Z6V2N4K7M9P1R5T8W0C",
            disc_path=AUDIO,
            original_name="REC0007.WAV",
            media_kind="audio",
            size=audio.size,
            sha256=audio.sha256,
            case_number=CASE,
            captured_at=datetime(2024, 5, 6, 7, 5, 9, tzinfo=UTC),
            captured_place="朝阳分局建外派出所询问室",
            collector="王强",
            proof_object="违法事实经过",
        ),
    )
    info = DiscInfo(
        package_id="01HX3R2B7C9D1E3F5G7H9J1K3M",
        case_number=CASE,
        target="王某某",
        producer=PRODUCER,
        produced_at=datetime(2024, 5, 7, 2, 15, tzinfo=UTC),
        zone=ZoneInfo("Asia/Shanghai"),
        disc_index=1,
        disc_count=2,
        label="2024_0123_1",
        media="BD-R 25 GB",
        items=items,
    )
    payload = [video, video_copy, photo, audio]
    return Disc(info=info, payload=payload, root=disc_root_files(info, payload))


def write_disc(folder: Path, files: Sequence[DiscFile]) -> Path:
    """Lay the files out as the disc's file system shows them."""
    for f in files:
        target = folder / f.disc_path
        target.parent.mkdir(parents=True, exist_ok=True)
        if f.content is not None:
            target.write_bytes(f.content)
        else:
            assert f.source is not None
            target.write_bytes(f.source.read_bytes())
    return folder


@pytest.fixture
def folder(tmp_path: Path, disc: Disc) -> Path:
    return write_disc(tmp_path / "disc", [*disc.payload, *disc.root])


def sha256sum_check(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sha256sum", "-c", "MANIFEST.sha256"], cwd=folder, capture_output=True, text=True, check=False
    )


class TestRootFiles:
    def test_every_root_file_of_the_layout_is_made_tag_manifest_last(self, disc: Disc) -> None:
        """The disc's root holds exactly the files of the fixed layout, the tag manifest made last."""
        assert [f.disc_path for f in disc.root] == [
            "bagit.txt",
            "bag-info.txt",
            "manifest-sha256.txt",
            "DESCRIPTION.txt",
            "DESCRIPTION.html",
            "MANIFEST.json",
            "MANIFEST.sha256",
            "tagmanifest-sha256.txt",
        ]

    def test_sizes_and_digests_match_the_content(self, disc: Disc) -> None:
        """Each root file's stated size and SHA-256 are those of the bytes that go on the disc."""
        for f in disc.root:
            assert f.content is not None
            assert f.size == len(f.content)
            assert f.sha256 == hashlib.sha256(f.content).hexdigest()

    def test_a_described_file_missing_from_the_payload_is_refused(self, disc: Disc) -> None:
        """A disc whose description names a file it does not carry is never made."""
        without_copy = [f for f in disc.payload if f.disc_path != VIDEO_COPY]
        with pytest.raises(ValueError, match=re.escape("执法记录仪_张伟_20240506.mp4")):
            disc_root_files(disc.info, without_copy)

    def test_a_payload_file_whose_digest_differs_from_the_description_is_refused(self, disc: Disc) -> None:
        """The description never states a digest other than the one of the file on the disc."""
        changed = [dataclasses.replace(f, sha256="0" * 64) if f.disc_path == PHOTO else f for f in disc.payload]
        with pytest.raises(ValueError, match=re.escape("现场照片.jpg")):
            disc_root_files(disc.info, changed)

    def test_payload_outside_data_is_refused(self, disc: Disc) -> None:
        """Payload files belong under data/, where BagIt looks for them."""
        stray = DiscFile(disc_path="originals/x.mp4", size=1, sha256="a" * 64, content=b"x")
        with pytest.raises(ValueError, match=re.escape("originals/x.mp4")):
            disc_root_files(disc.info, [*disc.payload, stray])


class TestBag:
    def test_the_disc_validates_as_a_bag(self, folder: Path) -> None:
        """A standard BagIt validator accepts the disc as written."""
        assert bagit.Bag(str(folder)).validate()

    def test_a_flipped_byte_in_an_original_is_reported_for_that_file(self, folder: Path) -> None:
        """Damage to an original makes validation fail and names the damaged file."""
        flip_byte(folder / VIDEO, 10)
        with pytest.raises(bagit.BagValidationError) as raised:
            bagit.Bag(str(folder)).validate()
        [detail] = raised.value.details
        assert isinstance(detail, bagit.ChecksumMismatch)
        assert detail.path == VIDEO

    def test_an_edited_description_is_reported(self, folder: Path) -> None:
        """Editing the written description after production is detected by the tag manifest."""
        flip_byte(folder / "DESCRIPTION.txt", 40)
        with pytest.raises(bagit.BagValidationError) as raised:
            bagit.Bag(str(folder)).validate()
        [detail] = raised.value.details
        assert isinstance(detail, bagit.ChecksumMismatch)
        assert detail.path == "DESCRIPTION.txt"

    def test_bag_info_names_producer_date_disc_and_payload(self, folder: Path, disc: Disc) -> None:
        """bag-info.txt states the producer, the local production date, the disc of the set and the payload."""
        info = bagit.Bag(str(folder)).info
        total = sum(f.size for f in disc.payload)
        assert info["Contact-Name"] == PRODUCER
        assert info["Bagging-Date"] == "2024-05-07"
        assert info["Bag-Count"] == "1 of 2"
        assert info["Bag-Group-Identifier"] == disc.info.package_id
        assert info["External-Identifier"] == "2024_0123_1"
        assert info["Internal-Sender-Identifier"] == CASE
        assert CASE in info["External-Description"] and "王某某" in info["External-Description"]
        assert info["Payload-Oxum"] == f"{total}.4"

    def test_bag_info_keeps_one_line_per_tag_whatever_the_case_number(self, disc: Disc) -> None:
        """A stored value with a line break cannot add a tag of its own to bag-info.txt."""
        odd = dataclasses.replace(disc.info, case_number="A-1\nPayload-Oxum: 0.0")
        lines = bag_info(odd, disc.payload).decode("utf-8").splitlines()
        assert [line for line in lines if line.startswith("Payload-Oxum")] == [
            f"Payload-Oxum: {sum(f.size for f in disc.payload)}.4"
        ]

    def test_bagit_txt_declares_version_and_encoding(self) -> None:
        """The bag declaration is BagIt 1.0 with UTF-8 tag files and no byte-order mark."""
        assert bagit_txt() == b"BagIt-Version: 1.0\nTag-File-Character-Encoding: UTF-8\n"

    def test_payload_manifest_lists_only_data_and_encodes_as_rfc_8493_says(self) -> None:
        """Only data/ files are payload; %, CR and LF in their names are percent-encoded."""
        files = [
            DiscFile(disc_path="data/b 100%.mp4", size=1, sha256="B" * 64),
            DiscFile(disc_path="data/a\nb\r.mp4", size=1, sha256="a" * 64),
            DiscFile(disc_path="DESCRIPTION.txt", size=1, sha256="c" * 64),
        ]
        assert payload_manifest(files) == (f"{'a' * 64}  data/a%0Ab%0D.mp4\n{'b' * 64}  data/b 100%25.mp4\n".encode())

    def test_tag_manifest_digests_the_given_contents(self) -> None:
        """Each tag file is listed with the SHA-256 of its content, sorted by name."""
        text = tag_manifest([("bagit.txt", b"x"), ("bag-info.txt", b"y")]).decode()
        x, y = hashlib.sha256(b"x").hexdigest(), hashlib.sha256(b"y").hexdigest()
        assert text == f"{y}  bag-info.txt\n{x}  bagit.txt\n"

    def test_tag_manifest_refuses_to_list_itself(self) -> None:
        """A tag manifest cannot carry its own digest."""
        with pytest.raises(ValueError, match=re.escape("tagmanifest-sha256.txt")):
            tag_manifest([("tagmanifest-sha256.txt", b"")])


@needs_sha256sum
class TestSha256sumCheck:
    def test_sha256sum_accepts_every_file(self, folder: Path, disc: Disc) -> None:
        """`sha256sum -c MANIFEST.sha256` on the disc reports every listed file OK."""
        result = sha256sum_check(folder)
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.count(": OK") == len(disc.payload) + len(disc.root) - 2

    def test_sha256sum_fails_on_an_altered_payload_file(self, folder: Path) -> None:
        """After a payload file is altered, `sha256sum -c` exits non-zero and names it."""
        flip_byte(folder / AUDIO, 10)
        result = sha256sum_check(folder)
        assert result.returncode != 0
        assert f"{AUDIO}: FAILED" in result.stdout

    def test_manifest_covers_all_but_itself_and_the_tag_manifest(self, disc: Disc) -> None:
        """MANIFEST.sha256 lists the payload and every root file except itself and the tag manifest."""
        text = disc.file("MANIFEST.sha256").content
        assert text is not None
        listed = [line.split("  ", 1)[1] for line in text.decode().splitlines()]
        expected = {f.disc_path for f in [*disc.payload, *disc.root]} - {"MANIFEST.sha256", "tagmanifest-sha256.txt"}
        assert listed == sorted(expected)


class TestSha256Manifest:
    def test_lines_are_in_sha256sum_format_sorted_by_path(self) -> None:
        """Lines read `<digest>  <path>`, sorted by path, digests in lower case."""
        text = sha256_manifest([("data/b.mp4", "B" * 64), ("DESCRIPTION.txt", "a" * 64)])
        assert text == f"{'a' * 64}  DESCRIPTION.txt\n{'b' * 64}  data/b.mp4\n".encode()

    @pytest.mark.parametrize(
        "path",
        ["../x", "data/../../etc/passwd", "/etc/passwd", "data/a\\b.mp4", "data/a\nb.mp4", "data/a\rb.mp4", ""],
    )
    def test_paths_sha256sum_would_misread_are_refused_by_name(self, path: str) -> None:
        """Escaping, absolute and line-breaking paths are refused, and the error names the path."""
        with pytest.raises(ValueError) as raised:
            sha256_manifest([(path, "a" * 64)])
        assert repr(path) in str(raised.value)

    def test_a_malformed_digest_is_refused(self) -> None:
        """A digest that is not 64 hexadecimal digits is refused, naming the file."""
        with pytest.raises(ValueError, match=re.escape("data/x.mp4")):
            sha256_manifest([("data/x.mp4", "abc")])

    def test_a_path_listed_twice_is_refused(self) -> None:
        """A path listed twice is refused: sha256sum and BagIt would report it twice or reject it."""
        with pytest.raises(ValueError, match=re.escape("data/x.mp4")):
            sha256_manifest([("data/x.mp4", "a" * 64), ("data/x.mp4", "b" * 64)])


class TestDescriptionText:
    def test_states_case_producer_and_production_time(self, disc: Disc) -> None:
        """The description names the case, the producer and the production time, local and UTC."""
        text = description_text(disc.info).decode("utf-8-sig")
        assert "电子证据光盘说明 / Evidence disc description" in text
        assert f"案件编号 Case number: {CASE}" in text
        assert f"制作人 Producer: {PRODUCER}" in text
        assert "2024-05-07 10:15:00 Asia/Shanghai (UTC+08:00)" in text
        assert "2024-05-07 02:15:00 UTC" in text
        assert "执法对象 Enforcement target: 王某某" in text

    def test_states_disc_count_label_media_and_totals(self, disc: Disc) -> None:
        """The description says which disc of the set this is, its label, media and what it holds."""
        text = description_text(disc.info).decode("utf-8-sig")
        assert "第 1 张，共 2 张" in text
        assert "2024_0123_1" in text
        assert "BD-R 25 GB" in text
        assert "证据数量 Items: 3" in text
        originals = sum(item.size for item in disc.info.items)
        assert f"{originals:,} 字节 bytes" in text

    def test_every_item_with_its_digest_and_collector(self, disc: Disc) -> None:
        """Every item appears with its disc file, original name, SHA-256 and collector."""
        text = description_text(disc.info).decode("utf-8-sig")
        for item in disc.info.items:
            assert item.disc_path in text
            assert item.original_name in text
            assert item.sha256 in text
            assert f"采集人 Collector: {item.collector}" in text
        assert "h264-720p" in text
        assert VIDEO_COPY in text

    def test_capture_time_in_local_time_and_utc(self, disc: Disc) -> None:
        """A capture time is given in the site's local time and in UTC."""
        text = description_text(disc.info).decode("utf-8-sig")
        assert "采集时间 Capture time: 2024-05-06 14:30:00 Asia/Shanghai (UTC+08:00) / 2024-05-06 06:30:00 UTC" in text

    def test_missing_facts_read_not_recorded(self, disc: Disc) -> None:
        """A fact nobody supplied reads "未记录 / not recorded"; it is never left blank."""
        text = description_text(disc.info).decode("utf-8-sig")
        assert "采集时间 Capture time: 未记录 / not recorded" in text
        assert "证明对象 Proof object: 未记录 / not recorded" in text

    def test_missing_target_reads_unknown(self, disc: Disc) -> None:
        """A disc without a recorded enforcement target says so."""
        text = description_text(dataclasses.replace(disc.info, target=None)).decode("utf-8-sig")
        assert "执法对象 Enforcement target: 未知 / not recorded" in text

    def test_tells_the_reader_how_to_check_the_disc(self, disc: Disc) -> None:
        """The description ends by telling the reader how to check the disc and that originals are unaltered."""
        text = description_text(disc.info).decode("utf-8-sig")
        assert "sha256sum -c MANIFEST.sha256" in text
        assert "BagIt" in text
        assert "未经任何改动" in text and "unaltered" in text

    def test_utf8_with_bom_and_crlf_line_ends(self, disc: Disc) -> None:
        """Windows Notepad shows the Chinese (UTF-8 with BOM) and the lines (CRLF only)."""
        data = description_text(disc.info)
        assert data.startswith(b"\xef\xbb\xbf")
        data.decode("utf-8")
        assert b"\r\n" in data
        assert b"\n" not in data.replace(b"\r\n", b"")
        assert b"\r" not in data.replace(b"\r\n", b"")

    def test_a_stored_value_cannot_add_lines(self, disc: Disc) -> None:
        """A line break inside a stored fact cannot forge a line of the description."""
        forged = dataclasses.replace(disc.info.items[1], captured_place="门口\r\nSHA-256: " + "0" * 64)
        info = dataclasses.replace(disc.info, items=(disc.info.items[0], forged))
        lines = description_text(info).decode("utf-8-sig").split("\r\n")
        assert not any(line.startswith("SHA-256: " + "0" * 64) for line in lines)


class TestDescriptionHtml:
    def test_stored_values_are_escaped(self, disc: Disc) -> None:
        """A value holding markup is shown as text, never run as script."""
        evil = dataclasses.replace(disc.info.items[0], captured_place='<script>alert("x")</script>')
        info = dataclasses.replace(disc.info, target="<b>王某某</b> & 同伙", items=(evil,))
        page = description_html(info)
        assert "<script>" not in page
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
        assert "&lt;b&gt;王某某&lt;/b&gt; &amp; 同伙" in page

    def test_self_contained_chinese_page(self, disc: Disc) -> None:
        """The page declares its language and encoding and loads nothing from elsewhere."""
        page = description_html(disc.info)
        assert page.startswith("<!DOCTYPE html>")
        assert '<html lang="zh-CN">' in page
        assert '<meta charset="utf-8">' in page
        assert "<style>" in page
        assert "src=" not in page and "href=" not in page and "http" not in page

    def test_same_facts_as_the_text(self, disc: Disc) -> None:
        """The page states the producer, production time, disc count and every item's digest and collector."""
        page = description_html(disc.info)
        assert PRODUCER in page
        assert "2024-05-07 10:15:00 Asia/Shanghai" in page
        assert "第 1 张，共 2 张" in page
        assert page.count("<table>") == 1 + len(disc.info.items)
        for item in disc.info.items:
            assert item.sha256 in page
            assert item.collector is not None and item.collector in page
        assert "未记录 / not recorded" in page


class TestManifestJson:
    def test_round_trips_and_lists_every_file(self, disc: Disc) -> None:
        """MANIFEST.json parses and lists every file on the disc but those that hold its own digest."""
        content = disc.file("MANIFEST.json").content
        assert content is not None
        document = json.loads(content.decode("utf-8"))
        listed = {f["path"]: (f["size"], f["sha256"]) for f in document["files"]}
        unlistable = {"MANIFEST.json", "MANIFEST.sha256", "tagmanifest-sha256.txt"}
        expected = {
            f.disc_path: (f.size, f.sha256) for f in [*disc.payload, *disc.root] if f.disc_path not in unlistable
        }
        assert listed == expected

    def test_states_the_disc_and_every_item_fact(self, disc: Disc) -> None:
        """The disc's facts and every item's facts are there, a missing fact as null."""
        document = json.loads(manifest_json(disc.info, disc.payload))
        assert document["package_id"] == disc.info.package_id
        assert document["case_number"] == CASE
        assert document["target"] == "王某某"
        assert document["producer"] == PRODUCER
        assert document["produced_at"] == {
            "utc": "2024-05-07T02:15:00Z",
            "local": "2024-05-07T10:15:00+08:00",
            "zone": "Asia/Shanghai",
        }
        assert document["disc"] == {"index": 1, "count": 2}
        assert (document["label"], document["media"]) == ("2024_0123_1", "BD-R 25 GB")
        video, photo, _ = document["items"]
        assert set(video) == {f.name for f in dataclasses.fields(ItemEntry)}
        assert video["captured_at"]["local"] == "2024-05-06T14:30:00+08:00"
        assert video["collector"] == "张伟（警号 012345）"
        assert video["access_copies"] == [
            {
                "disc_path": VIDEO_COPY,
                "profile": "h264-720p",
                "size": disc.payload[1].size,
                "sha256": disc.payload[1].sha256,
            },
        ]
        assert photo["captured_at"] is None and photo["proof_object"] is None

    def test_stable_readable_utf8(self, disc: Disc) -> None:
        """The same disc gives the same bytes, with Chinese written as is."""
        first = manifest_json(disc.info, disc.payload)
        assert first == manifest_json(disc.info, list(reversed(disc.payload)))
        assert CASE.encode("utf-8") in first


class TestClasses:
    def test_each_item_names_its_class_and_no_notice_without_classified_records(self, disc: Disc) -> None:
        text = description_text(disc.info).decode("utf-8-sig")
        assert text.count("密级 Class: 无 none") == 3
        assert "This disc holds classified records" not in text
        document = json.loads(manifest_json(disc.info, disc.payload))
        assert [item["classification"] for item in document["items"]] == ["none", "none", "none"]

    def test_a_disc_holding_a_privacy_record_says_so_at_the_top(self, disc: Disc) -> None:
        first, *rest = disc.info.items
        info = dataclasses.replace(disc.info, items=(dataclasses.replace(first, classification="privacy"), *rest))
        text = description_text(info).decode("utf-8-sig")
        lines = text.split("\r\n")
        assert lines[3].startswith("本光盘含有涉密/敏感记录：个人隐私")
        assert "This disc holds classified records: privacy" in lines[3]
        assert "密级 Class: 个人隐私 privacy" in text
        page = description_html(info)
        assert page.index("This disc holds classified records") < page.index("<table>")
        document = json.loads(manifest_json(info, disc.payload))
        assert document["items"][0]["classification"] == "privacy"
