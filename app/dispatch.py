"""From a validated ImageRequest to a result: routes, per-model defaults, deadline, retries, fallback.

Input images given by URL are downloaded once per request, whatever the fan-out, retries and fallbacks.

Both API surfaces (chat completions and the Images API) come through here, streaming or not.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

from app import input_fetches, observability
from app.core import context
from app.core.request import ImageRequest
from app.core.result import ImageEvents, ImageResult
from app.generation import generate, generate_events
from app.resilience import EmissionGuard, RetryingClient, with_fallback


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
    return Plan(request=request, routes=routes)


def run(gateway, planned: Plan) -> tuple[ImageResult, object]:
    """Generate, retrying each upstream call and falling back across routes; returns (result, route)."""
    settings = gateway.settings

    def on_route(route) -> ImageResult:
        client = RetryingClient(route.client, gateway.retry_policy)
        return generate(client, replace(planned.request, model=route.upstream_model),
                        fanout_threads=settings.fanout_threads)

    with input_fetches.shared():
        result, route = with_fallback(planned.routes, on_route, gateway.health, gateway.retry_policy)
    observability.note(images=len(result.images))
    return result, route


def run_streaming(gateway, planned: Plan, events: ImageEvents) -> ImageResult:
    """Like `run`, reporting events as they happen; no fallback once part of the answer went out."""
    guard = EmissionGuard(events)

    def on_route(route) -> ImageResult:
        client = RetryingClient(route.client, gateway.retry_policy)
        return generate_events(client, replace(planned.request, model=route.upstream_model), guard,
                               fanout_threads=gateway.settings.fanout_threads)

    with input_fetches.shared():
        result, _ = with_fallback(planned.routes, on_route, gateway.health, gateway.retry_policy,
                                  may_fall_back=lambda: not guard.emitted)
    return result


def answer_headers(route, result: ImageResult | None) -> dict[str, str]:
    """Which provider and channel served the request, how many upstream calls it took, what was dropped."""
    stats = observability.current()
    headers = {"x-gateway-provider": route.client.name, "x-gateway-channel": route.channel}
    if stats is not None and stats.attempts:
        headers["x-gateway-attempts"] = str(stats.attempts)
    if result is not None and result.dropped:
        headers["x-gateway-dropped-params"] = ",".join(result.dropped)
    return headers
