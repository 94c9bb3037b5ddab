"""File names: body cameras write the device, the officer, the start time, a file number and an
"important" mark into the name, often more reliably than into the file's tags.

The original name (the stored object is named by its hash) is matched against the profiles of
:mod:`pipeline.metadata.profiles` in order; the first profile whose pattern matches the whole name
gives the facts, labelled ``filename:<profile>``. A name no profile matches gives nothing: most
files are not named by a known convention, and that is not a problem.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pipeline.metadata.facts import Extraction, ExtractionContext, Fact, Problem
from pipeline.metadata.profiles import FLAG_GROUPS, INTEGER_GROUPS, TIME_GROUP, FilenameProfile
from pipeline.metadata.timestamps import format_timestamp
from pipeline.stage import TOOL
from pipeline.stage.issues import UNREADABLE_METADATA


@dataclass(frozen=True)
class FilenameExtractor:
    name: str = "filename"

    def accepts(self, media_kind: str, original_name: str) -> bool:
        return bool(original_name)

    def extract(self, path: Path, context: ExtractionContext) -> Extraction:
        shown = context.shown_name
        for profile in context.filename_profiles:
            match = profile.pattern.fullmatch(shown)
            if match is not None:
                facts, problems = _facts(profile, match.groupdict(), shown)
                return Extraction(self.name, TOOL, tuple(facts), None, tuple(problems))
        return Extraction(self.name, TOOL)


def _facts(profile: FilenameProfile, groups: dict[str, Any], shown: str) -> tuple[list[Fact], list[Problem]]:
    source = f"filename:{profile.name}"
    facts: list[Fact] = []
    problems: list[Problem] = []
    for field in profile.pattern.groupindex:
        if field.startswith("_"):
            continue
        text = groups.get(field)
        if field in FLAG_GROUPS:
            facts.append(Fact(field, text is not None, source))
        elif text is None or not text.strip():
            continue
        elif field == TIME_GROUP:
            try:
                moment = datetime.strptime(text, profile.time_format or "")
            except ValueError:
                problems.append(
                    Problem(
                        UNREADABLE_METADATA,
                        f"{shown}: the time {text!r} in the name is not a valid date and time "
                        f"(profile {profile.name}, format {profile.time_format})",
                    )
                )
                continue
            facts.append(Fact(field, format_timestamp(moment), source))
        elif field in INTEGER_GROUPS:
            try:
                facts.append(Fact(field, int(text), source))
            except ValueError:
                problems.append(Problem(UNREADABLE_METADATA, f"{shown}: {field} {text!r} in the name is not a number"))
        else:
            facts.append(Fact(field, text.strip(), source))
    return facts, problems
