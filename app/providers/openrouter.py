"""OpenRouter: image generation through its chat completions route, the whole conversation translated (§D, §F)."""
from __future__ import annotations

import string
from typing import Any
from urllib.parse import quote, urlsplit

from app import jsonio
from app.core.conversation import text_of, turn_parts
from app.core.errors import InvalidRequest, UpstreamError
from app.core.request import ImageRequest
from app.core.result import GeneratedImage, ImageResult, Usage
from app.jsonio import is_text
from app.media import sniff_mime_b64, strip_data_url
from app.providers.base import ErrorInfo, ProviderClient, b64encode
from app.providers.capabilities import (ASPECT_RATIOS, DROP, GEMINI_3_SIZES, GEMINI_31_FLASH_LITE_SIZES,
                                        GEMINI_31_FLASH_SIZES, Family, Sizes, matches, params,
                                        ratio_and_tier)

CHAT_PATH = "/chat/completions"

# The ImageRequest does not carry the client's `modalities`, so the gateway chooses per model:
# text+image models (Gemini, GPT-5 image) may say something with the picture; image-only models
# (Flux, Seedream, Sourceful) are refused by OpenRouter ("no endpoints") when "text" is asked for.
TEXT_AND_IMAGE = ["image", "text"]
IMAGE_ONLY = ["image"]

# The chat route carries size and quality only (as image_config); everything else a client sets is dropped.
_PARAMS = params("size", "quality")
# Only the Gemini 3 image models take image_config.image_size; a tier other models cannot make is dropped.
GEMINI_31_FLASH = Family("gemini-3.1-flash-image", ("*gemini-3.1-flash-image*",), _PARAMS, GEMINI_31_FLASH_SIZES)
GEMINI_31_FLASH_LITE = Family("gemini-3.1-flash-lite-image", ("*gemini-3.1-flash-lite-image*",), _PARAMS,
                              GEMINI_31_FLASH_LITE_SIZES)
GEMINI_3 = Family("gemini-3", ("*gemini-3*",), _PARAMS, GEMINI_3_SIZES)
IMAGE_ONLY_FAMILY = Family("image-only", ("black-forest-labs/*", "bytedance-seed/*", "sourceful/*"), _PARAMS,
                           Sizes(ratios=ASPECT_RATIOS, others=DROP))
OTHERS = Family("text-and-image", ("*",), _PARAMS, Sizes(ratios=ASPECT_RATIOS, others=DROP))
SYSTEM_ROLES = ("system", "developer")
CONVERSATION_ROLES = ("user", "assistant")

ERROR_FINISH = "error"
CONTENT_FILTER = "content_filter"
# Google's own reasons for a withheld picture, which OpenRouter passes on as native_finish_reason
NATIVE_BLOCK_REASONS = frozenset({"SAFETY", "IMAGE_SAFETY", "PROHIBITED_CONTENT", "IMAGE_PROHIBITED_CONTENT",
                                  "BLOCKLIST", "SPII", "RECITATION", "IMAGE_RECITATION"})
MAX_TEXT_IN_ERROR = 300
MODERATION_BLOCKED = "moderation_blocked"
# how OpenRouter says it has no such model: a 400 "<id> is not a valid model ID", or a 404 "No endpoints found
# for <id>." (a plain 404 also comes for routing preferences no provider meets: that is not a missing model)
MISSING_MODEL_PHRASES = ("is not a valid model id", "no endpoints found for ")


