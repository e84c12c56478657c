"""In-process jobs (no Redis): a bounded set of threads in each web worker runs the jobs it accepted.

Threads are greenlets under gevent's patched threading, so the same code serves gthread and gevent
workers. A job lives only in the process that accepted it; when that process stops, its unfinished
jobs fail with `gateway_restarted`: at once on a clean exit (after running ones had a short while
to end), or when their leases run out after a crash (see JobKeeper).
"""
from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
from typing import Callable

from app.jobs.runner import DEFER, Outcome

log = logging.getLogger("gateway")

EXIT_WAIT = 10.0   # seconds a stopping process gives its running jobs to end


class InProcessPool:
    """Runs `execute(job_id)` on `threads` threads of the current process, started at first use."""

    def __init__(self, threads: int, execute: Callable[[str], Outcome], on_exit: Callable[[], None]):
        self.threads = threads
        self.execute = execute
        self.on_exit = on_exit
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._running: set[str] = set()
        self._idle = threading.Condition(self._lock)
        self._closing = False

    def submit(self, job_id: str) -> None:
        self._ensure_started()
        self._queue.put(job_id)

    def _ensure_started(self) -> None:
        if self._pid == os.getpid():
            return
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._queue = queue.Queue()  # a forked child starts empty: its parent's jobs are not its own
            self._running = set()
            self._closing = False
            for index in range(self.threads):
                threading.Thread(target=self._work, name=f"job-runner-{index}", daemon=True).start()
            atexit.register(self.close)

    def _work(self) -> None:
        while True:
            job_id = self._queue.get()
            with self._lock:
                if job_id is None or self._closing:
                    return
                self._running.add(job_id)
            try:
                outcome = self.execute(job_id)
            except Exception:  # the thread must outlive a failed run; the job's lease then runs out
                log.exception("job %s: the run failed", job_id)
                outcome = Outcome("done")
            finally:
                with self._lock:
                    self._running.discard(job_id)
                    self._idle.notify_all()
            if outcome.kind == DEFER:
                timer = threading.Timer(outcome.retry_in, self._queue.put, (job_id,))
                timer.daemon = True
                timer.start()

    def close(self, wait: float = EXIT_WAIT) -> None:
        """Stop taking jobs, give the running ones `wait` seconds, then fail what is left (`on_exit`)."""
        if self._pid != os.getpid():
            return
        deadline = time.monotonic() + wait
        with self._lock:
            self._closing = True
            while self._running and time.monotonic() < deadline:
                self._idle.wait(timeout=max(0.0, deadline - time.monotonic()))
        for _ in range(self.threads):
            self._queue.put(None)
        try:
            self.on_exit()
        except Exception:
            log.exception("failing this process's unfinished jobs at exit failed (their leases will run out)")
