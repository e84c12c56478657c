"""A real nginx in front of the real service, configured with tests/nginx/gateway.conf as the README gives it.

The site file is included unchanged except for its ports and certificate paths; the main nginx.conf
around it is a typical distribution one (gzip on for JSON too), so the site file must hold its own.
The client connects from 127.0.0.5 over TLS, so the address and scheme nginx forwards differ from
what gunicorn itself sees (a connection from 127.0.0.1, plain HTTP).
"""
from __future__ import annotations

import base64
import json
import os
import socket
import ssl
import struct
import subprocess
import time
import uuid
import zlib
from pathlib import Path

import openai
import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from requests.adapters import HTTPAdapter

from tests.conftest import CLIENT_KEY, chat_body
from tests.integration.conftest import gateway_env
from tests.support.fake_upstream import Reply
from tests.support.gateway_process import ROOT, GatewayProcess, free_port
from tests.support.images import PNG_BYTES, data_url
from tests.support.openai_fake import image_b64
from tests.support.processes import stop_group
from tests.support.sse import data_frames, parse
from tests.support.system import require_program

SITE_CONF = ROOT / "tests" / "nginx" / "gateway.conf"
CLIENT_ADDRESS = "127.0.0.5"  # not 127.0.0.1, the address gunicorn sees nginx connect from
KEEPALIVE = 0.3               # GATEWAY_STREAM_KEEPALIVE_SECONDS
SLOW_UPSTREAM = 2.0           # seconds the fake provider takes in the streaming test
MIB = 1024 * 1024
ACCEL_PREFIX = "/_gateway_images/"

MAIN_CONF = """\
daemon off;
worker_processes 1;
{user}
pid {dir}/nginx.pid;
events {{ worker_connections 256; }}
http {{
    default_type application/octet-stream;
    access_log {dir}/access.log;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    # as in many distributions' nginx.conf: compression on, JSON and event streams included
    gzip on;
    gzip_types application/json text/event-stream;
    include {dir}/gateway.conf;
}}
"""


def site_conf(upstream_port: int, http_port: int, https_port: int, cert: Path, key: Path, pictures: Path) -> str:
    """gateway.conf with only its ports, certificate paths and picture directory replaced."""
    text = SITE_CONF.read_text()
    for old, new in {
        "server 127.0.0.1:8000;": f"server 127.0.0.1:{upstream_port};",
        "listen 80;": f"listen {http_port};",
        "listen 443 ssl;": f"listen {https_port} ssl;",
        "/etc/letsencrypt/live/gateway.example.com/fullchain.pem": str(cert),
        "/etc/letsencrypt/live/gateway.example.com/privkey.pem": str(key),
        "alias /var/lib/image-gateway/images/;": f"alias {pictures}/;",
    }.items():
        assert text.count(old) == 1, f"gateway.conf should contain {old!r} exactly once"
        text = text.replace(old, new)
    return text


