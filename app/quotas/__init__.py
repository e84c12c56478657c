"""Per-key limits: request and image windows, generations in flight, budgets (reserve, then settle)."""
