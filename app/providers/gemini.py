"""Google Gemini Developer API: generateContent with image output, and Imagen's legacy :predict (§E, §F)."""
from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from app.core import context
from app.core.conversation import text_of, turn_parts
from app.core.errors import GatewayError, UpstreamError, UpstreamModelNotFound, UpstreamTimeout
from app.core.request import ImageRequest
from app.core.result import GeneratedImage, ImageResult, Usage
from app.jsonio import is_text
from app.media import sniff_mime_b64
from app.providers.base import ErrorInfo, ProviderClient, b64encode
from app.thought_signatures import Signed, digest_b64, picture_key
from app.providers.capabilities import (ASPECT_RATIOS, DROP, GEMINI_3_SIZES, GEMINI_31_FLASH_LITE_SIZES,
                                        GEMINI_31_FLASH_SIZES, Family, Sizes, params,
                                        ratio_and_tier)

API_VERSION = "v1beta"
GENERATE = "generateContent"
PREDICT = "predict"
RESPONSE_MODALITIES = ["TEXT", "IMAGE"]
IMAGEN_MIME = {"png": "image/png", "jpeg": "image/jpeg"}  # Imagen writes no webp

# generateContent takes size and quality (imageConfig: aspectRatio, imageSize). The current models (December
# 2026, Google's model pages): gemini-3.1-flash-image (Nano Banana 2: 14 ratios, 1K/2K/4K and a 512 tier the
# gateway's size vocabulary does not name), gemini-3.1-flash-lite-image (Nano Banana 2 Lite: 1K only),
# gemini-3-pro-image(-preview) (Nano Banana Pro: 10 ratios, 1K/2K/4K); up to 14 input images. None takes
# a mask. Retired (app/providers/retired.py) but still declared for relays: gemini-2.5-flash-image (1K
# only) and Imagen (:predict; png or jpeg, compressed; text only, up to 4 pictures per call).
_GEMINI = params("size", "quality")
GEMINI_31_FLASH = Family("gemini-3.1-flash-image", ("gemini-3.1-flash-image*",), _GEMINI, GEMINI_31_FLASH_SIZES,
                         max_images=14)
GEMINI_31_FLASH_LITE = Family("gemini-3.1-flash-lite-image", ("gemini-3.1-flash-lite-image*",), _GEMINI,
                              GEMINI_31_FLASH_LITE_SIZES)
GEMINI_3 = Family("gemini-3", ("*gemini-3*",), _GEMINI, GEMINI_3_SIZES, max_images=14)
# Gemini 3 image models sign their answers (thoughtSignature) and check the signatures of model turns sent back
THINKING_FAMILIES = (GEMINI_31_FLASH, GEMINI_31_FLASH_LITE, GEMINI_3)
# Google's documented stand-in for a signature the client cannot give back: the check is skipped. The
# Gemini API's FAQ names this one and "context_engineering_is_the_way_to_go"; Vertex AI's page names this one.
SKIP_SIGNATURE = "skip_thought_signature_validator"
_IMAGEN = params("size", "quality", "output_format", "output_compression")
IMAGEN_RATIOS = ("1:1", "3:4", "4:3", "9:16", "16:9")
IMAGEN_3 = Family("imagen-3", ("imagen-3*",), _IMAGEN,  # Imagen 3 rejects sampleImageSize
                  Sizes(tiers=("1K",), ratios=IMAGEN_RATIOS, others=DROP), max_n=4, max_images=0)
IMAGEN = Family("imagen", ("imagen-*",), _IMAGEN, Sizes(tiers=("1K", "2K"), ratios=IMAGEN_RATIOS, others=DROP),
                max_n=4, max_images=0)
GEMINI = Family("gemini", ("*",), _GEMINI, Sizes(tiers=("1K",), ratios=ASPECT_RATIOS, others=DROP))

SYSTEM_ROLES = ("system", "developer")
CONTENT_ROLES = {"user": "user", "assistant": "model"}  # `tool` messages have no Gemini meaning here

