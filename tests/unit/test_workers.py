"""Worker classes: GATEWAY_WORKER_CLASS is checked, and gunicorn's own error pages are JSON in the OpenAI shape."""
import json

import pytest

from app import workers
from app.config import ConfigError, Settings


def parse(answer: bytes) -> tuple[str, dict[str, str], dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    assert int(headers["content-length"]) == len(body)
    return status, headers, json.loads(body)


@pytest.mark.parametrize("status, reason, message, kind, code", [
    (400, "Bad Request", "Invalid HTTP Header: 'X-A'", "invalid_request_error", "bad_request"),
    (414, "URI Too Long", "Request Line is too large (5014 > 4094)", "invalid_request_error", "uri_too_long"),
    (431, "Request Header Fields Too Large", "Error parsing headers: 'limit request headers fields size'",
     "invalid_request_error", "request_header_fields_too_large"),
    (501, "Not Implemented", "Unsupported transfer coding: 'gzip'", "server_error", "not_implemented"),
    (500, "Internal Server Error", "", "server_error", "internal_server_error"),
])
def test_gunicorn_error_pages_are_openai_errors(status, reason, message, kind, code):
    line, headers, body = parse(workers.error_page(status, reason, message))
    assert line == f"HTTP/1.1 {status} {reason}"
    assert headers["content-type"] == "application/json" and headers["connection"] == "close"
    assert body == {"error": {"message": f"{reason}: {message}" if message else reason, "type": kind,
                              "param": None, "code": code}}


def test_an_echoed_header_stays_json_and_short():
    _, _, body = parse(workers.error_page(400, "Bad Request", "Invalid HTTP Header: '</h1>\"" + "x" * 5000 + "'"))
    assert body["error"]["message"].startswith("Bad Request: Invalid HTTP Header: '</h1>\"")
    assert len(body["error"]["message"]) <= 300


def test_worker_class_defaults_to_gevent_and_names_gunicorns_class():
    assert Settings.from_env({}).worker_class == "gevent"
    assert workers.worker_class("gevent") == "app.workers.GeventWorker"
    assert workers.worker_class(Settings.from_env({"GATEWAY_WORKER_CLASS": " GThread "}).worker_class) == \
        "app.workers.ThreadWorker"


@pytest.mark.parametrize("value", ["sync", "eventlet", "app.workers.GeventWorker", "gevent,gthread"])
def test_an_unknown_worker_class_is_refused_naming_the_variable(value):
    with pytest.raises(ConfigError, match=r"^GATEWAY_WORKER_CLASS must be one of gevent, gthread, got "):
        Settings.from_env({"GATEWAY_WORKER_CLASS": value})


def test_connections_per_worker_follow_the_worker_class():
    """Under gthread a worker serves its threads; under gevent one worker may hold every admitted generation."""
    assert Settings.from_env({"GATEWAY_WORKER_CLASS": "gthread", "GATEWAY_THREADS": "32"}).connections_per_worker == 32
    gevent = Settings.from_env({"GATEWAY_MAX_INFLIGHT": "100"})
    assert gevent.connections_per_worker > 100
