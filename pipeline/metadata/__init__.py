"""Metadata extraction: when, where, by which device and officer a recording was made, what it
contains, and whether it is whole, read from the stored file and its original name.

Each extractor (ffprobe, exifread, exiftool, file-name profiles) returns facts labelled with their
source and problems in plain language; :func:`extract_all` runs those that apply to a file.
"""

from pipeline.metadata.exif import ExifreadExtractor
from pipeline.metadata.exiftool import ExiftoolExtractor
from pipeline.metadata.facts import (
    FIELDS,
    Extraction,
    ExtractionContext,
    Extractor,
    Fact,
    MediaInfo,
    Problem,
    StreamInfo,
)
from pipeline.metadata.ffprobe import FfprobeExtractor
from pipeline.metadata.filename import FilenameExtractor
from pipeline.metadata.profiles import (
    DEFAULT_FILENAME_PATTERNS,
    FilenamePatternError,
    FilenameProfile,
    load_filename_profiles,
)
from pipeline.metadata.registry import DEFAULT_EXTRACTORS, extract_all

__all__ = [
    "DEFAULT_EXTRACTORS",
    "DEFAULT_FILENAME_PATTERNS",
    "FIELDS",
    "ExifreadExtractor",
    "ExiftoolExtractor",
    "Extraction",
    "ExtractionContext",
    "Extractor",
    "Fact",
    "FfprobeExtractor",
    "FilenameExtractor",
    "FilenamePatternError",
    "FilenameProfile",
    "MediaInfo",
    "Problem",
    "StreamInfo",
    "extract_all",
    "load_filename_profiles",
]
