"""ProviderClient: the contract every provider module implements, and how upstream failures become our errors."""
from __future__ import annotations

import base64
import re
from dataclasses import dataclass, replace
from typing import Any, Callable, Iterator

from app import input_fetches, jsonio
from app.core.errors import (GatewayError, InvalidRequest, PayloadTooLarge, ProviderRejected, RateLimited,
                             UpstreamError, UpstreamModelNotFound, UpstreamTimeout)
from app.core.request import ImageRef, ImageRequest
from app.core.result import GeneratedImage, ImageResult
from app.core.settings import ProviderSettings
from app.downloads import Downloader, DownloadRefused
from app.media import decode_data_url, sniff_mime_b64, strip_data_url, to_data_url
from app.providers import retired
from app.providers.capabilities import Family, family_of, matches
from app.providers.transport import JSON_ANSWER, Transport  # noqa: F401  (JSON_ANSWER: for provider modules)
from app.thought_signatures import MemoryStore, SignatureStore

# things in upstream messages that look like credentials, whatever provider they came from
_KEY_LIKE = re.compile(r"\b(sk-[A-Za-z0-9_*\-.]{4,}|AIza[0-9A-Za-z_\-]{10,}|Bearer\s+\S+)")
_MAX_MESSAGE = 500


@dataclass
class ErrorInfo:
    """What an upstream error body says, read by a provider's `error_details` hook.

    `status` lets a provider re-classify an answer: Gemini reports a bad key as HTTP 400
    (API_KEY_INVALID), which must be treated as an auth failure (401), not as the caller's error.
    """

    message: str | None = None
    code: str | None = None
    param: str | None = None
    status: int | None = None


