"""Doubao Seedream / SeedEdit on Volcengine Ark: one /images/generations route for generation and edits (§C, §F)."""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

from app.core.errors import UpstreamError
from app.core.request import TIERS, ImageRequest, Size
from app.core.result import GeneratedImage, ImageResult, Usage
from app.core.settings import ProviderSettings, parse_flag
from app.downloads import Downloader
from app.providers.base import ErrorInfo, ProviderClient, source_image_url
from app.providers.capabilities import DROP, QUALITY_TIER, Bounds, Family, Sizes, nearest_aspect_ratio, params

GENERATIONS = "/images/generations"  # Ark has no /images/edits: input images ride in `image`

SIZE_STEP = 8  # sides of scaled-up sizes are rounded up to multiples of 8
# Sizes per model (Ark's parameter tables as copied by relays; see the README): 4.0: tiers 1K/2K/4K or WxH
# of 1280x720 to 4096x4096 pixels; 4.5: tiers 2K/4K, WxH of 3,686,400 to 4096x4096 pixels; 5.0-lite: tiers
# 2K/3K, WxH of 3,686,400 to 10,404,496 pixels, png or jpeg; 5.0-pro: tiers 1K/2K, WxH up to 2048x2048
# pixels, png or jpeg. Aspect ratios within 1:16 and 16:1 everywhere.
FREE_SIZES = Bounds(max_area=(4096, 4096), max_ratio=16)
# Seedream 4.0: sizes under 1280x720 pixels are scaled up, ratio kept
V40_MIN_PIXELS = 1280 * 720
# Seedream 4.5 and 5.0-lite: tiers from 2K (1K is sent as 2K), WxH from 2560x1440 = 3,686,400 pixels
V45_MIN_PIXELS = 2560 * 1440
V45_SMALLEST_TIER = "2K"  # what 1K becomes: same "ratio from the prompt" meaning, the least pixels allowed
V50_LARGEST_TIER = "3K"   # what 4K becomes on 5.0-lite: its largest tier
V50_MAX_PIXELS = 10_404_496
# smaller sizes become the recommended 2K pair of the nearest aspect ratio (all at or above the minimum)
RECOMMENDED_2K = {"1:1": "2048x2048", "4:3": "2304x1728", "3:4": "1728x2304", "16:9": "2560x1440",
                  "9:16": "1440x2560", "3:2": "2496x1664", "2:3": "1664x2496", "21:9": "3024x1296"}
# Seedream 3.0 t2i: WxH with each side 512-2048 (shorter sides scaled up, ratio kept); no 4K
V30_MIN_SIDE, V30_MAX_SIDE = 512, 2048
V30_TIERS = {"1K": "1024x1024", "2K": "2048x2048"}
# SeedEdit keeps the input image's size
SEEDEDIT_SIZE = "adaptive"

# Seedream has no quality knob; the gateway's policy spends quality on resolution (when no size was
# given), capped at what the family makes. SeedEdit's size is fixed, so it cannot honour quality.
V45_QUALITY_TIER = {**QUALITY_TIER, "low": "2K", "standard": "2K", "auto": "2K"}
OUTPUT_FORMATS = ("png", "jpeg")  # Seedream 5.x chooses its format among these; the others make JPEG

_PARAMS = params("size", "quality", "watermark")
_SMALL_40_NOTE = "sizes under 1280x720 pixels are scaled up, keeping the ratio"
_SMALL_SIZES_NOTE = "sizes under 2560x1440 pixels become the recommended 2K size of the nearest aspect ratio"
# Model families, told apart by name; the first that matches wins.
SEEDEDIT = Family("seededit-3.0", ("*seededit*",), _PARAMS, Sizes(others=DROP, note="SeedEdit keeps the input "
                                                                                    "image's size"),
                  min_images=1, max_images=1)
SEEDREAM_30 = Family("seedream-3.0-t2i", ("*seedream-3-0-t2i*",), _PARAMS, Sizes(
    tiers=("1K", "2K"), free=Bounds(max_side=V30_MAX_SIDE),
    note="1K is 1024x1024, 2K is 2048x2048; shorter sides under 512 are scaled up, keeping the ratio"), max_images=0)
