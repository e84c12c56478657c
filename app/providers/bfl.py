"""Black Forest Labs FLUX.2: submit a task, poll its polling_url until Ready, download the picture at once.

BFL's API is asynchronous; the gateway's call is not. Within one request this module submits the
task (`POST {base}/v1/{model}`, header `x-key`), polls the answered `polling_url` with a growing
interval under the request's deadline (504 when it passes), and downloads the result's signed URL,
valid for about ten minutes, through the guarded downloader. The key is only ever sent to the
base URL's own site: a polling URL anywhere else is refused.
"""
from __future__ import annotations

import ipaddress
import time
from typing import Any
from urllib.parse import quote, urlsplit

from app import observability
from app.core import context
from app.core.errors import GatewayError, ProviderRejected, UpstreamError, UpstreamTimeout
from app.core.request import TIERS, ImageRequest
from app.core.result import GeneratedImage, ImageResult, Usage
from app.core.settings import ConfigError, ProviderSettings
from app.downloads import Downloader
from app.providers.base import ErrorInfo, ProviderClient, b64encode
from app.providers.capabilities import QUALITY_TIER, Bounds, Family, Sizes, params

# Polling: first look after POLL_FIRST seconds, then POLL_FACTOR times longer each time, up to POLL_MAX.
POLL_FIRST, POLL_FACTOR, POLL_MAX = 0.5, 1.5, 4.0
LAST_LOOK = 0.05  # seconds kept for one last poll before the deadline
READY, REQUEST_MODERATED, CONTENT_MODERATED = "Ready", "Request Moderated", "Content Moderated"
FAILED = ("Error", "Task not found")  # anything else (Pending, ...) means: look again later

INPUT_FIELDS = ("input_image",) + tuple(f"input_image_{index}" for index in range(2, 9))
OUTPUT_FORMATS = ("png", "jpeg")
SIDE_STEP, MIN_SIDE = 16, 64  # FLUX.2 makes sides that are multiples of 16, from 64
# what a tier means (4K: FLUX.2's largest, 4 megapixels); quality without a size picks a tier
TIER_SIZES = {"1K": (1024, 1024), "2K": (2048, 2048), "4K": (2048, 2048)}
SAFETY_OPTION, SAFETY_VARIABLE, SAFETY_RANGE = "safety_tolerance", "BFL_SAFETY_TOLERANCE", range(0, 7)

# FLUX.2 [pro], [max], [flex], [klein]: size, quality (as resolution) and output format; up to 8 input
# images; no mask, no native n. Other flux-* names (FLUX.1, Kontext) are sent the same way.
FLUX_2 = Family("flux-2", ("*",), params("size", "quality", "output_format"), Sizes(
    tiers=TIERS, free=Bounds(min_side=MIN_SIDE, max_area=(2048, 2048)),
    note="4K is made as 2048x2048, FLUX.2's largest; sides are rounded down to multiples of 16"), max_images=8)