class Nginx:
    """nginx in the foreground, in its own process group, with everything under one directory."""

    def __init__(self, program: str, directory: Path, upstream_port: int, cert: Path, key: Path):
        self.program, self.dir = program, directory
        self.http_port, self.https_port = free_port(), free_port()
        self.pictures = directory / "pictures"  # the gateway's GATEWAY_IMAGE_STORE
        (directory / "gateway.conf").write_text(site_conf(upstream_port, self.http_port, self.https_port, cert, key,
                                                          self.pictures))
        # as root, workers would run as "nobody" and could not enter the test's private directories
        user = "user root;" if os.geteuid() == 0 else ""
        (directory / "nginx.conf").write_text(MAIN_CONF.format(dir=directory, user=user))
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    def start(self, timeout: float = 10) -> "Nginx":
        self._out = open(self.dir / "stdout.log", "wb")
        self.proc = subprocess.Popen(
            [self.program, "-p", str(self.dir), "-c", str(self.dir / "nginx.conf"), "-e", str(self.dir / "error.log")],
            stdout=self._out, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._out.close()
                raise RuntimeError(f"nginx exited early:\n{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.https_port), timeout=1).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"nginx did not start listening:\n{self.log()}")

    def stop(self) -> None:
        if self.proc is None:
            return
        stop_group(self.proc, timeout=10)  # master and workers share the group
        self._out.close()

    def log(self) -> str:
        return "".join(p.read_text(errors="replace") for p in (self.dir / "stdout.log", self.dir / "error.log")
                       if p.exists())


class _FromClientAddress(HTTPAdapter):
    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (CLIENT_ADDRESS, 0)
        super().init_poolmanager(*args, **kwargs)


@pytest.fixture(scope="module")
def nginx_program() -> str:
    return require_program("nginx", "/usr/sbin/nginx")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1; the client trusts exactly it."""
    openssl = require_program("openssl", "/usr/bin/openssl")
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


@pytest.fixture(scope="module")
def client_address():
    try:
        with socket.socket() as sock:
            sock.bind((CLIENT_ADDRESS, 0))
    except OSError:
        pytest.skip(f"cannot bind {CLIENT_ADDRESS} (only Linux routes all of 127.0.0.0/8 to loopback)")
    return CLIENT_ADDRESS


def _edge(request, tmp_path_factory, nginx_program, certificate, name, **overrides):
    """The service under gunicorn (Procfile) with nginx in front; both stopped at module end.

    Pictures delivered as links are kept in nginx's picture directory and handed to nginx with
    X-Accel-Redirect, under nginx's public address, as the README sets it up.
    """
    servers = [request.getfixturevalue(f) for f in ("openai_server", "ark_server", "openrouter_server", "gemini_server")]
    env = gateway_env(*servers, GATEWAY_STREAM_KEEPALIVE_SECONDS=str(KEEPALIVE), **overrides)
    gateway = GatewayProcess(env, tmp_path_factory.mktemp(f"gunicorn-{name}") / "gunicorn.log")
    nginx = Nginx(nginx_program, tmp_path_factory.mktemp(f"nginx-{name}"), gateway.port, *certificate)
    gateway.env.update(GATEWAY_IMAGE_STORE=f"file://{nginx.pictures}", GATEWAY_ACCEL_REDIRECT_PREFIX=ACCEL_PREFIX,
                       GATEWAY_PUBLIC_URL=nginx.url)
    gateway.start()
    try:
        nginx.start()
    except Exception:
        gateway.stop()
        raise
    return gateway, nginx


@pytest.fixture(scope="module")
def edge(request, tmp_path_factory, nginx_program, certificate):
    """nginx -> gunicorn, the gateway trusting one proxy hop (GATEWAY_TRUSTED_PROXIES=1), as the README says."""
    gateway, nginx = _edge(request, tmp_path_factory, nginx_program, certificate, "trusting",
                           GATEWAY_TRUSTED_PROXIES="1")
    yield nginx, gateway
    nginx.stop()
    gateway.stop()


@pytest.fixture(scope="module")
def untrusting_edge(request, tmp_path_factory, nginx_program, certificate):
    """The same, but GATEWAY_TRUSTED_PROXIES unset: X-Forwarded-* must be ignored."""
    gateway, nginx = _edge(request, tmp_path_factory, nginx_program, certificate, "untrusting",
                           WEB_CONCURRENCY="1")
    yield nginx, gateway
    nginx.stop()
    gateway.stop()


@pytest.fixture
def client(certificate, client_address):
    """requests over TLS to nginx, from 127.0.0.5, with the client key."""
    with requests.Session() as session:
        adapter = _FromClientAddress()
        session.mount("https://", adapter)
        session.mount("http://", adapter)
        session.trust_env = False  # else REQUESTS_CA_BUNDLE (or a proxy variable) would win over what is set here
        session.verify = str(certificate[0])
        session.headers["Authorization"] = f"Bearer {CLIENT_KEY}"
        yield session


def png_of(data_url_: str) -> bytes:
    header, b64 = data_url_.split(",", 1)
    data = base64.b64decode(b64)
    assert header == "data:image/png;base64" and data.startswith(b"\x89PNG")
    return data


def log_line(gateway: GatewayProcess, request_id: str) -> dict:
    """The gateway's JSON log line for one request."""
    deadline = time.monotonic() + 5
    while True:
        lines = [json.loads(line) for line in gateway.log().splitlines() if line.startswith("{")]
        mine = [line for line in lines if line.get("request_id") == request_id and line.get("message") == "request"]
        if mine or time.monotonic() > deadline:
            assert len(mine) == 1, f"no single log line for {request_id}"
            return mine[0]
        time.sleep(0.05)


def padded_png(total: int) -> bytes:
    """A valid PNG of `total` bytes: a small picture with a large text chunk (a photo-sized input image)."""
    text = b"Comment\0" + b"x" * (total - len(PNG_BYTES) - 12 - 8)
    chunk = struct.pack(">I", len(text)) + b"tEXt" + text + struct.pack(">I", zlib.crc32(b"tEXt" + text))
    return PNG_BYTES[:-12] + chunk + PNG_BYTES[-12:]  # before IEND, the last 12 bytes


def test_images_come_back_through_nginx(edge, client, upstream, certificate):
    nginx, _ = edge
    response = client.post(nginx.url + "/v1/chat/completions", json=chat_body(model="local-image"), timeout=30)
    assert response.status_code == 200, response.text
    png_of(response.json()["choices"][0]["message"]["images"][0]["image_url"]["url"])
    # the client asked for gzip (requests always does) and the main nginx.conf has it on for JSON
    assert "Content-Encoding" not in response.headers

    context = ssl.create_default_context(cafile=str(certificate[0]))
    with openai.OpenAI(base_url=nginx.url + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=30,
                       http_client=openai.DefaultHttpxClient(verify=context, trust_env=False)) as sdk:
        result = sdk.images.generate(model="gpt-image-1", prompt="a red kite", size="1024x1024")
    assert base64.b64decode(result.data[0].b64_json).startswith(b"\x89PNG")
    assert upstream.received("/v1/images/generations")[0].json["prompt"] == "a red kite"


def test_a_25_mb_request_body_is_passed_to_the_gateway(edge, client):
    nginx, _ = edge
    image = padded_png(18_800_000)  # 25 MB once base64-encoded in JSON
    body = json.dumps(chat_body(model="local-image", tool={"size": "64x64"}, messages=[{"role": "user", "content": [
        {"type": "text", "text": "make it look like a woodcut"},
        {"type": "image_url", "image_url": {"url": data_url(image)}}]}])).encode()
    assert 25_000_000 < len(body) < 32 * MIB
    response = client.post(nginx.url + "/v1/chat/completions", data=body, timeout=60,
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text[:500]
    png_of(response.json()["choices"][0]["message"]["images"][0]["image_url"]["url"])


def test_a_body_over_the_limit_gets_a_json_413_from_nginx(edge, client):
    nginx, _ = edge
    body = b'{"model": "local-image", "pad": "' + b"x" * (33 * MIB) + b'"}'
    response = client.post(nginx.url + "/v1/chat/completions", data=body, timeout=60,
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "request_too_large"


def test_a_stream_reaches_the_client_before_the_provider_has_answered(edge, client, upstream):
    nginx, _ = edge
    upstream.reply("/v1/images/generations", Reply(json={"created": 1, "data": [{"b64_json": image_b64()}]},
                                                   delay=SLOW_UPSTREAM))
    started = time.monotonic()
    arrivals = []
    with client.post(nginx.url + "/v1/chat/completions", stream=True, timeout=30,
                     json=chat_body(model="gpt-image-1", stream=True)) as response:
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert "Content-Encoding" not in response.headers
        for piece in response.iter_content(chunk_size=None):
            arrivals.append((time.monotonic() - started, piece))
    first_byte_after = arrivals[0][0]
    early = b"".join(piece for at, piece in arrivals if at < SLOW_UPSTREAM)
    assert first_byte_after < SLOW_UPSTREAM / 2, f"first byte after {first_byte_after:.2f}s: nginx held the stream"
    first_frame = early.split(b"\n\n", 1)[0]
    assert json.loads(first_frame.removeprefix(b"data: "))["choices"][0]["delta"]["role"] == "assistant"
    assert early.count(b": keep-alive") >= 2, "keep-alive comments did not trickle through nginx"
    assert arrivals[-1][0] >= SLOW_UPSTREAM
    frames = parse(b"".join(piece for _, piece in arrivals))
    assert frames[-1].data == "[DONE]"
    assert any("images" in f.json["choices"][0]["delta"] for f in data_frames(frames)[:-1] if f.json["choices"])


def test_forwarded_client_and_scheme_are_believed_with_one_trusted_proxy(edge, client):
    nginx, gateway = edge
    honest, forged = f"honest-{uuid.uuid4().hex[:8]}", f"forged-{uuid.uuid4().hex[:8]}"
    assert client.get(nginx.url + "/v1/models", headers={"X-Request-ID": honest}, timeout=10).status_code == 200
    # what a client forges arrives first in X-Forwarded-For; nginx appends the address it saw
    assert client.get(nginx.url + "/v1/models", timeout=10, headers={
        "X-Request-ID": forged, "X-Forwarded-For": "198.51.100.7", "X-Forwarded-Proto": "http",
    }).status_code == 200
    for request_id in (honest, forged):
        line = log_line(gateway, request_id)
        assert (line["client"], line["scheme"]) == (CLIENT_ADDRESS, "https")


def test_forwarded_headers_are_ignored_without_trusted_proxies(untrusting_edge, client):
    nginx, gateway = untrusting_edge
    request_id = f"untrusted-{uuid.uuid4().hex[:8]}"
    response = client.get(nginx.url + "/v1/models", timeout=10,
                          headers={"X-Request-ID": request_id, "X-Forwarded-For": "198.51.100.7"})
    assert response.status_code == 200
    line = log_line(gateway, request_id)
    assert line["client"] == "127.0.0.1"  # gunicorn's own view: nginx's connection, plain HTTP
    assert line["scheme"] == "http", ("X-Forwarded-Proto was believed without GATEWAY_TRUSTED_PROXIES: "
                                      "gunicorn's forwarded_allow_ips default trusts 127.0.0.1")


def test_plain_http_is_redirected_to_https(edge, client):
    nginx, _ = edge
    response = client.get(f"http://127.0.0.1:{nginx.http_port}/v1/models", allow_redirects=False, timeout=10)
    assert response.status_code == 301
    assert response.headers["Location"] == "https://127.0.0.1/v1/models"


def test_gateway_errors_pass_through_and_nginx_errors_are_json(edge, client, upstream, nginx_program, certificate,
                                                              tmp_path):
    nginx, _ = edge
    upstream.reply("/v1/images/generations", Reply(500, json={"error": {"message": "The server had an error"}}))
    response = client.post(nginx.url + "/v1/chat/completions", json=chat_body(model="gpt-image-1"), timeout=30)
    assert response.status_code == 502
    error = response.json()["error"]
    assert error["type"] == "upstream_error" and error["code"] != "gateway_unavailable" and "nginx" not in error["message"]

    orphan = Nginx(nginx_program, tmp_path, free_port(), *certificate).start()  # nothing listens upstream
    try:
        response = client.post(orphan.url + "/v1/chat/completions", json=chat_body(), timeout=30)
    finally:
        orphan.stop()
    assert response.status_code == 502
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"]["code"] == "gateway_unavailable"


def test_a_picture_link_is_sent_by_nginx_through_x_accel_redirect(edge, client, certificate):
    nginx, gateway = edge
    answer = client.post(nginx.url + "/v1/images/generations", timeout=30, json={
        "model": "local-image", "prompt": "a lighthouse", "size": "64x64", "response_format": "url"})
    assert answer.status_code == 200, answer.text
    url = answer.json()["data"][0]["url"]
    assert url.startswith(nginx.url + "/images/")  # GATEWAY_PUBLIC_URL

    request_id = f"picture-{uuid.uuid4().hex[:8]}"
    with requests.Session() as browser:  # no Authorization: the signed link is the permission
        browser.trust_env = False
        browser.verify = str(certificate[0])
        picture = browser.get(url, headers={"X-Request-ID": request_id}, timeout=10)
        assert picture.status_code == 200, picture.text[:300]
        assert picture.content.startswith(b"\x89PNG")
        assert picture.headers["Content-Type"] == "image/png"  # the gateway's, not nginx's default type
        assert int(picture.headers["Content-Length"]) == len(picture.content)
        assert picture.headers["Cache-Control"].startswith("private, max-age=")
        assert picture.headers["X-Content-Type-Options"] == "nosniff"
        etag = picture.headers["ETag"]
        assert browser.get(url, headers={"If-None-Match": etag}, timeout=10).status_code == 304

        # the gateway only checked the link: the picture's bytes never went through Python
        assert log_line(gateway, request_id)["bytes"] == 0

        tampered = browser.get(url.replace("signature=", "signature=x"), timeout=10)
        assert tampered.status_code == 403 and tampered.json()["error"]["code"] == "invalid_signature"
        # the internal location cannot be asked for directly
        stored = next(path for path in nginx.pictures.rglob("*.png"))
        direct = browser.get(nginx.url + ACCEL_PREFIX + str(stored.relative_to(nginx.pictures)), timeout=10)
        assert direct.status_code == 404 and direct.json()["error"]["code"] == "image_not_found"


# ----- malformed HTTP: whatever nginx answers itself is JSON too -----

MALFORMED = {
    "garbage request line": b"\x16\x03\x01 hello\r\n\r\n",
    "bad method characters": b"GE(T / HTTP/1.1\r\nHost: x\r\n\r\n",
    "NUL in a header": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n",
    "bare CR in a header": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n",
    "no Host with HTTP/1.1": b"GET /healthz HTTP/1.1\r\n\r\n",
    "duplicate Content-Length": (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                                 b"Content-Length: 3\r\n\r\n{}"),
    "Content-Length with chunked": (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n"
                                    b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"),
    "bad chunk size": (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                       b"zz\r\nabc\r\n0\r\n\r\n"),
    "unknown transfer encoding": b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
    "negative Content-Length": b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
    "HTTP/2.0 on an HTTP/1 port": b"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
    "request line too long": b"GET /" + b"a" * 20_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "header too long": b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 20_000 + b"\r\n\r\n",
}


def tls_exchange(port: int, cafile: str, data: bytes, timeout: float = 10) -> tuple[int, dict, bytes]:
    """Send raw bytes over TLS; the status, headers and body of the first answer."""
    context = ssl.create_default_context(cafile=cafile)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock, \
            context.wrap_socket(sock, server_hostname="127.0.0.1") as tls:
        try:
            tls.sendall(data)
        except OSError:  # nginx answered and closed before taking all of it: the answer is still there
            pass
        received = b""
        while True:
            try:
                piece = tls.recv(65536)
            except (ssl.SSLError, ConnectionResetError, TimeoutError):  # TimeoutError: nginx still waits for a
                break                                                    # body the request promised
            if not piece:
                break
            received += piece
            head, _, body = received.partition(b"\r\n\r\n")
            if _ and b"content-length:" in head.lower():
                length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                if len(body) >= length:
                    break
    head, _, body = received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1.1 "), f"no HTTP answer: {received[:200]!r}"
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


@pytest.mark.parametrize("name", MALFORMED)
def test_malformed_requests_get_json_errors_from_nginx(edge, certificate, name):
    nginx, _ = edge
    status, headers, body = tls_exchange(nginx.https_port, str(certificate[0]), MALFORMED[name])
    assert 400 <= status < 500, (status, body[:300])
    assert headers["content-type"] == "application/json", body[:300]
    error = json.loads(body)["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["type"] == "invalid_request_error"


def test_the_statuses_nginx_answers_itself(edge, certificate):
    nginx, _ = edge
    ca = str(certificate[0])
    assert tls_exchange(nginx.https_port, ca, MALFORMED["request line too long"])[0] == 414
    assert tls_exchange(nginx.https_port, ca, MALFORMED["header too long"])[0] == 431
    status, headers, body = tls_exchange(nginx.https_port, ca, MALFORMED["garbage request line"])
    assert status == 400 and json.loads(body)["error"]["code"] == "bad_http_request"
    status, headers, body = tls_exchange(nginx.https_port, ca, b"OPTIONS /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                                                               b"Connection: close\r\n\r\n")
    assert (status, headers["content-type"]) == (405, "application/json")  # the gateway's own answer, passed on
    assert headers["allow"] == "POST" and json.loads(body)["error"]["code"] == "method_not_allowed"
    status, headers, body = tls_exchange(nginx.https_port, ca, b"BREW /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (status, headers["content-type"]) == (405, "application/json")  # nginx's: never sent to gunicorn
    with socket.create_connection(("127.0.0.1", nginx.https_port), timeout=10) as plain:  # no TLS on the TLS port
        plain.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = b"".join(iter(lambda: plain.recv(65536), b""))
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400") and b"application/json" in head and json.loads(body)["error"]


header_bytes = st.binary(max_size=40)
header_names = st.one_of(st.sampled_from([b"Content-Length", b"Transfer-Encoding", b"Host", b"Expect",
                                          b"Content-Type", b"X-Request-ID", b"Idempotency-Key", b"Authorization"]),
                         st.binary(min_size=1, max_size=20))
request_lines = st.tuples(
    st.one_of(st.sampled_from([b"GET", b"POST", b"OPTIONS", b"PUT", b"DELETE", b"BREW", b"G\x00T"]),
              st.binary(min_size=1, max_size=8)),
    st.one_of(st.sampled_from([b"/healthz", b"/v1/chat/completions", b"/v1/models", b"/metrics", b"/",
                               b"/static/playground.js", b"/../../etc/passwd", b"/%00", b"*"]),
              st.binary(max_size=60)),
    st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2.0", b"HTTP/0.9", b"HTTP/1.1x", b"", b"http/1.1"]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(line=request_lines, headers=st.lists(st.tuples(header_names, header_bytes), max_size=5),
       body=st.binary(max_size=64))
def test_fuzzed_requests_through_nginx_never_get_html_or_a_5xx(edge, certificate, line, headers, body):
    nginx, _ = edge
    method, path, version = line
    data = method + b" " + path + b" " + version + b"\r\nHost: gateway.test\r\nConnection: close\r\n"
    data += b"".join(name + b": " + value + b"\r\n" for name, value in headers) + b"\r\n" + body
    try:
        status, answer_headers, answer = tls_exchange(nginx.https_port, str(certificate[0]), data, timeout=3)
    except AssertionError:
        return  # no answer: nginx closed the connection (it does for some garbage) or waits for a promised body
    assert status < 500, (status, answer[:300])
    if answer:
        assert answer_headers.get("content-type") == "application/json", (status, answer[:300])
        if status >= 400:
            assert set(json.loads(answer)["error"]) == {"message", "type", "param", "code"}
