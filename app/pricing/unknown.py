"""The warning for generations whose price is unknown: gateway_price_unknown_total, and one log line per model."""
from __future__ import annotations

import logging

from app import metrics

log = logging.getLogger(__name__)
MAX_MODEL_LABELS = 100  # OpenRouter names come from clients: past this many, further ones count as "other"
_warned: set[tuple[str, str]] = set()


def record_unknown(provider: str, model: str) -> None:
    """Count a generation whose cost is unknown (its answer says cost null); log it once per model."""
    if (provider, model) not in _warned and len(_warned) >= MAX_MODEL_LABELS:
        metrics.PRICE_UNKNOWN.labels(provider, "other").inc()
        return
    metrics.PRICE_UNKNOWN.labels(provider, model).inc()
    if (provider, model) not in _warned:
        _warned.add((provider, model))
        log.warning("no price for %s model %s: its cost is reported as null; add a [prices.\"<pattern>\"] "
                    "row to the routing file", provider, model)
