"""Price rows: the shipped data file (prices.toml) plus routing-file overrides, and the row a model matches.

Matching: the model name the upstream is asked for is lower-cased and compared with each row's pattern
(`fnmatch` rules: `*`, `?`, `[...]`). Rows from the routing file are consulted first, then the shipped
ones. Within each set the most specific matching row wins: a row naming its provider beats one that
does not, then the pattern with more literal characters (`gpt-image-2.5*` beats `gpt-image-*`), then
the earlier row in the file.
"""
from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from importlib import resources
from typing import Any, Mapping

from marshmallow import ValidationError

from app.pricing.schema import load_row

DATA_FILE = "prices.toml"
OVERRIDE_SOURCE = "routing file (GATEWAY_CONFIG)"
WILDCARDS = "*?[]!"


class PriceTableError(ValueError):
    """A price row that cannot be used; the message names the row and the key."""


@dataclass(frozen=True)
class PriceRow:
    """One checked row; which fields matter depends on `unit` (see prices.toml's header)."""

    pattern: str
    unit: str
    source: str
    read: str | None = None
    provider: str | None = None
    retired: str | None = None
    verified: bool = True
    note: str | None = None
    text_input: Decimal | None = None
    cached_text_input: Decimal | None = None
    image_input: Decimal | None = None
    cached_image_input: Decimal | None = None
    text_output: Decimal | None = None
    image_output: Decimal | None = None
    size_rule: str | None = None
    output_tokens: Mapping[str, int] = field(default_factory=dict)
    formula: Mapping[str, int] = field(default_factory=dict)
    input_image_tokens: int | None = None
    partial_image_tokens: int | None = None
    max_text_output_tokens: int | None = None
    price: Decimal | None = None
    per_image: Mapping[str, Decimal] = field(default_factory=dict)
    first_megapixel: Decimal | None = None
    extra_megapixel: Decimal | None = None
    input_megapixel: Decimal | None = None
    megapixel_pixels: int = 1024 * 1024
    max_megapixels: int | None = None
    size_tiers: Mapping[str, str] = field(default_factory=dict)
    auto_size: str | None = None
    qualities: Mapping[str, str] = field(default_factory=dict)
    ignores_size_and_quality: bool = False

    def matches(self, provider: str, model: str) -> bool:
        return (self.provider is None or self.provider == provider) and fnmatch.fnmatchcase(model, self.pattern)

    def specificity(self) -> tuple[bool, int]:
        return self.provider is not None, sum(1 for char in self.pattern if char not in WILDCARDS)


@lru_cache(maxsize=1)
def shipped_raw() -> dict[str, dict]:
    """The data file's rows as TOML tables, read once per process."""
    text = resources.files("app.pricing").joinpath(DATA_FILE).read_text(encoding="utf-8")
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PriceTableError(f"{DATA_FILE} is not valid TOML: {exc}") from None
    prices = document.get("prices")
    if not isinstance(prices, dict) or set(document) - {"prices"}:
        raise PriceTableError(f"{DATA_FILE} must hold only [prices.\"<model pattern>\"] tables")
    return prices


def build_rows(raw: Mapping[str, Any], *, override: bool = False,
               base: Mapping[str, dict] | None = None) -> tuple[PriceRow, ...]:
    """Check and build rows. An override whose pattern is a shipped one changes only the fields it sets."""
    rows = []
    for pattern, fields in raw.items():
        where = f'prices."{pattern}"'
        if not isinstance(pattern, str) or not pattern.strip():
            raise PriceTableError(f"{where}: the model pattern must not be empty")
        merged = dict(fields) if isinstance(fields, dict) else fields
        if override and isinstance(fields, dict):
            inherited = dict((base or {}).get(pattern) or {})
            if inherited:
                inherited.pop("source", None)
                inherited.pop("read", None)
                inherited.pop("verified", None)
            merged = {**inherited, **fields}
            merged.setdefault("source", OVERRIDE_SOURCE)
        try:
            checked = load_row(merged, override=override)
        except ValidationError as exc:
            key, message = _first(exc.messages)
            raise PriceTableError(f"{where}.{key}: {message}" if key else f"{where}: {message}") from None
        rows.append(PriceRow(pattern=pattern.strip().lower(), **checked))
    return tuple(rows)


@lru_cache(maxsize=1)
def shipped_rows() -> tuple[PriceRow, ...]:
    return build_rows(shipped_raw())


def find(groups: tuple[tuple[PriceRow, ...], ...], provider: str, model: str) -> PriceRow | None:
    """The row that prices `model` on `provider`: first group with a match, most specific row in it."""
    name = model.strip().lower()
    for rows in groups:
        best, best_key = None, None
        for index, row in enumerate(rows):
            if row.matches(provider, name):
                key = (*row.specificity(), -index)
                if best_key is None or key > best_key:
                    best, best_key = row, key
        if best is not None:
            return best
    return None


def _first(messages: Any) -> tuple[str, str]:
    """The first (dotted key, message) of marshmallow's nested messages."""
    if isinstance(messages, dict) and messages:
        key = sorted(messages, key=str)[0]
        inner_key, message = _first(messages[key])
        name = "" if key == "_schema" else str(key)
        if isinstance(messages[key], dict) and set(messages[key]) <= {"key", "value"}:
            return name, message  # a dict entry's own error: name the entry only
        return ".".join(part for part in (name, inner_key) if part), message
    if isinstance(messages, list) and messages:
        return ("", messages[0]) if isinstance(messages[0], str) else _first(messages[0])
    return "", str(messages)


def check_overrides(raw: Any) -> dict:
    """The routing file's `prices` tables, checked as PriceBook.load will use them (PriceTableError if not)."""
    build_rows(raw if isinstance(raw, dict) else {}, override=True, base=shipped_raw())
    return dict(raw) if isinstance(raw, dict) else {}