SEEDREAM_40 = Family("seedream-4.0", ("*seedream-4-0*",), _PARAMS, Sizes(tiers=TIERS, free=FREE_SIZES,
                                                                       note=_SMALL_40_NOTE), max_images=10)
SEEDREAM_45 = Family("seedream-4.5", ("*seedream-4-5*",), _PARAMS, Sizes(
    tiers=TIERS, free=FREE_SIZES, note="1K is sent as 2K; " + _SMALL_SIZES_NOTE), max_images=14)
SEEDREAM_50 = Family("seedream-5.0-lite", ("*seedream-5-0-2*", "*seedream-5-0-lite*"), _PARAMS | {"output_format"},
                     Sizes(tiers=TIERS, free=Bounds(max_ratio=16, max_pixels=V50_MAX_PIXELS),
                           note="1K is sent as 2K and 4K as 3K, the largest 5.0-lite makes; " + _SMALL_SIZES_NOTE),
                     max_images=14)
SEEDREAM_50_PRO = Family("seedream-5.0-pro", ("*seedream-5-0-pro*",), _PARAMS | {"output_format"},
                         Sizes(tiers=("1K", "2K"), free=Bounds(max_area=(2048, 2048), max_ratio=16),
                               note=_SMALL_40_NOTE), max_images=10)
# Names matching none (5.0-flash, 5.5, ep-... endpoint ids) get the rules the newest models share: 1K/2K
# tiers, sizes from 1280x720 pixels (smaller ones scaled up), png or jpeg, and no sequential fields
# (5.0-pro and -flash refuse them with a 400).
SEEDREAM_NEXT = Family("seedream-5+", ("*",), _PARAMS | {"output_format"},
                       Sizes(tiers=("1K", "2K"), free=FREE_SIZES, note=_SMALL_40_NOTE))
# `sequential_image_generation` and `stream` exist from 4.0 to 5.0-lite: sent there so one call makes one picture
SEQUENTIAL_FAMILIES = (SEEDREAM_40, SEEDREAM_45, SEEDREAM_50)
# families whose 1K is too small for them: low qualities pick 2K
_FROM_2K = (SEEDREAM_45, SEEDREAM_50)

WATERMARK_OPTION, WATERMARK_VARIABLE = "watermark", "ARK_WATERMARK"

# Ark's error `type` (or code) words -> HTTP status, for errors found inside 200 answers
STATUS_OF_ERROR_WORD = {"BadRequest": 400, "Unauthorized": 401, "AuthenticationError": 401, "Forbidden": 403,
                        "AccessDenied": 403, "NotFound": 404, "TooManyRequests": 429, "RateLimitExceeded": 429,
                        "QuotaExceeded": 429, "InternalServiceError": 500, "ServiceUnavailable": 503,
                        "ServerOverloaded": 503}
SENSITIVE_MARKER = "SensitiveContentDetected"
MISSING_MODEL_CODES = ("InvalidEndpointOrModel.NotFound", "ModelNotFound")  # also sent with HTTP 404  # Input/Output{Text,Image}SensitiveContentDetected[.suffix]


def is_sensitive(code: str | None) -> bool:
    return bool(code) and SENSITIVE_MARKER in code


