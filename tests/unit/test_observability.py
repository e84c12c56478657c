"""Request ids, the overhead header, one JSON log line per request, and Prometheus metrics."""
import json
import logging
import re

import pytest
import responses

from app.observability import JsonFormatter, RequestIdFilter, RequestStats
from tests.conftest import OPENAI_BASE, chat_body
from tests.support.images import PNG_B64


def request_lines(caplog):
    return [r for r in caplog.records if r.name == "gateway.request"]


def test_request_id_is_generated_and_returned(client, auth):
    response = client.get("/v1/models", headers=auth)
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])


def test_a_sane_client_request_id_is_kept_and_an_odd_one_replaced(client, auth):
    assert client.get("/v1/models", headers={**auth, "X-Request-ID": "abc-123.x"}).headers["X-Request-ID"] == "abc-123.x"
    replaced = client.get("/v1/models", headers={**auth, "X-Request-ID": "bad id <script>" + "x" * 200})
    assert re.fullmatch(r"[0-9a-f]{32}", replaced.headers["X-Request-ID"])


def test_overhead_header_excludes_the_upstream_wait(client, auth):
    import time

    def slow(request):
        time.sleep(0.3)
        return 200, {}, json.dumps({"created": 1, "data": [{"b64_json": PNG_B64}]})

    with responses.RequestsMock() as rsps:
        rsps.add_callback("POST", OPENAI_BASE + "/images/generations", callback=slow)
        response = client.post("/v1/chat/completions", json=chat_body(model="gpt-image-1"), headers=auth)
    overhead = float(response.headers["x-gateway-overhead-ms"])
    assert 0 <= overhead < 200, "the 300 ms upstream wait must not count as overhead"


def test_one_log_line_per_request_with_the_facts_and_no_prompt(client, auth, caplog):
    caplog.set_level(logging.INFO, logger="gateway")
    response = client.post("/v1/chat/completions", json=chat_body("a secret prompt", tool={"size": "16x16"}),
                           headers={**auth, "X-Request-ID": "req-42"})
    (line,) = request_lines(caplog)
    fields = line.fields
    assert fields["status"] == 200 and fields["provider"] == "local" and fields["model"] == "local-image"
    assert fields["images"] == 1 and fields["bytes"] == len(response.get_data())
    assert {"latency_ms", "upstream_ms", "overhead_ms"} <= set(fields)
    assert "prompt" not in fields
    record = JsonFormatter().format(_with_request_id(line))
    assert json.loads(record)["request_id"] == "req-42"
    assert "a secret prompt" not in record and "iVBOR" not in record


def test_prompt_is_logged_only_when_enabled(make_app, auth, caplog):
    caplog.set_level(logging.INFO, logger="gateway")
    make_app(GATEWAY_LOG_PROMPTS="true").test_client().post(
        "/v1/chat/completions", json=chat_body("draw a heron", tool={"size": "16x16"}), headers=auth)
    assert request_lines(caplog)[0].fields["prompt"] == "draw a heron"


def test_errors_are_logged_with_their_status(client, auth, caplog):
    caplog.set_level(logging.INFO, logger="gateway")
    client.post("/v1/chat/completions", json=chat_body(model="nope"), headers=auth)
    assert request_lines(caplog)[0].fields["status"] == 404


def test_health_checks_are_not_logged_at_info(client, caplog):
    caplog.set_level(logging.INFO, logger="gateway")
    client.get("/healthz")
    assert request_lines(caplog) == []


def metric(client, name, **labels) -> float:
    text = client.get("/metrics").get_data(as_text=True)
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_metrics_count_requests_images_and_upstream_errors(client, auth):
    before = metric(client, "gateway_requests_total", provider="local", status="200")
    images_before = metric(client, "gateway_images_generated_total", provider="local")
    client.post("/v1/chat/completions", json=chat_body(n=2, tool={"size": "16x16"}), headers=auth)
    assert metric(client, "gateway_requests_total", provider="local", status="200") == before + 1
    assert metric(client, "gateway_images_generated_total", provider="local") == images_before + 2
    errors_before = metric(client, "gateway_upstream_errors_total", provider="openai", status="500")
    with responses.RequestsMock() as rsps:
        rsps.post(OPENAI_BASE + "/images/generations", status=500, json={"error": {"message": "x"}})
        client.post("/v1/chat/completions", json=chat_body(model="gpt-image-1"), headers=auth)
    assert metric(client, "gateway_upstream_errors_total", provider="openai", status="500") == errors_before + 1
    text = client.get("/metrics").get_data(as_text=True)
    assert "gateway_upstream_latency_seconds_bucket" in text and "gateway_overhead_seconds_bucket" in text


def test_unrouted_model_names_stay_out_of_metric_labels(client, auth):
    client.post("/v1/chat/completions", json=chat_body(model="attacker-controlled-name"), headers=auth)
    assert "attacker-controlled-name" not in client.get("/metrics").get_data(as_text=True)


