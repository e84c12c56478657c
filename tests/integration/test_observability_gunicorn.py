"""Observability under gunicorn: metrics summed over workers, JSON log lines carrying request ids."""
import json

import requests

from tests.conftest import CLIENT_KEY, chat_body


def local_requests_total(gateway) -> float:
    text = requests.get(gateway.url + "/metrics", timeout=10).text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("gateway_requests_total{") and 'provider="local"' in line)


def test_metrics_are_summed_over_every_worker(gateway, headers):
    before = local_requests_total(gateway)
    for _ in range(12):  # spread over both workers by the kernel's accept balancing
        assert requests.post(gateway.url + "/v1/chat/completions", json=chat_body(tool={"size": "16x16"}),
                             headers=headers, timeout=10).status_code == 200
    assert local_requests_total(gateway) == before + 12


def test_every_log_line_is_json_and_request_lines_carry_the_request_id(gateway, headers):
    response = requests.post(gateway.url + "/v1/chat/completions", json=chat_body("a very private prompt"),
                             headers={**headers, "X-Request-ID": "trace-me-7"}, timeout=10)
    assert response.headers["X-Request-ID"] == "trace-me-7"
    assert float(response.headers["x-gateway-overhead-ms"]) >= 0
    lines = [json.loads(line) for line in gateway.log().splitlines() if line.strip()]
    mine = [line for line in lines if line.get("request_id") == "trace-me-7"]
    assert len(mine) == 1 and mine[0]["message"] == "request" and mine[0]["status"] == 200
    assert mine[0]["images"] == 1 and mine[0]["provider"] == "local"
    log = gateway.log()
    assert "a very private prompt" not in log and "iVBORw0KGgo" not in log and CLIENT_KEY not in log
