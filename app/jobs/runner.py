"""One run of one job, the same in a web process's pool and on a queue worker: claim, run, keep the end.

`execute` says what the caller should do next with the job's message: nothing (it ended, or it
is no longer ours), ask again later (another live runner holds it), or run it again later (its
key's concurrency is full: it went back to `queued`).
"""
from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from app.core.errors import GatewayError
from app.jobs import replay
from app.jobs.records import FAILED, SUCCEEDED, error_object
from app.keys.records import utcnow
from app.quotas.errors import CONCURRENCY_CODE

if TYPE_CHECKING:
    from flask import Flask

log = logging.getLogger("gateway")

DONE, BUSY, DEFER = "done", "busy", "defer"
CONCURRENCY_WAIT = 2.0           # seconds before a job held back by its key's concurrency tries again
FINISH_RETRIES = (1.0, 2.0, 4.0, 8.0)  # waits when the database refuses a job's end (the picture is paid for)
_identity: tuple[int, str] | None = None


@dataclass(frozen=True)
class Outcome:
    kind: str
    retry_in: float = 0.0


def runner_id() -> str:
    """This process's name on the job rows it holds: host, pid and a nonce (pids are reused)."""
    global _identity
    pid = os.getpid()
    if _identity is None or _identity[0] != pid:
        _identity = (pid, f"{socket.gethostname()[:60]}:{pid}:{secrets.token_hex(4)}")
    return _identity[1]


def execute(app: "Flask", job_id: str) -> Outcome:
    """Claim the job and, when it is ours to run, run it to its end.

    The job is held (its lease renewed) while it runs; an in-process job held back by its key's
    concurrency stays held while it waits, as it still belongs to this process.
    """
    jobs = app.extensions["gateway"].jobs
    me = runner_id()
    outcome = Outcome(DONE)
    try:
        claim = jobs.store.claim(job_id, me, jobs.lease)
        if not claim.run:
            if claim.busy_until is not None:
                outcome = Outcome(BUSY, max(1.0, (claim.busy_until - utcnow()).total_seconds() + 1.0))
            return outcome
        jobs.keeper.hold(job_id)
        outcome = _run(app, jobs, claim, me)
        return outcome
    finally:
        if outcome.kind != DEFER or jobs.queue is not None:
            jobs.keeper.release(job_id)


def _run(app: "Flask", jobs, claim, me: str) -> Outcome:
    gateway = app.extensions["gateway"]
    job = claim.job
    if job.attempts > 1:
        log.warning("job %s: its runner died mid-run; running it again (run %d)", job.id, job.attempts)
    try:
        key = gateway.auth.key_by_id(job.key_id)
    except GatewayError as error:
        _finish(jobs, job.id, FAILED, error=error_object(error))
        return Outcome(DONE)
    answer = replay.run_request(app, key, job.id, claim.request)
    if answer.status >= 400:
        error = _error_of(answer)
        if answer.status == 429 and error.get("code") == CONCURRENCY_CODE:
            jobs.store.requeue(job.id, me)
            return Outcome(DEFER, CONCURRENCY_WAIT)
        _finish(jobs, job.id, FAILED, error=error)
        return Outcome(DONE)
    _finish(jobs, job.id, SUCCEEDED, result=answer.body, expires_at=jobs.result_expiry())
    return Outcome(DONE)


def _error_of(answer: replay.Answer) -> dict:
    try:
        error = json.loads(answer.body)["error"]
        if isinstance(error, dict):
            return error
    except (ValueError, KeyError, TypeError):
        pass
    return {"message": f"The generation failed with HTTP {answer.status}", "type": "server_error", "param": None,
            "code": None}


def _finish(jobs, job_id: str, status: str, **end) -> None:
    """Keep the job's end, retrying a while if the database refuses: the work is done and may be paid for."""
    from app.db import DatabaseUnavailable

    for wait in (*FINISH_RETRIES, None):
        try:
            jobs.store.finish(job_id, status, **end)
            return
        except DatabaseUnavailable as exc:
            if wait is None:
                raise
            log.warning("job %s: keeping its end failed (%s); retrying in %.0f s", job_id, exc, wait)
            time.sleep(wait)

