"""Job rows in the database: every change of a job's state is one short transaction here.

Who runs a job is recorded on its row (`runner`) with a lease (`lease_expires_at`) its runner
renews while it holds the job. A lease that ran out means the runner died: the web process of an
in-process job (the job fails with `gateway_restarted`), or a queue worker (the job is run once
more, then fails with `worker_lost`). A job's end and its webhook delivery are written in one
transaction, so neither exists without the other.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Callable, Iterable

from app.core.errors import GatewayError
from app.db import Database, DatabaseUnavailable
from app.db.models import ImageJob
from app.jobs.records import (CANCELLED, FAILED, IN_PROGRESS, MAX_RUNS, PROCESS, QUEUE, QUEUED, UNFINISHED, Job,
                              JobNotCancellable, JobNotFound, JobNotStarted, JobsUnavailable, StoredRequest,
                              WorkerLost, error_object, gateway_restarted)
from app.keys.records import utcnow

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from app.webhooks import Webhooks

_JOBS = ImageJob.__table__
SWEEP_BATCH = 500


@dataclass(frozen=True)
class Claim:
    """What a runner may do with a job it was handed: run it (`request` set), wait, or drop it."""

    job: Job | None
    request: StoredRequest | None = None
    busy_until: datetime | None = None   # another live runner holds it

    @property
    def run(self) -> bool:
        return self.request is not None


def _job(row) -> Job:
    return Job(id=row.id, key_id=row.key_id, status=row.status, mode=row.mode, created_at=row.created_at,
               started_at=row.started_at, finished_at=row.finished_at, expires_at=row.expires_at,
               attempts=row.attempts, runner=row.runner, lease_expires_at=row.lease_expires_at,
               webhook_url=row.webhook_url, request_id=row.request_id,
               result=bytes(row.result) if row.result is not None else None,
               error=json.loads(row.error) if row.error else None)


def _locked(connection: "Connection", job_id: str, dialect: str):
    from sqlalchemy import select
    query = select(_JOBS).where(_JOBS.c.id == job_id)
    if dialect == "postgresql":
        query = query.with_for_update()
    return connection.execute(query).first()


class JobStore:
    """The `image_jobs` table. `webhooks` (when configured) receives each ended job that asked for one."""

    def __init__(self, db: Database, webhooks: "Webhooks | None" = None, keep_for: float = 24 * 3600.0,
                 clock: Callable[[], datetime] = utcnow):
        self.db = db
        self.webhooks = webhooks
        self.keep_for = timedelta(seconds=keep_for)   # a finished job without links (GATEWAY_JOB_TTL_SECONDS)
        self.clock = clock

    # -- submitting and reading ---------------------------------------------------------------

    def create(self, job: Job, request: StoredRequest) -> None:
        try:
            with self.db.write() as connection:
                connection.execute(_JOBS.insert().values(
                    id=job.id, key_id=job.key_id, status=job.status, mode=job.mode, created_at=job.created_at,
                    request_id=job.request_id, request_path=request.path,
                    request_headers=json.dumps(request.headers), request_body=request.body,
                    base_url=request.base_url, webhook_url=job.webhook_url, attempts=0, runner=job.runner,
                    lease_expires_at=job.lease_expires_at))
        except DatabaseUnavailable as exc:
            raise JobsUnavailable(f"The job could not be kept ({exc}); nothing was queued, try again shortly") from None

    def get(self, job_id: str, key_id: str | None = None) -> Job | None:
        """The job, or None when there is none with this id for this key (another key's job does not exist)."""
        from sqlalchemy import select
        query = select(_JOBS).where(_JOBS.c.id == job_id)
        if key_id is not None:
            query = query.where(_JOBS.c.key_id == key_id)
        with self.db.read() as connection:
            row = connection.execute(query).first()
        return None if row is None else _job(row)

    def get_current(self, job_id: str, key_id: str) -> Job | None:
        """The job as a poll answers it: an in-process job whose web process is gone (its lease ran out)
        is failed first, rather than when a keeper notices."""
        job = self.get(job_id, key_id)
        if job is None or not self._abandoned(job):
            return job
        ended = self.fail_abandoned(gateway_restarted(), job_ids=[job_id])
        return ended[0] if ended else self.get(job_id, key_id)

    def mark_enqueued(self, job_id: str) -> None:
        from sqlalchemy import update
        with self.db.write() as connection:
            connection.execute(update(_JOBS).where(_JOBS.c.id == job_id).values(enqueued_at=self.clock()))

    # -- running ------------------------------------------------------------------------------

    def claim(self, job_id: str, runner: str, lease: float) -> Claim:
        """Take the job to run it: a queued job, or (queue mode) one whose runner's lease ran out.

        A job already run MAX_RUNS times by runners that died is failed (`worker_lost`) instead.
        """
        from sqlalchemy import update
        now = self.clock()
        with self.db.write() as connection:
            row = _locked(connection, job_id, self.db.dialect)
            if row is None or row.status not in UNFINISHED:
                return Claim(None if row is None else _job(row))
            if row.status == IN_PROGRESS:
                if row.mode == PROCESS or (row.lease_expires_at is not None and row.lease_expires_at > now):
                    return Claim(_job(row), busy_until=row.lease_expires_at)
                if row.attempts >= MAX_RUNS:
                    error = WorkerLost(f"The worker running this job stopped before it finished, {row.attempts} "
                                       "times (killed or crashed); it is not run again")
                    return Claim(self._end(connection, row, FAILED, error=error_object(error)))
            connection.execute(update(_JOBS).where(_JOBS.c.id == job_id).values(
                status=IN_PROGRESS, attempts=row.attempts + 1, started_at=row.started_at or now, runner=runner,
                lease_expires_at=now + timedelta(seconds=lease)))
            row = _locked(connection, job_id, self.db.dialect)
        request = StoredRequest(path=row.request_path, headers=json.loads(row.request_headers),
                                body=bytes(row.request_body or b""), base_url=row.base_url)
        return Claim(_job(row), request=request)

    def renew(self, job_ids: Iterable[str], runner: str, lease: float) -> None:
        """Extend the leases of the unfinished jobs `runner` holds."""
        from sqlalchemy import update
        ids = list(job_ids)
        if not ids:
            return
        with self.db.write() as connection:
            connection.execute(update(_JOBS).where(
                _JOBS.c.id.in_(ids), _JOBS.c.runner == runner, _JOBS.c.status.in_(UNFINISHED))
                .values(lease_expires_at=self.clock() + timedelta(seconds=lease)))

    def requeue(self, job_id: str, runner: str) -> None:
        """Give back a job that could not start yet (its key's concurrency is full): queued again."""
        from sqlalchemy import update
        with self.db.write() as connection:
            row = _locked(connection, job_id, self.db.dialect)
            if row is None or row.status != IN_PROGRESS or row.runner != runner:
                return
            connection.execute(update(_JOBS).where(_JOBS.c.id == job_id).values(
                status=QUEUED, attempts=max(0, row.attempts - 1),
                started_at=None if row.attempts <= 1 else row.started_at))

    def finish(self, job_id: str, status: str, *, result: bytes | None = None, error: dict | None = None,
               expires_at: datetime | None = None) -> Job | None:
        """End a running job with its answer or error; None when it had already ended (cancelled, failed as lost)."""
        with self.db.write() as connection:
            row = _locked(connection, job_id, self.db.dialect)
            if row is None or row.status != IN_PROGRESS:
                return None
            job = self._end(connection, row, status, result=result, error=error, expires_at=expires_at)
        self._wake_webhooks(job)
        return job

    # -- clients ------------------------------------------------------------------------------

    def cancel(self, job_id: str, key_id: str) -> Job:
        """Cancel a job that has not started; 404 for another key's or unknown job, 409 once it started."""
        with self.db.write() as connection:
            row = _locked(connection, job_id, self.db.dialect)
            if row is None or row.key_id != key_id:
                raise not_found(job_id)
            if row.status != QUEUED:
                if row.status == IN_PROGRESS:
                    message = ("This job has started: a generation cannot be stopped once the provider is making "
                               "(and billing) the picture. Poll the job for its result")
                else:
                    message = f"This job has already ended ({row.status}); there is nothing to cancel"
                raise JobNotCancellable(message, headers={"x-should-retry": "false"})
            job = self._end(connection, row, CANCELLED)
        self._wake_webhooks(job)
        return job

    # -- the dead and the old -----------------------------------------------------------------

    def _abandoned(self, job: Job) -> bool:
        """fail_abandoned's condition (its query below), for a job already read: in-process, unfinished,
        its lease ran out."""
        return (job.mode == PROCESS and job.status in UNFINISHED and job.lease_expires_at is not None
                and job.lease_expires_at < self.clock())

    def fail_abandoned(self, error: GatewayError, *, job_ids: Iterable[str] | None = None,
                       runner: str | None = None) -> list[Job]:
        """Fail unfinished in-process jobs whose runner is gone: given by id, held by `runner`, or (neither)
        every one whose lease ran out. Returns the jobs failed here."""
        from sqlalchemy import select
        now = self.clock()
        query = select(_JOBS.c.id).where(_JOBS.c.mode == PROCESS, _JOBS.c.status.in_(UNFINISHED))
        if job_ids is not None:
            query = query.where(_JOBS.c.id.in_(list(job_ids)))
        if runner is not None:
            query = query.where(_JOBS.c.runner == runner)
        else:
            query = query.where(_JOBS.c.lease_expires_at < now)
        if not self._any(query):
            return []
        ended = []
        with self.db.write() as connection:
            for (job_id,) in connection.execute(query).all():
                row = _locked(connection, job_id, self.db.dialect)
                if row is not None and row.status in UNFINISHED:
                    ended.append(self._end(connection, row, FAILED, error=error_object(error)))
        for job in ended:
            self._wake_webhooks(job)
        return ended

    def to_dispatch(self, queued_before: datetime, lost_before: datetime) -> list[str]:
        """Queue-mode jobs that need a message: queued but never sent (the web process died between
        keeping the job and sending its message), or left running by a worker whose lease ran out long
        ago (its message was lost with Redis's data)."""
        from sqlalchemy import and_, or_, select
        with self.db.read() as connection:
            rows = connection.execute(select(_JOBS.c.id).where(_JOBS.c.mode == QUEUE, or_(
                and_(_JOBS.c.status == QUEUED, _JOBS.c.enqueued_at.is_(None), _JOBS.c.created_at < queued_before),
                and_(_JOBS.c.status == IN_PROGRESS, _JOBS.c.lease_expires_at < lost_before)))
                .limit(SWEEP_BATCH)).all()
        return [row.id for row in rows]

    def sweep(self, not_started_before: datetime) -> int:
        """Delete jobs past their expiry; fail jobs queued since before `not_started_before`. Rows deleted."""
        from sqlalchemy import delete, select
        now = self.clock()
        expired_query = select(_JOBS.c.id).where(_JOBS.c.expires_at < now).limit(SWEEP_BATCH)
        stale_query = select(_JOBS.c.id).where(
            _JOBS.c.status == QUEUED, _JOBS.c.created_at < not_started_before).limit(SWEEP_BATCH)
        expired, ended = [], []
        if self._any(expired_query):
            with self.db.write() as connection:
                expired = [row.id for row in connection.execute(expired_query).all()]
                if expired:
                    connection.execute(delete(_JOBS).where(_JOBS.c.id.in_(expired)))
        if self._any(stale_query):
            with self.db.write() as connection:
                for (job_id,) in connection.execute(stale_query).all():
                    row = _locked(connection, job_id, self.db.dialect)
                    if row is not None and row.status == QUEUED:
                        error = JobNotStarted("No runner started this job in time (is the queue worker running?); "
                                              "submit it again")
                        ended.append(self._end(connection, row, FAILED, error=error_object(error)))
        for job in ended:
            self._wake_webhooks(job)
        return len(expired)

    def _any(self, query) -> bool:
        """Whether `query` finds a row, read without the write lock: an idle maintenance pass (every few
        seconds, in every process) then takes no write transaction; the write re-checks under the lock."""
        with self.db.read() as connection:
            return connection.execute(query.limit(1)).first() is not None

    # -- the one way a job ends ---------------------------------------------------------------

    def _end(self, connection: "Connection", row, status: str, *, result: bytes | None = None,
             error: dict | None = None, expires_at: datetime | None = None) -> Job:
        """Write the end of a job (the request is dropped: it will not run again) and queue its webhook."""
        from sqlalchemy import update
        now = self.clock()
        values = dict(status=status, finished_at=now, expires_at=expires_at or now + self.keep_for,
                      result=result, error=json.dumps(error) if error is not None else None,
                      request_body=None, runner=None, lease_expires_at=None)
        connection.execute(update(_JOBS).where(_JOBS.c.id == row.id).values(**values))
        job = _job(_locked(connection, row.id, self.db.dialect))
        if job.webhook_url and self.webhooks is not None and self.webhooks.enabled:
            self.webhooks.send_within(connection, job.webhook_url, job.to_json())
        return job

    def _wake_webhooks(self, job: Job) -> None:
        if job.webhook_url and self.webhooks is not None:
            self.webhooks.wake()


def not_found(job_id: str) -> JobNotFound:
    return JobNotFound(f"No job {job_id[:64]!r} for this key (jobs are kept until they expire)", param="id")
