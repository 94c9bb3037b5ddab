"""Where the project's configuration lives and how its TOML files are read: one place for the
project root and one reader, so every loader reports an unreadable or malformed file the same way."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pipeline.errors import PipelineError

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = PROJECT_ROOT / "config"


class ConfigFileError(PipelineError):
    """A configuration file cannot be read or is not valid TOML; ``reason`` says which."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


def read_toml(path: Path) -> dict[str, Any]:
    """The tables of a TOML file; raises :class:`ConfigFileError` when it cannot be used."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigFileError(path, f"cannot be read: {exc.strerror or exc}") from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigFileError(path, f"is not valid TOML: {exc}") from exc
