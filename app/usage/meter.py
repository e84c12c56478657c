"""One request's usage as it happens: who asked, through which entry point, and what each completed
upstream call made and cost — recorded the moment the call completes, so the spend of a request that
failed as a whole (one of n fan-out calls failed after others succeeded) is still counted.

The meter lives in a ContextVar: threads a request starts (fan-out, streams, keep-alive) run in a copy
of the request's context and record into the same meter.
"""
from __future__ import annotations

import contextvars
import threading
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Callable

from app.core.request import ImageRequest
from app.core.result import GeneratedImage, ImageResult, Usage

COST_PLACES = Decimal("1e-8")


@dataclass
class CallCost:
    provider: str
    model: str
    usage: Usage
    images: int
    cost: Decimal | None


@dataclass
class Meter:
    """Filled in as the request goes: the key at authentication, the model at planning, calls as they end."""

    key: Any = None                       # app.keys.records.ClientKey
    entry_point: str | None = None
    model: str | None = None
    upstream_model: str | None = None
    n: int | None = None
    size: str | None = None
    quality: str | None = None
    error_code: str | None = None
    admission: Any = None                 # app.quotas.admission.Admission, when the key is limited
    request_counted: bool = False         # a job's run: its request was counted against rpm at its submit
    calls: list[CallCost] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, provider: str, model: str, result: ImageResult, cost: Decimal | None) -> None:
        with self._lock:
            self.calls.append(CallCost(provider, model, result.usage, len(result.images), cost))
            self.upstream_model = model

    def cost(self) -> Decimal | None:
        """What the completed calls cost: 0 when there were none, None when any call's price is unknown."""
        with self._lock:
            costs = [call.cost for call in self.calls]
        if any(cost is None for cost in costs):
            return None
        return sum(costs, Decimal(0)).quantize(COST_PLACES)

    def usage(self) -> Usage:
        with self._lock:
            calls = list(self.calls)
        total = Usage()
        for call in calls:
            total = total + call.usage
        return total

    def images(self) -> int:
        with self._lock:
            return sum(call.images for call in self.calls)


_current: contextvars.ContextVar[Meter | None] = contextvars.ContextVar("gateway_meter", default=None)


def begin(**facts: Any) -> Meter:
    meter = Meter(**facts)
    _current.set(meter)
    return meter


def current() -> Meter | None:
    return _current.get()


def clear() -> None:
    _current.set(None)


def as_number(cost: Decimal | None) -> float | None:
    """`usage.cost` in answers: a JSON number of US dollars (null when unknown)."""
    return None if cost is None else float(cost)


def as_header(cost: Decimal) -> str:
    """`x-gateway-cost-usd`: plain decimal notation, no exponent, no trailing zeros."""
    text = format(cost.quantize(COST_PLACES), "f").rstrip("0").rstrip(".")
    return text or "0"


class MeteredClient:
    """A provider client (seen through retries) whose every completed call is priced and recorded."""

    def __init__(self, client: Any, provider: str, meter: Meter | None,
                 price: Callable[[ImageRequest, ImageResult], Decimal | None]):
        self.client = client
        self.provider = provider
        self.meter = meter
        self.price = price

    def __getattr__(self, name: str):
        """Everything else the flow asks of a client (what a model supports) is the wrapped client's."""
        return getattr(self.client, name)

    def generate(self, request: ImageRequest) -> ImageResult:
        return self._recorded(request, self.client.generate(request))

    def generate_streaming(self, request: ImageRequest,
                           on_partial: Callable[[int, GeneratedImage], None]) -> ImageResult:
        return self._recorded(request, self.client.generate_streaming(request, on_partial))

    def _recorded(self, request: ImageRequest, result: ImageResult) -> ImageResult:
        cost = self.price(request, result)
        if self.meter is not None:
            self.meter.record(self.provider, request.model, result, cost)
        # this call's own cost rides on its usage (the Images API stream's completed event shows it); the
        # request's total replaces it once every call is done. An unknown one is left out here: summing
        # usages (fan-out) adds numbers, and the total says null anyway.
        if cost is None:
            result.usage.extra.pop("cost", None)
        else:
            result.usage.extra["cost"] = as_number(cost)
        return result
