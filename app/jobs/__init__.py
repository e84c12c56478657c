"""Asynchronous jobs for long generations (DESIGN §9): accepted at once, run in the background, polled.

`Jobs` is the app's one entry point: `submit` keeps a job and hands it to its runner — a Dramatiq
queue on Redis when GATEWAY_REDIS_URL is set (run by `image-gateway worker`), else a pool of threads
in the web process that accepted it — and `maintain` (run by every process's JobKeeper) deals with
jobs whose runner died and deletes jobs past their expiry.
"""
from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from app.jobs.keeper import JobKeeper
from app.jobs.pool import InProcessPool
from app.jobs.queue import JobQueue
from app.jobs.records import PROCESS, QUEUE, Job, StoredRequest, gateway_restarted
from app.jobs.runner import execute, runner_id
from app.jobs.store import JobStore
from app.keys.records import utcnow

if TYPE_CHECKING:
    from flask import Flask

    from app.config import Settings
    from app.db import Database
    from app.webhooks import Webhooks

log = logging.getLogger("gateway")

DISPATCH_GRACE = timedelta(seconds=10)   # a queued job with no message this long after it was kept gets one


class Jobs:
    def __init__(self, settings: "Settings", db: "Database", webhooks: "Webhooks", app: "Flask"):
        self.settings = settings
        self.lease = settings.job_lease
        self.store = JobStore(db, webhooks, keep_for=settings.job_ttl)
        self.keeper = JobKeeper(self.store, self.lease, self.maintain)
        self.queue = (JobQueue(settings.redis_url, self.lease, settings.request_deadline)
                      if settings.redis_url else None)
        self.pool = None if self.queue else InProcessPool(settings.job_threads, lambda job_id: execute(app, job_id),
                                                          on_exit=self.abandon_own)

    def submit(self, job: Job, request: StoredRequest) -> Job:
        """Keep the job, then hand it to its runner. Raises JobsUnavailable when it could not be kept."""
        now = utcnow()
        if self.queue is None:
            job = replace(job, mode=PROCESS, runner=runner_id(), lease_expires_at=now + timedelta(seconds=self.lease))
            self.store.create(job, request)
            self.keeper.hold(job.id)
            self.pool.submit(job.id)
            return job
        job = replace(job, mode=QUEUE)
        self.store.create(job, request)
        try:
            self.queue.send(job.id)
            self.store.mark_enqueued(job.id)
        except Exception as exc:  # kept in the database: a worker's maintenance sends it once Redis answers
            log.warning("job %s kept, but its queue message could not be sent yet (%s)", job.id, exc)
        return job

    def result_expiry(self) -> datetime:
        """When a job that succeeds now is deleted: with a picture store, when its pictures' links die."""
        keep = self.settings.job_ttl
        if self.settings.image_store.kind != "none":
            keep = min(keep, self.settings.image_url_ttl)
        return utcnow() + timedelta(seconds=keep)

    def ensure_running(self) -> None:
        """Start this process's keeper (lease renewals and maintenance) unless it runs."""
        self.keeper.ensure_running()

    def maintain(self) -> None:
        """Jobs of dead runners, and old jobs: in-process jobs whose web process is gone fail with
        `gateway_restarted`; queue jobs without a live message get one; expired jobs are deleted."""
        now = utcnow()
        for job in self.store.fail_abandoned(gateway_restarted()):
            log.warning("job %s failed: the process running it stopped", job.id)
        if self.queue is not None:
            for job_id in self.store.to_dispatch(queued_before=now - DISPATCH_GRACE,
                                                 lost_before=now - timedelta(seconds=2 * self.lease)):
                self.queue.send(job_id)
                self.store.mark_enqueued(job_id)
        removed = self.store.sweep(not_started_before=now - timedelta(seconds=self.settings.job_ttl))
        if removed:
            log.info("deleted %d expired jobs", removed)

    def abandon_own(self) -> None:
        """At this process's exit: its unfinished in-process jobs fail now rather than when their leases end."""
        ended = self.store.fail_abandoned(gateway_restarted(), runner=runner_id())
        if ended:
            log.warning("%d unfinished jobs failed: this process is stopping", len(ended))
