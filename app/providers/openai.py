"""OpenAI Images API: /images/generations (JSON) and /images/edits (multipart), reference §A, §F."""
from __future__ import annotations

from typing import Callable

from app.core.errors import GatewayError, InvalidRequest, UpstreamError
from app.core.request import TIERS, ImageRequest
from app.core.result import GeneratedImage, ImageResult, Usage
from app.media import EXTENSION_OF_MIME, PNG, sniff_mime_b64
from app.providers.base import JSON_ANSWER, ProviderClient
from app.providers.capabilities import Bounds, Family, Sizes, params

GPT_SIZES = ("1024x1024", "1536x1024", "1024x1536")
# what a tier means where OpenAI wants WIDTHxHEIGHT (4K: the largest square gpt-image-2 makes)
TIER_SIZES = {"1K": "1024x1024", "2K": "2048x2048", "4K": "2880x2880"}
GPT_QUALITY = {"auto": "auto", "low": "low", "medium": "medium", "high": "high", "hd": "high", "standard": "medium"}
DALLE3_QUALITY = {"high": "hd", "hd": "hd", "medium": "standard", "low": "standard", "standard": "standard"}
DALLE2_QUALITIES = ("auto", "standard")  # the only quality dall-e-2 has; anything else is lost

_GPT = params("size", "quality", "background", "moderation", "output_format", "output_compression", "partial_images")
# multipart edits take no moderation, and input_fidelity (edits only)
_GPT_EDIT = _GPT - {"moderation"} | {"input_fidelity"}


def _gpt(name: str, patterns: tuple[str, ...], sizes: Sizes, edit_params: frozenset[str] = _GPT_EDIT) -> Family:
    return Family(name, patterns, _GPT, sizes, edit_params=edit_params, max_n=10, prompt_limit=32000,
                  max_images=16, mask=True)


# The current models (December 2026), read in OpenAI's API reference and SDKs: gpt-image-2 (snapshot
# gpt-image-2-2026-04-21), gpt-image-2.5-flare / -sunburst (snapshots -2026-09-08) and gpt-image-2.6-flare /
# -sunburst. All take the standard sizes, auto, or any WIDTHxHEIGHT with both sides multiples of 16, the
# longest at most 3840, a ratio within 3:1 and 655,360 to 8,294,400 pixels; quality low/medium/high/auto;
# background transparent or opaque (transparent is "preview" on gpt-image-2); png/jpeg/webp; n 1-10;
# partial_images 0-3; edits with up to 16 input images and a mask. (2.5 and 2.6 also know quality
# xhigh/max, and 2.6 a `complexity` knob and gif/svg output; the gateway's request vocabulary has
# none of these, so they are never sent.) Names matching no other family get these rules: the newest.
GPT_IMAGE_2 = _gpt("gpt-image-2", ("*",), Sizes(fixed=GPT_SIZES, tiers=TIERS, free=Bounds(
    multiple=16, max_side=3840, max_area=(3840, 2160), max_ratio=3, min_pixels=655_360)))
# Retired models (app/providers/retired.py), still declared: a relay behind OPENAI_BASE_URL or a routing-file
# channel may serve them, and then they keep their own rules.
GPT_IMAGE_1_MINI = _gpt("gpt-image-1-mini", ("gpt-image-1-mini*",), Sizes(fixed=GPT_SIZES, tiers=("1K",)),
                        edit_params=_GPT_EDIT - {"input_fidelity"})
GPT_IMAGE_1 = _gpt("gpt-image-1", ("gpt-image-1*", "chatgpt-image-*"), Sizes(fixed=GPT_SIZES, tiers=("1K",)))
DALLE3 = Family("dall-e-3", ("dall-e-3*",), params("size", "quality", "style"),
                Sizes(fixed=("1024x1024", "1792x1024", "1024x1792"), tiers=("1K",)), prompt_limit=4000, max_images=0)
DALLE2 = Family("dall-e-2", ("dall-e*",), params("size", "quality"),
                Sizes(fixed=("256x256", "512x512", "1024x1024"), tiers=("1K",)), max_n=10, prompt_limit=1000,
                max_images=1, mask=True)
FAMILIES = (GPT_IMAGE_1_MINI, GPT_IMAGE_1, DALLE3, DALLE2, GPT_IMAGE_2)


