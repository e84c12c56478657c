"""GET /metrics: Prometheus text format; open unless GATEWAY_METRICS_TOKEN asks for a bearer token."""
import hmac

from flask import Blueprint, Response, current_app, request

from app import metrics
from app.core.errors import AuthenticationFailed

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def prometheus():
    """Counters and histograms of every worker, summed."""
    token = current_app.extensions["gateway"].settings.metrics_token
    if token:
        presented = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(presented.encode(), token.encode()):
            raise AuthenticationFailed("/metrics needs Authorization: Bearer <GATEWAY_METRICS_TOKEN>")
    body, content_type = metrics.exposition()
    return Response(body, content_type=content_type)
