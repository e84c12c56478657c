"""GET /healthz (liveness: no auth, no upstream or database call) and GET /readyz (the stores answer)."""
from flask import Blueprint, current_app

from app.jsonio import json_response

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """Answer as long as the worker can serve requests."""
    return json_response({"status": "ok"})


@bp.get("/readyz")
def readyz():
    """200 when the database (and Redis, when configured) answer; 503 naming what does not."""
    checks = {}
    for name, check in current_app.extensions["gateway"].readiness_checks:
        try:
            check()
            checks[name] = "ok"
        except Exception as exc:  # a readiness probe reports, it never fails itself
            checks[name] = f"unavailable: {str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}"
    ready = all(value == "ok" for value in checks.values())
    return json_response({"status": "ready" if ready else "not_ready", "checks": checks}, status=200 if ready else 503)
