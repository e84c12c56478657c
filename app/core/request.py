"""What a provider must make, independent of the API surface that asked: ImageRequest, its input images, its Size."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from app.core.errors import InvalidRequest

AUTO = "auto"
TIERS = ("1K", "2K", "4K")
# every image parameter a client can set, as the Images API spells them (the tool's names are the same);
# each provider family honours some of them
IMAGE_PARAMETERS = ("background", "input_fidelity", "moderation", "output_compression", "output_format",
                    "partial_images", "quality", "size", "style", "watermark")
TIER_SIDES = {"1K": 1024, "2K": 2048, "4K": 4096}  # the square side a tier stands for
_WXH = re.compile(r"^([1-9][0-9]*)x([1-9][0-9]*)$")


class Size(str):
    """A client's `size`, parsed once: `auto`, a resolution tier (1K/2K/4K) or WIDTHxHEIGHT.

    It stays the text the client sent (a str), so answers, logs and prices can echo and compare it
    as such; providers read its parts instead of parsing the text again.
    """

    width: int | None
    height: int | None
    tier: str | None

    def __new__(cls, text: str) -> "Size":
        size = super().__new__(cls, text)
        size.width = size.height = size.tier = None
        if text in TIERS:
            size.tier = text
        elif text != AUTO:
            match = _WXH.match(text)
            if match is None:
                raise ValueError(f"not a size: {text!r}")
            size.width, size.height = int(match.group(1)), int(match.group(2))
        return size

    def __reduce__(self):  # pickles (and copies) as the text it was parsed from
        return (Size, (str(self),))

    @property
    def is_auto(self) -> bool:
        return self.tier is None and self.width is None

    @property
    def dimensions(self) -> tuple[int, int] | None:
        """(width, height) of a WIDTHxHEIGHT size; None for auto and tiers."""
        return (self.width, self.height) if self.width is not None else None

    @property
    def pixels(self) -> int | None:
        return self.width * self.height if self.width is not None else None


AUTO_SIZE = Size(AUTO)


@dataclass(frozen=True)
class ImageRef:
    """An input image as the client gave it: decoded already for data URLs, fetched lazily for http(s)."""

    url: str
    param: str
    data: bytes | None = None
    mime: str | None = None

    @property
    def is_remote(self) -> bool:
        return self.data is None


@dataclass(frozen=True)
class ImageRequest:
    """What a provider must make, independent of the API surface that asked for it.

    `params` holds the image parameters the client set (tool or Images API names); its `size`, when
    given, is a Size, parsed here however the request was built.
    """

    model: str
    prompt: str
    n: int = 1
    params: dict[str, Any] = field(default_factory=dict)
    images: tuple[ImageRef, ...] = ()
    mask: ImageRef | None = None
    messages: tuple[dict, ...] = ()
    user: str | None = None
    param_prefix: str = ""          # where the image parameters sat in the client's body
    prompt_param: str = "prompt"    # where the prompt came from, for error messages
    variant: int = 0                # which of the n pictures a fanned-out call makes (for seeded providers)

    def __post_init__(self) -> None:
        size = self.params.get("size")
        if size is not None and not isinstance(size, Size):
            try:
                parsed = Size(size)
            except (TypeError, ValueError):
                raise InvalidRequest("size must be auto, WIDTHxHEIGHT (e.g. 1024x1024) or 1K/2K/4K",
                                     param=self.param_path("size"), code="unsupported_size") from None
            object.__setattr__(self, "params", {**self.params, "size": parsed})

    @property
    def size(self) -> Size:
        return self.params.get("size", AUTO_SIZE)

    @property
    def is_edit(self) -> bool:
        return bool(self.images)

    def param_path(self, name: str) -> str:
        """Dotted path of an image parameter in the client's request, e.g. tools[0].image_generation.size."""
        return self.param_prefix + name