class OpenRouterClient(ProviderClient):
    """Chat-native: the conversation goes upstream as is, images come back in `message.images` or content."""

    name = "openrouter"
    label = "OpenRouter"
    env_prefix = "OPENROUTER"
    default_base_url = "https://openrouter.ai/api/v1"
    model_patterns = ("*/*",)
    known_models = ("google/gemini-3.1-flash-image-preview", "google/gemini-3-pro-image-preview",
                    "openai/gpt-5-image", "black-forest-labs/flux.2-pro", "bytedance-seed/seedream-4.5")
    families = (GEMINI_31_FLASH, GEMINI_31_FLASH_LITE, GEMINI_3, IMAGE_ONLY_FAMILY, OTHERS)

    def auth_headers(self) -> dict[str, str]:
        """Bearer key plus the optional app attribution OpenRouter shows in its rankings."""
        headers = super().auth_headers()
        referer = _header_value(self.settings.options.get("referer"))
        title = _header_value(self.settings.options.get("title"))
        if referer:
            headers["HTTP-Referer"] = referer
        if title:
            headers["X-Title"] = title  # the older name, still read; the newer one below
            headers["X-OpenRouter-Title"] = title
        return headers

    def make_images(self, request: ImageRequest, family: Family) -> ImageResult:
        ratio, tier, dropped = ratio_and_tier(request, family)
        image_config = {key: value for key, value in (("aspect_ratio", ratio), ("image_size", tier)) if value}
        body: dict[str, Any] = {"model": request.model, "messages": self.conversation(request),
                                "modalities": self.modalities(request.model, family), "stream": False}
        if image_config:
            body["image_config"] = image_config
        if request.user:
            body["user"] = request.user
        result = self.to_result(self._post(CHAT_PATH, json=body))
        result.dropped = dropped
        return result

    # ----- request -----

    def modalities(self, model: str, family: Family) -> list[str]:
        extra = tuple(p.strip() for p in self.settings.options.get("image_only_models", "").split(",") if p.strip())
        return list(IMAGE_ONLY if family is IMAGE_ONLY_FAMILY or matches(model, extra) else TEXT_AND_IMAGE)

    def conversation(self, request: ImageRequest) -> list[dict]:
        """The client's conversation in OpenRouter's terms; a bare prompt when there is none (Images API)."""
        if not request.messages:
            parts = [{"type": "text", "text": request.prompt}]
            parts += [{"type": "image_url", "image_url": {"url": _input_url(ref.url, ref.param)}}
                      for ref in request.images]
            return [{"role": "user", "content": parts}]
        messages = []
        for index, message in enumerate(request.messages):
            translated = _message(message, index)
            if translated is not None:
                messages.append(translated)
        return messages

    # ----- answer -----

    def to_result(self, answer: Any) -> ImageResult:
        images: dict[str, GeneratedImage] = {}  # keyed by payload: the same picture may sit in two places
        texts, blocked = [], []
        for choice in self._choices(answer):
            self._raise_failed(choice)
            message = choice.get("message") if isinstance(choice.get("message"), dict) else {}
            text, urls = _read_message(message)
            if text:
                texts.append(text)
            for url in urls:
                key = strip_data_url(url) if url.startswith("data:") else url
                if key not in images:
                    images[key] = self._image(url)
            if _is_block(choice):
                blocked.append(choice.get("native_finish_reason") or choice.get("finish_reason"))
        text = "\n".join(texts) or None
        usage = _usage(answer.get("usage"))
        if images:
            return ImageResult(images=list(images.values()), text=text, usage=usage,
                               finish_reason=CONTENT_FILTER if blocked else "stop")
        if blocked:
            return ImageResult(text=text or f"The model withheld the image ({blocked[0]}).",
                               finish_reason=CONTENT_FILTER, usage=usage)
        said = f": {_shorten(text)}" if text else ""
        raise UpstreamError(self.redact(f"{answer.get('model') or 'the model'} answered without an image{said}"),
                            provider=self.name, code="no_image_generated")

    def _choices(self, answer: Any) -> list[dict]:
        """The answer's choices, after the failures OpenRouter reports inside a 200 answer."""
        if not isinstance(answer, dict):
            raise UpstreamError("openrouter answered with something other than a JSON object", provider=self.name)
        if answer.get("error"):  # a failure found after the 200 status line was sent
            raise self.error_for(_status_of(answer["error"]), answer)
        choices = answer.get("choices")
        if not isinstance(choices, list) or not choices or not all(isinstance(c, dict) for c in choices):
            raise UpstreamError("openrouter answered without choices", provider=self.name)
        return choices

    def _raise_failed(self, choice: dict) -> None:
        """A choice with finish_reason "error" failed upstream even though the answer is a 200."""
        if choice.get("finish_reason") != ERROR_FINISH:
            return
        error = choice.get("error") if isinstance(choice.get("error"), dict) else {}
        reason = error.get("message") or choice.get("native_finish_reason") or "no reason given"
        raise UpstreamError(self.redact(f"openrouter's model failed while generating: {_as_text(reason)}"),
                            provider=self.name)

    def _image(self, url: str) -> GeneratedImage:
        """Base64 and sniffed MIME type of one answered image (data URL, bare base64 or an http URL)."""
        if url.startswith(("http://", "https://")):
            data, mime = self.download_result(url)
            return GeneratedImage(b64=b64encode(data), mime=mime)
        b64 = strip_data_url(url)
        mime = sniff_mime_b64(b64)
        if mime is None:
            raise UpstreamError("openrouter answered with data that is not a PNG, JPEG, WEBP or GIF image",
                                provider=self.name)
        return GeneratedImage(b64=b64, mime=mime)

    # ----- errors -----

    def model_missing(self, status: int, info: ErrorInfo) -> bool:
        message = (info.message or "").lower()
        return any(phrase in message for phrase in MISSING_MODEL_PHRASES)

    def error_details(self, body: Any, status: int) -> ErrorInfo:
        """OpenRouter's envelope: `metadata.raw` (the model host's own words) beats the generic message.

        Re-classified: 402 means the gateway's account has no credits (not the caller's fault, so 502);
        a 403 carrying moderation metadata is the caller's flagged prompt (400), a plain 403 stays auth.
        """
        error = body.get("error") if isinstance(body, dict) else None
        if not isinstance(error, dict):
            return super().error_details(body, status)
        metadata = error.get("metadata") if isinstance(error.get("metadata"), dict) else {}
        code = error.get("code")
        info = ErrorInfo(_error_message(error, metadata), _as_text(code) if code is not None else None)
        if status == 402:
            said = f": {info.message}" if info.message else ""
            info.message = (f"the gateway's OpenRouter account is out of credits (HTTP 402{said}); "
                            "the operator should add credits")
            info.status = 502
        elif status == 403 and (metadata.get("reasons") or metadata.get("flagged_input")):
            info.message = _moderation_message(info.message, metadata)
            info.code = MODERATION_BLOCKED
            info.status = 400
        return info


