"""A request body must arrive within GATEWAY_BODY_TIMEOUT: the whole read is bounded, not each recv."""
import socket
import threading
import time

import pytest

from app.body_deadline import BodyDeadline, BodyTooSlow, DeadlineInput


@pytest.fixture
def connection():
    client, server = socket.socketpair()
    yield client, server
    client.close()
    server.close()


def test_a_body_that_arrives_in_time_is_read_whole_and_the_socket_timeout_is_restored(connection):
    client, server = connection
    client.sendall(b"hello world")
    with server.makefile("rb") as stream:
        body = DeadlineInput(stream, server, seconds=5)
        assert body.read(5) == b"hello"
        assert body.read(6) == b" world"
    assert server.gettimeout() is None


def test_a_trickled_body_is_cut_at_the_deadline_although_every_read_gets_data(connection):
    client, server = connection
    stop = threading.Event()

    def trickle():
        while not stop.wait(0.1):
            try:
                client.sendall(b"x")
            except OSError:
                return
    threading.Thread(target=trickle, daemon=True).start()
    started = time.monotonic()
    try:
        with server.makefile("rb", buffering=0) as stream, pytest.raises(BodyTooSlow) as caught:
            body = DeadlineInput(stream, server, seconds=0.5)
            while True:
                body.read(1)
    finally:
        stop.set()
    assert time.monotonic() - started < 2
    assert caught.value.status == 408 and caught.value.code == "request_timeout"
    assert "GATEWAY_BODY_TIMEOUT" in caught.value.message
    assert server.gettimeout() is None


def test_the_middleware_wraps_the_input_only_when_gunicorn_names_the_socket(connection):
    _, server = connection
    seen = []
    app = BodyDeadline(lambda environ, start_response: seen.append(environ["wsgi.input"]) or [], seconds=3)
    app({"wsgi.input": "plain"}, None)
    app({"wsgi.input": "plain", "gunicorn.socket": server}, None)
    assert seen[0] == "plain" and isinstance(seen[1], DeadlineInput)
