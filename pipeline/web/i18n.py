"""Pages in Chinese (the default) or English: a translation is a TOML file of keys and texts in
``locales/`` (``zh.toml``, ``en.toml``), nested tables giving dotted keys. A key missing from a
language falls back to English, then to the key itself, so a page never fails for a missing text.

The language is the ``lang`` cookie when it names one we have, else the best of the browser's
``Accept-Language`` we have, else Chinese.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOCALES_DIR = Path(__file__).resolve().parent / "locales"
DEFAULT = "zh"
FALLBACK = "en"
LANG_COOKIE = "lang"


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    flat: dict[str, str] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = str(value)
    return flat


@dataclass(frozen=True)
class Translations:
    """Every language's texts, read once when the application is made."""

    texts: Mapping[str, Mapping[str, str]]

    @classmethod
    def load(cls, folder: Path = LOCALES_DIR) -> Translations:
        texts = {}
        for path in sorted(folder.glob("*.toml")):
            with path.open("rb") as handle:
                texts[path.stem] = _flatten(tomllib.load(handle))
        return cls(texts)

    @property
    def languages(self) -> tuple[str, ...]:
        """The languages we have, the default first."""
        return tuple(sorted(self.texts, key=lambda code: (code != DEFAULT, code)))

    def text(self, lang: str, key: str, **values: object) -> str:
        """The text of ``key`` in ``lang`` (English, then the key itself, when missing), with
        ``{name}`` fields filled from ``values``."""
        found = self.texts.get(lang, {}).get(key) or self.texts.get(FALLBACK, {}).get(key) or key
        if values:
            try:
                return found.format_map(values)
            except (KeyError, IndexError, ValueError):
                return found
        return found

    def translator(self, lang: str) -> Translator:
        return Translator(self, lang)

    def choose(self, cookie: str | None, accept_language: str | None) -> str:
        """The language of a request: the cookie's, the browser's best, or the default."""
        if cookie is not None and cookie in self.texts:
            return cookie
        for code in preferred(accept_language or ""):
            if code in self.texts:
                return code
        return DEFAULT


@dataclass(frozen=True)
class Translator:
    """``t("key", name=…)`` in templates: one language's texts."""

    translations: Translations
    lang: str

    def __call__(self, key: str, **values: object) -> str:
        return self.translations.text(self.lang, key, **values)


def preferred(header: str) -> list[str]:
    """The primary language tags of an ``Accept-Language`` header, best first (``q=0`` dropped;
    anything that cannot be read is skipped)."""
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(header[:1000].split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                continue
        primary = tag.strip().split("-")[0].lower()
        if primary and primary != "*" and primary.isascii() and primary.isalpha() and quality > 0:
            ranked.append((-quality, index, primary))
    return [code for _, _, code in sorted(ranked)]
