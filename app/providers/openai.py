"""OpenAI Images API: /images/generations (JSON) and /images/edits (multipart), reference §A, §F."""
from __future__ import annotations

import re
from typing import Callable

from app.core.errors import GatewayError, InvalidRequest, UpstreamError
from app.core.request import ImageRequest
from app.core.result import GeneratedImage, ImageResult, Usage
from app.media import EXTENSION_OF_MIME, PNG, sniff_mime_b64
from app.providers.base import JSON_ANSWER, ProviderClient, b64encode

GPT = "gpt-image"
DALLE2 = "dall-e-2"
DALLE3 = "dall-e-3"

FIXED_SIZES = {
    GPT: ("1024x1024", "1536x1024", "1024x1536"),
    DALLE2: ("256x256", "512x512", "1024x1024"),
    DALLE3: ("1024x1024", "1792x1024", "1024x1792"),
}
# gpt-image-2 takes free sizes: both sides multiples of 16, ratio at most 3:1, within 3840x2160 pixels
FREE_SIZE_MAX_EDGE = 3840
FREE_SIZE_MAX_PIXELS = 3840 * 2160
FREE_SIZE_TIERS = {"1K": "1024x1024", "2K": "2048x2048", "4K": "2880x2880"}
PROMPT_LIMITS = {GPT: 32000, DALLE2: 1000, DALLE3: 4000}
MAX_EDIT_IMAGES = {GPT: 16, DALLE2: 1}

GPT_QUALITY = {"auto": "auto", "low": "low", "medium": "medium", "high": "high", "hd": "high", "standard": "medium"}
DALLE3_QUALITY = {"high": "hd", "hd": "hd", "medium": "standard", "low": "standard", "standard": "standard"}

# parameters each family can honour; everything else the client set is dropped and named
GPT_GENERATE = {"size", "quality", "background", "moderation", "output_format", "output_compression"}
GPT_EDIT = {"size", "quality", "background", "output_format", "output_compression", "input_fidelity"}
DALLE_PARAMS = {"size", "quality"}
DALLE3_PARAMS = {"size", "quality", "style"}  # `style` comes from the Images API surface
SILENTLY_IGNORED = {"partial_images"}  # previews exist only when streaming


def family(model: str) -> str:
    if model.startswith("dall-e-3"):
        return DALLE3
    if model.startswith("dall-e"):
        return DALLE2
    return GPT


def takes_free_sizes(model: str) -> bool:
    return model.startswith("gpt-image-2")


