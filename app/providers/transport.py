"""HTTP to providers: the only code that touches `requests`; every failure leaves as one of the gateway's errors.

One Transport per provider client. Each exchange is timed as upstream wait, its read timeout is cut
to what is left of the request's deadline, answers are read under a size cap into one buffer (base64
pictures stay in it, see app/jsonio.py), and the session keeps no cookies: nothing one request
learns from a provider travels with another request.
"""
from __future__ import annotations

import email.utils
import http.cookiejar
import time
from typing import Any, Callable, Iterator

import requests
from requests.adapters import HTTPAdapter

from app import jsonio, metrics, observability, read_slots
from app.core import context
from app.core.errors import GatewayError, UpstreamError, UpstreamTimeout, retry_after_seconds

_STREAM_CHUNK = 256 * 1024
_MAX_ERROR_BODY = 1024 * 1024  # an error page bigger than this is not worth reading
RETRIABLE_STATUSES = (429, 502, 503, 504)  # the upstream did not do the work; asking again is safe
JSON_ANSWER = "gateway.json_answer"  # the event `events` yields for a whole, non-streamed answer

# (status, parsed error body or None, Retry-After seconds or None) -> the gateway's error
ErrorMapper = Callable[[int, Any, "float | None"], GatewayError]


class Transport:
    """Sends a provider client's requests and reads its answers; `error_for` maps a failed status."""

    def __init__(self, provider: str, error_for: ErrorMapper, *, timeout: float, connect_timeout: float = 10.0,
                 pool_size: int = 16, max_upstream_bytes: int = 128 * 1024 * 1024):
        self.provider = provider
        self.error_for = error_for
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.max_upstream_bytes = max_upstream_bytes
        self.session = requests.Session()
        self.session.cookies.set_policy(_NO_COOKIES)
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    def json(self, method: str, url: str, *, json: Any = None, data: Any = None, files: Any = None,
             headers: dict[str, str] | None = None) -> Any:
        """Send and return the parsed JSON answer; every failure becomes a GatewayError."""
        with observability.upstream_call():
            response = self._send(method, url, json=json, data=data, files=files, headers=headers)
            with response, read_slots.slots():
                body = self._read(response, self.max_upstream_bytes)
        try:
            return jsonio.loads_answer(body)
        except ValueError:
            raise UpstreamError(f"{self.provider} sent an answer that is not JSON (HTTP {response.status_code})",
                                provider=self.provider) from None

    def events(self, url: str, *, json: Any = None, data: Any = None, files: Any = None,
               headers: dict[str, str] | None = None) -> Iterator[tuple[str | None, Any]]:
        """POST expecting `text/event-stream`; yields (event name, parsed JSON data) per message.

        Comment lines are skipped and `[DONE]` ends the stream; a cut-off or stalled stream
        becomes a GatewayError like any other upstream failure. An answer that comes back as plain
        JSON instead is yielded whole, once, as the event JSON_ANSWER.
        """
        with observability.upstream_call():
            response = self._send("POST", url, json=json, data=data, files=files,
                                  headers={**(headers or {}), "Accept": "text/event-stream"})
        with response, observability.upstream_call():
            if response.headers.get("Content-Type", "").startswith("application/json"):
                # an upstream (or a proxy before it) that answered in one piece instead of streaming
                with read_slots.slots():
                    body = self._read(response, self.max_upstream_bytes)
                yield JSON_ANSWER, jsonio.loads_answer(body)
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
                        raise UpstreamError(f"{self.provider} sent a stream event that is not JSON",
                                            provider=self.provider) from None
                    event, lines = None, []
            except requests.RequestException as exc:
                raise self._failed(exc) from None

    # ----- one exchange -----

    def _send(self, method: str, url: str, *, json: Any, data: Any, files: Any,
              headers: dict[str, str] | None) -> requests.Response:
        """Send the request and check the status; the body is left unread (streamed) for the caller."""
        # identity: base64 pictures shrink by a quarter at most under gzip, and inflating them costs
        # more gateway CPU per answer than everything else the gateway does (see bench/)
        all_headers = {"Accept": "application/json", "Accept-Encoding": "identity", **(headers or {})}
        body = jsonio.dumps(json) if json is not None else data
        if json is not None:
            all_headers["Content-Type"] = "application/json"
        try:
            response = self.session.request(method, url, data=body, files=files, headers=all_headers, stream=True,
                                            timeout=(self.connect_timeout, self._read_timeout()))
            if response.status_code >= 400:
                with response:
                    raise self._status_error(response)
        except requests.RequestException as exc:
            raise self._failed(exc) from None
        return response

    def _read_timeout(self) -> float:
        """The provider's timeout, cut to what is left of the request's deadline."""
        remaining = context.remaining()
        if remaining is None:
            return self.timeout
        if remaining <= 0:
            raise UpstreamTimeout("The request's deadline (GATEWAY_REQUEST_DEADLINE) passed before "
                                  f"{self.provider} could be asked", provider=self.provider)
        return min(self.timeout, remaining)

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

    # ----- failures -----

    def _too_large(self) -> UpstreamError:
        return UpstreamError(f"{self.provider} sent an answer larger than {self.max_upstream_bytes} bytes "
                             "(GATEWAY_MAX_UPSTREAM_BYTES)", provider=self.provider, code="upstream_answer_too_large")

    def _failed(self, exc: requests.RequestException) -> GatewayError:
        error = self._translate(exc)
        metrics.UPSTREAM_ERRORS.labels(self.provider, str(error.status)).inc()
        return error

    def _translate(self, exc: requests.RequestException) -> GatewayError:
        """The gateway's error for a `requests` failure (nothing from requests leaks past here).

        Failures before the request reached the upstream are safe to retry; a read timeout is not
        (the upstream may have made, and billed, the picture); a body cut off mid-way is not either.
        """
        name = self.provider
        if isinstance(exc, requests.ConnectTimeout):
            error = UpstreamTimeout(f"Could not connect to {name} within {self.connect_timeout:g} s", provider=name)
            error.retriable = True
            return error
        if isinstance(exc, requests.Timeout):
            error = UpstreamTimeout(f"{name} did not answer in time", provider=name)
            error.read_timeout = True
            return error
        if isinstance(exc, requests.ConnectionError):
            error = UpstreamError(f"Could not reach {name}: {_connection_reason(exc)}", provider=name)
            error.retriable = True
            return error
        return UpstreamError(f"The exchange with {name} failed: {type(exc).__name__}", provider=name)

    def _status_error(self, response: requests.Response) -> GatewayError:
        metrics.UPSTREAM_ERRORS.labels(self.provider, str(response.status_code)).inc()
        try:
            body = jsonio.loads(self._read(response, _MAX_ERROR_BODY))
        except (ValueError, GatewayError):
            body = None
        wait = retry_after(response.headers)
        error = self.error_for(response.status_code, body, wait)
        if response.status_code in RETRIABLE_STATUSES:
            error.retriable = True
            error.retry_after = wait
        return error


