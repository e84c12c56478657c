"""The answers of DESIGN §7 for a key over one of its limits, and for limit stores that are down."""
from __future__ import annotations

from app.core.errors import GatewayError, RateLimited

__all__ = ["RateLimited", "ModelNotAllowed", "ModelPriceUnknown", "InsufficientQuota", "LimitsUnavailable",
           "LedgerUnavailable", "CONCURRENCY_CODE"]

CONCURRENCY_CODE = "concurrency_limit_exceeded"  # a 429 a job's run waits out queued (app/jobs/runner.py)


class ModelNotAllowed(GatewayError):
    status = 403
    type = "permission_error"
    code = "model_not_allowed"


class ModelPriceUnknown(GatewayError):
    """A budgeted key may not spend money the gateway cannot count."""

    status = 403
    type = "permission_error"
    code = "model_price_unknown"


class InsufficientQuota(GatewayError):
    status = 429
    type = "insufficient_quota"
    code = "insufficient_quota"


class LimitsUnavailable(GatewayError):
    """The store holding a key's request limits (Redis or the database) does not answer: fail closed."""

    status = 503
    type = "server_error"
    code = "limits_unavailable"


class LedgerUnavailable(GatewayError):
    """The database holding a budgeted key's spend does not answer: fail closed, nothing is spent."""

    status = 503
    type = "server_error"
    code = "ledger_unavailable"
