"""Prices of image generations: the shipped price table, routing-file overrides, quote() and cost().

    book = PriceBook.load(settings.routing.prices)                 # once per app
    reserve = book.quote(provider, upstream_model, request)        # before the upstream call
    spent = book.cost(provider, upstream_model, request, result)   # after it
    if spent is None: record_unknown(provider, upstream_model)

None means "unknown price", never zero: answers then say `"cost": null`.

The names below are imported on first use: app.routing_config checks `[prices]` rows through
app.pricing.table alone, without pulling the request/result types into the configuration layer.
"""
from __future__ import annotations

from importlib import import_module

_EXPORTS = {"PriceBook": "book", "returned_cost": "book", "row_cost": "book", "PriceRow": "table",
            "PriceTableError": "table", "record_unknown": "unknown"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(import_module(f"app.pricing.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'app.pricing' has no attribute {name!r}")
