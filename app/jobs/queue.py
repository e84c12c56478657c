"""Jobs on Redis through Dramatiq (GATEWAY_REDIS_URL): web processes send a message per job, and
`image-gateway worker` processes run them.

What makes a job survive, and what this relies on in Dramatiq's Redis broker:
- a message is in Redis (a list and a hash) from the moment `send` returns: web processes can stop
  or restart, the job waits for a worker;
- a worker fetching a message moves it to its own "acks" set and deletes it only when the run
  ended (ack). Every worker sends heartbeats to Redis (each fetch, at least once a second); when a
  worker is silent for `heartbeat_timeout`, the broker's maintenance (run on a share of all broker
  calls) puts its unacknowledged messages back on the queue, and another worker runs them;
- the job's row decides whether a delivered message still has work: `JobStore.claim` runs a queued
  job, re-runs one whose runner's lease ran out (once: a second loss fails it with `worker_lost`),
  and drops messages of jobs that ended. Duplicate messages are therefore harmless.
Importing this module opens no connection; the broker is made at first use.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable

from app.jobs.runner import BUSY, DEFER, Outcome

log = logging.getLogger("gateway")

QUEUE_NAME = "image_jobs"
ACTOR_NAME = "run_image_job"
NAMESPACE = "gateway-jobs"
# share (per million) of broker calls that also run maintenance (re-queue a dead worker's messages):
# an idle worker calls about twice a second, so a dead worker's jobs come back within seconds of its timeout
MAINTENANCE_CHANCE = 100_000
MAX_RETRIES = 20                 # a run that raised (the database down): tried again, with backoff...
MIN_BACKOFF_MS = 1_000
MAX_BACKOFF_MS = 300_000         # ...of at most 5 minutes: about 1.5 hours of outage before it gives up
TIME_LIMIT_MARGIN = 120.0        # seconds past the request deadline before Dramatiq interrupts a run


class JobQueue:
    """The Redis queue of jobs. `send` is what web processes use; `worker` builds the consuming side."""

    def __init__(self, redis_url: str, lease: float, request_deadline: float):
        self.redis_url = redis_url
        self.lease = lease
        self.time_limit_ms = int((request_deadline + TIME_LIMIT_MARGIN) * 1000)
        self._lock = threading.Lock()
        self._actor = None
        self._handler: Callable[[str], Outcome] | None = None

    @property
    def actor(self):
        if self._actor is None:
            with self._lock:
                if self._actor is None:
                    self._actor = self._make_actor()
        return self._actor

    def _make_actor(self):
        import dramatiq
        from dramatiq.brokers.redis import RedisBroker
        from dramatiq.middleware import Retries, TimeLimit

        broker = RedisBroker(url=self.redis_url, namespace=NAMESPACE, heartbeat_timeout=int(self.lease * 1000),
                             maintenance_chance=MAINTENANCE_CHANCE,
                             middleware=[TimeLimit(time_limit=self.time_limit_ms),
                                         Retries(max_retries=MAX_RETRIES, min_backoff=MIN_BACKOFF_MS,
                                                 max_backoff=MAX_BACKOFF_MS)])
        return dramatiq.Actor(self._perform, broker=broker, actor_name=ACTOR_NAME, queue_name=QUEUE_NAME,
                              priority=0, options={})

    def send(self, job_id: str, delay: float | None = None) -> None:
        """Put a message for the job on the queue (after `delay` seconds); raises when Redis is unreachable."""
        self.actor.send_with_options(args=(job_id,), delay=int(delay * 1000) if delay else None)

    def worker(self, handler: Callable[[str], Outcome], threads: int):
        """A Dramatiq worker (not started) whose threads run `handler(job_id)` for each message."""
        from dramatiq import Worker

        self._handler = handler
        return Worker(self.actor.broker, queues={QUEUE_NAME}, worker_threads=threads)

    def _perform(self, job_id: str) -> None:
        if self._handler is None:
            raise RuntimeError("this process only sends jobs; `image-gateway worker` runs them")
        outcome = self._handler(job_id)
        if outcome.kind in (BUSY, DEFER):
            # held by a live runner, or waiting for its key's concurrency: look again later (this message is done)
            self.send(job_id, delay=outcome.retry_in)
