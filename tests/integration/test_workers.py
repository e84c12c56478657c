"""The worker model under gunicorn (run once per GATEWAY_WORKER_CLASS): JSON from gunicorn itself, load
shedding across workers, bounded body reads, and a prompt stop with idle keep-alive connections open."""
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.conftest import CLIENT_KEY, chat_body
from tests.integration.conftest import gateway_env
from tests.support.fake_upstream import Reply
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess
from tests.support.openai_fake import image_b64, openai_images
from tests.support.system import require_program

MAX_INFLIGHT = 3
BODY_TIMEOUT = 1


@pytest.fixture(scope="module")
def small(openai_server, ark_server, openrouter_server, gemini_server, tmp_path_factory):
    """Two workers that together hold at most MAX_INFLIGHT generations."""
    env = gateway_env(openai_server, ark_server, openrouter_server, gemini_server,
                      GATEWAY_MAX_INFLIGHT=str(MAX_INFLIGHT), GATEWAY_BODY_TIMEOUT=str(BODY_TIMEOUT),
                      GATEWAY_UPSTREAM_TIMEOUT="30")
    process = GatewayProcess(env, tmp_path_factory.mktemp("small") / "gunicorn.log").start()
    yield process
    process.stop()


def raw(gateway, data: bytes, timeout: float = 10) -> tuple[int, dict, bytes]:
    """Send bytes as they are; the status, headers and body of the answer (the server closes after it)."""
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=timeout) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
    return int(status.split()[1]), headers, body