# finish reasons that mean "Google withheld the picture": answered as content_filter, not as an error
BLOCK_FINISH_REASONS = {"SAFETY", "IMAGE_SAFETY", "PROHIBITED_CONTENT", "IMAGE_PROHIBITED_CONTENT", "BLOCKLIST",
                        "SPII", "RECITATION", "IMAGE_RECITATION"}
TRUNCATED = "MAX_TOKENS"
TEXT_EXCERPT = 300  # how much of the model's own words a "no image" error quotes

# Google reports a bad key as HTTP 400 INVALID_ARGUMENT; these say the key, not the caller, is wrong
KEY_REASONS = {"API_KEY_INVALID", "API_KEY_EXPIRED"}
KEY_MESSAGES = ("API key not valid", "API key expired")
ERROR_INFO_TYPE = "type.googleapis.com/google.rpc.ErrorInfo"
RETRY_INFO_TYPE = "type.googleapis.com/google.rpc.RetryInfo"
_SECONDS = re.compile(r"^(\d+(?:\.\d+)?)s$")


class GeminiClient(ProviderClient):
    name = "gemini"
    label = "Google Gemini (Developer API)"
    env_prefix = "GEMINI"
    default_base_url = "https://generativelanguage.googleapis.com"
    model_patterns = ("gemini-*", "imagen-*")
    known_models = ("gemini-3.1-flash-image", "gemini-3-pro-image", "gemini-3-pro-image-preview",
                    "gemini-3.1-flash-image-preview")
    families = (GEMINI_31_FLASH, GEMINI_31_FLASH_LITE, GEMINI_3, IMAGEN_3, IMAGEN, GEMINI)

    def auth_headers(self) -> dict[str, str]:
        return {"x-goog-api-key": self.settings.api_key or ""}

    def make_images(self, request: ImageRequest, family: Family) -> ImageResult:
        if family in (IMAGEN, IMAGEN_3):
            return self.generate_imagen(request, family)
        body, dropped = self.generate_body(request, family)
        answer = self._post(self.path(request.model, GENERATE), json=body)
        result = self.to_result(answer)
        self.remember_signatures(answer)
        result.dropped = dropped
        return result

    def path(self, model: str, method: str) -> str:
        # tolerate a GEMINI_BASE_URL that already ends with the API version
        version = "" if self.settings.base_url.endswith("/" + API_VERSION) else "/" + API_VERSION
        return f"{version}/models/{quote(model, safe='')}:{method}"

    # ----- generateContent -----

    def generate_body(self, request: ImageRequest, family: Family) -> tuple[dict, list[str]]:
        """The generateContent body, and the names of the parameters the conversion could not honour."""
        contents, system = self.contents(request, signed=family in THINKING_FAMILIES)
        ratio, tier, dropped = ratio_and_tier(request, family)
        image_config = {key: value for key, value in (("aspectRatio", ratio), ("imageSize", tier)) if value}
        config: dict[str, Any] = {"responseModalities": list(RESPONSE_MODALITIES)}
        if image_config:
            config["imageConfig"] = image_config
        body: dict[str, Any] = {"contents": contents}
        if system:
            body["systemInstruction"] = {"parts": [{"text": "\n\n".join(system)}]}
        body["generationConfig"] = config
        return body, dropped

    def contents(self, request: ImageRequest, signed: bool = False) -> tuple[list[dict], list[str]]:
        """The conversation as Gemini turns, and the system/developer texts for systemInstruction; `signed`:
        model turns carry thought signatures (Gemini 3)."""
        if not request.messages:  # a surface without a conversation: the prompt and its images
            parts = [{"text": request.prompt}] + [_inline(*self.fetch_image(ref)) for ref in request.images]
            return [{"role": "user", "parts": parts}], []
        messages = request.messages
        # the prompt is the last user message: model turns after it would be continued, not answered
        last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=len(messages))
        contents, system = [], []
        for index, message in enumerate(messages):
            role = message["role"]
            if role in SYSTEM_ROLES:
                text = text_of(message.get("content"))
                if text:
                    system.append(text)
            elif role in CONTENT_ROLES and index <= last_user:
                parts = self.parts(message, index, signed=signed and role == "assistant")
                if parts:
                    contents.append({"role": CONTENT_ROLES[role], "parts": parts})
        return contents, system

    def parts(self, message: dict, index: int, signed: bool = False) -> list[dict]:
        parts, pictures = [], []
        for part, url_param in turn_parts(message, index):
            if part["type"] == "text" and part["text"]:
                parts.append({"text": part["text"]})
            elif part["type"] == "image_url":
                parts.append(_inline(*self.image_from_url(part["image_url"]["url"], url_param)))
                pictures.append(parts[-1])
        if signed and parts:
            self.sign(parts, pictures)
        return parts

    # ----- thought signatures (app/thought_signatures.py) -----

    def sign(self, parts: list[dict], pictures: list[dict]) -> None:
        """Give a model turn its signatures back: each picture the one Gemini gave it, and the turn's first
        part (when it is text) the one Gemini gave the text before that picture. Unknown ones get
        Google's value that skips the check, so an edit never fails on a missing signature."""
        scope, leads = context.client_id(), []
        for part in pictures:
            kept = self.signatures.get(picture_key(scope, digest_b64(part["inlineData"]["data"])))
            part["thoughtSignature"] = kept.picture if kept is not None else SKIP_SIGNATURE
            if kept is not None and kept.lead:
                leads.append(kept.lead)
        if "thoughtSignature" not in parts[0]:
            parts[0]["thoughtSignature"] = leads[0] if leads else SKIP_SIGNATURE

    def remember_signatures(self, answer: dict) -> None:
        """Keep the signatures of an answer's pictures, keyed by their bytes, for when they come back."""
        candidates = answer.get("candidates")
        content = candidates[0].get("content") if isinstance(candidates, list) and candidates else None
        parts = content.get("parts") if isinstance(content, dict) else None
        shown = [p for p in parts if isinstance(p, dict) and not p.get("thought")] if isinstance(parts, list) else []
        lead = _signature(shown[0]) if shown and _blob(shown[0]) is None else None
        for part in shown:
            blob, signature = _blob(part), _signature(part)
            if blob is not None and signature:
                if is_text(blob["data"]):
                    self.signatures.put(picture_key(context.client_id(), digest_b64(blob["data"])),
                                        Signed(signature, lead))

    def to_result(self, answer: Any) -> ImageResult:
        """A generateContent answer as an ImageResult; blocks become content_filter, no picture a 502."""
        if not isinstance(answer, dict):
            raise UpstreamError("gemini answered with something other than a JSON object", provider=self.name)
        usage = gemini_usage(answer.get("usageMetadata"))
        feedback = answer.get("promptFeedback") if isinstance(answer.get("promptFeedback"), dict) else {}
        if feedback.get("blockReason"):
            text = _explain("blocked the prompt", f"blockReason {feedback['blockReason']}",
                            feedback.get("blockReasonMessage"))
            return ImageResult(text=text, finish_reason="content_filter", usage=usage)
        candidates = answer.get("candidates")
        if not isinstance(candidates, list) or not candidates or not isinstance(candidates[0], dict):
            raise UpstreamError("gemini answered without a candidate", provider=self.name)
        candidate = candidates[0]
        reason = str(candidate.get("finishReason") or "FINISH_REASON_UNSPECIFIED")
        images, said = self.read_parts(candidate.get("content"))
        text = "\n".join(said) or None
        if reason in BLOCK_FINISH_REASONS:
            explained = _explain("withheld the image", f"finishReason {reason}", candidate.get("finishMessage"))
            return ImageResult(text="\n".join(filter(None, (explained, text))), finish_reason="content_filter",
                               usage=usage)
        if not images:
            raise self.no_image(reason, text or candidate.get("finishMessage"))
        return ImageResult(images=images, text=text, usage=usage,
                           finish_reason="length" if reason == TRUNCATED else "stop")

    def read_parts(self, content: Any) -> tuple[list[GeneratedImage], list[str]]:
        """Images and text of a candidate; `thought` parts are the model's drafts and are skipped."""
        parts = content.get("parts") if isinstance(content, dict) else None
        images, said = [], []
        for part in parts if isinstance(parts, list) else []:
            if not isinstance(part, dict) or part.get("thought"):
                continue
            blob = _blob(part)
            if blob is not None:
                images.append(self.image(blob["data"], blob.get("mimeType") or blob.get("mime_type")))
            elif isinstance(part.get("text"), str) and part["text"]:
                said.append(part["text"])
        return images, said

    def image(self, b64: Any, declared: Any) -> GeneratedImage:
        mime = sniff_mime_b64(b64) if is_text(b64) else None
        if mime is None:
            raise UpstreamError(f"gemini answered with data that is not an image (declared {declared or 'nothing'})",
                                provider=self.name)
        return GeneratedImage(b64=b64, mime=mime)

    def no_image(self, reason: str, text: str | None) -> UpstreamError:
        said = ""
        if text:
            excerpt = text if len(text) <= TEXT_EXCERPT else text[:TEXT_EXCERPT] + "…"
            said = f"; the model said: {excerpt}"
        return UpstreamError(self.redact(f"gemini made no image (finishReason {reason}){said}"),
                             provider=self.name, code="no_image_generated")

    # ----- Imagen :predict (§E.5) -----

    def generate_imagen(self, request: ImageRequest, family: Family) -> ImageResult:
        parameters, dropped = self.imagen_parameters(request, family)
        body = {"instances": [{"prompt": request.prompt}], "parameters": {"sampleCount": request.n, **parameters}}
        result = self.imagen_result(self._post(self.path(request.model, PREDICT), json=body))
        result.dropped = dropped
        return result

    def imagen_parameters(self, request: ImageRequest, family: Family) -> tuple[dict, list[str]]:
        params = request.params
        ratio, tier, dropped = ratio_and_tier(request, family)
        parameters: dict[str, Any] = {"includeRaiReason": True}  # so filtered samples say why
        if ratio:
            parameters["aspectRatio"] = ratio
        if tier:
            parameters["sampleImageSize"] = tier
        output = {}
        if params.get("output_format") in IMAGEN_MIME:
            output["mimeType"] = IMAGEN_MIME[params["output_format"]]
            if "output_compression" in params:  # the schema allows it with jpeg or webp only
                output["compressionQuality"] = params["output_compression"]
        elif "output_format" in params:
            dropped += [name for name in ("output_format", "output_compression") if name in params]
        if output:
            parameters["outputOptions"] = output
        return parameters, dropped

    def imagen_result(self, answer: Any) -> ImageResult:
        predictions = answer.get("predictions") if isinstance(answer, dict) else None
        images, filtered = [], []
        for item in predictions if isinstance(predictions, list) else []:
            if not isinstance(item, dict):
                continue
            if item.get("bytesBase64Encoded"):
                images.append(self.image(item["bytesBase64Encoded"], item.get("mimeType")))
            elif item.get("raiFilteredReason"):
                filtered.append(str(item["raiFilteredReason"]))
        usage = Usage(extra={"generated_images": len(images)})
        if not filtered:
            if not images:
                raise UpstreamError("gemini (Imagen) answered without an image", provider=self.name,
                                    code="no_image_generated")
            return ImageResult(images=images, usage=usage)
        # some or all samples were filtered: say so, and keep the pictures that were made
        text = _explain("filtered " + (f"{len(filtered)} of {len(filtered) + len(images)} images"
                                       if images else "the images"), "raiFilteredReason", "; ".join(filtered))
        return ImageResult(images=images, text=text, finish_reason="content_filter", usage=usage)

    # ----- errors (§E.4) -----

    def error_details(self, body: Any, status: int) -> ErrorInfo:
        """Google's envelope: message, status word as code; a bad key re-classified as 401."""
        error = _error_object(body)
        if error is None:
            return super().error_details(body, status)
        word = error.get("status") if isinstance(error.get("status"), str) else None
        message = error.get("message") if isinstance(error.get("message"), str) else None
        reasons = {detail.get("reason") for detail in _details(error, ERROR_INFO_TYPE)}
        bad_key = (bool(reasons & KEY_REASONS) or word == "UNAUTHENTICATED"
                   or any(text in (message or "") for text in KEY_MESSAGES))
        # PERMISSION_DENIED stays 403: the base then keeps Google's reason (API disabled, key blocked)
        return ErrorInfo(message=message, code=word, status=401 if bad_key else None)

    def error_for(self, status: int, body: Any, retry_after_seconds: float | None = None) -> GatewayError:
        """The base mapping, plus Google's statuses whose meaning the HTTP code alone does not carry."""
        error = _error_object(body) or {}
        word = error.get("status")
        message = self.redact(error["message"]) if isinstance(error.get("message"), str) else None
        said = f": {message}" if message else ""
        if word == "DEADLINE_EXCEEDED" or status == 504:
            return UpstreamTimeout(f"gemini ran out of time (HTTP {status}){said}", provider=self.name)
        if word == "NOT_FOUND":
            return UpstreamModelNotFound(f"gemini does not serve this model{said}", param="model", provider=self.name)
        if word == "FAILED_PRECONDITION":  # region or billing of the gateway's account: not the caller's fault
            return UpstreamError(f"gemini cannot serve the gateway's account (FAILED_PRECONDITION){said}; "
                                 f"the operator should check the project behind {self.key_variable}",
                                 provider=self.name, code="upstream_precondition_failed")
        if retry_after_seconds is None:
            retry_after_seconds = _retry_delay(error)
        return super().error_for(status, body, retry_after_seconds)


