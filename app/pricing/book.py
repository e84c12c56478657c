"""PriceBook: the most a request can cost before the call (quote), and what it did cost after (cost).

Both answer in US dollars as `Decimal` (10 decimal places), or None when the price is unknown: no
row matches the model, or the answer lacks what the row needs (token counts, picture sizes). Never
an invented number. The local provider costs 0; OpenRouter's cost is the `usage.cost` it returned.
"""
from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal
from typing import Any, Callable, Mapping

from app.core.request import ImageRequest
from app.core.result import ImageResult
from app.pricing import sizing
from app.pricing.table import PriceRow, build_rows, find, shipped_raw, shipped_rows

FREE_PROVIDERS = ("local",)          # the placeholder provider draws pictures itself
RETURNED_COST_PROVIDERS = ("openrouter",)  # they say what each call cost in usage.cost
PLACES = Decimal("1e-10")
MILLION = Decimal(1_000_000)
ZERO = Decimal(0)


class PriceBook:
    """Price rows (routing-file overrides first, then the shipped data file) and the two formulas."""

    def __init__(self, overrides: tuple[PriceRow, ...] = (), shipped: tuple[PriceRow, ...] | None = None):
        self.overrides = overrides
        self.shipped = shipped_rows() if shipped is None else shipped

    @classmethod
    def load(cls, overrides: Mapping[str, Any] | None = None) -> "PriceBook":
        """The shipped data file plus `[prices."<pattern>"]` rows from the routing file (PriceTableError if bad)."""
        return cls(build_rows(overrides or {}, override=True, base=shipped_raw()))

    def row(self, provider: str, model: str) -> PriceRow | None:
        """The row that prices `model` (the upstream name) on `provider`, or None."""
        return find((self.overrides, self.shipped), provider, model)

    def quote(self, provider: str, model: str, request: ImageRequest) -> Decimal | None:
        """The most this request can cost: n pictures at the asked size/quality/tier, their input,
        preview frames when `partial_images` is set, every fan-out call included."""
        if provider in FREE_PROVIDERS:
            return ZERO
        row = self.row(provider, model)
        if row is None:
            return None
        amount = _QUOTES[row.unit](row, request)
        return None if amount is None else _tidy(amount.quantize(PLACES, rounding=ROUND_CEILING))

    def cost(self, provider: str, model: str, request: ImageRequest, result: ImageResult) -> Decimal | None:
        """What the request did cost, from the answer's usage (and its pictures, where priced per megapixel)."""
        if provider in FREE_PROVIDERS:
            return ZERO
        if provider in RETURNED_COST_PROVIDERS:
            return returned_cost(result)
        row = self.row(provider, model)
        return None if row is None else row_cost(row, request, result)


def row_cost(row: PriceRow, request: ImageRequest, result: ImageResult) -> Decimal | None:
    """What the row's formula says this answer cost (for OpenRouter rows: what Google/BFL would charge)."""
    amount = _COSTS[row.unit](row, request, result)
    return None if amount is None else _tidy(amount.quantize(PLACES, rounding=ROUND_HALF_EVEN))


def returned_cost(result: ImageResult) -> Decimal | None:
    """The provider's own `usage.cost` (summed over fan-out calls), exactly as its JSON wrote it."""
    value = result.usage.extra.get("cost")
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)) or value < 0:
        return None
    amount = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    return _tidy(amount.quantize(PLACES, rounding=ROUND_HALF_EVEN)) if amount.is_finite() else None


# ----- unit = "token" -----

def _quote_tokens(row: PriceRow, request: ImageRequest) -> Decimal | None:
    sent = sizing.inputs(request)
    per_call = sent.text_tokens * row.text_input
    if sent.images:
        if row.input_image_tokens is None or row.image_input is None:
            return None
        per_call += sent.images * row.input_image_tokens * row.image_input
    picture_tokens = sizing.output_tokens(row, request.params)
    if picture_tokens is None:
        return None
    per_picture = picture_tokens * row.image_output
    previews = request.params.get("partial_images") or 0
    if previews and row.partial_image_tokens:
        per_picture += previews * row.partial_image_tokens * row.image_output
    if row.max_text_output_tokens:
        per_picture += row.max_text_output_tokens * _text_output_price(row)
    # every picture may be its own upstream call (fan-out), each sent the whole input again
    return request.n * (per_call + per_picture) / MILLION


