"""ProviderClient: the contract every provider module implements, and the one place `requests` is used."""
from __future__ import annotations

import base64
import email.utils
import fnmatch
import re
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import requests
from requests.adapters import HTTPAdapter

from app import input_fetches, jsonio, metrics, observability
from app.config import ProviderSettings
from app.downloads import Downloader, DownloadRefused
from app.errors import (GatewayError, InvalidRequest, PayloadTooLarge, ProviderRejected, RateLimited,
                        UpstreamError, UpstreamTimeout)
from app.generation import GeneratedImage, ImageRef, ImageRequest, ImageResult
from app.media import decode_data_url

# things in upstream messages that look like credentials, whatever provider they came from
_KEY_LIKE = re.compile(r"\b(sk-[A-Za-z0-9_*\-.]{4,}|AIza[0-9A-Za-z_\-]{10,}|Bearer\s+\S+)")
_MAX_MESSAGE = 500
_STREAM_CHUNK = 256 * 1024
_MAX_ERROR_BODY = 1024 * 1024  # an error page bigger than this is not worth reading
RETRIABLE_STATUSES = (429, 502, 503, 504)
JSON_ANSWER = "gateway.json_answer"  # the event `_post_events` yields for a whole, non-streamed answer  # the upstream did not do the work; asking again is safe


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

    Contract for subclasses:
    - `generate(request)` returns an ImageResult whose images are base64 with sniffed MIME types,
      whose usage is mapped to chat terms, and whose `dropped` names the request parameters the
      upstream could not honour. It raises only GatewayError subclasses.
    - Input problems the caller can fix (a size this model lacks) are InvalidRequest, raised before
      any upstream call.
    - All HTTP goes through `_post` (or `fetch_image` / `download_result` for images), which alone
      touches `requests` and translates every failure into the gateway's errors.
    - Override the small hooks, not `_post`: `auth_headers`, `error_details`.
    - Chat-native providers translate `request.messages` themselves; `image_from_url` turns any
      image_url of the conversation into bytes (data URLs decoded, http(s) fetched under guard).
    """

    name: str = ""
    model_patterns: tuple[str, ...] = ()
    known_models: tuple[str, ...] = ()
    requires_key: bool = True

    def __init__(self, settings: ProviderSettings, downloader: Downloader, *,
                 connect_timeout: float = 10.0, pool_size: int = 16,
                 max_upstream_bytes: int = 128 * 1024 * 1024):
        self.settings = settings
        self.downloader = downloader
        self.connect_timeout = connect_timeout
        self.max_upstream_bytes = max_upstream_bytes
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    # ----- what the registry asks -----

    @classmethod
    def serves(cls, model: str) -> bool:
        return any(fnmatch.fnmatchcase(model, pattern) for pattern in cls.model_patterns)

    @classmethod
    def is_live(cls, settings: ProviderSettings) -> bool:
        return bool(settings.api_key) or not cls.requires_key

    def models(self) -> list[str]:
        return list(dict.fromkeys((*self.known_models, *self.settings.extra_models)))

    def supports_n(self, model: str) -> bool:
        """True when one upstream call can return `n` images; otherwise the gateway fans out."""
        return False

    def generate(self, request: ImageRequest) -> ImageResult:
        raise NotImplementedError

    def generate_streaming(self, request: ImageRequest,
                           on_partial: Callable[[int, GeneratedImage], None]) -> ImageResult:
        """Like `generate`, calling `on_partial(partial_index, image)` for each preview frame.

        Providers without preview frames need not override this: their final image is the only
        event, and the stream sends it the moment it exists.
        """
        return self.generate(request)

    # ----- hooks -----

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.settings.api_key}"}

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

    # ----- HTTP -----

    def _post(self, path: str, *, json: Any = None, data: Any = None, files: Any = None,
              headers: dict[str, str] | None = None) -> Any:
        """POST to the upstream and return its parsed JSON; every failure becomes a GatewayError."""
        with observability.upstream_call():
            response = self._send(path, json=json, data=data, files=files, headers=headers)
            with response:
                body = self._read(response, self.max_upstream_bytes)
        try:
            return jsonio.loads_answer(body)
        except ValueError:
            raise UpstreamError(f"{self.name} sent an answer that is not JSON (HTTP {response.status_code})",
                                provider=self.name) from None

    def _post_events(self, path: str, *, json: Any = None, data: Any = None, files: Any = None,
                     headers: dict[str, str] | None = None) -> Iterator[tuple[str | None, Any]]:
        """POST expecting `text/event-stream`; yields (event name, parsed JSON data) per message.

        Comment lines are skipped and `[DONE]` ends the stream; a cut-off or stalled stream
        becomes a GatewayError like any other upstream failure. An answer that comes back as plain
        JSON instead is yielded whole, once, as the event JSON_ANSWER.
        """
        with observability.upstream_call():
            response = self._send(path, json=json, data=data, files=files,
                                  headers={"Accept": "text/event-stream", **(headers or {})})
        with response, observability.upstream_call():
            if response.headers.get("Content-Type", "").startswith("application/json"):
                # an upstream (or a proxy before it) that answered in one piece instead of streaming
                yield JSON_ANSWER, jsonio.loads_answer(self._read(response, self.max_upstream_bytes))
                return
            event, lines, size = None, [], 0
            try:
                for line in response.iter_lines(chunk_size=_STREAM_CHUNK):
                    size += len(line)
                    if size > self.max_upstream_bytes:
                        raise self._too_large()
                    if line:
                        if line.startswith(b":"):
                            continue
                        field, _, value = line.partition(b":")
                        value = value[1:] if value.startswith(b" ") else value
                        if field == b"event":
                            event = value.decode()
                        elif field == b"data":
                            lines.append(value)
                        continue
                    if not lines:
                        continue
                    payload = b"\n".join(lines)
                    if payload.strip() == b"[DONE]":
                        return
                    try:
                        yield event, jsonio.loads_answer(payload)
                    except ValueError:
                        raise UpstreamError(f"{self.name} sent a stream event that is not JSON",
                                            provider=self.name) from None
                    event, lines = None, []
            except requests.RequestException as exc:
                raise self._failed(exc) from None

    def _send(self, path: str, *, json: Any, data: Any, files: Any,
              headers: dict[str, str] | None) -> requests.Response:
        """Send the request and check the status; the body is left unread (streamed) for the caller."""
        url = self.settings.base_url + path
        # identity: base64 pictures shrink by a quarter at most under gzip, and inflating them costs
        # more gateway CPU per answer than everything else the gateway does (see bench/)
        all_headers = {"Accept": "application/json", "Accept-Encoding": "identity", **self.auth_headers(),
                       **(headers or {})}
        body = jsonio.dumps(json) if json is not None else data
        if json is not None:
            all_headers["Content-Type"] = "application/json"
        try:
            response = self.session.post(url, data=body, files=files, headers=all_headers, stream=True,
                                         timeout=(self.connect_timeout, self._read_timeout()))
            if response.status_code >= 400:
                with response:
                    raise self._status_error(response)
        except requests.RequestException as exc:
            raise self._failed(exc) from None
        return response

    def _read_timeout(self) -> float:
        """The provider's timeout, cut to what is left of the request's deadline."""
        stats = observability.current()
        remaining = stats.remaining() if stats is not None else None
        if remaining is None:
            return self.settings.timeout
        if remaining <= 0:
            raise UpstreamTimeout("The request's deadline (GATEWAY_REQUEST_DEADLINE) passed before "
                                  f"{self.name} could be asked", provider=self.name)
        return min(self.settings.timeout, remaining)

    def _read(self, response: requests.Response, limit: int) -> bytearray:
        """The whole body, refused as soon as it grows past `limit` (never buffered beyond it)."""
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            raise self._too_large()
        plain = response.headers.get("Content-Encoding", "identity").lower() == "identity"
        try:
            if declared.isdigit() and plain:
                return _read_exactly(response, int(declared))
            body = bytearray()
            for chunk in response.iter_content(_STREAM_CHUNK):
                body += chunk
                if len(body) > limit:
                    raise self._too_large()
        except requests.RequestException as exc:
            raise self._failed(exc) from None
        return body  # a bytearray: the JSON parser takes it as is, no copy

    def _too_large(self) -> UpstreamError:
        return UpstreamError(f"{self.name} sent an answer larger than {self.max_upstream_bytes} bytes "
                             "(GATEWAY_MAX_UPSTREAM_BYTES)", provider=self.name, code="upstream_answer_too_large")

    def _failed(self, exc: requests.RequestException) -> GatewayError:
        error = self._translate(exc)
        metrics.UPSTREAM_ERRORS.labels(self.name, str(error.status)).inc()
        return error

    def _translate(self, exc: requests.RequestException) -> GatewayError:
        """The gateway's error for a `requests` failure (nothing from requests leaks past here).

        Failures before the request reached the upstream are safe to retry; a read timeout is not
        (the upstream may have made, and billed, the picture); a body cut off mid-way is not either.
        """
        if isinstance(exc, requests.ConnectTimeout):
            error = UpstreamTimeout(f"Could not connect to {self.name} within {self.connect_timeout:g} s",
                                    provider=self.name)
            error.retriable = True
            return error
        if isinstance(exc, requests.Timeout):
            error = UpstreamTimeout(f"{self.name} did not answer in time", provider=self.name)
            error.read_timeout = True
            return error
        if isinstance(exc, requests.ConnectionError):
            error = UpstreamError(f"Could not reach {self.name}: {_connection_reason(exc)}", provider=self.name)
            error.retriable = True
            return error
        return UpstreamError(f"The exchange with {self.name} failed: {type(exc).__name__}", provider=self.name)

    def _status_error(self, response: requests.Response) -> GatewayError:
        metrics.UPSTREAM_ERRORS.labels(self.name, str(response.status_code)).inc()
        try:
            body = jsonio.loads(self._read(response, _MAX_ERROR_BODY))
        except (ValueError, GatewayError):
            body = None
        wait = retry_after(response)
        error = self.error_for(response.status_code, body, wait)
        if response.status_code in RETRIABLE_STATUSES:
            error.retriable = True
            error.retry_after = wait
        return error

    def error_for(self, status: int, body: Any, retry_after_seconds: float | None = None) -> GatewayError:
        """The gateway error for an upstream failure; also used for errors found inside 200 answers."""
        info = self.error_details(body, status)
        status = info.status or status
        message, code, param = (self.redact(info.message) if info.message else None), info.code, info.param
        said = f": {message}" if message else ""
        if status in (401, 403):
            variable = self.settings.key_variable or "its API key"
            detail = said if status == 403 else ""  # a 401 message can echo part of the key
            return UpstreamError(f"{self.name} refused the gateway's credentials (HTTP {status}){detail}; "
                                 f"the operator should check {variable}", provider=self.name,
                                 code="upstream_auth_failed")
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

    def download_result(self, url: str) -> tuple[bytes, str]:
        """Bytes of an image the provider answered with as a URL; a failure is the provider's 502."""
        try:
            return self.downloader.fetch(url)
        except DownloadRefused as exc:
            raise UpstreamError(f"{self.name} answered with an image URL the gateway could not fetch: "
                                f"{exc.message}", provider=self.name) from None