# ----- conversation translation -----

def _message(message: dict, index: int) -> dict | None:
    """One client message for OpenRouter, or None when nothing of it is left to send."""
    role, content = message.get("role"), message.get("content")
    if role in SYSTEM_ROLES:
        text = text_of(content)  # image parts in a system message mean nothing to the models
        return {"role": "system", "content": text} if text else None
    if role not in CONVERSATION_ROLES:
        return None  # tool results answer function calls OpenRouter never saw
    parts = [p for p in (_part(part, url_param) for part, url_param in turn_parts(message, index)) if p is not None]
    if not parts:
        return None
    if isinstance(content, str) and len(parts) == 1 and parts[0]["type"] == "text":
        return {"role": role, "content": content}  # a plain text turn stays as the client wrote it
    return {"role": role, "content": parts}


def _part(part: dict, url_param: str | None) -> dict | None:
    if part.get("type") == "text":
        return {"type": "text", "text": part["text"]} if part.get("text") else None
    if part.get("type") == "image_url":
        image_url = {"url": _input_url(part["image_url"]["url"], url_param)}
        if part["image_url"].get("detail"):
            image_url["detail"] = part["image_url"]["detail"]
        return {"type": "image_url", "image_url": image_url}
    return None


def _input_url(url: str, param: str) -> str:
    """An input image URL to pass on: http(s) as given (OpenRouter fetches it), data URLs re-labelled
    with the type sniffed from their bytes (a mislabelled JPEG is refused by some model hosts)."""
    if url.startswith("data:"):
        head, comma, payload = url.partition(",")
        if not comma or not head.lower().endswith(";base64"):
            raise InvalidRequest("Data URLs must be base64-encoded (data:<mime>;base64,<data>)", param=param)
        mime = sniff_mime_b64(payload)
        if mime is None:
            raise InvalidRequest("The data URL does not hold a PNG, JPEG, WEBP or GIF image", param=param)
        return url if head.lower() == f"data:{mime};base64" else f"data:{mime};base64,{payload}"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest("Image URLs must be data: URLs or http(s) URLs", param=param)
    return url


