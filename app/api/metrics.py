"""GET /metrics: Prometheus text format, for this machine only unless GATEWAY_METRICS_TOKEN is set.

Without a token, only a scraper on the machine itself gets the metrics: a loopback peer whose
request came through no proxy (a proxy on the same host, nginx included, adds X-Forwarded-For,
and then the request is treated as coming from outside). With a token, everyone must present it.
"""
import hmac
import ipaddress

from flask import Blueprint, Response, current_app, request

from app import metrics
from app.core.errors import AuthenticationFailed, GatewayError

bp = Blueprint("metrics", __name__)
FORWARDING_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP")


class MetricsForbidden(GatewayError):
    status = 403
    type = "permission_error"
    code = "metrics_forbidden"


@bp.get("/metrics")
def prometheus():
    """Counters and histograms of every worker, summed."""
    token = current_app.extensions["gateway"].settings.metrics_token
    if token:
        presented = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(presented.encode(), token.encode()):
            raise AuthenticationFailed("/metrics needs Authorization: Bearer <GATEWAY_METRICS_TOKEN>")
    elif not _from_this_machine():
        raise MetricsForbidden("/metrics is served to this machine only; set GATEWAY_METRICS_TOKEN to scrape it "
                               "from elsewhere")
    body, content_type = metrics.exposition()
    return Response(body, content_type=content_type)


def _from_this_machine() -> bool:
    if any(name in request.headers for name in FORWARDING_HEADERS):
        return False
    try:
        return ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        return False
