"""GET /healthz: liveness for load balancers and PaaS routers; no auth, no upstream call."""
from flask import Blueprint

from app.jsonio import json_response

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz():
    """Answer as long as the worker can serve requests."""
    return json_response({"status": "ok"})
