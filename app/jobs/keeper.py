"""Keeps this process's jobs alive on their rows, and looks after the jobs nobody holds any more.

Every `lease / 3` seconds the leases of the jobs this process holds are renewed; every lease the
maintenance runs: jobs of dead runners are dealt with, expired jobs are deleted (see Jobs.maintain).
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from app.background import ProcessThread
from app.jobs.runner import runner_id
from app.jobs.store import JobStore

log = logging.getLogger("gateway")

MIN_MAINTENANCE_INTERVAL = 1.0


class JobKeeper:
    def __init__(self, store: JobStore, lease: float, maintain: Callable[[], None]):
        self.store = store
        self.lease = lease
        self.maintain = maintain
        self._held: set[str] = set()
        self._lock = threading.Lock()
        self._thread = ProcessThread("job-keeper", self._loop)

    def hold(self, job_id: str) -> None:
        with self._lock:
            self._held.add(job_id)
        self.ensure_running()

    def release(self, job_id: str) -> None:
        with self._lock:
            self._held.discard(job_id)

    def held(self) -> list[str]:
        with self._lock:
            return sorted(self._held)

    def ensure_running(self) -> None:
        self._thread.ensure_running()

    def _loop(self, stopped: threading.Event) -> None:
        renew_every = self.lease / 3
        maintain_every = max(MIN_MAINTENANCE_INTERVAL, self.lease)
        next_maintenance = time.monotonic() + min(maintain_every, 1.0)  # soon after start: a restart's leftovers
        while not stopped.wait(min(renew_every, max(0.0, next_maintenance - time.monotonic()))):
            try:
                self.store.renew(self.held(), runner_id(), self.lease)
                if time.monotonic() >= next_maintenance:
                    next_maintenance = time.monotonic() + maintain_every
                    self.maintain()
            except Exception:  # the thread must outlive a database outage
                log.exception("job keeper pass failed")
