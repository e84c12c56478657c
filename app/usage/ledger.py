"""The usage ledger: one row per generation request (DESIGN §7), written off the request path.

A request's row is appended, as one JSON line, to this worker's spool file (microseconds, no
database); a writer thread moves the spool into the database every half second, in batches, and at
exit. Rows are idempotent by their id, so a file written twice (a crash between insert and delete)
counts once. The spool is what makes the ledger survive: a killed worker's file is replayed by the
next worker or process that starts on this data directory; while the database is down the files wait
and are retried. If the spool cannot be written (disk full, or 256 MB waiting for a database that is down) the
row is lost and counted with its reason in `gateway_ledger_rows_lost_total{reason}` and the log.
"""
from __future__ import annotations

import fcntl
import glob
import json
import secrets
import logging
import os
import threading
import time
from datetime import datetime
from decimal import Decimal
from typing import Any

from app.background import ProcessThread
from app.db import Database, DatabaseUnavailable
from app.db.models import UsageRecord

log = logging.getLogger("gateway")

FLUSH_INTERVAL = 0.5
RETRY_INTERVAL = 5.0          # after the database refused a batch
BATCH_ROWS = 500
DEFAULT_SPOOL_MAX_BYTES = 256 * 1024 * 1024
SPOOL_SUFFIX = ".jsonl"
LOCK_SUFFIX = ".lock"   # held (flock) by the living process that owns the spool files of the same name
_LEDGER = UsageRecord.__table__
_COLUMNS = tuple(column.name for column in _LEDGER.columns)


def _encode(row: dict[str, Any]) -> bytes:
    def plain(value):
        if isinstance(value, Decimal):
            return str(value)
        if isinstance(value, datetime):
            return value.isoformat()
        return value
    return (json.dumps({k: plain(v) for k, v in row.items()}, separators=(",", ":")) + "\n").encode()


def _decode(line: bytes) -> dict[str, Any] | None:
    try:
        raw = json.loads(line)
    except ValueError:
        return None  # a line torn by a crash
    if not isinstance(raw, dict) or "id" not in raw:
        return None
    row = {k: raw.get(k) for k in _COLUMNS}
    row["created_at"] = datetime.fromisoformat(raw["created_at"])
    row["cost_usd"] = None if raw.get("cost_usd") is None else Decimal(raw["cost_usd"])
    return row


