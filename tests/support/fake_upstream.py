"""A scriptable fake provider: a threaded HTTP server on 127.0.0.1 that records what it receives.

Tests queue replies per path (`fake.reply("/images/generations", Reply(...))`); a path with no
queued reply uses its default handler (a callable given at construction). Replies can also
misbehave on purpose: delay, reset the connection, or cut the body short.
"""
from __future__ import annotations

import json
import socket
import ssl
import struct
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import urlsplit


@dataclass
class Part:
    """One multipart/form-data part."""

    name: str
    filename: str | None
    content_type: str | None
    data: bytes

    @property
    def text(self) -> str:
        return self.data.decode()


@dataclass
class Recorded:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def parts(self) -> list[Part]:
        content_type = self.headers.get("content-type", "")
        message = BytesParser(policy=HTTP).parsebytes(
            f"Content-Type: {content_type}\r\n\r\n".encode() + self.body)
        parts = []
        for item in message.iter_parts():
            disposition = item.get("Content-Disposition", "")
            params = dict(item.get_params(header="content-disposition") or [])
            parts.append(Part(
                name=params.get("name", ""),
                filename=params.get("filename"),
                content_type=item.get("Content-Type") if "filename" in disposition else None,
                data=item.get_payload(decode=True) or b"",
            ))
        return parts

    def fields(self) -> dict[str, str]:
        return {p.name: p.text for p in self.parts if p.filename is None}

    def files(self, name: str) -> list[Part]:
        return [p for p in self.parts if p.name == name and p.filename is not None]


@dataclass
class Reply:
    status: int = 200
    json: Any = None
    body: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    # "reset": RST the connection; "truncate": declare more bytes than sent; "chunked": no Content-Length;
    # "chunked_cut": chunked, then the connection closes before the final chunk (a stream cut mid-way)
    action: str | None = None


Handler = Callable[[Recorded], Reply]


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    # socketserver listens with a backlog of 5: the gateway's 2 workers x 64 threads opening connections
    # at once overflow it on a busy machine, and the kernel then resets some (a real provider would not)
    request_queue_size = 256

    def handle_error(self, request, client_address):  # clients hanging up early is part of the tests
        pass


class FakeUpstream:
    def __init__(self, default: Handler | None = None, tls: "ssl.SSLContext | None" = None):
        self.default = default or (lambda request: Reply(404, json={"error": {"message": "no such path"}}))
        self.requests: list[Recorded] = []
        self._queued: dict[str, deque] = defaultdict(deque)
        self._lock = threading.Lock()
        self._server = _QuietServer(("127.0.0.1", 0), self._handler_class())
        self._scheme = "http"
        if tls is not None:  # an https provider: connections are wrapped as they are accepted
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
            self._scheme = "https"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{self._scheme}://{host}:{port}"

    def start(self) -> "FakeUpstream":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def reply(self, path: str, *replies: Reply | Handler) -> None:
        with self._lock:
            self._queued[path].extend(replies)

    def reset(self) -> None:
        with self._lock:
            self._queued.clear()
            self.requests.clear()

    def received(self, path: str | None = None) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if path is None or r.path == path]

    def _next(self, request: Recorded) -> Reply:
        with self._lock:
            self.requests.append(request)
            queue = self._queued.get(request.path)
            reply = queue.popleft() if queue else self.default
        return reply(request) if callable(reply) else reply

    def _handler_class(self):
        fake = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def _serve(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                split = urlsplit(self.path)
                request = Recorded(self.command, split.path, split.query,
                                   {k.lower(): v for k, v in self.headers.items()}, body)
                reply = fake._next(request)
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.action == "reset":
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    self.connection.close()
                    self.close_connection = True
                    return
                payload = reply.body if reply.body is not None else (
                    json.dumps(reply.json).encode() if reply.json is not None else b"")
                self.send_response(reply.status)
                content_type = "application/json" if reply.json is not None else "application/octet-stream"
                headers = {"Content-Type": content_type, **reply.headers}
                for name, value in headers.items():
                    self.send_header(name, value)
                if reply.action in ("chunked", "chunked_cut"):
                    self.send_header("Transfer-Encoding", "chunked")
                else:
                    declared = len(payload) * 2 + 10 if reply.action == "truncate" else len(payload)
                    self.send_header("Content-Length", str(declared))
                self.end_headers()
                try:
                    if reply.action in ("chunked", "chunked_cut"):
                        for start in range(0, len(payload), 65536):
                            piece = payload[start:start + 65536]
                            self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                            self.wfile.flush()
                        if reply.action == "chunked":
                            self.wfile.write(b"0\r\n\r\n")
                        else:
                            time.sleep(0.05)
                            self.close_connection = True
                    else:
                        self.wfile.write(payload)
                    self.wfile.flush()
                except OSError:
                    pass
                if reply.action in ("truncate", "chunked_cut"):
                    self.close_connection = True

            do_GET = do_POST = _serve

        return _Handler
