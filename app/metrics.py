"""Prometheus metrics, correct under several gunicorn workers (prometheus-client multiprocess mode).

gunicorn's config points PROMETHEUS_MULTIPROC_DIR at a fresh directory before workers start, so
every worker writes its samples there and /metrics adds them up; outside gunicorn (tests, a
single process) the in-process registry is used.
"""
from __future__ import annotations

import os

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess

REQUESTS = Counter("gateway_requests_total", "Requests answered, by route, model, provider and status",
                   ["route", "model", "provider", "status"])
UPSTREAM_LATENCY = Histogram("gateway_upstream_latency_seconds", "Time waiting for a provider, per request",
                             ["provider"], buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 60, 90, 120, 180, 300))
OVERHEAD = Histogram("gateway_overhead_seconds", "Time the gateway itself spent on a request (total - upstream)",
                     ["route"], buckets=(0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1))
IMAGES = Counter("gateway_images_generated_total", "Images delivered to clients", ["provider"])
PRICE_UNKNOWN = Counter("gateway_price_unknown_total", "Generations whose cost is unknown (no price row, or no usage "
                        "to price): their answers say cost null", ["provider", "model"])
COST_USD = Counter("gateway_cost_usd_total", "US dollars spent upstream (priced calls), by provider and upstream model",
                   ["provider", "model"])
LEDGER_ROWS_LOST = Counter("gateway_ledger_rows_lost_total", "Usage ledger rows that could not be kept, by reason",
                           ["reason"])
IDEMPOTENCY_NOT_KEPT = Counter("gateway_idempotency_not_kept_total", "Successful answers to an Idempotency-Key "
                               "request not kept for replays, by reason (too_large, store_full)",
                               ["reason"])
UPSTREAM_ERRORS = Counter("gateway_upstream_errors_total", "Failed provider calls, by provider and answer status",
                          ["provider", "status"])

# load shedding (app/shedding.py): summed over the instance's live workers
INFLIGHT = Gauge("gateway_inflight_generations", "Generation requests in flight on this instance (GATEWAY_MAX_INFLIGHT)",
                 multiprocess_mode="livesum")
SHED = Counter("gateway_shed_requests_total", "Generation requests refused with 503 server_overloaded")

OTHER_MODEL = "other"
MAX_MODEL_LABELS = 100


class ModelLabels:
    """A metric's model label, bounded because OpenRouter model names come from clients: the first
    MAX_MODEL_LABELS distinct (provider, model) pairs keep their name, further ones count as "other"."""

    def __init__(self) -> None:
        self._seen: set[tuple[str, str]] = set()

    def label(self, provider: str, model: str) -> tuple[str, bool]:
        """The label for this model, and True the first time it is given its own."""
        pair = (provider, model)
        if pair in self._seen:
            return model, False
        if len(self._seen) >= MAX_MODEL_LABELS:
            return OTHER_MODEL, False
        self._seen.add(pair)
        return model, True


def exposition() -> tuple[bytes, str]:
    """The text format of every metric, summed over workers when running under gunicorn."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(), CONTENT_TYPE_LATEST


def worker_exited(pid: int) -> None:
    """gunicorn `child_exit` hook: drop a dead worker's live gauges (counters are kept)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid)