def gemini_usage(raw: Any) -> Usage:
    """usageMetadata in chat terms (§F.4): thoughts count as completion, modalities as details."""
    if not isinstance(raw, dict):
        return Usage()
    thoughts = _int(raw.get("thoughtsTokenCount"))
    completion_details = _modalities(raw.get("candidatesTokensDetails"))
    if thoughts:
        completion_details["reasoning_tokens"] = thoughts
    prompt_details = _modalities(raw.get("promptTokensDetails"))
    if _int(raw.get("cachedContentTokenCount")):
        prompt_details["cached_tokens"] = _int(raw.get("cachedContentTokenCount"))
    return Usage(
        prompt_tokens=_int(raw.get("promptTokenCount")),
        completion_tokens=_int(raw.get("candidatesTokenCount")) + thoughts,
        total_tokens=_int(raw.get("totalTokenCount")),
        prompt_details=prompt_details,
        completion_details=completion_details,
    )


def _modalities(details: Any) -> dict[str, int]:
    """[{modality: TEXT, tokenCount: 12}, ...] -> {"text_tokens": 12, ...}."""
    out: dict[str, int] = {}
    for item in details if isinstance(details, list) else []:
        if isinstance(item, dict) and isinstance(item.get("modality"), str):
            key = item["modality"].lower() + "_tokens"
            out[key] = out.get(key, 0) + _int(item.get("tokenCount"))
    return out


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _blob(part: dict) -> dict | None:
    """A part's inline picture (camelCase, or the snake_case some proxies write), when it has data."""
    blob = part.get("inlineData") or part.get("inline_data")
    return blob if isinstance(blob, dict) and blob.get("data") else None


