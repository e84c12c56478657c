"""Size vocabulary shared by providers: WxH parsing, nearest aspect ratio, quality -> size tier (§F.1, §F.2)."""
from __future__ import annotations

import math
import re

# aspect ratios Gemini and OpenRouter accept in image_config / imageConfig
ASPECT_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
TIERS = ("1K", "2K", "4K")
# quality -> size tier, where a provider's only quality knob is resolution (LiteLLM's mapping)
QUALITY_TIER = {"low": "1K", "standard": "1K", "auto": "1K", "medium": "2K", "high": "4K", "hd": "4K"}

_WXH = re.compile(r"^(\d+)x(\d+)$")


def parse_size(size: str) -> tuple[int, int] | None:
    """(width, height) of a `WxH` size, None for `auto` and tiers."""
    match = _WXH.match(size)
    return (int(match.group(1)), int(match.group(2))) if match else None


def ratio_value(ratio: str) -> float:
    width, height = ratio.split(":")
    return int(width) / int(height)


def nearest_aspect_ratio(width: int, height: int, ratios: tuple[str, ...] = ASPECT_RATIOS) -> str:
    """The supported ratio closest to W/H on a log scale (so 2:1 and 1:2 are equally far from 1:1)."""
    target = math.log(width / height)
    return min(ratios, key=lambda r: abs(math.log(ratio_value(r)) - target))


def tier_for_pixels(width: int, height: int) -> str:
    """The smallest tier whose square holds this many pixels."""
    pixels = width * height
    if pixels <= 1024 * 1024:
        return "1K"
    if pixels <= 2048 * 2048:
        return "2K"
    return "4K"
