"""The database: one lazily built engine per process, short read or write transactions, health pings.

SQLite (the default) runs in WAL mode with every write transaction opened as BEGIN IMMEDIATE, so
two workers never both read-then-write the same rows; PostgreSQL (psycopg 3) locks rows with
SELECT ... FOR UPDATE for the same effect. Importing this module opens nothing.
"""
from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING, Iterator

from app.db.urls import describe, is_sqlite, sqlite_path

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

DEFAULT_POOL_SIZE = 5
DEFAULT_MAX_OVERFLOW = 10
POOL_TIMEOUT = 5.0          # seconds a request waits for a pooled connection before failing
CONNECT_TIMEOUT = 5         # seconds to reach PostgreSQL
SQLITE_BUSY_TIMEOUT = 15.0  # seconds a SQLite writer waits for another's transaction
POOL_RECYCLE = 1800         # PaaS databases and proxies drop idle connections


class DatabaseUnavailable(Exception):
    """The database cannot be reached or used right now; the message names no secret."""


class Database:
    """The engine and its transactions. Connections come from a pool sized for one worker's requests:
    each request holds one only for a short transaction, so a handful serves many threads or greenlets."""

    def __init__(self, url: str, *, pool_size: int = DEFAULT_POOL_SIZE, max_overflow: int = DEFAULT_MAX_OVERFLOW):
        self.url = url
        self.pool_size = pool_size
        self.max_overflow = max_overflow
        self._engine: "Engine | None" = None
        self._lock = threading.Lock()
        self._write_lock = threading.Lock() if is_sqlite(url) else None
        self._writer_file = _writer_file(url)

    def __repr__(self) -> str:
        return f"Database({describe(self.url)!r})"

    @property
    def dialect(self) -> str:
        return "sqlite" if is_sqlite(self.url) else "postgresql"

    @property
    def engine(self) -> "Engine":
        if self._engine is None:
            with self._lock:
                if self._engine is None:
                    self._engine = _create_engine(self.url, self.pool_size, self.max_overflow)
        return self._engine

    @contextmanager
    def read(self) -> Iterator["Connection"]:
        """A read transaction."""
        with self._connection(write=False) as connection:
            yield connection

    @contextmanager
    def write(self, within: "Connection | None" = None) -> Iterator["Connection"]:
        """A write transaction, committed when the block ends without an exception; `within` joins the
        caller's transaction instead, so several steps commit (or roll back) together."""
        if within is not None:
            yield within
            return
        with self._connection(write=True) as connection:
            yield connection

    @contextmanager
    def single_statement(self) -> Iterator["Connection"]:
        """PostgreSQL: a connection in autocommit, for one statement that commits as it ends, so the row
        locks it takes are never held while this process waits for its next turn to run (the GIL, a
        greenlet) and sends COMMIT."""
        with self._connection(write=True, autocommit=True) as connection:
            yield connection

    @contextmanager
    def _connection(self, write: bool, autocommit: bool = False) -> Iterator["Connection"]:
        from sqlalchemy.exc import DBAPIError, TimeoutError as PoolTimeout

        # SQLite takes one writer at a time: this worker's threads queue on a lock, and the workers on a
        # file lock, rather than in SQLite's busy handler, which sleeps in steps of milliseconds (and,
        # being C, blocks a gevent worker's every greenlet while it does)
        serialised = (_SqliteWriter(self._write_lock, self._writer_file) if write and self._write_lock is not None
                      else contextlib.nullcontext())
        try:
            with serialised, self.engine.connect() as connection:
                if autocommit:
                    connection.execution_options(isolation_level="AUTOCOMMIT")
                    yield connection
                    return
                connection.execution_options(gateway_write=write)
                with connection.begin():
                    yield connection
        except (DBAPIError, PoolTimeout) as exc:
            if isinstance(exc, DBAPIError) and not _is_outage(exc):
                raise
            raise DatabaseUnavailable(f"{self.dialect} is unavailable: {_short(exc)}") from None

    def ping(self) -> None:
        """One round trip; DatabaseUnavailable when it fails."""
        from sqlalchemy import text
        with self.read() as connection:
            connection.execute(text("SELECT 1"))

    def dispose(self) -> None:
        """Close pooled connections (before a fork, and at exit)."""
        if self._engine is not None:
            self._engine.dispose()


class _SqliteWriter:
    """This worker's write lock, then an exclusive flock on `<database>.writer` shared by every process
    on the file: the kernel wakes the next writer the moment the lock is free, and frees it if the
    holder dies. A file that cannot be locked (a read-only directory) leaves SQLite's own locking."""

    def __init__(self, thread_lock: threading.Lock, path: str | None):
        self.thread_lock = thread_lock
        self.path = path
        self.fd: int | None = None

    def __enter__(self) -> None:
        self.thread_lock.acquire()
        if self.path is None:
            return
        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except OSError:
            if self.fd is not None:
                os.close(self.fd)
            self.fd = None

    def __exit__(self, *exc_info) -> None:
        try:
            if self.fd is not None:
                os.close(self.fd)  # closing the descriptor releases its flock
                self.fd = None
        finally:
            self.thread_lock.release()


def _writer_file(url: str) -> str | None:
    """The lock file SQLite writers take turns on (None: PostgreSQL, or a database in memory)."""
    if not is_sqlite(url) or sqlite_path(url) in ("", ":memory:"):
        return None
    return sqlite_path(url) + ".writer"


def _create_engine(url: str, pool_size: int, max_overflow: int) -> "Engine":
    from sqlalchemy import create_engine, event

    if is_sqlite(url):
        directory = os.path.dirname(sqlite_path(url))
        if directory:
            os.makedirs(directory, exist_ok=True)
        engine = create_engine(url, pool_size=pool_size, max_overflow=max_overflow, pool_timeout=POOL_TIMEOUT,
                               connect_args={"timeout": SQLITE_BUSY_TIMEOUT, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection, _record) -> None:
            dbapi_connection.isolation_level = None  # transactions are begun by the hook below, not the driver
            cursor = dbapi_connection.cursor()
            cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT * 1000)}")
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
            cursor.execute("PRAGMA foreign_keys = ON")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(connection) -> None:
            # IMMEDIATE takes the write lock up front: a read-then-write (budget check, counters) is atomic
            write = connection.get_execution_options().get("gateway_write", True)
            connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine
    return create_engine(url, pool_size=pool_size, max_overflow=max_overflow, pool_timeout=POOL_TIMEOUT,
                         pool_pre_ping=True, pool_recycle=POOL_RECYCLE,
                         connect_args={"connect_timeout": CONNECT_TIMEOUT, "application_name": "image-gateway"})


def _is_outage(exc) -> bool:
    """Connection-level failures (down, refused, locked too long), as opposed to a bug in a statement."""
    from sqlalchemy.exc import InterfaceError, OperationalError
    return isinstance(exc, (OperationalError, InterfaceError)) or exc.connection_invalidated


def _short(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
