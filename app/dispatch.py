"""From a validated ImageRequest to a result: routes, per-model defaults, deadline, retries, fallback.

Input images given by URL are downloaded once per request, whatever the fan-out, retries and fallbacks.

Both API surfaces (chat completions and the Images API) come through here, streaming or not. So do
a key's limits and the request's cost: planning admits the request (model allowed, a slot, the budget
reserved for its quote); every completed upstream call is priced as it completes; the run's end
settles the real cost, computed once here, which the answer carries as `usage.cost` and
`x-gateway-cost-usd`.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal

from app import input_fetches, observability
from app.core import context
from app.core.errors import GatewayError
from app.core.request import ImageRequest
from app.core.result import ImageEvents, ImageResult
from app.generation import generate, generate_events
from app.resilience import EmissionGuard, RetryingClient, with_fallback
from app.usage import meter as metering


@dataclass(frozen=True)
class Plan:
    """A request ready to run: its routes (in order) and its parameters with the model's defaults."""

    request: ImageRequest
    routes: list


def plan(gateway, request: ImageRequest) -> Plan:
    """Route the public model name (404 now, before any work) and apply the routing file's defaults."""
    routes = gateway.router.routes(request.model)
    defaults = gateway.router.defaults(request.model)
    if defaults:
        request = replace(request, params={**defaults, **request.params})
    first = routes[0]
    context.set_deadline(gateway.settings.request_deadline)
    observability.note(model=request.model, prompt=request.prompt, provider=first.client.name,
                       channel=first.channel)
    meter = metering.current()
    if meter is not None:
        meter.model, meter.n = request.model, request.n
        meter.size, meter.quality = request.params.get("size"), request.params.get("quality")
        if meter.key is not None and not meter.key.static:
            meter.admission = gateway.quotas.admit(meter.key, request.model, request.n,
                                                   lambda: quote(gateway, routes, request),
                                                   count_request=not meter.request_counted)
    return Plan(request=request, routes=routes)


def quote(gateway, routes: list, request: ImageRequest) -> Decimal | None:
    """The most this request can cost on any route it may take; None when one of them has no price."""
    quotes = [gateway.prices.quote(route.client.name, route.upstream_model, replace(request, model=route.upstream_model))
              for route in routes]
    return None if any(q is None for q in quotes) else max(quotes)


def _metered(gateway, route, client):
    """The client whose completed calls are priced (once) and recorded on the request's meter."""
    provider = route.client.name

    def price(request: ImageRequest, result: ImageResult) -> Decimal | None:
        cost = gateway.prices.cost(provider, request.model, request, result)
        if cost is None:
            from app.pricing import record_unknown
            record_unknown(provider, request.model)
        return cost
    return metering.MeteredClient(client, provider, metering.current(), price)


def _metered_run(work):
    """Run `work()`; then settle the key's admission with the real cost and put it on the result's usage."""
    meter = metering.current()
    try:
        result = work()
    except GatewayError as error:
        if meter is not None:
            meter.error_code = error.code
            if meter.admission is not None:
                meter.admission.finish(meter.cost(), failed=True)
        raise
    except BaseException:
        if meter is not None and meter.admission is not None:
            meter.admission.finish(meter.cost(), failed=True)
        raise
    if meter is not None:
        cost = meter.cost()
        if meter.admission is not None:
            meter.admission.finish(cost)
        result_of(result).usage.extra["cost"] = metering.as_number(cost)
    return result


def result_of(outcome) -> ImageResult:
    return outcome[0] if isinstance(outcome, tuple) else outcome


def run(gateway, planned: Plan) -> tuple[ImageResult, object]:
    """Generate, retrying each upstream call and falling back across routes; returns (result, route)."""
    settings = gateway.settings

    def on_route(route) -> ImageResult:
        client = _metered(gateway, route, RetryingClient(route.client, gateway.retry_policy))
        return generate(client, replace(planned.request, model=route.upstream_model),
                        fanout_threads=settings.fanout_threads)

    def work():
        with input_fetches.shared():
            return with_fallback(planned.routes, on_route, gateway.health, gateway.retry_policy)
    result, route = _metered_run(work)
    observability.note(images=len(result.images))
    return result, route


def run_streaming(gateway, planned: Plan, events: ImageEvents) -> ImageResult:
    """Like `run`, reporting events as they happen; no fallback once part of the answer went out."""
    guard = EmissionGuard(events)

    def on_route(route) -> ImageResult:
        client = _metered(gateway, route, RetryingClient(route.client, gateway.retry_policy))
        return generate_events(client, replace(planned.request, model=route.upstream_model), guard,
                               fanout_threads=gateway.settings.fanout_threads)

    def work():
        with input_fetches.shared():
            result, _ = with_fallback(planned.routes, on_route, gateway.health, gateway.retry_policy,
                                      may_fall_back=lambda: not guard.emitted)
        return result
    return _metered_run(work)


def answer_headers(route, result: ImageResult | None) -> dict[str, str]:
    """Which provider and channel served the request, how many upstream calls it took, what was dropped."""
    stats = observability.current()
    headers = {"x-gateway-provider": route.client.name, "x-gateway-channel": route.channel}
    if stats is not None and stats.attempts:
        headers["x-gateway-attempts"] = str(stats.attempts)
    if result is not None and result.dropped:
        headers["x-gateway-dropped-params"] = ",".join(result.dropped)
    cost = result.usage.extra.get("cost") if result is not None else None
    if cost is not None:
        meter = metering.current()
        exact = meter.cost() if meter is not None else None
        headers["x-gateway-cost-usd"] = metering.as_header(exact if exact is not None else Decimal(str(cost)))
    return headers