def _read_exactly(response: requests.Response, size: int) -> bytearray:
    """A body of known length read into one buffer allocated once (no growing, no re-copying)."""
    body = bytearray(size)
    filled = 0
    with memoryview(body) as view:
        for chunk in response.iter_content(_STREAM_CHUNK):
            end = filled + len(chunk)
            if end > size:  # more than announced: urllib3 would normally refuse; keep what fits
                break
            view[filled:end] = chunk
            filled = end
    if filled < size:
        del body[filled:]
    return body


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def retry_after(response: requests.Response) -> float | None:
    """Seconds from `retry-after-ms` or `Retry-After` (seconds or an HTTP date)."""
    millis = response.headers.get("retry-after-ms")
    if millis:
        try:
            return float(millis) / 1000
        except ValueError:
            pass
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _text(value: Any) -> str:
    return value if isinstance(value, str) else jsonio.dumps(value).decode()


def _connection_reason(exc: requests.ConnectionError) -> str:
    text = str(exc).lower()
    for needle, reason in (("refused", "connection refused"), ("reset", "connection reset"),
                           ("aborted", "connection aborted"), ("name or service", "host not found"),
                           ("nodename", "host not found"), ("remote end closed", "connection closed early"),
                           ("incomplete", "answer cut off"), ("broken pipe", "connection broken")):
        if needle in text:
            return reason
    return "connection failed"
