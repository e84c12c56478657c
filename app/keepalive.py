"""Opt-in keep-alive for non-streaming clients behind routers that cut idle connections.

With GATEWAY_KEEPALIVE_SECONDS set, a JSON answer that is not ready after that many seconds
starts at once as a 200 `application/json` stream: a space every interval (JSON allows leading
whitespace), then the JSON. The price: the status line is sent before the outcome is known, so a
failure after that arrives as an `{"error": {...}}` body under status 200. Answers ready within
the first interval keep their real status and headers.
"""
from __future__ import annotations

import logging
import queue
import threading
from typing import Callable, Iterator

from flask import Response

from app.core.context import in_request_context
from app.core.errors import GatewayError
from app.jsonio import dumps

log = logging.getLogger("gateway")
WHITESPACE = b" "


def respond(produce: Callable[[], Response], interval: float) -> Response:
    """`produce()` in a thread; its Response as is when quick, else whitespace until it is ready."""
    results: queue.Queue = queue.Queue(maxsize=1)

    def work() -> None:
        try:
            results.put(("ok", produce()))
        except GatewayError as error:
            results.put(("error", error))
        except Exception:
            log.exception("unexpected error while producing an answer")
            results.put(("error", GatewayError("The gateway failed to handle this request; the error was logged")))

    threading.Thread(target=in_request_context(work), daemon=True, name="keepalive").start()
    try:
        kind, value = results.get(timeout=interval)
    except queue.Empty:
        return Response(_trickle(results, interval), status=200, mimetype="application/json",
                        headers={"X-Accel-Buffering": "no", "Cache-Control": "no-cache"})
    if kind == "error":
        raise value
    return value


def _trickle(results: queue.Queue, interval: float) -> Iterator[bytes]:
    while True:
        yield WHITESPACE
        try:
            kind, value = results.get(timeout=interval)
        except queue.Empty:
            continue
        yield value.get_data() if kind == "ok" else dumps(value.body())
        return
