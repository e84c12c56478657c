"""Deletes expired pictures from the directory store: whole expiry buckets, at most once per interval.

Pictures live under `<root>/<bucket>/<owner>/<name>`, where `bucket` is the end (unix seconds) of
the expiry window the picture falls in, so sweeping is one directory listing and removing the
buckets whose end has passed. Every gunicorn worker runs a sweeper thread once it has used the
store; a lock file and a stamp file shared through the directory let one of them sweep per
interval. Sweeping twice is harmless (it only removes what has expired).

Run it by hand or from cron with `image-gateway images sweep` (or `python -m app.image_store.sweeper`).
"""
from __future__ import annotations

import fcntl
import logging
import os
import random
import shutil
import sys
import threading
import time
from typing import Callable

from app.background import ProcessThread

log = logging.getLogger("gateway")

BUCKET_SECONDS = 300
LOCK_FILE = ".sweep.lock"
STAMP_FILE = ".last-sweep"
FIRST_SWEEP_WITHIN = 30.0  # seconds after a process first uses the store: clears what expired while it was down


def bucket_of(expires: int) -> int:
    """The end of the expiry window holding `expires`: every picture in it has expired once this has passed."""
    return -(-expires // BUCKET_SECONDS) * BUCKET_SECONDS


def sweep(root: str, now: float) -> int:
    """Remove every bucket whose window has ended; the number of pictures removed."""
    removed = 0
    try:
        entries = list(os.scandir(root))
    except FileNotFoundError:
        return 0
    for entry in entries:
        if entry.name.isdigit() and int(entry.name) <= now and entry.is_dir(follow_symlinks=False):
            removed += sum(len(files) for _, _, files in os.walk(entry.path))
            shutil.rmtree(entry.path, ignore_errors=True)  # another sweeper may be removing it too
    return removed


class Sweeper:
    """Sweeps `root` in the background of every process that uses it, one process per interval."""

    def __init__(self, root: str, interval: float, clock: Callable[[], float] = time.time):
        self.root = root
        self.interval = interval
        self.clock = clock
        self._thread = ProcessThread("image-sweeper", self._loop)

    def ensure_running(self) -> None:
        """Start this process's sweeper thread unless it runs."""
        self._thread.ensure_running()

    def stop(self) -> None:
        self._thread.stop()

    def run_if_due(self) -> int | None:
        """Sweep when no process has in the last interval; pictures removed, or None when not due."""
        try:
            fd = os.open(os.path.join(self.root, LOCK_FILE), os.O_WRONLY | os.O_CREAT, 0o600)
        except FileNotFoundError:
            return None  # nothing was ever stored
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return None  # another process is sweeping
            stamp = os.path.join(self.root, STAMP_FILE)
            now = self.clock()
            try:
                if now - os.stat(stamp).st_mtime < self.interval:
                    return None
            except FileNotFoundError:
                pass
            removed = sweep(self.root, now)
            with open(stamp, "a"):
                pass
            os.utime(stamp, (now, now))
            return removed
        finally:
            os.close(fd)  # releases the lock

    def _loop(self, stopped: threading.Event) -> None:
        wait = random.uniform(1.0, min(FIRST_SWEEP_WITHIN, self.interval))
        while not stopped.wait(wait):
            try:
                removed = self.run_if_due()
                if removed:
                    log.info("removed %d expired pictures from the image store", removed)
            except Exception:  # the thread must outlive a bad sweep
                log.exception("sweeping the image store failed")
            wait = self.interval * random.uniform(0.9, 1.1)


def sweep_configured(location) -> str:
    """Sweep the configured store now (`image-gateway images sweep`); what was done, in one line."""
    if location.kind != "file":
        return (f"GATEWAY_IMAGE_STORE is {location}: only a directory store is swept here "
                "(S3 pictures expire through the bucket's lifecycle rule)")
    removed = sweep(location.path, time.time())
    return f"removed {removed} expired pictures from {location.path}"


def main(argv: list[str] | None = None) -> int:
    """`python -m app.image_store.sweeper`, the older name of `image-gateway images sweep`."""
    from app.config import ConfigError, Settings

    if argv if argv is not None else sys.argv[1:]:
        print("usage: python -m app.image_store.sweeper  (sweeps GATEWAY_IMAGE_STORE now)", file=sys.stderr)
        return 2
    try:
        settings = Settings.from_env()
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(sweep_configured(settings.image_store))
    return 0


if __name__ == "__main__":
    sys.exit(main())