# ----- answer reading -----

def _read_message(message: dict) -> tuple[str | None, list[str]]:
    """The text and the image URLs of an answered message: `images` first, then image parts in content."""
    urls = [url for url in map(_image_url, message.get("images") or []) if url]
    content = message.get("content")
    texts = []
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for part in content:
            if not isinstance(part, dict):
                continue
            if part.get("type") == "text" and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif part.get("type") == "image_url" and _image_url(part):
                urls.append(_image_url(part))
    text = "\n".join(t.strip() for t in texts if t and t.strip())
    return text or None, urls


def _image_url(item: Any) -> str | None:
    """`{"image_url": {"url": ...}}`, tolerating a bare string and the SDKs' camelCase spelling."""
    if is_text(item):
        return item or None
    if not isinstance(item, dict):
        return None
    inner = item.get("image_url", item.get("imageUrl"))
    url = inner.get("url") if isinstance(inner, dict) else inner if is_text(inner) else item.get("url")
    return url if is_text(url) and url else None


def _is_block(choice: dict) -> bool:
    return (choice.get("finish_reason") == CONTENT_FILTER
            or str(choice.get("native_finish_reason") or "").upper() in NATIVE_BLOCK_REASONS)


def _usage(raw: Any) -> Usage:
    """OpenRouter usage is already in chat terms; `cost` (credits) travels as an extra field (§F.4)."""
    if not isinstance(raw, dict):
        return Usage()
    cost = raw.get("cost")
    return Usage(
        prompt_tokens=_int(raw.get("prompt_tokens")),
        completion_tokens=_int(raw.get("completion_tokens")),
        total_tokens=_int(raw.get("total_tokens")),
        prompt_details=_ints(raw.get("prompt_tokens_details")),
        completion_details=_ints(raw.get("completion_tokens_details")),
        extra={"cost": cost} if isinstance(cost, (int, float)) and not isinstance(cost, bool) else {},
    )


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _ints(details: Any) -> dict[str, int]:
    if not isinstance(details, dict):
        return {}
    return {k: v for k, v in details.items() if isinstance(v, int) and not isinstance(v, bool)}


# ----- error reading -----

def _status_of(error: Any) -> int:
    """The HTTP status an in-body error stands for (its numeric code), 502 when it gives none."""
    code = error.get("code") if isinstance(error, dict) else None
    if isinstance(code, str) and code.isdigit():
        code = int(code)
    return code if isinstance(code, int) and 400 <= code < 600 else 502


def _error_message(error: dict, metadata: dict) -> str | None:
    raw = metadata.get("raw")
    if raw not in (None, ""):
        provider = metadata.get("provider_name")
        return f"{provider}: {_as_text(raw)}" if isinstance(provider, str) and provider else _as_text(raw)
    message = error.get("message")
    return _as_text(message) if message not in (None, "") else None


def _moderation_message(message: str | None, metadata: dict) -> str:
    said = message or "OpenRouter's moderation flagged the input"
    reasons = metadata.get("reasons")
    if isinstance(reasons, list) and reasons:
        said += f" (reasons: {', '.join(_as_text(r) for r in reasons)})"
    flagged = metadata.get("flagged_input")
    if isinstance(flagged, str) and flagged:
        said += f"; flagged input: {_shorten(flagged, 100)!r}"
    return said


# ----- small helpers -----

def _as_text(value: Any) -> str:
    return value if isinstance(value, str) else jsonio.dumps(value).decode()


def _shorten(text: str, limit: int = MAX_TEXT_IN_ERROR) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _header_value(value: str | None) -> str | None:
    """Header-safe text: one line, non-ASCII percent-encoded (http.client sends latin-1 only)."""
    if not value:
        return None
    line = " ".join(value.split())
    return quote(line, safe=string.punctuation + " ") if line else None
