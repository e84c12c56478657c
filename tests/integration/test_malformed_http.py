"""Malformed HTTP over raw sockets, straight to gunicorn: whatever reaches the app — bodies cut short,
broken chunked framing, bodies shaped to blow up parsing, garbage — is answered with a JSON 4xx, never
a 5xx or HTML, and the worker's memory stays bounded.

(Requests gunicorn refuses before the app sees them — a malformed request line or header — are
answered by gunicorn itself; with nginx in front, tests/integration/test_nginx.py fuzzes those.)
"""
from __future__ import annotations

import json
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import CLIENT_KEY
from tests.integration.conftest import gateway_env
from tests.support.gateway_process import GatewayProcess, peak_rss_mb, rss_mb
from tests.support.images import PNG_DATA_URL

# The bodies below are at most a few MB: the worker may grow by this much over the whole run. Before the
# structure limits, one body of a million tiny messages grew a worker by ~500 MB.
RSS_GROWTH_BOUND_MB = 100
PATHS = ("/v1/chat/completions", "/api/v1/chat/completions", "/v1/images/generations", "/v1/images/edits")


@pytest.fixture(scope="module")
def target(openai_server, ark_server, openrouter_server, gemini_server, tmp_path_factory):
    env = gateway_env(openai_server, ark_server, openrouter_server, gemini_server, WEB_CONCURRENCY="1",
                      GATEWAY_MAX_BODY_BYTES=str(8 * 1024 * 1024))
    process = GatewayProcess(env, tmp_path_factory.mktemp("malformed") / "gunicorn.log").start()
    (worker,) = process.worker_pids()
    process.idle_rss_mb = rss_mb(worker)
    yield process
    process.stop()


def nested(depth: int) -> bytes:
    return b'{"model":"local-image","modalities":["image"],"messages":[{"role":"user","content":"x"}],"m":' + \
        b"[" * depth + b"]" * depth + b"}"


def many(count: int) -> bytes:
    return b'{"model":"local-image","modalities":["image"],"messages":[' + \
        b'{"role":"user","content":"a"},' * count + b'{"role":"user","content":"a"}]}'


FIXED_BODIES = {
    "images-in-earlier-turn": json.dumps({"model": "local-image", "modalities": ["image"], "messages": [
        {"role": "assistant", "content": [{"type": "image_url", "image_url": {"url": PNG_DATA_URL}}] * 40},
        {"role": "user", "content": "a fox"}]}).encode(),
    "part-type-list": b'{"model": "local-image", "messages": [{"role": "user", "content": [{"type": ["text"]}]}]}',
    "malformed-url": b'{"model": "local-image", "modalities": ["image"], "messages": [{"role": "user", "content": '
                     b'[{"type": "text", "text": "x"}, {"type": "image_url", "image_url": {"url": "http://[::1/a.png"}}]}]}',
}
# bodies are drawn as small descriptions and built in the test (hypothesis would print megabytes otherwise)
shaped_bodies = st.one_of(st.tuples(st.just("nested"), st.integers(0, 3000)),
                          st.tuples(st.just("many"), st.integers(0, 150_000)),
                          st.tuples(st.just("bytes"), st.binary(max_size=400)),
                          st.tuples(st.just("fixed"), st.sampled_from(sorted(FIXED_BODIES))))


def body_of(shape: tuple) -> bytes:
    kind, value = shape
    return {"nested": nested, "many": many, "bytes": bytes, "fixed": FIXED_BODIES.get}[kind](value)
chunk_sizes = st.one_of(st.sampled_from([b"zz", b"-1", b"ffffffffffffffffffff", b"1;ext=\x01", b"", b" 5",
                                         b"0x10", b"\xff", b"5\r"]),
                        st.binary(min_size=1, max_size=6))


requests_drawn = st.tuples(st.sampled_from(PATHS), shaped_bodies,
                           st.sampled_from(["exact", "short", "long", "chunked", "bad-chunk", "cut-chunk"]),
                           st.integers(1, 10_000), chunk_sizes)


def framed(path: str, shape: tuple, mode: str, extra: int, chunk_size: bytes) -> bytes:
    """A request whose body framing may lie; the client closes its side once it has sent it."""
    body = body_of(shape)
    head = (f"POST {path} HTTP/1.1\r\nHost: gateway.test\r\nAuthorization: Bearer {CLIENT_KEY}\r\n"
            "Content-Type: application/json\r\nConnection: close\r\n").encode()
    if mode == "exact":
        return head + b"Content-Length: %d\r\n\r\n" % len(body) + body
    if mode == "short":  # declares more than it sends
        return head + b"Content-Length: %d\r\n\r\n" % (len(body) + extra) + body
    if mode == "long":   # sends more than it declares
        return head + b"Content-Length: %d\r\n\r\n" % (len(body) // 2) + body
    chunked = head + b"Transfer-Encoding: chunked\r\n\r\n"
    if mode == "chunked":
        return chunked + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    if mode == "bad-chunk":
        return chunked + chunk_size + b"\r\n" + body + b"\r\n0\r\n\r\n"
    return chunked + b"%x\r\n" % (len(body) + 100) + body  # cut-chunk: a chunk cut short


def exchange(gateway: GatewayProcess, data: bytes) -> bytes:
    """Send `data`, close the sending side (a client that promised more sends nothing else), read the answer."""
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=15) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except OSError:  # a broken pipe, a reset, not connected: the server answered and closed first
            pass
        received = b""
        while True:
            try:
                piece = sock.recv(65536)
            except ConnectionResetError:
                break
            if not piece:
                break
            received += piece
    return received


def check_answer(received: bytes) -> None:
    """No answer at all is fine for a client that hung up; any answer is a JSON 4xx (or a 200)."""
    if not received:
        return
    head, _, body = received.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert status < 500, received[:400]
    assert b"Content-Type: application/json" in head, received[:400]
    payload = json.loads(body)
    if status >= 400:
        assert set(payload["error"]) == {"message", "type", "param", "code"}, payload


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.data_too_large])
@given(request=requests_drawn)
def test_malformed_bodies_over_raw_sockets_get_json_4xx_answers(target, request):
    check_answer(exchange(target, framed(*request)))


def test_after_all_that_the_worker_is_healthy_bounded_and_never_logged_a_traceback(target):
    (worker,) = target.worker_pids()
    assert peak_rss_mb(worker) < target.idle_rss_mb + RSS_GROWTH_BOUND_MB
    assert "Traceback" not in target.log()
    assert b'"status":"ok"' in exchange(target, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                                        ).replace(b" ", b"")
