"""A fake image host on 127.0.0.1 for download tests: serves a PNG, can set cookies, can drip.

Paths choose the behaviour: `/drip-body/...` sends the headers then one byte every `drip` seconds,
`/drip-headers/...` sends even the header lines a byte at a time, `/cookie/<value>` sets a cookie,
`/redirect/<path>` redirects; anything else is the PNG. Every request's Cookie header is recorded.
"""
from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.support.images import PNG_BYTES


class ImageHost:
    def __init__(self, drip: float = 1.0, drip_for: float = 30.0):
        self.drip, self.drip_for = drip, drip_for
        self.requests: list[tuple[str, str | None]] = []  # (path, Cookie header)
        self._lock = threading.Lock()
        host = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                with host._lock:
                    host.requests.append((self.path, self.headers.get("Cookie")))
                try:
                    host._serve(self)
                except OSError:  # the gateway hung up: that is what the drip tests want
                    self.close_connection = True

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 512

            def handle_error(self, request, client_address):
                pass

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> "ImageHost":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def cookies_sent(self) -> list[str | None]:
        with self._lock:
            return [cookie for _, cookie in self.requests]

    def _serve(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path
        if path.startswith("/drip-headers/"):
            self._trickle(handler, b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nX-Padding: " + b"x" * 1000)
            return
        if path.startswith("/redirect/"):
            handler.send_response(302)
            handler.send_header("Location", "/" + path[len("/redirect/"):])
            handler.send_header("Set-Cookie", "hop=first; Path=/")
            handler.send_header("Content-Length", "0")
            handler.end_headers()
            return
        handler.send_response(200)
        handler.send_header("Content-Type", "image/png")
        if path.startswith("/cookie/"):
            handler.send_header("Set-Cookie", f"tenant={path[len('/cookie/'):]}; Path=/")
        if path.startswith("/drip-body/"):
            body = PNG_BYTES + b"\0" * 100_000
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            self._trickle(handler, body)
            return
        handler.send_header("Content-Length", str(len(PNG_BYTES)))
        handler.end_headers()
        handler.wfile.write(PNG_BYTES)

    def _trickle(self, handler: BaseHTTPRequestHandler, data: bytes) -> None:
        handler.close_connection = True
        ends = time.monotonic() + self.drip_for
        for index in range(len(data)):
            if time.monotonic() > ends:
                return
            handler.wfile.write(data[index:index + 1])
            handler.wfile.flush()
            time.sleep(self.drip)
