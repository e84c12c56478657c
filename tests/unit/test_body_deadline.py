"""A request body must arrive within GATEWAY_BODY_TIMEOUT: the whole read is bounded, not each recv."""
import socket
import threading
import time

import pytest

from app.body_deadline import BodyDeadline, BodyTooSlow


@pytest.fixture
def connection():
    client, server = socket.socketpair()
    yield client, server
    client.close()
    server.close()


def test_a_body_that_arrives_in_time_is_read_whole_and_the_socket_timeout_is_kept(connection):
    client, server = connection
    client.sendall(b"hello world")
    deadline = BodyDeadline(server, seconds=5)
    with server.makefile("rb") as stream:
        assert deadline.bounded(stream.read, 5) == b"hello"
        assert deadline.bounded(stream.read, 6) == b" world"
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
    deadline = BodyDeadline(server, seconds=0.5)
    started = time.monotonic()
    try:
        with server.makefile("rb", buffering=0) as stream, pytest.raises(BodyTooSlow) as caught:
            while True:  # short reads: each returns within the deadline, the deadline still ends them
                deadline.bounded(stream.read, 1)
    finally:
        stop.set()
    assert time.monotonic() - started < 2
    assert caught.value.status == 408 and caught.value.code == "request_timeout"
    assert caught.value.type == "invalid_request_error" and "GATEWAY_BODY_TIMEOUT" in caught.value.message
    assert server.gettimeout() is None


def test_only_requests_gunicorn_serves_get_a_deadline(connection):
    _, server = connection
    assert BodyDeadline.for_request({}, 3) is None
    assert isinstance(BodyDeadline.for_request({"gunicorn.socket": server}, 3), BodyDeadline)