class OpenAIClient(ProviderClient):
    name = "openai"
    env_prefix = "OPENAI"
    default_base_url = "https://api.openai.com/v1"
    model_patterns = ("gpt-image-*", "dall-e-*", "chatgpt-image-*")
    known_models = ("gpt-image-1", "gpt-image-1-mini", "gpt-image-1.5", "gpt-image-2", "chatgpt-image-latest",
                    "dall-e-3", "dall-e-2")

    def auth_headers(self) -> dict[str, str]:
        headers = super().auth_headers()
        if self.settings.options.get("organization"):
            headers["OpenAI-Organization"] = self.settings.options["organization"]
        if self.settings.options.get("project"):
            headers["OpenAI-Project"] = self.settings.options["project"]
        return headers

    def supports_n(self, model: str) -> bool:
        return family(model) != DALLE3

    def generate(self, request: ImageRequest) -> ImageResult:
        kind = self._check_prompt(request)
        fields, dropped = self.map_params(request, kind)
        if request.is_edit:
            answer = self._post("/images/edits", data=_form(fields), files=self._edit_files(request, kind))
        else:
            answer = self._post("/images/generations", json=fields)
        result = self.to_result(answer)
        result.dropped = dropped
        return result

    def generate_streaming(self, request: ImageRequest,
                           on_partial: Callable[[int, GeneratedImage], None]) -> ImageResult:
        """GPT image models with `partial_images` use OpenAI's streaming Images API (§A.5)."""
        kind = self._check_prompt(request)
        partials = request.params.get("partial_images", 0)
        if kind != GPT or not partials:
            return self.generate(request)
        fields, dropped = self.map_params(request, kind)
        fields.update(stream=True, partial_images=partials)
        if request.is_edit:
            events = self._post_events("/images/edits", data=_form(fields), files=self._edit_files(request, kind))
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

    def _check_prompt(self, request: ImageRequest) -> str:
        kind = family(request.model)
        if len(request.prompt) > PROMPT_LIMITS[kind]:
            raise InvalidRequest(f"{request.model} takes prompts of at most {PROMPT_LIMITS[kind]} characters",
                                 param=request.prompt_param, code="prompt_too_long")
        return kind

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

    def map_params(self, request: ImageRequest, kind: str) -> tuple[dict, list[str]]:
        """The upstream body fields for this model, and the names of the parameters it cannot honour."""
        params = request.params
        fields: dict = {"model": request.model, "prompt": request.prompt}
        if request.n > 1:
            fields["n"] = request.n
        if request.user:
            fields["user"] = request.user
        if kind == GPT:
            honoured = GPT_EDIT if request.is_edit else GPT_GENERATE
            if request.model.startswith("gpt-image-1-mini"):
                honoured = honoured - {"input_fidelity"}
        else:
            fields["response_format"] = "b64_json"  # dall-e answers with short-lived URLs otherwise
            honoured = DALLE3_PARAMS if kind == DALLE3 else DALLE_PARAMS
        if "size" in params:
            size = self.upstream_size(request.model, kind, params["size"], request.param_path("size"))
            if size:
                fields["size"] = size
        if "quality" in params:
            if kind == GPT:
                fields["quality"] = GPT_QUALITY[params["quality"]]
            elif kind == DALLE3 and params["quality"] != "auto":
                fields["quality"] = DALLE3_QUALITY[params["quality"]]
            elif kind == DALLE2 and params["quality"] not in ("auto", "standard"):
                honoured = honoured - {"quality"}
        for name in ("background", "moderation", "output_format", "output_compression", "input_fidelity", "style"):
            if name in params and name in honoured:
                fields[name] = params[name]
        dropped = sorted(p for p in params if p not in honoured and p not in SILENTLY_IGNORED)
        return fields, dropped

    def upstream_size(self, model: str, kind: str, size: str, param: str = "size") -> str | None:
        """Validate a size for this model and spell it as OpenAI does; None means 'let OpenAI choose'."""
        if size == "auto":
            return "auto" if kind == GPT else None
        free = kind == GPT and takes_free_sizes(model)
        if size in ("1K", "2K", "4K"):
            if size == "1K" or free:
                return FREE_SIZE_TIERS[size]
        elif size in FIXED_SIZES[kind] or (free and _free_size_ok(size)):
            return size
        valid = ", ".join(FIXED_SIZES[kind] + (("auto",) if kind == GPT else ()) + ("1K",))
        if free:
            valid += ", 2K, 4K or any WIDTHxHEIGHT with sides multiple of 16, ratio up to 3:1, at most 3840x2160 pixels"
        raise InvalidRequest(f"{model} does not make {size} images; valid sizes: {valid}",
                             param=param, code="unsupported_size")

    def _edit_files(self, request: ImageRequest, kind: str) -> list:
        if kind == DALLE3:
            raise InvalidRequest("dall-e-3 cannot edit images; use a gpt-image model or dall-e-2",
                                 param=request.images[0].param)
        limit = MAX_EDIT_IMAGES[kind]
        if len(request.images) > limit:
            raise InvalidRequest(f"{request.model} edits at most {limit} input image(s)",
                                 param=request.images[limit].param)
        field = "image[]" if kind == GPT else "image"
        files = []
        for index, ref in enumerate(request.images):
            data, mime = self.fetch_image(ref)
            if kind == DALLE2 and mime != PNG:
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
            if not isinstance(item, dict):
                continue
            b64 = item.get("b64_json")
            if b64:
                mime = sniff_mime_b64(b64)
            elif item.get("url"):
                data, mime = self.download_result(item["url"])
                b64 = b64encode(data)
            else:
                continue
            if mime is None:
                raise UpstreamError("openai answered with data that is not an image", provider=self.name)
            images.append(GeneratedImage(b64=b64, mime=mime, revised_prompt=item.get("revised_prompt")))
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


def _free_size_ok(size: str) -> bool:
    match = re.fullmatch(r"(\d+)x(\d+)", size)
    if not match:
        return False
    width, height = int(match.group(1)), int(match.group(2))
    return (width % 16 == 0 and height % 16 == 0 and max(width, height) <= FREE_SIZE_MAX_EDGE
            and width * height <= FREE_SIZE_MAX_PIXELS and max(width, height) <= 3 * min(width, height))


def _form(fields: dict) -> dict[str, str]:
    """Multipart text fields are strings: numbers as digits, booleans as true/false."""
    return {k: (str(v).lower() if isinstance(v, bool) else str(v)) for k, v in fields.items()}
