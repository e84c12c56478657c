"""A request body must arrive within GATEWAY_BODY_TIMEOUT seconds; a client that sends it slower gets a 408.

gunicorn reads a body only as the app asks for it, with no time limit: a client trickling a body
a byte at a time would hold its connection (and, under gthread, a thread) for as long as it likes.
This WSGI middleware bounds the whole body read, not each read: before every read the socket's
timeout is set to the time left. The connection is closed after the 408 (gunicorn does not reuse a
connection whose body read failed).
"""
from __future__ import annotations

import socket
import time
from typing import Callable, Iterable

from app.core.errors import InvalidRequest


class BodyTooSlow(InvalidRequest):
    status = 408
    code = "request_timeout"


class DeadlineInput:
    """`wsgi.input` whose reads together end by a deadline; the socket's own timeout is restored after each."""

    def __init__(self, stream, sock: socket.socket, seconds: float):
        self._stream = stream
        self._sock = sock
        self._seconds = seconds
        self._deadline = time.monotonic() + seconds

    def read(self, *args):
        return self._bounded(self._stream.read, *args)

    def readline(self, *args):
        return self._bounded(self._stream.readline, *args)

    def readlines(self, *args):
        return self._bounded(self._stream.readlines, *args)

    def __iter__(self):
        return self

    def __next__(self):
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def _bounded(self, read: Callable, *args):
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise self._too_slow()
        previous = self._sock.gettimeout()
        try:
            self._sock.settimeout(left if previous is None else min(previous, left))
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


class BodyDeadline:
    """WSGI middleware: bounds the body read of every request served by gunicorn (which names its socket)."""

    def __init__(self, app: Callable, seconds: float):
        self.app = app
        self.seconds = seconds

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        sock = environ.get("gunicorn.socket")
        if sock is not None and hasattr(sock, "settimeout"):
            environ["wsgi.input"] = DeadlineInput(environ["wsgi.input"], sock, self.seconds)
        return self.app(environ, start_response)


def init_app(app, seconds: float) -> None:
    app.wsgi_app = BodyDeadline(app.wsgi_app, seconds)
