"""What a request asks for, in the terms prices use: output tokens per picture, megapixels, prompt size.

Everything here is an upper bound or an exact reading, never a guess in between: quote() must not
come out below what the request can cost.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from app.core.conversation import turn_parts
from app.core.request import ImageRequest
from app.media import image_size, image_size_b64, strip_data_url
from app.pricing.table import PriceRow
from app.providers.capabilities import QUALITY_TIER

DEFAULT_TIER = "1K"  # what Gemini and OpenRouter make when no tier is asked for
# client quality -> the quality a GPT image model is sent (app/providers/openai.py GPT_QUALITY)
GPT_QUALITIES = {"low": "low", "medium": "medium", "standard": "medium", "high": "high", "hd": "high"}
# No tokenizer makes more tokens than the text has UTF-8 bytes; each message may add a few of its own.
TOKENS_PER_MESSAGE = 16
TOKENS_PER_REQUEST = 64
_WXH = re.compile(r"^(\d+)x(\d+)$")


@dataclass(frozen=True)
class Inputs:
    """What one upstream call is sent: a bound on its text tokens and its input pictures."""

    text_tokens: int
    pictures: tuple[bytes | str | None, ...]  # bytes, a data URL, or None when only a link is known

    @property
    def images(self) -> int:
        return len(self.pictures)


def inputs(request: ImageRequest) -> Inputs:
    """Prompt text and input pictures of one call; a conversation counts whole (chat-native providers)."""
    texts: list[str] = []
    pictures: list[bytes | str | None] = []
    if request.messages:
        for index, message in enumerate(request.messages):
            for part, _ in turn_parts(message, index):
                if part.get("type") == "text":
                    texts.append(part.get("text") or "")
                elif part.get("type") == "image_url":
                    url = part["image_url"]["url"]
                    pictures.append(url if url.startswith("data:") else None)
        messages = len(request.messages)
    else:
        texts, messages = [request.prompt], 1
    if len(pictures) < len(request.images):  # a surface without a conversation: its decoded images
        pictures = [ref.data for ref in request.images]
    if request.mask is not None:
        pictures.append(request.mask.data)
    text_bytes = sum(len(text.encode("utf-8")) for text in texts)
    return Inputs(text_tokens=text_bytes + TOKENS_PER_REQUEST + TOKENS_PER_MESSAGE * messages,
                  pictures=tuple(pictures))


def output_tokens(row: PriceRow, params: dict) -> int | None:
    """The most image-output tokens one picture of this request can take; None when the row cannot say."""
    if row.size_rule == "tier":
        return _tier_tokens(row, params)
    if row.size_rule == "formula":
        factor = _formula_factor(row, params.get("quality"))
        size = _asked_size(row, params.get("size")) or row.auto_size
        return formula_tokens(row, factor, *dimensions(size))
    return _table_tokens(row, params)


def formula_tokens(row: PriceRow, factor: int, width: int, height: int) -> int:
    """gpt-image-2's output tokens for a WxH picture at a quality factor (see prices.toml's header)."""
    offset, divisor = row.formula["offset"], row.formula["divisor"]
    long_edge, short_edge = max(width, height), min(width, height)
    short_factor = (2 * factor * short_edge + long_edge) // (2 * long_edge)
    return (factor * short_factor * (offset + width * height) + divisor - 1) // divisor


def megapixels(row: PriceRow, width: int, height: int) -> int:
    """Billed megapixels of a picture: its pixels in `megapixel_pixels` units, rounded up."""
    return max(1, math.ceil(width * height / row.megapixel_pixels))


def output_megapixels(row: PriceRow, params: dict) -> int | None:
    """The most megapixels one picture of this request can have."""
    size = _asked_size(row, params.get("size"))
    if size is None:
        return row.max_megapixels
    return megapixels(row, *dimensions(size))


def picture_megapixels(row: PriceRow, picture: bytes | str | None) -> int | None:
    """Megapixels of an input picture whose bytes (or data URL) are known; None when only a link is."""
    if isinstance(picture, str):
        size = image_size_b64(strip_data_url(picture))
    else:
        size = image_size(picture) if picture else None
    return megapixels(row, *size) if size else None


def picture_size(b64: str) -> tuple[int, int] | None:
    """Width and height of a generated picture, read from its header."""
    return image_size_b64(b64)


def dimensions(size: str) -> tuple[int, int]:
    match = _WXH.match(size)
    return int(match.group(1)), int(match.group(2))


def quality_key(row: PriceRow, quality: str | None) -> str | None:
    """The row's quality word for the client's; None for auto/absent (the costliest then applies)."""
    if row.ignores_size_and_quality:
        return None
    if quality is None or quality == "auto":
        return row.qualities.get("auto")
    return row.qualities.get(quality) or GPT_QUALITIES.get(quality)


def _asked_size(row: PriceRow, size: str | None) -> str | None:
    """WxH the client asked for (a tier spelled out through the row's size_tiers); None for auto."""
    if size is None or size == "auto" or row.ignores_size_and_quality:
        return None
    if _WXH.match(size):
        return size
    return row.size_tiers.get(size)


def _table_tokens(row: PriceRow, params: dict) -> int | None:
    quality, size = quality_key(row, params.get("quality")), _asked_size(row, params.get("size"))
    entries = [(key.split(":")[0], key.split(":")[1], tokens) for key, tokens in row.output_tokens.items()]
    if quality not in {q for q, _, _ in entries}:
        quality = None
    same_quality = [(s, t) for q, s, t in entries if quality is None or q == quality]
    exact = [t for s, t in same_quality if s == size]
    candidates = exact or [t for _, t in same_quality]
    return max(candidates) if candidates else None


def _formula_factor(row: PriceRow, quality: str | None) -> int:
    factors = {k: v for k, v in row.formula.items() if k not in ("offset", "divisor")}
    key = quality_key(row, quality)
    if key in factors:
        return factors[key]
    return factors.get("auto", max(factors.values()))


def _tier_tokens(row: PriceRow, params: dict) -> int | None:
    """Gemini-style: an explicit tier size wins, else the quality's tier, else 1K (app/providers/capabilities.py)."""
    size, quality = params.get("size"), params.get("quality")
    if size in row.output_tokens:
        tier = size
    elif quality not in (None, "auto") and quality in QUALITY_TIER:
        tier = QUALITY_TIER[quality]
    else:
        tier = DEFAULT_TIER
    if tier in row.output_tokens:
        return row.output_tokens[tier]
    return max(row.output_tokens.values())  # a tier this model lacks: it makes one of its own

