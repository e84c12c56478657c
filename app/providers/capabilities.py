"""What a provider's models can do, declared once per provider: families, their parameters, sizes, n and limits.

A provider class lists its model families, most specific first, the last one matching every name.
Model names are matched one way everywhere (`matches`: shell patterns, case-insensitive), for
routing as for telling families apart. The base class reads the family of a request's model to
drop the parameters it does not honour, refuse (or drop) the sizes it cannot make and check the
prompt and input images before any upstream call; /v1/models and the README read the same
declarations.
"""
from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass

from app.core.request import IMAGE_PARAMETERS, TIERS, ImageRequest, Size

# aspect ratios Gemini and OpenRouter accept in image_config / imageConfig (§F.2)
ASPECT_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
# gemini-3.1-flash-image (and its Lite sibling) also make very tall and very wide pictures: 14 ratios in all
WIDE_ASPECT_RATIOS = ASPECT_RATIOS + ("1:4", "4:1", "1:8", "8:1")
# quality -> size tier, where a provider's only quality knob is resolution (LiteLLM's mapping, §F.1)
QUALITY_TIER = {"low": "1K", "standard": "1K", "auto": "1K", "medium": "2K", "high": "4K", "hd": "4K"}

REFUSE, DROP = "refuse", "drop"


def matches(model: str, patterns: tuple[str, ...]) -> bool:
    """The one rule for model names: any shell-style pattern, compared case-insensitively."""
    name = model.lower()
    return any(fnmatch.fnmatchcase(name, pattern.lower()) for pattern in patterns)


def nearest_aspect_ratio(width: int, height: int, ratios: tuple[str, ...] = ASPECT_RATIOS) -> str:
    """The ratio closest to W/H on a log scale (so 2:1 and 1:2 are equally far from 1:1)."""
    target = math.log(width / height)
    return min(ratios, key=lambda r: abs(math.log(ratio_value(r)) - target))


def ratio_value(ratio: str) -> float:
    width, height = ratio.split(":")
    return float(width) / float(height)  # xAI has 19.5:9


@dataclass(frozen=True)
class Bounds:
    """Free WIDTHxHEIGHT sizes a family makes: limits on sides, pixels and aspect ratio."""

    multiple: int = 1
    min_side: int | None = None
    max_side: int | None = None
    max_area: tuple[int, int] | None = None   # at most this many pixels (as W x H), e.g. 3840x2160
    max_ratio: int | None = None
    min_pixels: int | None = None             # at least this many pixels (W * H)
    max_pixels: int | None = None             # at most this many pixels, where no W x H pair says it

    def fit(self, width: int, height: int) -> bool:
        return (width % self.multiple == 0 and height % self.multiple == 0
                and (self.min_side is None or min(width, height) >= self.min_side)
                and (self.max_side is None or max(width, height) <= self.max_side)
                and (self.max_area is None or width * height <= self.max_area[0] * self.max_area[1])
                and (self.min_pixels is None or width * height >= self.min_pixels)
                and (self.max_pixels is None or width * height <= self.max_pixels)
                and (self.max_ratio is None or max(width, height) <= self.max_ratio * min(width, height)))

    def describe(self) -> str:
        words = []
        if self.multiple > 1:
            words.append(f"sides multiple of {self.multiple}")
        if self.min_side is not None and self.max_side is not None:
            words.append(f"sides from {self.min_side} to {self.max_side}")
        elif self.min_side is not None:
            words.append(f"sides from {self.min_side}")
        elif self.max_side is not None:
            words.append(f"sides up to {self.max_side}")
        if self.max_ratio is not None:
            words.append(f"aspect ratio between 1:{self.max_ratio} and {self.max_ratio}:1")
        if self.max_area is not None:
            words.append(f"at most {self.max_area[0]}x{self.max_area[1]} pixels")
        if self.min_pixels is not None:
            words.append(f"at least {self.min_pixels:,} pixels")
        if self.max_pixels is not None:
            words.append(f"at most {self.max_pixels:,} pixels")
        return "any WIDTHxHEIGHT" + (" with " + ", ".join(words) if words else "")


