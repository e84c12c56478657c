"""A request body must arrive within GATEWAY_BODY_TIMEOUT seconds; a client that sends it slower gets a 408.

gunicorn reads a body only as the app asks for it, with no time limit: a client trickling a body
a byte at a time would hold its connection (and, under gthread, a thread) for as long as it likes.
Every read of the request's input stream goes through `bounded` (app/request_body.py): under gevent
the whole read is cut when the body's time is up, however steadily bytes trickle in; under gthread
no single wait for bytes may outlast it (a blocked thread cannot be interrupted, so a client that
keeps trickling is not cut there: keep a buffering proxy in front, README "Slow clients"). The
connection is closed after the 408 (gunicorn does not reuse a connection whose body read failed).
"""
from __future__ import annotations

import contextlib
import socket
import time
from typing import Callable

from gevent import Timeout, monkey

from app.core.errors import InvalidRequest


class BodyTooSlow(InvalidRequest):
    status = 408
    code = "request_timeout"


class BodyDeadline:
    """The time left to read one request's body, from the socket gunicorn names in the WSGI environ."""

    def __init__(self, sock: socket.socket, seconds: float):
        self._sock = sock
        self._seconds = seconds
        self._deadline = time.monotonic() + seconds

    @classmethod
    def for_request(cls, environ: dict, seconds: float) -> "BodyDeadline | None":
        """None outside gunicorn (tests, `flask run`): there is no socket to bound."""
        sock = environ.get("gunicorn.socket")
        return cls(sock, seconds) if sock is not None and hasattr(sock, "settimeout") else None

    def bounded(self, read: Callable, *args):
        """`read(*args)`, failing with BodyTooSlow when the body's time is up; the socket's own timeout is kept."""
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise self._too_slow()
        previous = self._sock.gettimeout()
        try:
            self._sock.settimeout(left if previous is None else min(previous, left))
            with _whole_read_limit(left):
                return read(*args)
        except (socket.timeout, TimeoutError):
            raise self._too_slow() from None
        finally:
            try:
                self._sock.settimeout(previous)
            except OSError:  # the client is gone
                pass

    def _too_slow(self) -> BodyTooSlow:
        return BodyTooSlow(f"The request body did not arrive within {self._seconds:g} s (GATEWAY_BODY_TIMEOUT)")


def _whole_read_limit(seconds: float):
    """Under gevent, a timer that interrupts the read itself (it raises socket.timeout in the reading greenlet)."""
    if monkey.is_module_patched("socket"):
        return Timeout(seconds, socket.timeout)
    return contextlib.nullcontext()
