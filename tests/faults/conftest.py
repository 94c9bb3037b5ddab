"""The fault suite's report: every fault test adds a row (trials, files, lost, duplicated, sources
removed before their stored copy was verified, time to recover), shown at the end of the run.

Short by default (a few trials, within the suite's time); ``EVIDENCE_FAULT_TRIALS=N`` runs N trials
of each fault (the long mode), ``EVIDENCE_FAULT_SEED`` repeats a run's random choices."""

from __future__ import annotations

import os
import random
from typing import Any

import pytest

ROWS: list[dict[str, Any]] = []
COLUMNS = ("fault", "trials", "files", "lost", "duplicated", "removed_early", "recover_s", "seed")


def fault_trials(short: int) -> int:
    return int(os.environ.get("EVIDENCE_FAULT_TRIALS", short))


@pytest.fixture
def fault_random() -> random.Random:
    seed = int(os.environ.get("EVIDENCE_FAULT_SEED", random.SystemRandom().randrange(1 << 30)))
    chosen = random.Random(seed)
    chosen.seed_value = seed  # type: ignore[attr-defined]
    return chosen


@pytest.fixture
def fault_report() -> Any:
    return ROWS.append


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not ROWS:
        return
    terminalreporter.section("fault suite")
    terminalreporter.write_line("  ".join(f"{c:>14}" for c in COLUMNS))
    for row in ROWS:
        terminalreporter.write_line("  ".join(f"{row.get(c, '')!s:>14}" for c in COLUMNS))
