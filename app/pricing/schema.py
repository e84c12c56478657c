"""The shape of one price row (shipped data file or routing-file override), checked by marshmallow.

A row is a table keyed by a model-name pattern, e.g. `[prices."gpt-image-2*"]`. Money is read into
`Decimal` from TOML strings, integers or floats (a float goes through its shortest text form, so
`0.03` stays exactly 0.03). Every problem names the row and the key.
"""
from __future__ import annotations

import datetime
import math
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

UNITS = ("token", "image", "megapixel")
SIZE_RULES = ("table", "formula", "tier")
TOKEN_PRICES = ("text_input", "cached_text_input", "image_input", "cached_image_input", "text_output", "image_output")
FORMULA_KEYS = ("offset", "divisor")
_WXH = re.compile(r"^\d+x\d+$")
_TABLE_KEY = re.compile(r"^[a-z]+:\d+x\d+$")
_TIER = re.compile(r"^\d+(\.\d+)?K$")


class Money(fields.Field):
    """USD as Decimal, never negative; floats go through their shortest text form (no binary drift)."""

    def _deserialize(self, value, attr, data, **kwargs) -> Decimal:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ValidationError("Must be a number of US dollars (a string such as \"0.04\" is clearest).")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValidationError("Must be a finite number.")
        try:
            amount = Decimal(repr(value) if isinstance(value, float) else str(value).strip())
        except InvalidOperation:
            raise ValidationError("Not a valid number.") from None
        if not amount.is_finite() or amount < 0:
            raise ValidationError("Must be a finite number, zero or more.")
        return amount


class Day(fields.Field):
    """A date: TOML's own `2026-12-10` or the same as a string."""

    def _deserialize(self, value, attr, data, **kwargs) -> str:
        if isinstance(value, datetime.datetime):
            value = value.date()
        if isinstance(value, datetime.date):
            return value.isoformat()
        if isinstance(value, str):
            try:
                return datetime.date.fromisoformat(value.strip()).isoformat()
            except ValueError:
                pass
        raise ValidationError("Must be a date, YYYY-MM-DD.")


def _count(**kwargs) -> fields.Integer:
    return fields.Integer(strict=True, validate=validate.Range(min=0), **kwargs)


class PriceRowSchema(Schema):
    """One row of the shipped data file: every field it may have, and `source` + `read` required."""

    requires_provenance = True

    class Meta:
        unknown = RAISE

    unit = fields.String(required=True, validate=validate.OneOf(UNITS))
    provider = fields.String(validate=validate.Length(min=1))
    source = fields.String(validate=validate.Length(min=1))
    read = Day()
    retired = Day()
    verified = fields.Boolean(load_default=True)
    note = fields.String()

    # unit = "token": USD per 1M tokens, and the token counts quote() needs
    text_input = Money()
    cached_text_input = Money()
    image_input = Money()
    cached_image_input = Money()
    text_output = Money()
    image_output = Money()
    size_rule = fields.String(validate=validate.OneOf(SIZE_RULES))
    output_tokens = fields.Dict(keys=fields.String(), values=_count())
    formula = fields.Dict(keys=fields.String(), values=_count())
    input_image_tokens = _count()
    partial_image_tokens = _count()
    max_text_output_tokens = _count()

    # unit = "image"
    price = Money()
    per_image = fields.Dict(keys=fields.String(validate=validate.Regexp(_TABLE_KEY)), values=Money())

    # unit = "megapixel"
    first_megapixel = Money()
    extra_megapixel = Money()
    input_megapixel = Money()
    megapixel_pixels = fields.Integer(strict=True, validate=validate.Range(min=1))
    max_megapixels = fields.Integer(strict=True, validate=validate.Range(min=1))

    # size vocabulary shared by the units
    size_tiers = fields.Dict(keys=fields.String(validate=validate.Regexp(_TIER)),
                             values=fields.String(validate=validate.Regexp(_WXH)))
    auto_size = fields.String(validate=validate.Regexp(_WXH))
    qualities = fields.Dict(keys=fields.String(), values=fields.String())
    ignores_size_and_quality = fields.Boolean()  # the route cannot pass size/quality on: quote the costliest

    @validates_schema
    def complete(self, data: dict, **kwargs) -> None:
        if self.requires_provenance:
            for name in ("source", "read"):
                if name not in data:
                    raise ValidationError("every shipped row says where its price comes from and when it was read",
                                          name)
        unit = data.get("unit")
        if unit == "token":
            _need(data, "image_output", "text_input", "size_rule")
            _check_token_sizes(data)
        elif unit == "image":
            if "price" not in data and "per_image" not in data:
                raise ValidationError("a per-image row needs `price` or a `per_image` table", "price")
        elif unit == "megapixel":
            _need(data, "first_megapixel", "extra_megapixel")


def _need(data: dict, *names: str) -> None:
    for name in names:
        if name not in data:
            raise ValidationError(f"required for unit = \"{data['unit']}\"", name)


def _check_token_sizes(data: dict) -> None:
    rule, table = data["size_rule"], data.get("output_tokens", {})
    if rule == "table":
        bad = [key for key in table if not _TABLE_KEY.match(key)]
        if not table or bad:
            raise ValidationError("size_rule \"table\" needs output_tokens keyed \"quality:WIDTHxHEIGHT\"",
                                  "output_tokens")
    elif rule == "tier":
        bad = [key for key in table if not _TIER.match(key)]
        if not table or bad:
            raise ValidationError("size_rule \"tier\" needs output_tokens keyed by tier (\"1K\", \"2K\", ...)",
                                  "output_tokens")
    else:
        formula = data.get("formula", {})
        missing = [key for key in FORMULA_KEYS if key not in formula]
        if missing or len(formula) <= len(FORMULA_KEYS) or "auto_size" not in data:
            raise ValidationError("size_rule \"formula\" needs formula = {offset, divisor, and a factor per "
                                  "quality} and auto_size", "formula")


class OverrideRowSchema(PriceRowSchema):
    """A routing-file row: the operator's own figure, so `source` and `read` are optional."""

    requires_provenance = False


def load_row(raw: Any, *, override: bool = False) -> dict:
    """A checked row as a dict of Python values; ValidationError (messages keyed by field) otherwise."""
    if not isinstance(raw, dict):
        raise ValidationError({"_schema": ["must be a table of fields"]})
    return (OverrideRowSchema() if override else PriceRowSchema()).load(raw)