def _signature(part: dict) -> str | None:
    signature = part.get("thoughtSignature") or part.get("thought_signature")
    return str(signature) if is_text(signature) and signature else None


def _inline(data: bytes, mime: str) -> dict:
    return {"inlineData": {"mimeType": mime, "data": b64encode(data)}}


def _explain(what: str, reason: str, detail: Any) -> str:
    text = f"gemini {what} ({reason})"
    return f"{text}: {detail}" if isinstance(detail, str) and detail else text


def _error_object(body: Any) -> dict | None:
    # some Google front ends wrap the envelope in a one-element list
    if isinstance(body, list) and len(body) == 1:
        body = body[0]
    error = body.get("error") if isinstance(body, dict) else None
    return error if isinstance(error, dict) else None


def _details(error: dict, kind: str) -> list[dict]:
    details = error.get("details")
    return [d for d in details if isinstance(d, dict) and d.get("@type") == kind] if isinstance(details, list) else []


def _retry_delay(error: dict) -> float | None:
    """Seconds from a RetryInfo detail ("37s"): Google's quota errors carry it instead of Retry-After."""
    for detail in _details(error, RETRY_INFO_TYPE):
        match = _SECONDS.match(str(detail.get("retryDelay", "")))
        if match:
            return float(match.group(1))
    return None