class ArkClient(ProviderClient):
    """Seedream 3.0/4.0/4.5/5.0 and SeedEdit 3.0. No native `n`: the gateway fans out single-image calls."""

    name = "ark"
    label = "ByteDance Seedream / SeedEdit (Volcengine Ark)"
    env_prefix = "ARK"
    default_base_url = "https://ark.cn-beijing.volces.com/api/v3"
    model_patterns = ("doubao-*", "seedream-*", "seededit-*")
    known_models = ("doubao-seedream-5-0-pro-260628", "doubao-seedream-3-0-t2i-250415",
                    "doubao-seededit-3-0-i2i-250628")
    families = (SEEDEDIT, SEEDREAM_30, SEEDREAM_40, SEEDREAM_45, SEEDREAM_50, SEEDREAM_50_PRO, SEEDREAM_NEXT)

    def __init__(self, settings: ProviderSettings, downloader: Downloader, **kwargs):
        super().__init__(settings, downloader, **kwargs)
        self.default_watermark = parse_flag(settings.options.get(WATERMARK_OPTION), WATERMARK_VARIABLE)

    def make_images(self, request: ImageRequest, family: Family) -> ImageResult:
        body, dropped = self.body(request, family)
        result = self.to_result(self._post(GENERATIONS, json=body))
        result.dropped = dropped
        return result

    def body(self, request: ImageRequest, family: Family) -> tuple[dict, list[str]]:
        """The upstream body for one image, and the parameters the conversion could not honour."""
        params = request.params
        body: dict[str, Any] = {"model": request.model, "prompt": request.prompt}
        urls = [source_image_url(ref) for ref in request.images]
        if urls:
            body["image"] = urls[0] if len(urls) == 1 else urls
        size, dropped = self.size_and_quality(request, family)
        if size is not None:
            body["size"] = size
        if "output_format" in params:
            if params["output_format"] in OUTPUT_FORMATS:
                body["output_format"] = params["output_format"]
            else:
                dropped.append("output_format")
        if family in SEQUENTIAL_FAMILIES:
            body["sequential_image_generation"] = "disabled"  # exactly one image per call
            body["stream"] = False
        body["response_format"] = "b64_json"  # otherwise a 24-hour URL we would have to download
        # upstream default is on, so it is always sent: an omitted false would still watermark
        body["watermark"] = params.get("watermark", self.default_watermark)
        return body, dropped

    def size_and_quality(self, request: ImageRequest, family: Family) -> tuple[str | None, list[str]]:
        """The upstream `size` (None: Ark's default), and which of size/quality the conversion lost."""
        size, quality = request.size, request.params.get("quality")
        if family is SEEDEDIT:
            return SEEDEDIT_SIZE, ["quality"] if quality not in (None, "auto") else []
        dropped = []
        if quality is not None and size.is_auto:
            tiers = V45_QUALITY_TIER if family in _FROM_2K else QUALITY_TIER
            size = Size(min(tiers[quality], family.sizes.tiers[-1]))  # capped at the family's largest tier
        elif quality not in (None, "auto"):
            dropped.append("quality")  # next to an explicit size there is nothing left for quality to choose
        try:
            return upstream_size(family, size), dropped
        except ValueError:
            raise self.refuse_size(request, family) from None

    # ----- hooks -----

    def model_missing(self, status: int, info: ErrorInfo) -> bool:
        return status == 404 or info.code in MISSING_MODEL_CODES

    def error_details(self, body: Any, status: int) -> ErrorInfo:
        """Ark's envelope: `code` is a word (InvalidParameter); `type` (BadRequest) stands in when it is missing."""
        info = super().error_details(body, status)
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict) and info.code is None and isinstance(error.get("type"), str):
            info = replace(info, code=error["type"])
        if is_sensitive(info.code):
            info = replace(info, status=400)  # a moderation refusal is the caller's to fix, whatever the wrapper
        return info

    # ----- the answer -----

    def to_result(self, answer: Any) -> ImageResult:
        if not isinstance(answer, dict):
            raise UpstreamError("ark answered with something other than a JSON object", provider=self.name,
                                code="no_image_generated")
        if isinstance(answer.get("error"), dict):
            raise self.error_for(status_of(answer["error"]), answer)
        items = answer.get("data")
        images: list[GeneratedImage] = []
        blocked: list[str] = []
        for item in items if isinstance(items, list) else ():
            if not isinstance(item, dict):
                continue
            if isinstance(item.get("error"), dict):
                blocked.append(self.blocked_reason(item["error"]))
                continue
            image = self.image_of(item)
            if image is not None:
                images.append(image)
        if not images and not blocked:
            raise UpstreamError("ark answered without an image", provider=self.name, code="no_image_generated")
        return ImageResult(images=images, text=" ".join(blocked) or None,
                           finish_reason="content_filter" if blocked else "stop", usage=usage(answer.get("usage")))

    def image_of(self, item: dict) -> GeneratedImage | None:
        picture = self.images_api_picture(item)
        return GeneratedImage(b64=picture[0], mime=picture[1]) if picture else None

    def blocked_reason(self, error: dict) -> str:
        """Explanation for an image Ark withheld for safety; any other per-image failure is a 502."""
        code = error.get("code") if isinstance(error.get("code"), str) else None
        message = self.redact(str(error["message"])) if error.get("message") else None
        said = f": {message}" if message else ""
        if not is_sensitive(code):
            raise UpstreamError(f"ark failed to generate the image ({code or 'no code'}){said}", provider=self.name,
                                code=code)
        return f"ark withheld the image: its content checks blocked it ({code}){said}"


