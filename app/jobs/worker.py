"""`image-gateway worker`: the Procfile's `worker:` process, running jobs from the Redis queue.

It builds the same app as the web process (jobs replay their requests through it), starts a
Dramatiq worker of GATEWAY_JOB_THREADS threads, the job keeper (leases, maintenance: queued jobs
that never got their message, expired jobs) and the webhook dispatcher, then waits for SIGTERM or
SIGINT: running jobs then get a grace period to end; what is left is re-run by another worker.
"""
from __future__ import annotations

import logging
import signal
import sys
import threading

log = logging.getLogger("gateway")

STOP_GRACE_SECONDS = 25  # below the 30 s PaaS platforms give between SIGTERM and SIGKILL


def _logging(level: str) -> None:
    from app.observability import JsonFormatter, RequestIdFilter

    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RequestIdFilter())
    for name in ("gateway", "dramatiq"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.propagate = False
        logger.setLevel(level if name == "gateway" else "WARNING")


def run(settings) -> int:
    """Run until told to stop; 0 after a clean stop."""
    from app import create_app
    from app.jobs.runner import execute

    _logging(settings.log_level)
    app = create_app(settings)
    gateway = app.extensions["gateway"]
    jobs = gateway.jobs
    worker = jobs.queue.worker(lambda job_id: execute(app, job_id), threads=settings.job_threads)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    worker.start()
    jobs.ensure_running()
    gateway.webhooks.ensure_running()
    log.info("worker ready", extra={"fields": {"threads": settings.job_threads, "queue": "image_jobs"}})
    stop.wait()
    log.info("worker stopping: running jobs get %d s", STOP_GRACE_SECONDS)
    worker.stop(timeout=STOP_GRACE_SECONDS * 1000)
    return 0
