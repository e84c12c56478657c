"""Per-request facts (request id, upstream wait, provider, images) and the one JSON log line per request.

The facts live in a ContextVar so that provider code deep down (the upstream exchange in
app/providers/transport.py) can record its wait without being handed anything; threads started for
a request (fan-out, streaming) run in a copy of the request's context and share its RequestStats.
These are facts for the log line and metrics only: what changes behaviour (the deadline) is in
app/core/context.py.
"""
from __future__ import annotations

import contextvars
import json
import logging
import re
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator

from app.core import redaction

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


@dataclass
class RequestStats:
    request_id: str
    started: float = field(default_factory=time.perf_counter)
    model: str | None = None
    provider: str | None = None
    channel: str | None = None
    attempts: int = 0
    images: int = 0
    prompt: str | None = None
    _intervals: list[tuple[float, float]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, **counts: int) -> None:
        """Add to counters (attempts, images) from any of the request's threads."""
        with self._lock:
            for name, amount in counts.items():
                setattr(self, name, getattr(self, name) + amount)

    def record_upstream(self, start: float, end: float) -> None:
        with self._lock:
            self._intervals.append((start, end))

    def upstream_seconds(self) -> float:
        """Wall time during which at least one upstream exchange was in flight (parallel calls overlap)."""
        with self._lock:
            intervals = sorted(self._intervals)
        total, current_start, current_end = 0.0, None, None
        for start, end in intervals:
            if current_end is None or start > current_end:
                if current_end is not None:
                    total += current_end - current_start
                current_start, current_end = start, end
            else:
                current_end = max(current_end, end)
        if current_end is not None:
            total += current_end - current_start
        return total

    def elapsed(self) -> float:
        return time.perf_counter() - self.started


_current: contextvars.ContextVar[RequestStats | None] = contextvars.ContextVar("gateway_request", default=None)


def begin(incoming_id: str | None) -> RequestStats:
    """Start a request's stats; a client's X-Request-ID is kept when it is a sane token."""
    request_id = incoming_id if incoming_id and _REQUEST_ID.match(incoming_id) else uuid.uuid4().hex
    stats = RequestStats(request_id=request_id)
    _current.set(stats)
    return stats


def end() -> None:
    """The request is over (its answer sent): log lines of this thread no longer belong to it."""
    _current.set(None)


def current() -> RequestStats | None:
    return _current.get()


def note(**facts) -> None:
    """Record facts about the current request (model, provider, channel, images...)."""
    stats = _current.get()
    if stats is not None:
        for key, value in facts.items():
            setattr(stats, key, value)


@contextmanager
def upstream_call() -> Iterator[None]:
    """Time one exchange with a provider, as part of the current request's upstream wait."""
    start = time.perf_counter()
    try:
        yield
    finally:
        stats = _current.get()
        if stats is not None:
            stats.record_upstream(start, time.perf_counter())


class RequestIdFilter(logging.Filter):
    """Puts the current request id on every log record (`-` outside requests)."""

    def filter(self, record: logging.LogRecord) -> bool:
        stats = _current.get()
        record.request_id = stats.request_id if stats is not None else "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, request id, message, and any `fields` given.

    Every text in it passes app.core.redaction: no configured secret (nor anything shaped like a key)
    reaches the log, whoever wrote the line. The request id is only checked for secrets: a client's
    own id may well be a UUID.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S"),
            "level": record.levelname,
            "logger": record.name,
            "request_id": redaction.redact(str(getattr(record, "request_id", "-")), shapes=False),
            "message": redaction.redact(record.getMessage()),
        }
        for name, value in (getattr(record, "fields", {}) or {}).items():
            entry[name] = redaction.redact(value) if isinstance(value, str) else value
        if record.exc_info:
            entry["exception"] = redaction.redact(self.formatException(record.exc_info))
        return json.dumps(entry, ensure_ascii=False, default=str)