def upstream_size(family: Family, size: Size) -> str | None:
    """Spell a size the family accepts; None leaves it to Ark. ValueError when scaling cannot make it."""
    if size.is_auto:
        return None
    if family is SEEDREAM_30:
        return V30_TIERS[size.tier] if size.tier else _size_30(size.width, size.height)
    if family in _FROM_2K:
        if size.tier:
            if size.tier == "1K":
                return V45_SMALLEST_TIER
            return V50_LARGEST_TIER if family is SEEDREAM_50 and size.tier == "4K" else size
        if size.pixels < V45_MIN_PIXELS:
            return RECOMMENDED_2K[nearest_aspect_ratio(size.width, size.height, tuple(RECOMMENDED_2K))]
        return size
    # 4.0, 5.0-pro and newer: tiers as asked, sizes under 1280x720 pixels scaled up keeping the ratio
    if size.tier or size.pixels >= V40_MIN_PIXELS:
        return size
    return "{}x{}".format(*_scale_to_pixels(size.width, size.height, V40_MIN_PIXELS))


def _scale_to_pixels(width: int, height: int, pixels: int) -> tuple[int, int]:
    """The smallest size of (about) the same ratio with at least `pixels` pixels, sides multiples of SIZE_STEP."""
    factor = math.sqrt(pixels / (width * height))
    # the tolerance keeps an exact fit (512x512 -> 960x960) from being pushed up by float noise
    scaled = [math.ceil(side * factor / SIZE_STEP - 1e-9) * SIZE_STEP for side in (width, height)]
    while scaled[0] * scaled[1] < pixels:
        shorter = 0 if scaled[0] <= scaled[1] else 1
        scaled[shorter] += SIZE_STEP
    return scaled[0], scaled[1]


def _size_30(width: int, height: int) -> str:
    if min(width, height) < V30_MIN_SIDE:
        factor = V30_MIN_SIDE / min(width, height)
        width, height = (math.ceil(side * factor / SIZE_STEP - 1e-9) * SIZE_STEP for side in (width, height))
        if max(width, height) > V30_MAX_SIDE:
            raise ValueError((width, height))
    return f"{width}x{height}"


def status_of(error: dict) -> int:
    """HTTP status an error inside a 200 answer stands for, from its type (or code) word; 400 when unknown."""
    for key in ("type", "code"):
        word = error.get(key)
        if isinstance(word, str) and word.split(".")[0] in STATUS_OF_ERROR_WORD:
            return STATUS_OF_ERROR_WORD[word.split(".")[0]]
    return 400


def usage(raw: Any) -> Usage:
    """Ark counts output tokens and images, no prompt tokens (§F.4); generated_images stays as an extra."""
    if not isinstance(raw, dict):
        return Usage()
    extra = {"generated_images": raw["generated_images"]} if _is_int(raw.get("generated_images")) else {}
    return Usage(completion_tokens=raw["output_tokens"] if _is_int(raw.get("output_tokens")) else 0,
                 total_tokens=raw["total_tokens"] if _is_int(raw.get("total_tokens")) else 0, extra=extra)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