class Ledger:
    def __init__(self, db: Database, spool_dir: str, max_spool_bytes: int = DEFAULT_SPOOL_MAX_BYTES,
                 on_lost=None):
        self.db = db
        self.spool_dir = spool_dir
        self.max_spool_bytes = max_spool_bytes
        self._on_lost = on_lost or (lambda reason: None)
        self._lock = threading.Lock()
        self._fd: int | None = None
        self._pid: int | None = None
        self._owner = ""           # this process's name in the spool: pid + random, never reused
        self._lock_fd: int | None = None
        self._sequence = 0
        self._writer = ProcessThread("usage-ledger", self._loop)
        self._next_try = 0.0
        self._writing = threading.Lock()  # one writer at a time in this process (flush, replay, close)

    # ----- the request side -----

    def add(self, row: dict[str, Any]) -> None:
        """Keep a row for the writer; never raises (a lost row is counted and logged with its reason)."""
        data = _encode(row)
        try:
            with self._lock:
                fd = self._spool_fd()
                if os.fstat(fd).st_size + len(data) > self.max_spool_bytes:
                    raise OSError(f"the spool holds {self.max_spool_bytes} bytes already (is the database down?)")
                os.write(fd, data)
        except OSError as exc:
            log.error("usage ledger row lost for request %s: %s", row.get("request_id"), exc)
            self._on_lost("spool_unwritable")
            return
        self._writer.ensure_running()

    def _spool_fd(self) -> int:
        if self._pid != os.getpid():  # a forked child writes files of its own
            self._claim_owner()
        if self._fd is None:
            self._fd = os.open(self._current_path(), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return self._fd

    def _claim_owner(self) -> None:
        """A fresh owner name, and its lock held for this process's life (the kernel drops it at death)."""
        os.makedirs(self.spool_dir, mode=0o700, exist_ok=True)
        self._pid = os.getpid()
        self._owner = f"{self._pid}x{secrets.token_hex(4)}"
        self._fd = None
        self._lock_fd = os.open(os.path.join(self.spool_dir, self._owner + LOCK_SUFFIX), os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def _current_path(self) -> str:
        return os.path.join(self.spool_dir, f"{self._owner}-current{SPOOL_SUFFIX}")

    # ----- the writer side -----

    def _loop(self, stopped: threading.Event) -> None:
        while not stopped.wait(FLUSH_INTERVAL):
            try:
                self.flush()
            except Exception:  # the writer must outlive any one bad batch
                log.exception("usage ledger writer failed; retrying")

    def flush(self) -> int:
        """Move this worker's spooled rows into the database; the count written (0 while it is down)."""
        if time.monotonic() < self._next_try:
            return 0
        self._rotate()
        if not self._owner:
            return 0  # nothing was ever spooled by this process
        written = 0
        with self._writing:
            for path in sorted(glob.glob(os.path.join(self.spool_dir, f"{self._owner}-pending-*{SPOOL_SUFFIX}"))):
                try:
                    written += self._write_file(path)
                except DatabaseUnavailable as exc:
                    log.warning("usage ledger: the database is unavailable (%s); rows stay spooled and are "
                                "retried", exc)
                    self._next_try = time.monotonic() + RETRY_INTERVAL
                    break
        return written

    def _rotate(self) -> None:
        with self._lock:
            if self._fd is None or self._pid != os.getpid() or os.fstat(self._fd).st_size == 0:
                return
            os.close(self._fd)
            self._fd = None
            self._sequence += 1
            os.replace(self._current_path(), self._pending_path(str(self._sequence)))

    def _pending_path(self, tag: str) -> str:
        return os.path.join(self.spool_dir, f"{self._owner}-pending-{time.time_ns():020d}-{tag}{SPOOL_SUFFIX}")

    def _write_file(self, path: str) -> int:
        with open(path, "rb") as handle:
            rows = [row for row in map(_decode, handle) if row is not None]
        for start in range(0, len(rows), BATCH_ROWS):
            self._insert(rows[start:start + BATCH_ROWS])
        os.unlink(path)
        return len(rows)

    def _insert(self, rows: list[dict[str, Any]]) -> None:
        from sqlalchemy import select
        with self.db.write() as connection:
            ids = [row["id"] for row in rows]
            known = set(connection.execute(select(_LEDGER.c.id).where(_LEDGER.c.id.in_(ids))).scalars())
            fresh = [row for row in rows if row["id"] not in known]
            if fresh:
                connection.execute(_LEDGER.insert(), fresh)

    def replay_orphans(self) -> int:
        """Rows spooled by processes that are gone (killed workers, a previous run): into the database.

        A process is gone when the lock it held on `<owner>.lock` can be taken; its files are then
        renamed to this process's own pending names (whoever renames first replays them) and written.
        """
        if not os.path.isdir(self.spool_dir):
            return 0
        if self._pid != os.getpid():
            with self._lock:
                self._claim_owner()
        claimed = 0
        for lock_path in glob.glob(os.path.join(self.spool_dir, f"*{LOCK_SUFFIX}")):
            owner = os.path.basename(lock_path)[:-len(LOCK_SUFFIX)]
            if owner == self._owner or not _gone(lock_path):
                continue
            for path in glob.glob(os.path.join(self.spool_dir, f"{owner}-*{SPOOL_SUFFIX}")):
                try:
                    os.replace(path, self._pending_path(f"orphan{claimed}"))
                    claimed += 1
                except FileNotFoundError:
                    continue
            _unlink(lock_path)
        if not claimed:
            return 0
        self._next_try = 0.0
        written = self.flush()
        if written:
            log.info("usage ledger: %d row(s) spooled by stopped processes were written", written)
        return written

    def close(self) -> None:
        """At exit: one last flush (what the database refuses stays spooled for the next start)."""
        self._next_try = 0.0
        try:
            self.flush()
        except Exception as exc:
            log.warning("usage ledger: final flush failed (%s); rows stay spooled", exc)
            return
        if self._owner and self._pid == os.getpid() and not glob.glob(
                os.path.join(self.spool_dir, f"{self._owner}-*{SPOOL_SUFFIX}")):
            _unlink(os.path.join(self.spool_dir, self._owner + LOCK_SUFFIX))


def _gone(lock_path: str) -> bool:
    """True when no living process holds this lock (taking it succeeds); the lock is let go at once."""
    try:
        fd = os.open(lock_path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
    return True


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
