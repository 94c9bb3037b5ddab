"""Odd files through the real `evidence ingest`: every file gets its line, nothing crashes, and every
stored file ends with its metadata read (or its failure recorded), its derivatives made (or their
failure recorded with a reason) and its damage on record as an issue."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from pipeline.catalog.models import StageRun
from pipeline.ingest.intake import IntakeContext
from pipeline.stage.names import readable
from tests.conftest import CliResult
from tests.odd_media import DAMAGE_CODES, OddFile, make_corpus

FINISHED = frozenset(["done", "failed"])


@pytest.fixture
def database_url() -> str:
    """SQLite only: the corpus is about files, not about the catalog's database."""
    return ""


def shown(odd: OddFile) -> str:
    """The file's name as ingest reports it (GBK bytes shown as the characters they stand for)."""
    return readable(os.fsencode(odd.path.name))


class TestOddMediaIngest:
    def test_every_odd_file_gets_one_line_and_a_recorded_outcome(
        self, cli: Callable[..., CliResult], ctx: IntakeContext, dock: Path
    ) -> None:
        """Every odd file gets one JSON line and no traceback; every stored one ends its stages, damage noted."""
        corpus = make_corpus(dock)
        result = cli("ingest", str(dock), "--json")

        assert result.exit_code in (0, 1), result.errors
        for text in (result.output, result.errors):
            assert "Traceback" not in text, text
        lines = [line for line in result.output.splitlines() if line.strip()]
        records: list[dict[str, Any]] = []
        for line in lines:
            try:
                records.append(json.loads(line))
            except ValueError:
                pytest.fail(f"ingest wrote a line that is not JSON: {line!r}")
        assert all("status" in record for record in records), [r for r in records if "status" not in r]
        wanted = Counter(shown(odd) for odd in corpus)
        got = Counter(Path(str(record["path"])).name for record in records)
        assert got == wanted, f"missing: {wanted - got}; unexpected or repeated: {got - wanted}"

        failed = [record for record in records if record["status"] == "failed"]
        assert result.exit_code == (1 if failed else 0), failed  # the contract: non-zero when any input failed
        by_name = {Path(str(record["path"])).name: record for record in records}
        problems: list[str] = []
        for odd in corpus:
            record = by_name[shown(odd)]
            if record["status"] not in ("stored", "duplicate"):
                continue  # refused at intake (a zero-byte file, say): the line says why
            problems += item_problems(cli, ctx, odd, str(record["item"]))
        assert not problems, "\n".join(problems)


def item_problems(cli: Callable[..., CliResult], ctx: IntakeContext, odd: OddFile, item_id: str) -> list[str]:
    """What is wrong with the catalog's record of one odd file, in words; empty when all is well."""
    where = f"{shown(odd)} ({odd.what})"
    shown_item = cli("item", item_id, "--json")
    if shown_item.exit_code != 0 or not shown_item.records:
        return [f"{where}: `evidence item` fails: {shown_item.errors or shown_item.output}"]
    item = shown_item.records[0]
    stages = item["stages"]
    assert isinstance(stages, dict)
    problems = []
    for stage in ("probe", "derive"):
        if stages.get(stage) not in FINISHED:
            problems.append(f"{where}: the {stage} stage is {stages.get(stage)!r}, not done or failed")
    with Session(ctx.engine) as session:
        derive = session.exec(select(StageRun).where(StageRun.item_id == item_id, StageRun.stage == "derive")).first()
    if derive is not None and derive.status == "failed" and not derive.error:
        problems.append(f"{where}: the derive stage failed without a recorded reason")
    derivatives = item["derivatives"]
    assert isinstance(derivatives, list)
    for derivative in derivatives:
        if derivative["status"] == "failed" and not derivative["error"]:
            problems.append(f"{where}: the {derivative['kind']} derivative failed without a reason")
        elif derivative["status"] not in ("verified", "failed"):
            problems.append(f"{where}: the {derivative['kind']} derivative is left {derivative['status']!r}")
    issues = item["issues"]
    assert isinstance(issues, list)
    codes = {issue["code"] for issue in issues}
    if "stage-error" in codes:
        messages = [issue["message"] for issue in issues if issue["code"] == "stage-error"]
        problems.append(f"{where}: a stage broke on it: {messages}")
    if odd.damaged and not codes & DAMAGE_CODES:
        problems.append(f"{where}: damaged, but its issues are {sorted(codes) or 'none'}")
    return problems
