"""The warning for generations whose price is unknown: gateway_price_unknown_total, and one log line per model."""
from __future__ import annotations

import logging

from app import metrics

log = logging.getLogger(__name__)
_labels = metrics.ModelLabels()


def record_unknown(provider: str, model: str) -> None:
    """Count a generation whose cost is unknown (its answer says cost null); log it once per model."""
    label, first = _labels.label(provider, model)
    metrics.PRICE_UNKNOWN.labels(provider, label).inc()
    if first:
        log.warning("no price for %s model %s: its cost is reported as null; add a [prices.\"<pattern>\"] "
                    "row to the routing file", provider, model)