def _cost_tokens(row: PriceRow, request: ImageRequest, result: ImageResult) -> Decimal | None:
    usage = result.usage
    if usage.prompt_tokens <= 0 and usage.completion_tokens <= 0:
        return None  # the provider reported nothing: the price is unknown, not zero
    split = _input_split(usage.prompt_tokens, usage.prompt_details, bool(sizing.inputs(request).images))
    if split is None:
        return None
    text_in, image_in = split
    details = usage.prompt_details
    cached_text = min(text_in, details.get("cached_text_tokens", details.get("cached_tokens", 0)))
    cached_image = min(image_in, details.get("cached_image_tokens", 0))
    amount = ((text_in - cached_text) * row.text_input
              + cached_text * _or(row.cached_text_input, row.text_input)
              + (image_in - cached_image) * _or(row.image_input, row.text_input)
              + cached_image * _or(row.cached_image_input, row.image_input, row.text_input))
    # output without a breakdown is all image tokens (OpenAI's definition of output_tokens)
    image_out = usage.completion_details.get("image_tokens", usage.completion_tokens)
    text_out = max(0, usage.completion_tokens - image_out)
    amount += image_out * row.image_output + text_out * _text_output_price(row)
    return amount / MILLION


def _input_split(prompt: int, details: Mapping[str, int], had_pictures: bool) -> tuple[int, int] | None:
    """(text, image) input tokens; without a breakdown, all text when no picture was sent, else unknown."""
    text, image = details.get("text_tokens"), details.get("image_tokens")
    if text is None and image is None:
        return None if had_pictures and prompt > 0 else (max(0, prompt), 0)
    if text is None:
        text = max(0, prompt - image)
    if image is None:
        image = max(0, prompt - text)
    return text, image


def _text_output_price(row: PriceRow) -> Decimal:
    return _or(row.text_output, row.image_output)


# ----- unit = "image" -----

def _quote_images(row: PriceRow, request: ImageRequest) -> Decimal | None:
    if not row.per_image:
        return request.n * row.price
    quality = sizing.quality_key(row, request.params.get("quality"))
    size = request.params.get("size")
    size = row.size_tiers.get(size, size)
    exact = row.per_image.get(f"{quality}:{size}")
    if exact is not None:
        return request.n * exact
    same_quality = [price for key, price in row.per_image.items() if key.split(":")[0] == quality]
    return request.n * max(same_quality or row.per_image.values())


def _cost_images(row: PriceRow, request: ImageRequest, result: ImageResult) -> Decimal | None:
    """Pictures made times their price; the provider's own count wins (it bills what it made)."""
    if not row.per_image:
        made = result.usage.extra.get("generated_images")
        count = made if isinstance(made, int) and not isinstance(made, bool) else len(result.images)
        return count * row.price
    quality = sizing.quality_key(row, result.quality or request.params.get("quality"))
    amount = ZERO
    for picture in result.images:
        size = sizing.picture_size(picture.b64)
        price = row.per_image.get(f"{quality}:{size[0]}x{size[1]}") if size else None
        if price is None:
            return None
        amount += price
    return amount


# ----- unit = "megapixel" -----

def _quote_megapixels(row: PriceRow, request: ImageRequest) -> Decimal | None:
    out = sizing.output_megapixels(row, request.params)
    if out is None:
        return None
    per_call = _input_megapixels(row, request)
    if per_call is None:
        return None
    return request.n * (_picture_price(row, out) + per_call)


def _cost_megapixels(row: PriceRow, request: ImageRequest, result: ImageResult) -> Decimal | None:
    per_call = _input_megapixels(row, request)
    if per_call is None:
        return None
    amount = ZERO
    for picture in result.images:
        size = sizing.picture_size(picture.b64)
        if size is None:
            return None
        amount += _picture_price(row, sizing.megapixels(row, *size)) + per_call
    return amount


def _picture_price(row: PriceRow, megapixels: int) -> Decimal:
    return row.first_megapixel + row.extra_megapixel * (megapixels - 1)


def _input_megapixels(row: PriceRow, request: ImageRequest) -> Decimal | None:
    """What one call's input pictures add; None when one is only a link (its size is unknown before the call)."""
    if not row.input_megapixel:
        return ZERO
    total = ZERO
    for picture in sizing.inputs(request).pictures:
        megapixels = sizing.picture_megapixels(row, picture)
        if megapixels is None:
            return None
        total += megapixels * row.input_megapixel
    return total


def _or(*prices: Decimal | None) -> Decimal:
    return next(price for price in prices if price is not None)


def _tidy(amount: Decimal) -> Decimal:
    """Drop trailing zeros without switching to exponent notation (0.0400000000 -> 0.04, 0E-10 -> 0)."""
    if amount == amount.to_integral_value():
        return amount.quantize(Decimal(1))
    return amount.normalize()


_QUOTES: dict[str, Callable[[PriceRow, ImageRequest], Decimal | None]] = {
    "token": _quote_tokens, "image": _quote_images, "megapixel": _quote_megapixels}
_COSTS: dict[str, Callable[[PriceRow, ImageRequest, ImageResult], Decimal | None]] = {
    "token": _cost_tokens, "image": _cost_images, "megapixel": _cost_megapixels}
