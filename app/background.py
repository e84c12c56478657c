"""One daemon thread per process for the app's background work, started at first use (and again in a fork)."""
from __future__ import annotations

import os
import threading
from typing import Callable


class ProcessThread:
    """Runs `loop(stopped)` in a daemon thread of the current process; gunicorn workers each get their own."""

    def __init__(self, name: str, loop: Callable[[threading.Event], None]):
        self.name = name
        self.loop = loop
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()

    def ensure_running(self) -> None:
        """Start the thread unless this process runs it already (a forked child does not: it starts its own)."""
        if self._running():
            return
        with self._lock:
            if self._running():
                return
            self._pid = os.getpid()
            self._stopped = threading.Event()
            self._thread = threading.Thread(target=self.loop, args=(self._stopped,), daemon=True, name=self.name)
            self._thread.start()

    def stop(self, timeout: float = 30) -> None:
        """Ask the loop to end and wait for it (tests; a process that ends ends its daemon threads)."""
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)

    def _running(self) -> bool:
        return self._pid == os.getpid() and self._thread is not None and self._thread.is_alive()