def test_metrics_token(make_app):
    client = make_app(GATEWAY_METRICS_TOKEN="scrape-me").test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer scrape-me"}).status_code == 200


def test_upstream_time_counts_overlapping_calls_once():
    stats = RequestStats(request_id="x")
    stats.record_upstream(0.0, 1.0)
    stats.record_upstream(0.5, 1.5)
    stats.record_upstream(3.0, 4.0)
    assert stats.upstream_seconds() == pytest.approx(2.5)


def _with_request_id(record):
    RequestIdFilter().filter(record)
    return record


def test_forwarded_headers_are_ignored_unless_proxies_are_trusted(make_app, auth, caplog):
    caplog.set_level(logging.INFO, logger="gateway")
    forwarded = {**auth, "X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
    make_app().test_client().get("/v1/models", headers=forwarded)
    make_app(GATEWAY_TRUSTED_PROXIES="1").test_client().get("/v1/models", headers=forwarded)
    untrusted, trusted = (r.fields for r in request_lines(caplog))
    assert (untrusted["client"], untrusted["scheme"]) == ("127.0.0.1", "http")
    assert (trusted["client"], trusted["scheme"]) == ("203.0.113.9", "https")


def test_streamed_answers_are_logged_when_the_stream_ends(client, auth, caplog):
    caplog.set_level(logging.INFO, logger="gateway")
    response = client.post("/v1/chat/completions", json=chat_body(stream=True, tool={"size": "16x16"}), headers=auth)
    body = response.get_data()
    response.close()
    (line,) = request_lines(caplog)
    assert line.fields["stream"] is True and line.fields["bytes"] == len(body) and line.fields["images"] == 1


def test_made_up_model_names_that_route_are_counted_as_other(client, auth):
    """local-* and vendor/* route anything: label only configured names, else series grow without end."""
    before = metric(client, "gateway_requests_total", model="other", provider="local", status="200")
    for index in range(30):
        client.post("/v1/chat/completions", json=chat_body(model=f"local-made-up-{index}", tool={"size": "16x16"}),
                    headers=auth)
    text = client.get("/metrics").get_data(as_text=True)
    assert "local-made-up" not in text
    assert metric(client, "gateway_requests_total", model="other", provider="local", status="200") == before + 30
    client.post("/v1/chat/completions", json=chat_body(model="local-image", tool={"size": "16x16"}), headers=auth)
    assert metric(client, "gateway_requests_total", model="local-image", status="200") >= 1


@pytest.mark.parametrize("environ, headers", [
    ({"REMOTE_ADDR": "203.0.113.9"}, {}),                      # another machine
    ({}, {"X-Forwarded-For": "203.0.113.9"}),                  # through a proxy on this machine (nginx)
    ({}, {"Forwarded": "for=203.0.113.9"}),
])
def test_metrics_without_a_token_are_for_this_machine_only(client, environ, headers):
    response = client.get("/metrics", environ_base=environ, headers=headers)
    assert response.status_code == 403 and response.json["error"]["type"] == "permission_error"
    assert "GATEWAY_METRICS_TOKEN" in response.json["error"]["message"]
    assert client.get("/metrics").status_code == 200  # a scraper on the machine itself


def test_a_metrics_token_is_needed_from_everywhere_once_set(make_app):
    client = make_app(GATEWAY_METRICS_TOKEN="scrape-me").test_client()
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "203.0.113.9"},
                      headers={"Authorization": "Bearer scrape-me", "X-Forwarded-For": "1.2.3.4"}).status_code == 200


def test_error_answers_are_logged_with_their_code_and_param(client, auth, caplog):
    caplog.set_level(logging.INFO, logger="gateway")
    client.post("/v1/chat/completions", json=chat_body(tool={"size": "7x7"}), headers=auth)
    client.post("/v1/chat/completions", json=chat_body(model="nope"), headers=auth)
    client.post("/v1/chat/completions", json=chat_body(tool={"size": "16x16"}), headers=auth)
    bad_size, unknown, fine = (line.fields for line in request_lines(caplog))
    assert (bad_size["error_code"], bad_size["error_param"]) == (None, "tools[0].image_generation.size")
    assert (unknown["error_code"], unknown["error_param"]) == ("model_not_found", "model")
    assert "error_code" not in fine and "error_param" not in fine


def test_the_request_id_is_cleared_once_the_answer_is_sent(client, auth):
    """Else the server's own log lines between requests carry the last request's id."""
    from app import observability
    response = client.get("/v1/models", headers={**auth, "X-Request-ID": "req-gone"})
    assert response.headers["X-Request-ID"] == "req-gone"
    response.close()
    assert observability.current() is None
    record = logging.LogRecord("gunicorn.error", logging.INFO, __file__, 1, "Closing connection.", None, None)
    assert json.loads(JsonFormatter().format(_with_request_id(record)))["request_id"] == "-"
