"""Load shedding: generations counted across workers until their answer is written; past the limit, 503 at once."""
import json

import pytest

from app import shedding
from app.shedding import InflightLimit, InflightTable, Shedding


class Worker:
    """Stands for a gunicorn worker object (the table only keeps it as an owner)."""


def test_the_limit_holds_across_workers_sharing_one_table():
    table = InflightTable(slots=4)
    first, second = Worker(), Worker()
    a = InflightLimit(3, table, table.assign(first))
    b = InflightLimit(3, table, table.assign(second))
    assert a.try_acquire() and a.try_acquire() and b.try_acquire()
    assert not a.try_acquire() and not b.try_acquire()
    assert table.total() == 3
    a.release()
    assert b.try_acquire()
    assert table.total() == 3


def test_a_dead_workers_generations_stop_counting_and_its_slot_is_reused():
    table = InflightTable(slots=2)
    dead, alive = Worker(), Worker()
    dead_slot = table.assign(dead)
    crashed = InflightLimit(2, table, dead_slot)
    assert crashed.try_acquire() and crashed.try_acquire()
    survivor = InflightLimit(2, table, table.assign(alive))
    assert not survivor.try_acquire()
    table.free(dead)  # what the master does in child_exit
    assert survivor.try_acquire()
    assert table.assign(Worker()) == dead_slot
    with pytest.raises(RuntimeError):
        table.assign(Worker())


class Held:
    """A WSGI app whose answer stays 'being written' until the server closes it."""

    def __init__(self):
        self.closed = 0

    def __call__(self, environ, start_response):
        start_response("200 OK", [("Content-Type", "application/json")])
        app = self

        class Body:
            def __iter__(self):
                yield b"{}"

            def close(self):
                app.closed += 1
        return Body()


def call(app, path="/v1/chat/completions", method="POST"):
    seen = {}

    def start_response(status, headers):
        seen["status"], seen["headers"] = status, dict(headers)
    body = app({"REQUEST_METHOD": method, "PATH_INFO": path, "REMOTE_ADDR": "127.0.0.1"}, start_response)
    return seen, body


@pytest.mark.parametrize("path", sorted(shedding.GENERATION_PATHS))
def test_past_the_limit_a_generation_gets_503_server_overloaded_with_retry_after(path):
    held = Held()
    app = Shedding(held, InflightLimit(2))
    answers = [call(app, path) for _ in range(2)]
    assert [seen["status"] for seen, _ in answers] == ["200 OK"] * 2
    seen, body = call(app, path)
    assert seen["status"] == "503 Service Unavailable"
    assert seen["headers"]["Retry-After"] == str(shedding.RETRY_AFTER_SECONDS)
    assert seen["headers"]["Content-Type"] == "application/json"
    assert json.loads(b"".join(body)) == {"error": {
        "message": "This gateway instance is at capacity (generations in flight); retry shortly, or on another "
                   "instance", "type": "server_error", "param": None, "code": "server_overloaded"}}
    answers[0][1].close()  # the first answer is written: its slot frees
    seen, body = call(app, path)
    assert seen["status"] == "200 OK"
    body.close()
    answers[1][1].close()
    assert held.closed == 3 and app.limit._table.total() == 0


def test_only_generations_count():
    app = Shedding(Held(), InflightLimit(1))
    _, generation = call(app)
    for path, method in (("/healthz", "GET"), ("/v1/models", "GET"), ("/metrics", "GET"),
                         ("/v1/chat/completions", "GET"), ("/v1/embeddings", "POST")):
        seen, _ = call(app, path, method)
        assert seen["status"] == "200 OK", (path, method)
    generation.close()


def test_a_generation_that_raises_frees_its_slot():
    def broken(environ, start_response):
        raise RuntimeError("boom")
    app = Shedding(broken, InflightLimit(1))
    with pytest.raises(RuntimeError):
        call(app)
    assert app.limit._table.total() == 0


def test_closing_twice_counts_once():
    app = Shedding(Held(), InflightLimit(2))
    _, body = call(app)
    body.close()
    body.close()
    assert app.limit._table.total() == 0