class ProviderClient:
    """Turns an ImageRequest into an ImageResult by calling one upstream.

    A provider module declares, on its subclass: `name`, `label` (for people), `env_prefix` and
    `default_base_url` (its settings: <PREFIX>_API_KEY, _BASE_URL, _MODELS, any other <PREFIX>_X
    is option `x`), `model_patterns` (the names routed to it), `known_models` (listed by
    /v1/models) and `families` (what each group of its models can do: see capabilities.py).

    This class reads the declaration: `generate` checks the request against the model's family
    (sizes, prompt length, input images, mask: 400s before any upstream call), drops and names the
    parameters the family does not honour (previews too, outside streams), then hands the rest to
    the subclass's `make_images(request, family)` (and `stream_images` for providers with previews).
    Those return an ImageResult whose images are base64 with sniffed MIME types, whose usage is in
    chat terms, and whose `dropped` names what the conversion itself could not honour; they raise
    only GatewayError subclasses.

    All HTTP goes through `_post` / `_post_events` (the client's Transport, the only code that
    touches `requests`) or `fetch_image` / `download_result` for images (the guarded downloader).
    Override the small hooks, not `_post`: `auth_headers`, `error_details`, `error_for`.
    Chat-native providers translate `request.messages` themselves; `image_from_url` turns any
    image_url of the conversation into bytes (data URLs decoded, http(s) fetched under guard).
    """

    name: str = ""
    label: str = ""
    env_prefix: str = ""
    default_base_url: str = ""
    model_patterns: tuple[str, ...] = ()
    known_models: tuple[str, ...] = ()
    families: tuple[Family, ...] = ()
    requires_key: bool = True

    def __init__(self, settings: ProviderSettings, downloader: Downloader, *,
                 connect_timeout: float = 10.0, pool_size: int = 16,
                 max_upstream_bytes: int = 128 * 1024 * 1024, signatures: SignatureStore | None = None):
        self.settings = settings
        self.downloader = downloader
        # what an upstream asks to get back on the next turn (Gemini's thought signatures), shared by the app
        self.signatures = signatures if signatures is not None else MemoryStore()
        self.transport = Transport(self.name, self.error_for, timeout=settings.timeout,
                                   connect_timeout=connect_timeout, pool_size=pool_size,
                                   max_upstream_bytes=max_upstream_bytes)

    @property
    def key_variable(self) -> str:
        """The variable the operator fixes when the upstream refuses the key."""
        return self.settings.key_variable or f"{self.env_prefix}_API_KEY"

    # ----- what the router asks -----

    @classmethod
    def serves(cls, model: str) -> bool:
        return matches(model, cls.model_patterns)

    @classmethod
    def family_of(cls, model: str) -> Family:
        return family_of(cls.families, model)

    @classmethod
    def is_live(cls, settings: ProviderSettings) -> bool:
        return bool(settings.api_key) or not cls.requires_key

    def models(self) -> list[str]:
        return list(dict.fromkeys((*self.known_models, *self.settings.extra_models)))

    def max_n(self, model: str) -> int:
        """Pictures one upstream call can make; the gateway splits a larger `n` into parallel calls."""
        return self.family_of(model).max_n

    # ----- the contract -----

    def generate(self, request: ImageRequest) -> ImageResult:
        honoured, family, dropped = self.prepare(request, streaming=False)
        with retired.explained(request.model, self.name):
            return _dropping(self.make_images(honoured, family), dropped)

    def generate_streaming(self, request: ImageRequest,
                           on_partial: Callable[[int, GeneratedImage], None]) -> ImageResult:
        """Like `generate`, calling `on_partial(partial_index, image)` for each preview frame."""
        honoured, family, dropped = self.prepare(request, streaming=True)
        with retired.explained(request.model, self.name):
            return _dropping(self.stream_images(honoured, family, on_partial), dropped)

    def make_images(self, request: ImageRequest, family: Family) -> ImageResult:
        """The upstream call(s) for a checked request holding only parameters `family` honours."""
        raise NotImplementedError

    def stream_images(self, request: ImageRequest, family: Family,
                      on_partial: Callable[[int, GeneratedImage], None]) -> ImageResult:
        """Providers without preview frames need not override this: their final image is the only
        event, and the stream sends it the moment it exists."""
        return self.make_images(request, family)

    def prepare(self, request: ImageRequest, *, streaming: bool) -> tuple[ImageRequest, Family, list[str]]:
        """Check `request` against its model's family, before any upstream call; return it with only
        the parameters the family honours, the family, and the names of the parameters dropped."""
        family = self.family_of(request.model)
        self._check_inputs(request, family)
        honoured = family.honoured(request.is_edit)
        kept, dropped = {}, []
        for name, value in request.params.items():
            if name == "partial_images" and not streaming:
                continue  # previews exist only in streams: outside one there is nothing to honour or lose
            if name not in honoured or (name == "size" and not self._size_made(request, family)):
                dropped.append(name)
            else:
                kept[name] = value
        return replace(request, params=kept), family, dropped

    def refuse_size(self, request: ImageRequest, family: Family) -> InvalidRequest:
        """The 400 for a size this model cannot make, listing the sizes it can."""
        return InvalidRequest(f"{request.model} does not make {request.size} images; valid sizes: "
                              f"{family.sizes.describe()}", param=request.param_path("size"), code="unsupported_size")

    def _size_made(self, request: ImageRequest, family: Family) -> bool:
        try:
            return family.sizes.honours(request.size)
        except ValueError:
            raise self.refuse_size(request, family) from None

    @staticmethod
    def _check_inputs(request: ImageRequest, family: Family) -> None:
        model, images = request.model, request.images
        if family.prompt_limit is not None and len(request.prompt) > family.prompt_limit:
            raise InvalidRequest(f"{model} takes prompts of at most {family.prompt_limit} characters",
                                 param=request.prompt_param, code="prompt_too_long")
        if request.mask is not None and not images:
            raise InvalidRequest("input_image_mask needs an input image", param=request.mask.param)
        if request.mask is not None and not family.mask:
            raise InvalidRequest(f"{model} cannot use an inpainting mask; remove input_image_mask and describe "
                                 "the change in the prompt", param=request.mask.param, code="unsupported_parameter")
        least, most = family.min_images, family.max_images
        if most == 0 and images:
            raise InvalidRequest(f"{model} cannot edit images: it makes images from text only", param=images[0].param)
        if least == most == 1 and len(images) != 1:
            raise InvalidRequest(f"{model} edits exactly one input image (an image_url part of the last user "
                                 f"message), got {len(images)}",
                                 param=images[1].param if images else request.prompt_param)
        if len(images) < least:
            raise InvalidRequest(f"{model} needs at least {least} input image(s), got {len(images)}",
                                 param=request.prompt_param)
        if most is not None and len(images) > most:
            raise InvalidRequest(f"{model} takes at most {most} input image(s), got {len(images)}",
                                 param=images[most].param)

    # ----- hooks -----

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.settings.api_key}"}

    def model_missing(self, status: int, info: ErrorInfo) -> bool:
        """Does this failure say the upstream does not serve the model? OpenAI's way by default: a 404, or
        the code model_not_found. (Then a retired model is answered as such: app/providers/retired.py.)"""
        return status == 404 or info.code == "model_not_found"

    def error_details(self, body: Any, status: int) -> ErrorInfo:
        """Message, code and param of an upstream error body; OpenAI's envelope by default."""
        error = body.get("error") if isinstance(body, dict) else None
        if isinstance(error, dict):
            code = error.get("code")
            return ErrorInfo(_text(error.get("message")) if error.get("message") is not None else None,
                             _text(code) if code is not None else None,
                             _text(error.get("param")) if error.get("param") is not None else None)
        if isinstance(error, str):
            return ErrorInfo(error)
        return ErrorInfo()

    # ----- HTTP, through the transport -----

    def _post(self, path: str, *, json: Any = None, data: Any = None, files: Any = None,
              headers: dict[str, str] | None = None) -> Any:
        """POST to the upstream and return its parsed JSON; every failure becomes a GatewayError."""
        return self.transport.json("POST", self.settings.base_url + path, json=json, data=data, files=files,
                                   headers={**self.auth_headers(), **(headers or {})})

    def _post_events(self, path: str, *, json: Any = None, data: Any = None, files: Any = None,
                     headers: dict[str, str] | None = None) -> Iterator[tuple[str | None, Any]]:
        """POST expecting `text/event-stream`: (event name, parsed data) per message (see Transport.events)."""
        return self.transport.events(self.settings.base_url + path, json=json, data=data, files=files,
                                     headers={**self.auth_headers(), **(headers or {})})

    def error_for(self, status: int, body: Any, retry_after_seconds: float | None = None) -> GatewayError:
        """The gateway error for an upstream failure; also used for errors found inside 200 answers."""
        info = self.error_details(body, status)
        status = info.status or status
        message, code, param = (self.redact(info.message) if info.message else None), info.code, info.param
        said = f": {message}" if message else ""
        if status in (401, 403):
            variable = self.key_variable
            detail = said if status == 403 else ""  # a 401 message can echo part of the key
            return UpstreamError(f"{self.name} refused the gateway's credentials (HTTP {status}){detail}; "
                                 f"the operator should check {variable}", provider=self.name,
                                 code="upstream_auth_failed")
        if 400 <= status < 500 and self.model_missing(status, info):
            return UpstreamModelNotFound(f"{self.name} does not serve this model{said}", param="model",
                                         provider=self.name)
        if status == 429:
            return RateLimited(f"{self.name} rate limit reached{said}", retry_after=retry_after_seconds,
                               provider=self.name)
        if status == 408:
            return UpstreamTimeout(f"{self.name} timed out (HTTP 408){said}", provider=self.name)
        if status == 413:
            return PayloadTooLarge(f"{self.name} says the request is too large{said}", provider=self.name)
        if 400 <= status < 500:
            return ProviderRejected(message or f"{self.name} rejected the request (HTTP {status})",
                                    param=param, code=code, provider=self.name)
        return UpstreamError(f"{self.name} failed (HTTP {status}){said}", provider=self.name)

    def redact(self, text: str) -> str:
        """Upstream messages are shown to callers: strip anything that could be a credential."""
        if self.settings.api_key:
            text = text.replace(self.settings.api_key, "***")
        text = _KEY_LIKE.sub("***", text)
        return text[:_MAX_MESSAGE]

    # ----- images by URL -----

    def fetch_image(self, ref: ImageRef) -> tuple[bytes, str]:
        """Bytes of a client-supplied input image; a refused download is the client's 400."""
        if not ref.is_remote:
            return ref.data, ref.mime
        try:
            return input_fetches.fetch(ref.url, self.downloader.fetch)
        except DownloadRefused as exc:
            raise InvalidRequest(f"Could not use the image URL: {exc.message}", param=ref.param) from None

    def image_from_url(self, url: str, param: str) -> tuple[bytes, str]:
        """Bytes and sniffed MIME type of any client-supplied image URL (data: or http/https)."""
        if url.startswith("data:"):
            return decode_data_url(url, param=param)
        return self.fetch_image(ImageRef(url=url, param=param))

    def images_api_picture(self, item: Any) -> tuple[Any, str] | None:
        """The picture of one `data[]` item of an answer in the Images API's shape (OpenAI, Ark, xAI), as
        base64 and MIME type: its `b64_json`, or its `url` downloaded at once. None when it carries
        neither; the provider's 502 when what it carries is not an image."""
        if not isinstance(item, dict):
            return None
        b64 = item.get("b64_json")
        if jsonio.is_text(b64) and b64:
            b64 = strip_data_url(b64)
            mime = sniff_mime_b64(b64)
        elif isinstance(item.get("url"), str) and item["url"]:
            data, mime = self.download_result(item["url"])
            b64 = b64encode(data)
        else:
            return None
        if mime is None:
            raise UpstreamError(f"{self.name} answered with data that is not an image", provider=self.name)
        return b64, mime

    def download_result(self, url: str) -> tuple[bytes, str]:
        """Bytes of an image the provider answered with as a URL; a failure is the provider's 502."""
        try:
            return self.downloader.fetch(url)
        except DownloadRefused as exc:
            raise UpstreamError(f"{self.name} answered with an image URL the gateway could not fetch: "
                                f"{exc.message}", provider=self.name) from None


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def source_image_url(ref: ImageRef) -> str:
    """An input image for a provider that takes URLs and fetches http(s) ones itself (Ark, xAI): those go
    as given, decoded images as data URLs labelled with their sniffed type."""
    return ref.url if ref.is_remote else to_data_url(b64encode(ref.data), ref.mime.lower())


def _text(value: Any) -> str:
    return value if isinstance(value, str) else jsonio.dumps(value).decode()


def _dropping(result: ImageResult, dropped: list[str]) -> ImageResult:
    """The result naming every parameter lost: those the family never honours and those its conversion could not."""
    result.dropped = sorted(set(result.dropped) | set(dropped))
    return result
