"""Catalog benchmark: how fast the common reads stay as the catalog grows.

A generator fills a fresh catalog with a realistic one: docks, officers (each working from one
dock), cases with their enforcement targets and classes, items with the five facts and their
sources (some missing), issues (missing facts, late, damaged, truncated, clock drift, provisional
deadlines), a sighting and the probe/derive stages per item, derivatives, and about ten custody
events per item sealed into one valid hash chain. The schema is made by the project's own
migrations (what ships is what is measured); rows go in by bulk SQL (``executemany`` on SQLite,
``COPY`` on PostgreSQL), a fixed seed making the same catalog every time.

Then the reads the pages and the command line make are timed through the project's own query
functions (:mod:`pipeline.catalog.queries`), as a custodian cleared for every class and as one
with no clearance: items by case, by officer and capture dates, every review queue (a page and
the counts of all of them), free-text search over names and facts, the overdue report, one item's
whole record with its custody trail, and keyset paging deep into the listing. Counts are read as
the pages read them: exact up to :data:`~pipeline.catalog.queries.COUNT_LIMIT`. Each query runs
``--runs`` times (parameters varied, a new session each time) after a warm-up; p50/p95/p99 are
reported in ms and as a multiple of a primary-key lookup of one item timed in the same run.

Run from the project root::

    .venv/bin/python bench/catalog.py --items 10000,100000 [--database sqlite|postgresql|both]
        [--runs 50] [--json PATH] [--keep] [--queries-only] [--workdir DIR] [--postgres URL]

SQLite lives in a temporary directory (``--workdir`` to choose where); PostgreSQL in a schema of
its own (``bench_catalog_<N>``) on ``--postgres`` (default ``$EVIDENCE_TEST_POSTGRES`` or the
local server), dropped afterwards unless ``--keep``. ``--queries-only`` times a catalog kept by an
earlier ``--keep`` run (same ``--workdir``) instead of making a new one. The exit status is 1 when
a part failed or a p95 is above its target (:data:`TARGET_MS`; the supervision report's figures,
:func:`pipeline.reports.build_report` over the whole catalog and over one month, read as an auditor
cleared for every class, :data:`REPORT_TARGET_MS`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from report import BenchError, Results, percentile, print_section, run_bench
from sqlalchemy import Engine, create_engine, text
from sqlmodel import Session, col, or_, select

from pipeline.catalog.db import dispose_engines, get_engine, migrate
from pipeline.catalog.models import Case, Item
from pipeline.catalog.people import CLEARABLE, Role
from pipeline.catalog.queries import (
    COUNT_LIMIT,
    MAX_PAGE,
    Cursor,
    ItemFilter,
    count_items,
    item_detail,
    overdue_page,
    page_items,
)
from pipeline.catalog.viewer import Viewer
from pipeline.custody import GENESIS, canonical_json, event_hash
from pipeline.reports import Period, build_report
from pipeline.stage import issues
from pipeline.storage.local import LocalStore
from pipeline.web.search import QUEUES

DEFAULT_RUNS = 50
TARGET_MS = 50.0
REPORT_TARGET_MS = 2000.0  # the supervision report's figures (issue 15)
REPORT_RUNS = 3  # the report reads the whole catalog: fewer runs
SEED = 14
BATCH = 20_000
PAGE = 50  # the items pages' page size
POSTGRES_URL = os.environ.get("EVIDENCE_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
START = datetime(2024, 1, 1, tzinfo=UTC)
SPAN = timedelta(days=730)  # items arrive over two years
EVENTS_PER_ITEM = 10

SURNAMES = ("wang", "li", "zhang", "liu", "chen", "yang", "zhao", "huang", "zhou", "wu", "xu", "sun", "ma", "zhu")
STREETS = (
    "Bridge Road", "Main Street", "Harbour Avenue", "Station Square", "Market Lane", "River Walk",
    "North Gate", "Temple Street", "Garden Road", "Airport Expressway", "Canal Street", "Hill Terrace",
    "Renmin Road", "Jiefang Avenue", "Zhongshan Road", "Xinhua Street", "Beijing Road", "Park Lane",
)  # fmt: skip
PROOFS = (
    "traffic stop", "noise complaint", "shoplifting", "assault", "parking violation", "illegal street vending",
    "drunk driving check", "unlicensed construction", "food safety inspection", "dispute mediation",
    "search of premises", "seizure of goods", "witness statement", "scene inspection", "fare evasion",
)  # fmt: skip
TARGET_WORDS = ("Golden", "Harbour", "Eastern", "Sunrise", "Dragon", "Silver", "Pearl", "Jade", "Lotus", "Summit")
TARGET_KINDS = ("Trading Co.", "Logistics Ltd.", "Restaurant", "Construction Co.", "Pharmacy", "Karaoke")
KINDS = (("video", "MP4", 70), ("audio", "WAV", 15), ("image", "JPG", 15))
ITEM_CLASSES = (("none", 86), ("unclassified", 10), ("privacy", 2), ("trade-secret", 1), ("state-secret", 1))
CASE_CLASSES = (("none", 92), ("privacy", 5), ("trade-secret", 2), ("state-secret", 1))
# How often each fact is missing, and the issue it opens.
MISSING = {"case_number": 0.03, "captured_at": 0.01, "captured_place": 0.04, "collector": 0.02, "proof_object": 0.05}
SOURCES = {
    "case_number": ("manual", "filename"),
    "captured_at": ("exif:DateTimeOriginal", "ffprobe:creation_time", "filename"),
    "captured_place": ("gps", "dock", "manual"),
    "collector": ("filename", "dock", "manual"),
    "proof_object": ("manual",),
}
# Issues found in the file, with how often.
FILE_ISSUES = (
    (issues.DAMAGED_MEDIA, 0.01),
    (issues.TRUNCATED_STREAM, 0.005),
    (issues.CLOCK_DRIFT, 0.02),
    (issues.DEADLINE_PROVISIONAL, 0.01),
)
ACTIONS = ("ingested", "probed", "derived", "derived", "assigned", "classified", "viewed", "viewed", "downloaded")


def weighted(rng: random.Random, choices: Sequence[tuple[str, int]]) -> str:
    return rng.choices([name for name, _ in choices], [weight for _, weight in choices])[0]


# ------------------------------------------------------------------------------------------ catalog shape
@dataclass(frozen=True)
class Shape:
    """How many of each thing a catalog of ``items`` items holds."""

    items: int
    docks: int
    officers: int
    cases: int
    targets: int

    @classmethod
    def of(cls, items: int) -> Shape:
        cases = max(10, items // 50)
        return cls(items, max(4, min(200, items // 5000)), max(10, items // 2000), cases, max(5, cases // 3))


def dock_name(k: int) -> str:
    return f"dock-{k:03d}"


def officer_name(k: int) -> str:
    return f"{SURNAMES[k % len(SURNAMES)]}.{k:05d}"


def case_number(k: int) -> str:
    return f"{2024 + k % 2}-XF-{k:06d}"


def target_name(k: int) -> str:
    return f"{TARGET_WORDS[k % len(TARGET_WORDS)]} {TARGET_KINDS[k // len(TARGET_WORDS) % len(TARGET_KINDS)]} {k}"


def ulid_at(moment: datetime, rng: random.Random) -> str:
    """A ULID for ``moment`` (Crockford base32 of 48 bits of ms and 80 random bits)."""
    alphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
    value = (int(moment.timestamp() * 1000) << 80) | rng.getrandbits(80)
    return "".join(alphabet[(value >> shift) & 31] for shift in range(125, -1, -5))


# ------------------------------------------------------------------------------------------ writers
class Writer:
    """Bulk rows into one table at a time, in one transaction per table; subclasses know the driver."""

    def time(self, moment: datetime | None) -> Any:
        return moment

    def rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class SQLiteWriter(Writer):
    """``executemany`` on the file, durability and the rollback journal off while filling (a
    benchmark's catalog is rebuilt, never recovered); times as SQLAlchemy stores them on SQLite
    (naive UTC text). The indexes and triggers the migrations made are dropped for the fill and made
    again from their own SQL afterwards (one sorted build each instead of a B-tree insert per row),
    and the text index is rebuilt from the rows: the same schema, made faster."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path, isolation_level=None)
        self.journal = self.db.execute("PRAGMA journal_mode").fetchone()[0]
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("PRAGMA cache_size=-1000000")
        self.db.execute("PRAGMA temp_store=MEMORY")
        self.db.execute("PRAGMA foreign_keys=OFF")
        self.made = self.db.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE type IN ('index', 'trigger') AND sql IS NOT NULL"
            " AND tbl_name NOT LIKE 'item\\_search%' ESCAPE '\\' ORDER BY type, name"
        ).fetchall()
        for kind, name, _sql in self.made:
            self.db.execute(f'DROP {kind.upper()} "{name}"')
        self.search = bool(
            self.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'item_search'").fetchone()
        )

    def time(self, moment: datetime | None) -> Any:
        if moment is None:
            return None
        return moment.isoformat(" ", "microseconds")[:26]

    def rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        statement = f'INSERT INTO "{table}" ({", ".join(columns)}) VALUES ({", ".join("?" * len(columns))})'
        count = 0
        self.db.execute("BEGIN")
        for batch in batched(rows, BATCH):
            self.db.executemany(statement, batch)
            count += len(batch)
        self.db.execute("COMMIT")
        return count

    def close(self) -> None:
        self.db.execute("BEGIN")
        for _kind, _name, sql in self.made:
            self.db.execute(sql)
        if self.search:
            self.db.execute("INSERT INTO item_search(item_search) VALUES('rebuild')")
        self.db.execute("COMMIT")
        self.db.execute(f"PRAGMA journal_mode={self.journal}")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.execute("ANALYZE")
        self.db.close()