class OpenAIClient(ProviderClient):
    name = "openai"
    label = "OpenAI Images API"
    env_prefix = "OPENAI"
    default_base_url = "https://api.openai.com/v1"
    model_patterns = ("gpt-image-*", "dall-e-*", "chatgpt-image-*")
    known_models = ("gpt-image-2.6-flare", "gpt-image-2.6-sunburst", "gpt-image-2.5-flare", "gpt-image-2.5-sunburst",
                    "gpt-image-2.5-flare-2026-09-08", "gpt-image-2.5-sunburst-2026-09-08", "gpt-image-2",
                    "gpt-image-2-2026-04-21")
    families = FAMILIES

    def auth_headers(self) -> dict[str, str]:
        headers = super().auth_headers()
        if self.settings.options.get("organization"):
            headers["OpenAI-Organization"] = self.settings.options["organization"]
        if self.settings.options.get("project"):
            headers["OpenAI-Project"] = self.settings.options["project"]
        return headers

    def make_images(self, request: ImageRequest, family: Family) -> ImageResult:
        fields, dropped = self.body(request, family)
        if request.is_edit:
            answer = self._post("/images/edits", data=_form(fields), files=self._edit_files(request, family))
        else:
            answer = self._post("/images/generations", json=fields)
        result = self.to_result(answer)
        result.dropped = dropped
        return result

    def stream_images(self, request: ImageRequest, family: Family,
                      on_partial: Callable[[int, GeneratedImage], None]) -> ImageResult:
        """GPT image models with `partial_images` use OpenAI's streaming Images API (§A.5)."""
        partials = request.params.get("partial_images", 0)
        if not partials:
            return self.make_images(request, family)
        fields, dropped = self.body(request, family)
        fields.update(stream=True, partial_images=partials)
        if request.is_edit:
            events = self._post_events("/images/edits", data=_form(fields), files=self._edit_files(request, family))
        else:
            events = self._post_events("/images/generations", json=fields)
        result = ImageResult()
        for event, data in events:
            if event == JSON_ANSWER:  # not streamed after all: an ordinary Images answer
                result = self.to_result(data)
                break
            kind_of_event = (data.get("type") if isinstance(data, dict) else None) or event or ""
            if not isinstance(data, dict) or "error" in data or kind_of_event == "error":
                raise self._stream_error(data)
            if kind_of_event.endswith(".partial_image"):
                on_partial(int(data.get("partial_image_index") or 0), self._image(data))
            elif kind_of_event.endswith(".completed"):
                result.images.append(self._image(data))
                result.usage = result.usage + usage(data.get("usage"))
                result.quality = data.get("quality") or result.quality
                result.background = data.get("background") or result.background
        if not result.images:
            raise UpstreamError("openai's image stream ended without a completed image", provider=self.name)
        result.dropped = dropped
        return result

    def _image(self, event: dict) -> GeneratedImage:
        b64 = event.get("b64_json") or ""
        mime = sniff_mime_b64(b64)
        if mime is None:
            raise UpstreamError("openai streamed data that is not an image", provider=self.name)
        return GeneratedImage(b64=b64, mime=mime)

    def _stream_error(self, data) -> GatewayError:
        """An error event inside a 200 stream: the caller's fault only when OpenAI says so."""
        error = data.get("error") if isinstance(data, dict) else None
        caller_types = ("invalid_request_error", "image_generation_user_error")
        status = 400 if isinstance(error, dict) and error.get("type") in caller_types else 502
        return self.error_for(status, data if isinstance(error, dict) else {"error": {"message": str(data)[:200]}})

    def body(self, request: ImageRequest, family: Family) -> tuple[dict, list[str]]:
        """The upstream fields for this model, and the parameters the conversion could not honour."""
        params = request.params
        fields: dict = {"model": request.model, "prompt": request.prompt}
        dropped = []
        if request.n > 1:
            fields["n"] = request.n
        if request.user:
            fields["user"] = request.user
        dalle = family in (DALLE2, DALLE3)
        if dalle:
            fields["response_format"] = "b64_json"  # dall-e answers with short-lived URLs otherwise
        size = request.size
        if size.tier is not None:
            fields["size"] = TIER_SIZES[size.tier]
        elif not size.is_auto or ("size" in params and not dalle):  # dall-e: auto is left to OpenAI
            fields["size"] = size
        quality = params.get("quality")
        if quality is not None:
            if not dalle:
                fields["quality"] = GPT_QUALITY[quality]
            elif family is DALLE3 and quality != "auto":
                fields["quality"] = DALLE3_QUALITY[quality]
            elif family is DALLE2 and quality not in DALLE2_QUALITIES:
                dropped.append("quality")
        for name in ("background", "moderation", "output_format", "output_compression", "input_fidelity", "style"):
            if name in params:
                fields[name] = params[name]
        return fields, dropped

    def _edit_files(self, request: ImageRequest, family: Family) -> list:
        field = "image" if family is DALLE2 else "image[]"
        files = []
        for index, ref in enumerate(request.images):
            data, mime = self.fetch_image(ref)
            if family is DALLE2 and mime != PNG:
                raise InvalidRequest("dall-e-2 edits need a square PNG image", param=ref.param)
            files.append((field, (f"image_{index}.{EXTENSION_OF_MIME[mime]}", data, mime)))
        if request.mask is not None:
            data, mime = self.fetch_image(request.mask)
            if mime != PNG:
                raise InvalidRequest("The mask must be a PNG with an alpha channel", param=request.mask.param)
            files.append(("mask", ("mask.png", data, mime)))
        return files

    def to_result(self, answer: dict) -> ImageResult:
        if not isinstance(answer, dict) or not isinstance(answer.get("data"), list):
            raise UpstreamError("openai answered without a data list", provider=self.name)
        images = []
        for item in answer["data"]:
            picture = self.images_api_picture(item)
            if picture is not None:
                images.append(GeneratedImage(b64=picture[0], mime=picture[1],
                                             revised_prompt=item.get("revised_prompt")))
        if not images:
            raise UpstreamError("openai answered without an image", provider=self.name)
        return ImageResult(images=images, usage=usage(answer.get("usage")),
                           quality=answer.get("quality"), background=answer.get("background"))


def usage(raw) -> Usage:
    """Images API usage (input/output tokens) in chat terms; dall-e sends none."""
    if not isinstance(raw, dict):
        return Usage()
    return Usage(
        prompt_tokens=int(raw.get("input_tokens") or 0),
        completion_tokens=int(raw.get("output_tokens") or 0),
        total_tokens=int(raw.get("total_tokens") or 0),
        prompt_details=_ints(raw.get("input_tokens_details")),
        completion_details=_ints(raw.get("output_tokens_details")),
    )


def _ints(details) -> dict[str, int]:
    if not isinstance(details, dict):
        return {}
    return {k: v for k, v in details.items() if isinstance(v, int) and not isinstance(v, bool)}


def _form(fields: dict) -> dict[str, str]:
    """Multipart text fields are strings: numbers as digits, booleans as true/false."""
    return {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in fields.items()}
