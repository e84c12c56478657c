"""What a job is (DESIGN §9): its states, the request it keeps, and the `image.job` object clients read."""
from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import orjson

from app.core.errors import GatewayError

JOB_PREFIX = "imgjob_"
OBJECT = "image.job"
QUEUED, IN_PROGRESS, SUCCEEDED, FAILED, CANCELLED = "queued", "in_progress", "succeeded", "failed", "cancelled"
UNFINISHED = (QUEUED, IN_PROGRESS)
PROCESS, QUEUE = "process", "queue"   # who runs it: the web process that accepted it, or a queue worker
MAX_RUNS = 2                          # a job whose runner died is run once more, then failed


def new_job_id() -> str:
    return JOB_PREFIX + secrets.token_urlsafe(18).replace("-", "x").replace("_", "y")


def epoch(moment: datetime | None) -> int | None:
    """A naive-UTC database timestamp as the unix seconds the API shows."""
    return None if moment is None else int(moment.replace(tzinfo=timezone.utc).timestamp())


@dataclass(frozen=True)
class StoredRequest:
    """The submitted request, enough to make the same synchronous call again in a runner."""

    path: str
    headers: dict[str, str]
    body: bytes
    base_url: str


@dataclass(frozen=True)
class Job:
    """A row of `image_jobs` as the code reads it (the request apart: it is loaded only to run)."""

    id: str
    key_id: str
    status: str
    mode: str
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    expires_at: datetime | None = None
    attempts: int = 0
    runner: str | None = None
    lease_expires_at: datetime | None = None
    webhook_url: str | None = None
    request_id: str = "-"
    result: bytes | None = None
    error: dict[str, Any] | None = field(default=None)

    def accepted(self) -> dict[str, Any]:
        """The 202 answer's body."""
        return {"id": self.id, "object": OBJECT, "status": self.status, "created_at": epoch(self.created_at)}

    def to_json(self) -> bytes:
        """The job object of GET /v1/images/jobs/{id} and of webhooks; `result` is spliced in as kept."""
        return orjson.dumps({
            **self.accepted(),
            "started_at": epoch(self.started_at), "finished_at": epoch(self.finished_at),
            "expires_at": epoch(self.expires_at),
            "result": orjson.Fragment(self.result) if self.result is not None else None,
            "error": self.error,
        })


def error_object(error: GatewayError) -> dict[str, Any]:
    """The OpenAI error object (`{"message", "type", "param", "code"}`) of a failure."""
    return error.body()["error"]


class JobNotFound(GatewayError):
    status = 404
    type = "invalid_request_error"
    code = "job_not_found"


class JobNotCancellable(GatewayError):
    status = 409
    type = "invalid_request_error"
    code = "job_not_cancellable"


class JobsUnavailable(GatewayError):
    """The job database cannot be used right now: nothing was queued."""

    status = 503
    type = "server_error"
    code = "jobs_unavailable"


class GatewayRestarted(GatewayError):
    status = 500
    type = "server_error"
    code = "gateway_restarted"


def gateway_restarted() -> GatewayRestarted:
    return GatewayRestarted("The gateway restarted while this job was queued or running (jobs run inside the web "
                            "process when GATEWAY_REDIS_URL is not set); submit it again")


class WorkerLost(GatewayError):
    status = 500
    type = "server_error"
    code = "worker_lost"


class JobNotStarted(GatewayError):
    status = 503
    type = "server_error"
    code = "job_not_started"
