"""gunicorn worker classes (GATEWAY_WORKER_CLASS) that answer gunicorn's own errors in the gateway's JSON shape.

gunicorn refuses malformed requests itself, before the app sees them: a bad request line or method,
CR/LF/NUL in a header, two Content-Lengths, Content-Length with Transfer-Encoding, a request line
(414) or header (431) over its limits. Stock workers answer those with an HTML page; these answer
`{"error": {"message", "type", "param", "code"}}` with the same status, like every other error.
"""
from __future__ import annotations

import contextlib
import json

import gevent
from gunicorn import util
from gunicorn.http.errors import NoMoreData
from gunicorn.workers.ggevent import GeventWorker as _GeventWorker
from gunicorn.workers.gthread import ThreadWorker as _ThreadWorker

_MAX_MESSAGE = 300


def worker_class(name: str) -> str:
    """gunicorn's `worker_class` for a GATEWAY_WORKER_CLASS value (checked by app.config)."""
    return {"gevent": "app.workers.GeventWorker", "gthread": "app.workers.ThreadWorker"}[name]


def error_page(status: int, reason: str, message: str) -> bytes:
    """A whole HTTP/1.1 answer carrying the error in the OpenAI shape; the connection is closed after it."""
    error = {
        "message": f"{reason}: {message}"[:_MAX_MESSAGE] if message else reason,
        "type": "invalid_request_error" if status < 500 else "server_error",
        "param": None,
        "code": reason.lower().replace(" ", "_").replace("-", "_"),  # e.g. bad_request, uri_too_long
    }
    body = json.dumps({"error": error}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body


def write_json_error(sock, status_int: int, reason: str, mesg: str) -> None:
    """Drop-in for `gunicorn.util.write_error`, which writes HTML."""
    util.write_nonblock(sock, error_page(status_int, reason, mesg))


class JsonErrorPages:
    """Mixed into a gunicorn worker: its error pages are JSON.

    gunicorn's workers classify the failure (status, reason, message) in `handle_error` and hand the
    writing to `gunicorn.util.write_error`, its only caller; that writer is swapped in the worker
    process, so the classification stays gunicorn's.
    """

    def init_process(self) -> None:
        util.write_error = write_json_error
        super().init_process()


class GeventWorker(JsonErrorPages, _GeventWorker):
    """gunicorn's gevent worker: one greenlet per connection, the standard library monkey-patched at start.

    Stopping, it also ends the waits of kept-alive connections that have no request in progress
    (as gthread does): otherwise one idle connection from a proxy's keep-alive pool held every
    restart for the whole graceful_timeout (30 s).
    """

    def init_process(self) -> None:
        self._connections: dict = {}  # greenlet -> its connection's state
        super().init_process()

    def handle(self, listener, client, addr) -> None:
        self._connections[gevent.getcurrent()] = _Connection()
        try:
            super().handle(listener, client, addr)
        finally:
            self._connections.pop(gevent.getcurrent(), None)

    def handle_request(self, listener_name, req, sock, addr):
        connection = self._connections.get(gevent.getcurrent())
        if connection is not None:
            connection.served += 1
        return super().handle_request(listener_name, req, sock, addr)

    @contextlib.contextmanager
    def timeout_ctx(self):
        """Wraps each wait for a connection's next request (gunicorn's keep-alive timeout)."""
        connection = self._connections.get(gevent.getcurrent())
        if connection is not None and connection.served and not self.alive:
            raise NoMoreData()  # stopping already: no further request on this connection
        with super().timeout_ctx():
            if connection is not None:
                connection.waiting = True
            try:
                yield
            finally:
                if connection is not None:
                    connection.waiting = False

    def handle_exit(self, sig, frame) -> None:
        super().handle_exit(sig, frame)
        for greenlet, connection in list(self._connections.items()):
            if connection.waiting and connection.served:
                # what gunicorn does when the client hangs up: the connection closes quietly
                greenlet.kill(NoMoreData, block=False)


class _Connection:
    __slots__ = ("served", "waiting")

    def __init__(self):
        self.served, self.waiting = 0, False


class ThreadWorker(JsonErrorPages, _ThreadWorker):
    """gunicorn's gthread worker: GATEWAY_THREADS requests at once per worker."""