@dataclass(frozen=True)
class Sizes:
    """The sizes a family makes. A size outside them is refused (a 400 listing them) or, when `others`
    is DROP, dropped and named (the model then chooses, as for `auto`)."""

    auto: bool = True
    tiers: tuple[str, ...] = ()
    fixed: tuple[str, ...] = ()          # exact WIDTHxHEIGHT sizes
    free: Bounds | None = None           # any WIDTHxHEIGHT within these bounds
    ratios: tuple[str, ...] = ()         # any WIDTHxHEIGHT, made at the nearest of these aspect ratios
    others: str = REFUSE
    note: str = ""                       # how the family makes them, for people (errors, README)

    def honours(self, size: Size) -> bool:
        """True when the family makes `size`; False when it is dropped; ValueError when it is refused."""
        if size.is_auto:
            made = self.auto
        elif size.tier is not None:
            made = size.tier in self.tiers
        else:
            made = (size in self.fixed or bool(self.ratios)
                    or (self.free is not None and self.free.fit(size.width, size.height)))
        if made or self.others == DROP:
            return made
        raise ValueError(size)

    def describe(self) -> str:
        """What to tell a caller whose size was refused: every size this family makes."""
        kinds = list(self.fixed) + (["auto"] if self.auto else []) + list(self.tiers)
        if self.ratios:
            kinds.append(f"any WIDTHxHEIGHT (made at the nearest of {', '.join(self.ratios)})")
        elif self.free is not None:
            kinds.append(self.free.describe())
        text = ", ".join(kinds[:-1]) + (" or " if len(kinds) > 1 else "") + kinds[-1] if kinds else "none"
        return f"{text} ({self.note})" if self.note else text


# The sizes of Google's Gemini 3 image models, called directly (gemini.py) or through OpenRouter: only
# they take an image size tier (1K/2K/4K; the Lite model 1K only), and gemini-3.1-flash-image also makes
# very wide and very tall pictures. A tier a model cannot make is dropped.
GEMINI_31_FLASH_SIZES = Sizes(tiers=TIERS, ratios=WIDE_ASPECT_RATIOS, others=DROP)
GEMINI_31_FLASH_LITE_SIZES = Sizes(tiers=("1K",), ratios=WIDE_ASPECT_RATIOS, others=DROP)
GEMINI_3_SIZES = Sizes(tiers=TIERS, ratios=ASPECT_RATIOS, others=DROP)


@dataclass(frozen=True)
class Family:
    """Models of one provider that share their capabilities.

    `params` are the image parameters the family honours (`edit_params` when input images come,
    if they differ); every other parameter a client sets is dropped and named. `max_n` is how many
    pictures one upstream call makes (more are split into parallel calls). `prompt_limit`,
    `min_images`/`max_images` (input images; max 0 = text only) and `mask` (inpainting) are checked
    before any upstream call.
    """

    name: str
    patterns: tuple[str, ...]
    params: frozenset[str]
    sizes: Sizes
    edit_params: frozenset[str] | None = None
    max_n: int = 1
    prompt_limit: int | None = None
    min_images: int = 0
    max_images: int | None = None
    mask: bool = False

    def __post_init__(self) -> None:
        unknown = (self.params | (self.edit_params or frozenset())) - set(IMAGE_PARAMETERS)
        if unknown:
            raise ValueError(f"family {self.name} declares unknown parameters {sorted(unknown)}")

    def honoured(self, edit: bool) -> frozenset[str]:
        return self.edit_params if edit and self.edit_params is not None else self.params


def params(*names: str) -> frozenset[str]:
    return frozenset(names)


def ratio_and_tier(request: ImageRequest, family: Family) -> tuple[str | None, str | None, list[str]]:
    """For APIs that take an aspect ratio and a resolution tier (Gemini, OpenRouter, §F.1, §F.2): the ratio
    nearest a WIDTHxHEIGHT size, the tier to send (None: the family's only one, or none asked), and
    ["quality"] when quality asked for a tier the family lacks or an explicit tier size overrode it."""
    size, tiers = request.size, family.sizes.tiers
    ratio = nearest_aspect_ratio(size.width, size.height, family.sizes.ratios) if size.dimensions else None
    quality = request.params.get("quality", "auto")
    wanted = QUALITY_TIER[quality] if quality != "auto" else None  # auto leaves the resolution to the model
    tier, dropped = size.tier, []
    if tier is not None:
        if wanted is not None and wanted != tier:
            dropped.append("quality")  # the explicit tier wins
    elif wanted is not None:
        if wanted in tiers:
            tier = wanted
        else:
            dropped.append("quality")
    return ratio, (tier if len(tiers) > 1 else None), dropped


def family_of(families: tuple[Family, ...], model: str) -> Family:
    """The first family whose patterns match `model` (the last family should match every name)."""
    for family in families:
        if matches(model, family.patterns):
            return family
    return families[-1]