MALFORMED = {
    "NUL in a header": (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400),
    "CR in a header": (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", 400),
    "LF folding": (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", 400),
    "two Content-Lengths": (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                            b"Content-Length: 3\r\n\r\n{}", 400),
    "Content-Length and Transfer-Encoding": (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                                             b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    "bad method": (b"G@T /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    "bad version": (b"GET /healthz HTTP/9.9\r\nHost: x\r\n\r\n", 400),
    "request line too long": (b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    "header too long": (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n", 431),
    "too many headers": (b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(200))
                         + b"\r\n", 431),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_gunicorn_answers_malformed_requests_in_json(small, case):
    data, expected = MALFORMED[case]
    status, headers, body = raw(small, data)
    assert status == expected
    assert headers["content-type"] == "application/json"
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert error["type"] == "invalid_request_error" and error["code"] and error["message"]


def ask(gateway, timeout=60):
    started = time.monotonic()
    response = requests.post(gateway.url + "/v1/chat/completions", json=chat_body(model="gpt-image-1"),
                             headers={"Authorization": f"Bearer {CLIENT_KEY}"}, timeout=timeout)
    return response, time.monotonic() - started


def metric(gateway, name: str) -> float:
    text = requests.get(gateway.url + "/metrics", timeout=10).text
    found = re.search(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


def test_past_max_inflight_the_extra_generations_get_503_at_once_and_the_others_succeed(small, upstream):
    delay, extra = 3.0, 5
    upstream.reply("/v1/images/generations",
                   *[Reply(json={"created": 1, "data": [{"b64_json": image_b64()}]}, delay=delay)] * MAX_INFLIGHT)
    shed_before = metric(small, "gateway_shed_requests_total")
    with ThreadPoolExecutor(MAX_INFLIGHT) as pool:
        held = [pool.submit(ask, small) for _ in range(MAX_INFLIGHT)]
        deadline = time.monotonic() + 10
        while len(upstream.received()) < MAX_INFLIGHT and time.monotonic() < deadline:
            time.sleep(0.05)  # every held generation is at the upstream
        assert metric(small, "gateway_inflight_generations") == MAX_INFLIGHT
        refused = [ask(small) for _ in range(extra)]
        results = [future.result() for future in held]
    for response, seconds in refused:
        assert response.status_code == 503 and seconds < delay / 2
        assert response.json()["error"] == {
            "message": "This gateway instance is at capacity (generations in flight); retry shortly, or on another "
                       "instance", "type": "server_error", "param": None, "code": "server_overloaded"}
        assert int(response.headers["Retry-After"]) > 0
    assert [response.status_code for response, _ in results] == [200] * MAX_INFLIGHT
    assert len(upstream.received()) == MAX_INFLIGHT  # no refused request reached the provider
    assert metric(small, "gateway_shed_requests_total") - shed_before == extra
    assert metric(small, "gateway_inflight_generations") == 0
    response, _ = ask(small)  # room again
    assert response.status_code == 200


def test_a_body_trickled_past_the_body_timeout_gets_408_and_health_checks_stay_fast(small, upstream):
    """The client never stops sending, a byte every 0.2 s: under gevent the whole read is cut at the
    deadline; under gthread (a blocked thread cannot be interrupted) only a pause longer than it is."""
    body = json.dumps(chat_body(model="gpt-image-1")).encode() + b" " * 2000
    head = (f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {CLIENT_KEY}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    trickle_stops = os.environ.get("GATEWAY_WORKER_CLASS", "gevent") == "gthread"
    with socket.create_connection(("127.0.0.1", small.port), timeout=10) as sock:
        sock.sendall(head + body[:10])
        started = time.monotonic()
        assert requests.get(small.url + "/healthz", timeout=5).status_code == 200
        sock.setblocking(False)
        answer = b""
        for byte in body[10:]:
            try:
                sock.sendall(bytes([byte]))
                answer += sock.recv(65536)
            except BlockingIOError:
                pass
            except OSError:
                break
            if answer or (trickle_stops and time.monotonic() - started > BODY_TIMEOUT * 3):
                break
            time.sleep(0.2)
        sock.settimeout(10)
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:  # the server closed while bytes were still coming
            pass
        waited = time.monotonic() - started
    status_line, _, rest = answer.partition(b"\r\n")
    assert status_line.split()[1] == b"408", answer[:300]
    assert json.loads(rest.partition(b"\r\n\r\n")[2])["error"]["code"] == "request_timeout"
    assert waited < BODY_TIMEOUT * 3 + 5
    assert upstream.received() == []


def test_sigterm_with_idle_keepalive_connections_stops_at_once(openai_server, ark_server, openrouter_server,
                                                               gemini_server, tmp_path):
    """A proxy's pool of idle connections must not hold a restart for the whole graceful timeout (30 s)."""
    env = gateway_env(openai_server, ark_server, openrouter_server, gemini_server)
    process = GatewayProcess(env, tmp_path / "gunicorn.log").start()
    try:
        sessions = [requests.Session() for _ in range(4)]
        for session in sessions:
            assert session.get(process.url + "/healthz", timeout=5).status_code == 200  # left open, idle
        started = time.monotonic()
        os.killpg(process.proc.pid, signal.SIGTERM)
        process.proc.wait(timeout=25)
        assert time.monotonic() - started < 10
        assert process.proc.returncode == 0
    finally:
        for session in sessions:
            session.close()
        process.stop()


def test_an_unknown_worker_class_stops_the_service_with_one_line_naming_the_variable(tmp_path):
    process = GatewayProcess({"GATEWAY_WORKER_CLASS": "eventlet"}, tmp_path / "gunicorn.log")
    with pytest.raises(RuntimeError, match="exited early"):
        process.start(timeout=20)
    assert process.proc.returncode != 0
    assert process.log().strip() == "image-gateway: GATEWAY_WORKER_CLASS must be one of gevent, gthread, got 'eventlet'"


def test_a_provider_over_tls_answers_through_the_worker_class(openai_server, ark_server, openrouter_server,
                                                              gemini_server, tmp_path):
    """Under gevent, ssl is patched in each worker after gunicorn's master imported it: real TLS must still work."""
    openssl = require_program("openssl", "/usr/bin/openssl")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                    "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    provider = FakeUpstream(default=openai_images, tls=tls).start()
    env = gateway_env(openai_server, ark_server, openrouter_server, gemini_server,
                      OPENAI_BASE_URL=provider.url + "/v1", REQUESTS_CA_BUNDLE=str(cert))
    process = GatewayProcess(env, tmp_path / "gunicorn.log").start()
    try:
        response, _ = ask(process)
        assert response.status_code == 200, response.text
        assert provider.received("/v1/images/generations")
        assert "MonkeyPatchWarning" not in process.log() and "RecursionError" not in process.log()
    finally:
        process.stop()
        provider.stop()
