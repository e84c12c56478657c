"""The public API's URL prefixes and its generation routes, named once: for the blueprints, the hooks
that act on generations only (idempotency, jobs, the usage ledger) and the load shedder, which runs in
gunicorn's master and sees raw paths before any routing."""

API_PREFIXES = ("/v1", "/api/v1")
GENERATION_ROUTES = ("/chat/completions", "/images/generations", "/images/edits")
GENERATION_PATHS = frozenset(prefix + route for prefix in API_PREFIXES for route in GENERATION_ROUTES)