class _RefuseCookies(http.cookiejar.DefaultCookiePolicy):
    """Providers' cookies are never kept: one client's exchange must not shape another's."""

    def set_ok(self, cookie, request) -> bool:
        return False

    def return_ok(self, cookie, request) -> bool:
        return False


_NO_COOKIES = _RefuseCookies()


def retry_after(headers) -> float | None:
    """Seconds from `retry-after-ms` or `Retry-After` (seconds or an HTTP date); None when absent or unusable
    (a header saying `inf`, `nan` or `1e400` must not become an endless wait or an overflow)."""
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            wait = retry_after_seconds(float(millis) / 1000)
        except ValueError:
            wait = None
        if wait is not None:
            return wait
    value = headers.get("Retry-After")
    if not value:
        return None
    try:
        return retry_after_seconds(float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return retry_after_seconds(max(0.0, when.timestamp() - time.time()))


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


def _connection_reason(exc: requests.ConnectionError) -> str:
    text = str(exc).lower()
    for needle, reason in (("refused", "connection refused"), ("reset", "connection reset"),
                           ("aborted", "connection aborted"), ("name or service", "host not found"),
                           ("nodename", "host not found"), ("remote end closed", "connection closed early"),
                           ("incomplete", "answer cut off"), ("broken pipe", "connection broken")):
        if needle in text:
            return reason
    return "connection failed"
