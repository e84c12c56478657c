"""Request bookkeeping: X-Request-ID, x-gateway-overhead-ms, metrics and one JSON log line per request.

The request id lives in a context variable of the thread serving the request; it is cleared when
the answer has been sent, so the server's own log lines between requests carry no stale id.
Metric labels only take bounded values: a model name the client made up is counted as `other`.
"""
from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from flask import Flask, Response, current_app, g, request

from app import metrics, observability

log = logging.getLogger("gateway.request")
QUIET_PATHS = ("/healthz", "/metrics")  # probes and scrapes: logged at DEBUG only
UNKNOWN_MODEL = "other"                 # the metric label of a routed model name that is not configured
MAX_ERROR_BODY = 16 * 1024              # error answers are small; anything larger is not one of ours


def init_app(app: Flask) -> None:
    known_models = frozenset(name for name, _ in app.extensions["gateway"].router.models())

    @app.before_request
    def start_request() -> None:
        observability.begin(request.headers.get("X-Request-ID"))

    @app.after_request
    def finish_request(response: Response) -> Response:
        stats = observability.current()
        if stats is None:
            return response
        response.headers["X-Request-ID"] = stats.request_id
        # what the log line needs from the request, read now: a stream ends after the request context
        facts = _Facts(route=request.url_rule.rule if request.url_rule is not None else "unmatched",
                       method=request.method, path=request.path, client=request.remote_addr, scheme=request.scheme,
                       log_prompts=current_app.extensions["gateway"].settings.log_prompts,
                       known_model=stats.model in known_models, error=_error_of(response),
                       on_end=tuple(g.get("request_end", ())))
        # a body of unknown length (event streams, keep-alive JSON) is logged when it ends; a JSON answer
        # written lazily in slices still has its Content-Length, and is complete as far as we are concerned
        if response.is_streamed and response.content_length is None:
            counted = _ByteCounter(response.response)
            response.response = counted
            response.call_on_close(lambda: _record(stats, facts, response.status_code, counted.bytes, True))
        else:
            upstream = stats.upstream_seconds()
            response.headers["x-gateway-overhead-ms"] = f"{(stats.elapsed() - upstream) * 1000:.1f}"
            _record(stats, facts, response.status_code, response.content_length or 0, False)
        response.call_on_close(observability.end)  # after a stream's own log line, which needs the id
        return response


@dataclass(frozen=True)
class _Facts:
    route: str
    method: str
    path: str
    client: str | None
    scheme: str
    log_prompts: bool
    known_model: bool
    error: dict
    on_end: tuple = ()  # callables(status, seconds) run when the answer has ended (the usage ledger's)


def _error_of(response: Response) -> dict:
    """`error_code` and `error_param` of an error answer, read back from its JSON body."""
    if response.status_code < 400 or response.is_streamed or (response.content_length or 0) > MAX_ERROR_BODY \
            or response.mimetype != "application/json":
        return {}
    try:
        error = json.loads(response.get_data())["error"]
        return {"error_code": error.get("code"), "error_param": error.get("param")}
    except (ValueError, KeyError, TypeError, AttributeError):
        return {}


class _ByteCounter:
    """Wraps a streamed body to count the bytes that really went out."""

    def __init__(self, body):
        self._body = body
        self.bytes = 0

    def __iter__(self):
        for piece in self._body:
            self.bytes += len(piece)
            yield piece

    def close(self):
        close = getattr(self._body, "close", None)
        if close is not None:
            close()


def _record(stats: observability.RequestStats, facts: _Facts, status: int, size: int, streamed: bool) -> None:
    total = stats.elapsed()
    upstream = stats.upstream_seconds()
    provider = stats.provider or "-"
    model = "-" if not stats.provider else stats.model if facts.known_model else UNKNOWN_MODEL
    metrics.REQUESTS.labels(facts.route, model, provider, str(status)).inc()
    metrics.OVERHEAD.labels(facts.route).observe(max(0.0, total - upstream))
    if stats.provider:
        metrics.UPSTREAM_LATENCY.labels(provider).observe(upstream)
        if stats.images:
            metrics.IMAGES.labels(provider).inc(stats.images)
    fields = {
        "method": facts.method, "path": facts.path, "status": status, "client": facts.client,
        "scheme": facts.scheme, "model": stats.model,
        "provider": stats.provider, "channel": stats.channel, "attempts": stats.attempts or None,
        "latency_ms": round(total * 1000, 1), "upstream_ms": round(upstream * 1000, 1),
        "overhead_ms": round((total - upstream) * 1000, 1), "images": stats.images, "bytes": size,
        "stream": streamed,
    }
    if facts.log_prompts and stats.prompt is not None:
        fields["prompt"] = stats.prompt
    level = logging.DEBUG if facts.path in QUIET_PATHS and status < 400 else logging.INFO
    fields = {k: v for k, v in fields.items() if v is not None}
    log.log(level, "request", extra={"fields": {**fields, **facts.error}})  # an error's code and param, even null
    for listener in facts.on_end:
        listener(status, total)
