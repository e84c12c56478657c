"""xAI image generation (Grok Imagine): OpenAI-like /images/generations and /images/edits with aspect_ratio and resolution.

Both routes take JSON; edits name their 1-3 source images as `image: {url}` or `images: [{url}, ...]`
(data URLs or http(s) URLs). The gateway always asks for base64 and downloads any URL xAI still
answers with, under the download guard.
"""
from __future__ import annotations

from typing import Any

from app.core.errors import UpstreamError
from app.core.request import ImageRequest
from app.core.result import GeneratedImage, ImageResult, Usage
from app.providers.base import ProviderClient, source_image_url
from app.providers.capabilities import DROP, Family, Sizes, nearest_aspect_ratio, params

GENERATIONS, EDITS = "/images/generations", "/images/edits"
RATIOS = ("1:1", "3:4", "4:3", "9:16", "16:9", "2:3", "3:2", "9:19.5", "19.5:9", "9:20", "20:9", "1:2", "2:1")
RESOLUTIONS = {"1K": "1k", "2K": "2k"}
QUALITY = {"low": "low", "medium": "medium", "high": "high", "hd": "high", "standard": "medium"}  # auto: xAI's

# Grok Imagine: WxH as the nearest of its aspect ratios, 1K/2K as `resolution` (4K is dropped),
# its own low/medium/high quality, n up to 10 per call, 1-3 source images; no mask.
IMAGINE = Family("grok-imagine-image", ("*",), params("size", "quality"),
                 Sizes(tiers=tuple(RESOLUTIONS), ratios=RATIOS, others=DROP), max_n=10, max_images=3)
# grok-2-image makes one size, from text only
GROK_2 = Family("grok-2-image", ("grok-2-image*",), params("size"), Sizes(others=DROP), max_n=10, max_images=0)


class XaiClient(ProviderClient):
    name = "xai"
    label = "xAI (Grok Imagine)"
    env_prefix = "XAI"
    default_base_url = "https://api.x.ai/v1"
    model_patterns = ("grok-*image*",)
    known_models = ("grok-imagine-image", "grok-imagine-image-quality")
    families = (GROK_2, IMAGINE)

    def make_images(self, request: ImageRequest, family: Family) -> ImageResult:
        body = self.body(request)
        answer = self._post(EDITS if request.is_edit else GENERATIONS, json=body)
        return self.to_result(answer)

    def body(self, request: ImageRequest) -> dict:
        size, quality = request.size, request.params.get("quality")
        body: dict[str, Any] = {"model": request.model, "prompt": request.prompt, "response_format": "b64_json"}
        if request.n > 1:
            body["n"] = request.n
        if size.dimensions is not None:
            body["aspect_ratio"] = nearest_aspect_ratio(size.width, size.height, RATIOS)
        elif size.tier is not None:
            body["resolution"] = RESOLUTIONS[size.tier]
        if quality in QUALITY:
            body["quality"] = QUALITY[quality]
        if request.user:
            body["user"] = request.user
        sources = [{"url": source_image_url(ref)} for ref in request.images]
        if len(sources) == 1:
            body["image"] = sources[0]
        elif sources:
            body["images"] = sources
        return body

    def to_result(self, answer: Any) -> ImageResult:
        if not isinstance(answer, dict):
            raise UpstreamError("xai answered with something other than a JSON object", provider=self.name)
        items = answer.get("data") if isinstance(answer.get("data"), list) else []
        images = [image for image in map(self.image_of, items) if image is not None]
        usage = Usage(extra={"generated_images": len(images)})
        blocked = answer.get("block_reason")
        if images:
            return ImageResult(images=images, usage=usage)
        if blocked:
            return ImageResult(text=self.redact(f"xai withheld the image (block_reason {blocked})"),
                               finish_reason="content_filter", usage=usage)
        raise UpstreamError("xai answered without an image", provider=self.name, code="no_image_generated")

    def image_of(self, item: Any) -> GeneratedImage | None:
        picture = self.images_api_picture(item)
        if picture is None:
            return None
        b64, mime = picture
        revised = item.get("revised_prompt")
        return GeneratedImage(b64=b64, mime=mime, revised_prompt=revised if isinstance(revised, str) and revised else None)