class BflClient(ProviderClient):
    """FLUX through BFL's own API; one picture per task, so `n` is fanned out into parallel tasks."""

    name = "bfl"
    label = "Black Forest Labs FLUX"
    env_prefix = "BFL"
    default_base_url = "https://api.bfl.ai"
    model_patterns = ("flux-*",)
    known_models = ("flux-2-pro", "flux-2-max", "flux-2-flex", "flux-2-klein-4b", "flux-2-klein-9b")
    families = (FLUX_2,)

    def __init__(self, settings: ProviderSettings, downloader: Downloader, **kwargs):
        super().__init__(settings, downloader, **kwargs)
        self.safety_tolerance = _safety_tolerance(settings.options.get(SAFETY_OPTION))

    def auth_headers(self) -> dict[str, str]:
        return {"x-key": self.settings.api_key or ""}

    def make_images(self, request: ImageRequest, family: Family) -> ImageResult:
        body, dropped = self.body(request)
        task = self._post(f"/v1/{quote(request.model, safe='')}", json=body)
        answer = self.wait_for(self.polling_url(task))
        if answer.get("status") == CONTENT_MODERATED:
            return ImageResult(text=f"bfl withheld the image: its moderation blocked it ({CONTENT_MODERATED}"
                                    f"{_reasons(answer)})", finish_reason="content_filter", dropped=dropped)
        result = answer.get("result") if isinstance(answer.get("result"), dict) else {}
        sample = result.get("sample")
        if not isinstance(sample, str) or not sample:
            raise UpstreamError("bfl reported the task ready without a picture", provider=self.name,
                                code="no_image_generated")
        data, mime = self.download_result(sample)  # signed, and valid for minutes only: fetched now
        return ImageResult(images=[GeneratedImage(b64=b64encode(data), mime=mime)],
                           usage=Usage(extra={"generated_images": 1}), dropped=dropped)

    # ----- the task -----

    def body(self, request: ImageRequest) -> tuple[dict, list[str]]:
        """The submitted fields, and the parameters the conversion could not honour."""
        size, quality, dropped = request.size, request.params.get("quality"), []
        body: dict[str, Any] = {"prompt": request.prompt}
        dimensions = None
        if size.tier is not None:
            dimensions = TIER_SIZES[size.tier]
        elif size.dimensions is not None:
            dimensions = tuple(max(MIN_SIDE, side - side % SIDE_STEP) for side in size.dimensions)
        if quality not in (None, "auto"):
            if size.is_auto:  # no quality knob: like Seedream, quality picks the resolution
                dimensions = TIER_SIZES[QUALITY_TIER[quality]]
            else:
                dropped.append("quality")
        if dimensions is not None:
            body["width"], body["height"] = dimensions
        for field, ref in zip(INPUT_FIELDS, request.images):
            body[field] = ref.url if ref.is_remote else b64encode(ref.data)  # BFL fetches URLs itself
        fmt = request.params.get("output_format")
        if fmt in OUTPUT_FORMATS:
            body["output_format"] = fmt
        elif fmt is not None:
            dropped.append("output_format")
        if self.safety_tolerance is not None:
            body["safety_tolerance"] = self.safety_tolerance
        return body, dropped

    def polling_url(self, task: Any) -> str:
        """Where the task's progress is read; only on the base URL's own site (it gets our key)."""
        if not isinstance(task, dict) or not (task.get("polling_url") or task.get("id")):
            raise UpstreamError("bfl accepted the task without saying where to follow it", provider=self.name)
        url = task.get("polling_url") or f"{self.settings.base_url}/v1/get_result?id={quote(str(task['id']))}"
        if not isinstance(url, str) or not _same_site(url, self.settings.base_url):
            raise UpstreamError("bfl answered with a polling URL outside its own site; the gateway does not send "
                                "its key there", provider=self.name)
        return url

    def wait_for(self, url: str) -> dict:
        """Poll until the task ends, under the request's deadline (or the provider's timeout without one).

        A failed poll that may be asked again (429, 5xx, a lost connection) is asked again later;
        anything that ends the wait here is not retried: the task may already be made and billed.
        """
        ends = time.perf_counter() + self.settings.timeout
        interval = POLL_FIRST
        with observability.upstream_call():  # the wait between polls is the provider's time, not ours
            while True:
                left = min(ends - time.perf_counter(), _left_of_deadline())
                if left <= LAST_LOOK:
                    raise self._gave_up()
                time.sleep(min(interval, left - LAST_LOOK))  # the last look still fits before the end
                try:
                    answer = self.transport.json("GET", url, headers=self.auth_headers())
                except GatewayError as error:
                    if not error.retriable:
                        raise _not_retriable(error if isinstance(error, (UpstreamError, UpstreamTimeout)) else
                                             UpstreamError(f"bfl could not report on the task: {error.message}",
                                                           provider=self.name))
                    interval = min(max(interval * POLL_FACTOR, error.retry_after or 0.0), POLL_MAX)
                    continue
                status = answer.get("status") if isinstance(answer, dict) else None
                if status in (READY, CONTENT_MODERATED):
                    return answer
                if status == REQUEST_MODERATED:
                    raise ProviderRejected(self.redact(f"bfl's moderation refused the request{_reasons(answer)}"),
                                           code="moderation_blocked", provider=self.name)
                if status in FAILED:
                    raise _not_retriable(UpstreamError(self.redact(f"bfl failed to make the picture ({status})"
                                                                   f"{_reasons(answer)}"), provider=self.name))
                interval = min(interval * POLL_FACTOR, POLL_MAX)

    def _gave_up(self) -> UpstreamTimeout:
        error = UpstreamTimeout("bfl did not finish the picture before the request's deadline "
                                "(GATEWAY_REQUEST_DEADLINE) or GATEWAY_UPSTREAM_TIMEOUT", provider=self.name)
        return _not_retriable(error)

    # ----- errors -----

    def error_details(self, body: Any, status: int) -> ErrorInfo:
        """BFL answers FastAPI's `{"detail": ...}`: a message, or a list of field errors (422).
        402 means the gateway's account has no credits: the operator's problem, so a 502."""
        detail = body.get("detail") if isinstance(body, dict) else None
        if isinstance(detail, list) and detail and all(isinstance(item, dict) for item in detail):
            first = detail[0]
            where = first.get("loc")
            param = str(where[-1]) if isinstance(where, list) and where else None
            info = ErrorInfo("; ".join(str(item.get("msg")) for item in detail if item.get("msg")) or None, param=param)
        elif isinstance(detail, str):
            info = ErrorInfo(detail)
        else:
            info = super().error_details(body, status)
        if status == 402:
            said = f": {info.message}" if info.message else ""
            info.message = f"the gateway's BFL account is out of credits (HTTP 402{said}); the operator should add credits"
            info.status = 502
        return info


def _safety_tolerance(raw: str | None) -> int | None:
    if raw is None or not str(raw).strip():
        return None
    try:
        value = int(str(raw).strip())
    except ValueError:
        value = -1
    if value not in SAFETY_RANGE:
        raise ConfigError(f"{SAFETY_VARIABLE} must be a whole number from 0 (strictest) to 6, got {raw!r}")
    return value


def _left_of_deadline() -> float:
    remaining = context.remaining()
    return float("inf") if remaining is None else remaining


def _not_retriable(error: GatewayError) -> GatewayError:
    """After the task was submitted nothing may be re-sent: a retry would make (and bill) another picture."""
    error.retriable = False
    error.read_timeout = True
    return error


def _reasons(answer: dict) -> str:
    details = answer.get("details")
    if isinstance(details, dict) and details:
        words = [str(value if not isinstance(value, list) else ", ".join(map(str, value))) for value in details.values()]
        return ": " + "; ".join(words)[:300]
    return ""


def _same_site(url: str, base_url: str) -> bool:
    """The polling URL is on the base URL's host, or (for a named host) on one of its siblings: api.bfl.ai
    hands out api.us1.bfl.ai. Scheme and port must stay those of the base URL."""
    target, base = urlsplit(url), urlsplit(base_url)
    if not target.hostname or target.scheme != base.scheme or target.port != base.port:
        return False
    if target.hostname == base.hostname:
        return True
    try:
        ipaddress.ip_address(base.hostname or "")
        return False
    except ValueError:
        pass
    labels = (base.hostname or "").split(".")
    return len(labels) >= 3 and target.hostname.endswith("." + ".".join(labels[1:]))
