"""Which extractors run on a file, and running them.

Extractors are picked by media kind and name (their ``accepts``); every one that accepts runs and
gives its own :class:`~pipeline.metadata.facts.Extraction`, so the record shows what each tool said.
exiftool is the fallback: it runs only where the others fall short.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

from pipeline.metadata.exif import ExifreadExtractor
from pipeline.metadata.exiftool import ExiftoolExtractor
from pipeline.metadata.facts import Extraction, ExtractionContext, Extractor, Problem, suffix_of
from pipeline.metadata.ffprobe import FfprobeExtractor
from pipeline.metadata.filename import FilenameExtractor
from pipeline.stage.issues import EXTRACTOR_FAILED

log = logging.getLogger(__name__)

# Order is the order of the results: the file's own bytes first, its name last.
DEFAULT_EXTRACTORS: tuple[Extractor, ...] = (
    FfprobeExtractor(),
    ExifreadExtractor(),
    ExiftoolExtractor(),
    FilenameExtractor(),
)
# exiftool (one long-running process, but slower per file than the others) runs where ffprobe and
# exifread are known to fall short, or when they found no capture time in an image or video.
SHORTFALL_SUFFIXES = frozenset({"heic", "heif", "dng", "tif", "tiff", "mxf", "mts", "m2ts", "ts", "dv", "avi", "mpg"})


def extractors_for(probe_engine: str) -> tuple[Extractor, ...]:
    """The default extractors, container and streams read by ``probe_engine`` ("pyav" or "ffprobe")."""
    if probe_engine == FfprobeExtractor.engine:
        return DEFAULT_EXTRACTORS
    return tuple(
        FfprobeExtractor(engine=probe_engine) if isinstance(e, FfprobeExtractor) else e for e in DEFAULT_EXTRACTORS
    )


def extract_all(
    path: Path,
    media_kind: str,
    context: ExtractionContext,
    extractors: Sequence[Extractor] = DEFAULT_EXTRACTORS,
) -> list[Extraction]:
    """Run every extractor that accepts a file of ``media_kind`` named ``context.original_name``.

    Never raises for the file's sake: bad input is a problem in the results. An extractor that
    breaks anyway (a defect) is reported as an ``extractor-failed`` problem and the others still run.
    """
    context = dataclasses.replace(context, media_kind=media_kind)
    results: list[Extraction] = []
    for extractor in extractors:
        if not extractor.accepts(media_kind, context.original_name):
            continue
        if isinstance(extractor, ExiftoolExtractor) and not _falls_short(results, context):
            continue
        try:
            results.append(extractor.extract(path, context))
        except Exception as exc:  # one broken extractor must not cost the file its other metadata
            log.exception("extractor %s failed on %s", extractor.name, context.shown_name)
            problem = Problem(EXTRACTOR_FAILED, f"{context.shown_name}: the {extractor.name} extractor failed: {exc!r}")
            results.append(Extraction(extractor.name, "unknown", problems=(problem,)))
    return results


def _falls_short(results: Sequence[Extraction], context: ExtractionContext) -> bool:
    if suffix_of(context.original_name) in SHORTFALL_SUFFIXES:
        return True
    return not any(fact.field == "captured_at" for result in results for fact in result.facts)
