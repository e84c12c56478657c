"""Request hooks that turn each generation request into one ledger row when its answer has ended
(a stream when its last byte went out), and count its cost in `gateway_cost_usd_total`."""
from __future__ import annotations

import secrets
from decimal import Decimal

from flask import Flask, Response, current_app, g, request

from app import metrics, observability
from app.idempotency import REPLAYED_HEADER, is_generation
from app.keys.records import utcnow
from app.jobs.replay import in_job_run
from app.quotas.errors import CONCURRENCY_CODE
from app.usage import meter as metering

_cost_labels = metrics.ModelLabels()


def init_app(app: Flask) -> None:
    @app.before_request
    def forget_previous_meter() -> None:
        metering.clear()  # a worker thread serves many requests in turn

    @app.after_request
    def ledger_when_done(response: Response) -> Response:
        meter = metering.current()
        if (meter is None or meter.key is None or request.method != "POST"
                or not is_generation(request.url_rule)):
            return response
        meter.entry_point = request.url_rule.rule.split("/v1/", 1)[-1]
        replayed = response.headers.get(REPLAYED_HEADER) == "true"
        if meter.error_code is None and response.status_code >= 400 and not response.is_streamed:
            error = (response.get_json(silent=True) or {}).get("error")
            meter.error_code = error.get("code") if isinstance(error, dict) else None
        if meter.error_code == CONCURRENCY_CODE and in_job_run():
            return response  # a job held back by its key's concurrency waits queued: not a request yet
        ledger = current_app.extensions["gateway"].ledger
        stats = observability.current()
        started = utcnow()
        g.setdefault("request_end", []).append(
            lambda status, seconds: ledger.add(_row(meter, stats, status, seconds, replayed, started)))
        return response


def _row(meter: metering.Meter, stats, status: int, seconds: float, replayed: bool, when) -> dict:
    usage = meter.usage()
    cost = Decimal(0) if replayed else meter.cost()
    if not replayed:
        _count_cost(meter)
    return {
        "id": "use_" + secrets.token_hex(12), "request_id": stats.request_id if stats else "-",
        "created_at": when, "key_id": meter.key.id, "entry_point": meter.entry_point,
        "model": meter.model, "upstream_model": meter.upstream_model,
        "provider": stats.provider if stats else None, "channel": stats.channel if stats else None,
        "n": meter.n, "size": meter.size, "quality": meter.quality, "images": meter.images(),
        "prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens or usage.prompt_tokens + usage.completion_tokens,
        "cost_usd": cost, "status": status, "error_code": meter.error_code,
        "latency_ms": int(seconds * 1000), "attempts": stats.attempts if stats else 0, "replayed": replayed,
    }


def _count_cost(meter: metering.Meter) -> None:
    """Only priced calls count, so a label is a model that routed and has a price (bounded: see ModelLabels)."""
    for call in list(meter.calls):
        if call.cost:
            model, _ = _cost_labels.label(call.provider, call.model)
            metrics.COST_USD.labels(call.provider, model).inc(float(call.cost))