class PostgresWriter(Writer):
    """``COPY … FROM STDIN`` through psycopg, one transaction per table. The secondary indexes and
    foreign keys the migrations made are dropped for the fill and made again from their own
    definitions afterwards (one sorted build each, one check of each key over the whole table)."""

    def __init__(self, engine: Engine) -> None:
        self.raw = engine.raw_connection()
        db: Any = self.raw.driver_connection
        self.db = db
        schema = "connamespace = current_schema()::regnamespace"
        self.keys = self.db.execute(
            f"SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint"
            f" WHERE contype = 'f' AND {schema} ORDER BY 1, 2"
        ).fetchall()
        self.indexes = self.db.execute(
            f"SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema()"
            f" AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE {schema}) ORDER BY 1"
        ).fetchall()
        for table, name, _definition in self.keys:
            self.db.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        for name, _definition in self.indexes:
            self.db.execute(f'DROP INDEX "{name}"')
        self.db.commit()

    def rows(self, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        count = 0
        with self.db.cursor() as cursor, cursor.copy(f'COPY "{table}" ({", ".join(columns)}) FROM STDIN') as copy:
            for row in rows:
                copy.write_row(row)
                count += 1
        self.db.commit()
        return count

    def close(self) -> None:
        self.db.execute("SET maintenance_work_mem = '256MB'")
        for _name, definition in self.indexes:
            self.db.execute(definition)
        for table, name, definition in self.keys:
            self.db.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
        self.db.commit()
        # As autovacuum leaves a catalog that has settled: statistics, and the visibility map that
        # lets an index be read without the rows.
        tables = self.db.execute("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()").fetchall()
        self.db.commit()
        self.db.autocommit = True
        for (table,) in tables:
            self.db.execute(f'VACUUM ANALYZE "{table}"')
        self.db.autocommit = False
        self.raw.close()


def batched(rows: Iterable[Sequence[Any]], size: int) -> Iterator[list[Sequence[Any]]]:
    batch: list[Sequence[Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


# ------------------------------------------------------------------------------------------ generator
ITEM_COLUMNS = (
    "id", "sha256", "size", "digests", "original_name", "original_name_raw", "media_kind", "dock_id", "status",
    "created_at", "fixity_status", "fixity_checked_at", "case_number", "captured_at", "capture_tz",
    "captured_place", "collector", "proof_object", "received_at", "deadline", "deadline_provisional", "late",
    "working_days_late", "review_status", "classification", "media",
)  # fmt: skip
FACT_COLUMNS = ("item_id", "field", "value", "source", "chosen", "reason", "recorded_at")
ISSUE_COLUMNS = ("item_id", "code", "message", "created_at")
SIGHTING_COLUMNS = (
    "id", "dock_id", "source_path", "source_path_raw", "path_key", "size", "mtime_ns", "received_at", "status",
    "item_id", "disposition", "disposed_path", "source_policy", "attempts", "updated_at",
)  # fmt: skip
STAGE_COLUMNS = ("item_id", "stage", "status", "attempts", "tool", "updated_at")
DERIVATIVE_COLUMNS = (
    "id", "item_id", "kind", "profile", "profile_version", "status", "progress", "sha256", "size", "store_key",
    "verified", "verification", "tool", "created_at", "updated_at",
)  # fmt: skip
EVENT_COLUMNS = ("at", "actor", "action", "target", "tool", "details", "prev_hash", "hash")


@dataclass
class Made:
    """What the generator made that the queries look for (and the smoke test checks)."""

    shape: Shape
    rows: dict[str, int] = field(default_factory=dict)
    item_ids: list[str] = field(default_factory=list)  # a sample, in listing order
    plain_ids: list[str] = field(default_factory=list)  # a sample of those every custodian may see in full
    cursors: list[tuple[datetime, str]] = field(default_factory=list)  # deep in the listing
    case_items: dict[str, int] = field(default_factory=dict)  # visible-to-all items per case (sampled cases)
    late: int = 0
    missing: dict[str, int] = field(default_factory=dict)
    damaged: int = 0
    unclassified: int = 0
    officer_items: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass(frozen=True)
class ItemRow:
    """One generated item and the facts the other tables derive from it."""

    values: tuple[Any, ...]
    id: str
    created_at: datetime
    kind: str
    name: str
    dock: str
    facts: dict[str, Any]
    late: bool
    file_issues: tuple[str, ...]
    sha256: str


class Generator:
    """The rows of one catalog, the same for the same size every time."""

    def __init__(self, shape: Shape, writer: Writer) -> None:
        self.shape = shape
        self.w = writer
        self.made = Made(shape)
        self.case_class = [weighted(random.Random(SEED + k), CASE_CLASSES) for k in range(shape.cases)]
        self.sample_every = max(1, shape.items // 2000)
        self.watch_cases = {case_number(k) for k in range(0, shape.cases, max(1, shape.cases // 50))}

    def run(self) -> Made:
        started = time.perf_counter()
        w, shape = self.w, self.shape
        now = START + SPAN
        made = self.made
        made.rows["dock"] = w.rows(
            "dock", ("id", "created_at"), ((dock_name(k), w.time(START)) for k in range(shape.docks))
        )
        made.rows["case"] = w.rows(
            "case",
            ("number", "target", "classification", "created_at", "updated_at"),
            (
                (case_number(k), target_name(k % shape.targets), self.case_class[k], w.time(START), w.time(START))
                for k in range(shape.cases)
            ),
        )
        made.rows["user_account"] = w.rows(
            "user_account",
            ("id", "name", "roles", "clearances", "approver", "disabled", "must_change_password", "failed_logins",
             "created_at", "updated_at"),
            (
                (CLEARED_ID, "bench-custodian-cleared", '["custodian"]', json.dumps(list(CLEARABLE)), False, False,
                 False, 0, w.time(now), w.time(now)),
                (PLAIN_ID, "bench-custodian", '["custodian"]', "[]", False, False, False, 0, w.time(now), w.time(now)),
            ),
        )  # fmt: skip
        # Items first, keeping what the other tables need in memory a batch at a time.
        pending: list[ItemRow] = []
        made.rows.update(dict.fromkeys(("item", "itemfact", "itemissue", "sighting", "stagerun", "derivative"), 0))
        made.rows["custodyevent"] = 0
        self.head = GENESIS
        chunk = 50_000
        for start in range(0, shape.items, chunk):
            pending = [self.item(i) for i in range(start, min(shape.items, start + chunk))]
            made.rows["item"] += w.rows("item", ITEM_COLUMNS, (row.values for row in pending))
            made.rows["itemfact"] += w.rows("itemfact", FACT_COLUMNS, self.facts(pending))
            made.rows["itemissue"] += w.rows("itemissue", ISSUE_COLUMNS, self.issues(pending))
            made.rows["sighting"] += w.rows("sighting", SIGHTING_COLUMNS, self.sightings(pending))
            made.rows["stagerun"] += w.rows("stagerun", STAGE_COLUMNS, self.stages(pending))
            made.rows["derivative"] += w.rows("derivative", DERIVATIVE_COLUMNS, self.derivatives(pending))
            made.rows["custodyevent"] += w.rows("custodyevent", EVENT_COLUMNS, self.events(pending))
        w.close()
        made.seconds = time.perf_counter() - started
        return made

    def item(self, i: int) -> ItemRow:
        rng = random.Random(SEED * 1_000_003 + i)
        shape, w, made = self.shape, self.w, self.made
        step = SPAN / shape.items
        created = START + step * i + timedelta(microseconds=rng.randrange(max(1, int(step.total_seconds() * 1e6))))
        ident = ulid_at(created, rng)
        officer_k = rng.randrange(shape.officers)
        officer = officer_name(officer_k)
        dock = dock_name(officer_k % shape.docks)
        kind, extension, _ = rng.choices(KINDS, [k[2] for k in KINDS])[0]
        # Most records come in within two days; some a week or more later.
        delay = timedelta(hours=rng.uniform(400, 800) if rng.random() < 0.06 else rng.uniform(0.5, 48))
        captured = created - delay
        case_k = officer_k * 7 % shape.cases if rng.random() < 0.5 else rng.randrange(shape.cases)
        facts: dict[str, Any] = {
            "case_number": case_number(case_k),
            "captured_at": captured,
            "captured_place": f"{rng.choice(STREETS)} {rng.randint(1, 400)}",
            "collector": officer,
            "proof_object": rng.choice(PROOFS),
        }
        for name, share in MISSING.items():
            if rng.random() < share:
                facts[name] = None
        name = f"{officer.split('.')[0].upper()}{officer_k:05d}_{captured:%Y%m%d_%H%M%S}_{i % 10000:04d}.{extension}"
        deadline = (
            captured.replace(hour=16, minute=0, second=0, microsecond=0) + timedelta(days=3)
            if facts["captured_at"]
            else None
        )
        late = bool(deadline and created > deadline)
        days_late = (created - deadline).days + 1 if late and deadline else 0
        classification = weighted(rng, ITEM_CLASSES)
        file_issues = tuple(code for code, share in FILE_ISSUES if rng.random() < share)
        sha = hashlib.sha256(f"{SEED}:{i}".encode()).hexdigest()
        size = rng.randrange(200_000, 400_000_000) if kind == "video" else rng.randrange(50_000, 8_000_000)
        media = {"duration": round(rng.uniform(5, 1800), 1), "width": 1920, "height": 1080} if kind == "video" else {}
        fixity = rng.random() < 0.5
        values = (
            ident, sha, size, json.dumps({"md5": sha[:32]}), name, name.encode(), kind, dock, "stored",
            w.time(created), "ok" if fixity else None, w.time(created + timedelta(days=90)) if fixity else None,
            facts["case_number"], w.time(facts["captured_at"]), "Asia/Shanghai" if facts["captured_at"] else None,
            facts["captured_place"], facts["collector"], facts["proof_object"], w.time(created), w.time(deadline),
            issues.DEADLINE_PROVISIONAL in file_issues, late if deadline else None, days_late if deadline else None,
            "reviewed" if rng.random() < 0.7 else "pending-review", classification, json.dumps(media),
        )  # fmt: skip
        # What the queries look for and the smoke test checks.
        case_class = self.case_class[case_k] if facts["case_number"] else "unclassified"
        if i % self.sample_every == 0:
            made.item_ids.append(ident)
        if i >= shape.items * 9 // 10 and len(made.cursors) < 200 and i % 7 == 0:
            made.cursors.append((created, ident))
        plain = classification in ("none", "unclassified") and case_class in ("none", "unclassified")
        if plain and i % self.sample_every == 0:
            made.plain_ids.append(ident)
        if facts["case_number"] in self.watch_cases and plain:
            made.case_items[facts["case_number"]] = made.case_items.get(facts["case_number"], 0) + 1
        if plain:
            made.late += late
            for fact, value in facts.items():
                made.missing[fact] = made.missing.get(fact, 0) + (value is None)
            made.damaged += bool({issues.DAMAGED_MEDIA, issues.TRUNCATED_STREAM} & set(file_issues))
            made.unclassified += classification == case_class == "unclassified"
            if facts["collector"]:
                made.officer_items[officer] = made.officer_items.get(officer, 0) + 1
        return ItemRow(values, ident, created, kind, name, dock, facts, late, file_issues, sha)

    def facts(self, rows: list[ItemRow]) -> Iterator[tuple[Any, ...]]:
        w = self.w
        for row in rows:
            rng = random.Random(row.sha256)
            for fact, value in row.facts.items():
                if value is None:
                    continue
                shown = value.isoformat() if isinstance(value, datetime) else value
                sources = SOURCES[fact]
                yield (row.id, fact, json.dumps(shown), sources[0], True, "first source", w.time(row.created_at))
                if len(sources) > 1 and rng.random() < 0.2:
                    other = value - timedelta(minutes=8) if isinstance(value, datetime) else value
                    shown = other.isoformat() if isinstance(other, datetime) else other
                    yield (row.id, fact, json.dumps(shown), sources[1], False, None, w.time(row.created_at))

    def issues(self, rows: list[ItemRow]) -> Iterator[tuple[Any, ...]]:
        w = self.w
        for row in rows:
            codes = [issues.MISSING_FACT[fact] for fact, value in row.facts.items() if value is None]
            codes += ([issues.LATE] if row.late else []) + list(row.file_issues)
            for code in codes:
                yield (row.id, code, issues.MESSAGES.get(code, code), w.time(row.created_at))

    def sightings(self, rows: list[ItemRow]) -> Iterator[tuple[Any, ...]]:
        w = self.w
        for row in rows:
            path = f"/srv/evidence/inbox/{row.dock}/{row.name}"
            done = f"/srv/evidence/processed/{row.dock}/{row.name}"
            yield (
                row.id[:-1] + "S", row.dock, path, path.encode(), hashlib.sha256(path.encode()).hexdigest(),
                1000, int(row.created_at.timestamp() * 1e9), w.time(row.created_at), "stored", row.id,
                "moved", done, "move", 1, w.time(row.created_at),
            )  # fmt: skip

    def stages(self, rows: list[ItemRow]) -> Iterator[tuple[Any, ...]]:
        w = self.w
        for row in rows:
            yield (row.id, "probe", "done", 1, "ffprobe 6.1", w.time(row.created_at))
            failed = issues.DAMAGED_MEDIA in row.file_issues
            yield (row.id, "derive", "failed" if failed else "done", 1, "ffmpeg 6.1", w.time(row.created_at))

    def derivatives(self, rows: list[ItemRow]) -> Iterator[tuple[Any, ...]]:
        w = self.w
        made = {"video": (("access", "web-mp4"), ("poster", "poster")), "audio": (("access", "web-m4a"),)}
        for row in rows:
            for n, (kind, profile) in enumerate(made.get(row.kind, (("thumbnail", "thumb"),))):
                sha = hashlib.sha256(f"{row.sha256}:{profile}".encode()).hexdigest()
                yield (
                    row.id[:-1] + "DEFG"[n], row.id, kind, profile, 2, "verified", 1.0, sha, 100_000,
                    f"objects/{sha[:2]}/{sha}", True, '{"method":"decode"}', "ffmpeg 6.1", w.time(row.created_at),
                    w.time(row.created_at),
                )  # fmt: skip

    def events(self, rows: list[ItemRow]) -> Iterator[tuple[Any, ...]]:
        """About ten events per item, sealed into one chain in the order generated."""
        w = self.w
        for row in rows:
            target = f"item:{row.id}"
            actions = list(ACTIONS) + (["fixity-checked"] if row.sha256[0] < "8" else [])
            for n, action in enumerate(actions):
                at = row.created_at + timedelta(seconds=n * 37)
                actor = "worker" if n < 4 else (row.facts["collector"] or "custodian")
                tool = "evidence 0.1" if n < 4 else None
                details = canonical_json({"dock": row.dock} if n == 0 else {"via": "web"} if n >= 6 else {})
                sealed = event_hash(
                    at=at, actor=actor, action=action, target=target, tool=tool, details=details, prev_hash=self.head
                )
                yield (w.time(at), actor, action, target, tool, details, self.head, sealed)
                self.head = sealed


CLEARED_ID = "01BENCHCVST0DYC1EAREDA11AA"
PLAIN_ID = "01BENCHCVST0DYP1A1NNNNNNNN"


def viewers() -> dict[str, Viewer]:
    """The two custodians the queries run as: cleared for every class, and cleared for none."""
    return {
        "cleared": Viewer(
            name="bench-custodian-cleared",
            roles=frozenset({Role.CUSTODIAN}),
            clearances=frozenset(CLEARABLE),
            user_id=CLEARED_ID,
        ),
        "uncleared": Viewer(name="bench-custodian", roles=frozenset({Role.CUSTODIAN}), user_id=PLAIN_ID),
    }


# ------------------------------------------------------------------------------------------ databases
@dataclass
class Catalog:
    """A catalog to fill and time: its URL for the project's engine, and how to remove it."""

    database: str
    items: int
    url: str
    drop: Callable[[], None]
    writer: Callable[[Engine], Writer]


def sqlite_catalog(work: Path, items: int) -> Catalog:
    path = work / f"catalog-{items}.sqlite"

    def drop() -> None:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)

    return Catalog("sqlite", items, f"sqlite:///{path}", drop, lambda _engine: SQLiteWriter(path))


def postgres_catalog(admin_url: str, items: int, *, schema: str | None = None) -> Catalog:
    schema = schema or f"bench_catalog_{items}"
    sep = "&" if "?" in admin_url else "?"

    def drop() -> None:
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        admin.dispose()

    return Catalog("postgresql", items, f"{admin_url}{sep}options=-csearch_path%3D{schema}", drop, PostgresWriter)


def create(catalog: Catalog) -> Engine:
    """An empty catalog at the newest revision, made by the project's migrations."""
    catalog.drop()
    if catalog.database == "postgresql":
        schema = catalog.url.rsplit("%3D", 1)[1]
        admin = create_engine(catalog.url.split("?options=")[0].split("&options=")[0], isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        admin.dispose()
    engine = get_engine(catalog.url)
    migrate(engine)
    return engine


def fill(catalog: Catalog) -> Made:
    """Make the catalog and fill it with :class:`Shape` ``items`` rows."""
    engine = create(catalog)
    engine.dispose()  # the migration's connections closed: the writer changes how the file is kept
    made = Generator(Shape.of(catalog.items), catalog.writer(engine)).run()
    dispose_engines()
    return made


def survey(catalog: Catalog) -> Made:
    """What the queries look for, read back from a catalog made earlier (``--queries-only``)."""
    engine = get_engine(catalog.url)
    made = Made(Shape.of(catalog.items))
    with Session(engine) as session:
        ids = session.exec(select(Item.id).order_by(Item.created_at, Item.id)).all()  # type: ignore[arg-type]
        if not ids:
            raise BenchError(f"no catalog of {catalog.items} items to time at {catalog.url}")
        made.item_ids = list(ids[:: max(1, len(ids) // 2000)])
        open_cases = select(Case.number).where(col(Case.classification) == "none")
        plain = select(Item.id).where(
            col(Item.classification).in_(("none", "unclassified")),
            or_(col(Item.case_number).is_(None), col(Item.case_number).in_(open_cases)),
        )
        made.plain_ids = list(session.exec(plain.limit(2000)).all())
        deep = session.exec(
            select(Item.created_at, Item.id).order_by(Item.created_at, Item.id).offset(len(ids) * 9 // 10).limit(200)  # type: ignore[arg-type]
        ).all()
        made.cursors = [(moment, ident) for moment, ident in deep]
    return made


# ------------------------------------------------------------------------------------------ queries
@dataclass(frozen=True)
class Query:
    """One read as an interface makes it; ``run`` is given the session, viewer and the run number."""

    name: str
    run: Callable[[Session, Viewer, int], object]
    target_ms: float = TARGET_MS
    runs: int | None = None  # timed runs, when fewer than the others'


def queries(made: Made, zone: Any, work: Path) -> list[Query]:
    shape = made.shape
    store = LocalStore(work / "store")
    ids = made.item_ids
    month = timedelta(days=30)

    def pick(values: Sequence[Any], n: int) -> Any:
        return values[(n * 7919) % len(values)]

    late_sample: dict[str, list[str]] = {}

    def late_ids(session: Session, viewer: Viewer) -> list[str]:
        """Late records the viewer may page from, read once (untimed in effect: the warm-up reads them)."""
        if viewer.name not in late_sample:
            page = overdue_page(session, viewer=viewer, limit=MAX_PAGE)
            late_sample[viewer.name] = [i.id for g in page.groups for i in g.items][::25] or [""]
        return late_sample[viewer.name]

    def by_pk(session: Session, _viewer: Viewer, n: int) -> object:
        return session.exec(select(Item).where(Item.id == pick(ids, n))).one()

    def by_case(session: Session, viewer: Viewer, n: int) -> object:
        # As the case's page asks for them (a page and its count); cases hold from one to about a
        # thousand items.
        filters = ItemFilter(case_number=case_number(n * 31 % shape.cases))
        return page_items(session, viewer=viewer, filters=filters, limit=PAGE)

    def officer_range(session: Session, viewer: Viewer, n: int) -> object:
        start = START + SPAN * ((n * 13 % 90) / 100)
        filters = ItemFilter(
            officer=officer_name(n * 17 % shape.officers), captured_from=start, captured_to=start + 3 * month
        )
        return page_items(session, viewer=viewer, filters=filters, limit=PAGE)

    def queue(key: str) -> Callable[[Session, Viewer, int], object]:
        filters = next(q for q in QUEUES if q.key == key).search.filters(zone)
        return lambda session, viewer, _n: page_items(session, viewer=viewer, filters=filters, limit=PAGE)

    def queue_counts(session: Session, viewer: Viewer, _n: int) -> object:
        # As the queues page counts them: exact up to COUNT_LIMIT.
        return [
            count_items(session, viewer=viewer, filters=q.search.filters(zone), at_most=COUNT_LIMIT) for q in QUEUES
        ]

    def count_late(session: Session, viewer: Viewer, _n: int) -> object:
        return count_items(session, viewer=viewer, filters=ItemFilter(late=True), at_most=COUNT_LIMIT)

    def search(words: Callable[[int], str]) -> Callable[[Session, Viewer, int], object]:
        return lambda session, viewer, n: page_items(
            session, viewer=viewer, filters=ItemFilter(text=words(n)), limit=PAGE
        )

    def overdue(session: Session, viewer: Viewer, _n: int) -> object:
        return overdue_page(session, viewer=viewer, limit=PAGE)

    def overdue_deep(session: Session, viewer: Viewer, n: int) -> object:
        # A page further on: after the n-th late record of those sampled.
        return overdue_page(session, viewer=viewer, limit=PAGE, after=pick(late_ids(session, viewer), n))

    def detail(session: Session, viewer: Viewer, n: int) -> object:
        return item_detail(
            session, ident=pick(made.plain_ids, n), viewer=viewer, via="bench", store=store, tool="bench"
        )

    def deep_page(session: Session, viewer: Viewer, n: int) -> object:
        moment, ident = pick(made.cursors, n)
        return page_items(session, viewer=viewer, cursor=Cursor(moment, ident), limit=PAGE)

    def first_page(session: Session, viewer: Viewer, _n: int) -> object:
        return page_items(session, viewer=viewer, limit=PAGE)

    def report(month: bool) -> Callable[[Session, Viewer, int], object]:
        def run(session: Session, viewer: Viewer, n: int) -> object:
            # As an auditor with the viewer's clearances: auditors also read the retrievals.
            auditor = replace(viewer, roles=frozenset({Role.AUDITOR}))
            first = (START + SPAN * ((n * 13 % 90) / 100)).date().replace(day=1)
            period = Period(first, (first + timedelta(days=31)).replace(day=1) - timedelta(days=1), zone)
            return build_report(session, viewer=auditor, period=period if month else Period(None, None, zone))

        return run

    return [
        Query("pk lookup (reference)", by_pk),
        Query("items by case", by_case),
        Query("officer + capture dates", officer_range),
        Query("queue: missing case number", queue("missing.case_number")),
        Query("queue: missing place", queue("missing.captured_place")),
        Query("queue: late", queue("late")),
        Query("queue: damaged", queue("damaged")),
        Query("queue: unclassified", queue("unclassified")),
        Query("queue counts (all queues)", queue_counts),
        Query("count_items late", count_late),
        Query("q officer name", search(lambda n: officer_name(n * 17 % shape.officers).upper())),
        Query("q street word", search(lambda n: STREETS[n % len(STREETS)].split()[0].lower())),
        Query("q file name part", search(lambda n: f"_{(n * 37) % 10000:04d}.")),
        Query("q target", search(lambda n: target_name(n * 11 % shape.targets))),
        Query("q 2 characters", search(lambda n: f"{n % 10}X")),
        Query("overdue report (page)", overdue),
        Query("overdue report, later page", overdue_deep),
        Query("item detail + custody", detail),
        Query("first page", first_page),
        Query("keyset page at 90%", deep_page),
        Query("report, one month", report(month=True), REPORT_TARGET_MS, REPORT_RUNS),
        Query("report, all time", report(month=False), REPORT_TARGET_MS, REPORT_RUNS),
    ]


def time_queries(catalog: Catalog, made: Made, *, runs: int, work: Path) -> dict[str, dict[str, Any]]:
    """Every query as every viewer: {viewer/query: {p50, p95, p99 (ms), x_pk}}."""
    from zoneinfo import ZoneInfo

    engine = get_engine(catalog.url)
    figures: dict[str, dict[str, Any]] = {}
    for who, viewer in viewers().items():
        reference = None
        for query in queries(made, ZoneInfo("Asia/Shanghai"), work):
            if query.name.startswith("pk") and reference is not None:
                continue
            seconds: list[float] = []
            for n in range(-1 if query.runs else -3, query.runs or runs):  # untimed runs warm the caches
                with Session(engine) as session:
                    started = time.perf_counter()
                    query.run(session, viewer, n)
                    elapsed = time.perf_counter() - started
                    session.rollback()  # item_detail records a view; the catalog stays as made
                if n >= 0:
                    seconds.append(elapsed * 1000)
            p50, p95, p99 = (percentile(seconds, q) for q in (50, 95, 99))
            if reference is None:
                reference = p50
            figures[f"{who}/{query.name}"] = {
                "viewer": who,
                "query": query.name,
                "p50_ms": p50,
                "p95_ms": p95,
                "p99_ms": p99,
                "x_pk": p50 / reference if reference else None,
                "target_ms": query.target_ms,
            }
    dispose_engines()
    return figures


# ------------------------------------------------------------------------------------------ running
@dataclass(frozen=True)
class Config:
    sizes: tuple[int, ...]
    databases: tuple[str, ...]
    runs: int
    work: Path
    postgres: str
    keep: bool
    queries_only: bool


def catalog_for(cfg: Config, database: str, items: int) -> Catalog:
    if database == "sqlite":
        return sqlite_catalog(cfg.work, items)
    return postgres_catalog(cfg.postgres, items)


def run_one(cfg: Config, database: str, items: int) -> dict[str, Any]:
    catalog = catalog_for(cfg, database, items)
    try:
        if cfg.queries_only:
            made = survey(catalog)
        else:
            print(f"\nfilling {database} with {items:,} items …", flush=True)
            made = fill(catalog)
            rate = sum(made.rows.values()) / made.seconds
            print(f"  {sum(made.rows.values()):,} rows in {made.seconds:.0f} s ({rate:,.0f} rows/s)", flush=True)
        figures = time_queries(catalog, made, runs=cfg.runs, work=cfg.work)
    finally:
        dispose_engines()
        if not cfg.keep:
            catalog.drop()
    rows = [
        (
            f"{f['viewer']:<9} {f['query']}",
            f"p50 {f['p50_ms']:8.2f}  p95 {f['p95_ms']:8.2f}  p99 {f['p99_ms']:8.2f} ms  {f['x_pk']:7.1f}× pk"
            + ("" if f["p95_ms"] <= f["target_ms"] else "  ABOVE TARGET"),
        )
        for f in figures.values()
    ]
    print_section(f"{database}, {items:,} items", rows)
    return {
        "database": database,
        "items": items,
        "rows": made.rows,
        "fill_seconds": made.seconds or None,
        "queries": figures,
        "worst_p95_ms": max(f["p95_ms"] for f in figures.values()),
        "above_target": [name for name, f in figures.items() if f["p95_ms"] > f["target_ms"]],
    }


def run_all(cfg: Config) -> tuple[Results, bool]:
    results: Results = {
        "context": {
            "python": platform.python_version(),
            "machine": platform.machine(),
            "cpus": os.cpu_count(),
            "sqlite": sqlite3.sqlite_version,
            "runs": cfg.runs,
            "target_p95_ms": TARGET_MS,
            "report_target_p95_ms": REPORT_TARGET_MS,
        },
        "runs": [],
    }
    ok = True
    for items in cfg.sizes:
        for database in cfg.databases:
            try:
                figures = run_one(cfg, database, items)
            except (BenchError, OSError) as exc:
                print(f"\n{database}, {items:,} items: FAILED: {exc}", file=sys.stderr)
                results["runs"].append({"database": database, "items": items, "error": str(exc)})
                ok = False
                continue
            results["runs"].append(figures)
            ok = ok and not figures["above_target"]
    return results, ok


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--items", required=True, help="Catalog sizes, e.g. 10000 or 10000,100000,1000000.")
    parser.add_argument("--database", choices=("sqlite", "postgresql", "both"), default="both")
    parser.add_argument(
        "--runs", type=int, default=DEFAULT_RUNS, help=f"Timed runs per query (default {DEFAULT_RUNS})."
    )
    parser.add_argument("--json", type=Path, help="Also write every figure to this JSON file.")
    parser.add_argument("--workdir", type=Path, help="Where the SQLite catalogs go (default: a temporary directory).")
    parser.add_argument("--postgres", default=POSTGRES_URL, help="PostgreSQL server URL (a schema per catalog).")
    parser.add_argument("--keep", action="store_true", help="Keep the catalogs (for --queries-only later).")
    parser.add_argument("--queries-only", action="store_true", help="Time the catalogs kept by an earlier --keep.")
    return parser.parse_args(argv)


def make_config(args: argparse.Namespace) -> Config:
    try:
        sizes = tuple(int(part.replace("_", "")) for part in args.items.split(","))
    except ValueError:
        raise SystemExit(f"--items {args.items!r}: give whole numbers, e.g. 10000,100000") from None
    if any(size < 100 for size in sizes):
        raise SystemExit("--items: at least 100 items")
    if args.runs < 1:
        raise SystemExit("--runs: at least 1")
    if args.queries_only and not args.workdir and args.database != "postgresql":
        raise SystemExit("--queries-only needs the --workdir of the --keep run that made the SQLite catalogs")
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        work = args.workdir if (args.keep or args.queries_only) else Path(tempfile.mkdtemp(dir=args.workdir))
    else:
        work = Path(tempfile.mkdtemp(prefix="bench-catalog-"))
    databases = ("sqlite", "postgresql") if args.database == "both" else (args.database,)
    keep = args.keep or args.queries_only
    return Config(sizes, databases, args.runs, work, args.postgres, keep, args.queries_only)


def main(argv: Sequence[str] | None = None) -> int:
    cfg = make_config(parse_args(argv))
    return run_bench(lambda: run_all(cfg), work=cfg.work, keep=cfg.keep, json_path=parse_args(argv).json)


if __name__ == "__main__":
    raise SystemExit(main())
