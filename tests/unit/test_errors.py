"""Every failure leaves as OpenAI's error JSON with the right status; nothing leaks."""
import pytest

from app.core.errors import (AuthenticationFailed, GatewayError, InvalidRequest, MethodNotAllowed, ModelNotFound,
                             PayloadTooLarge, ProviderRejected, RateLimited, RouteNotFound, UpstreamError,
                             UpstreamTimeout)

CASES = [
    (InvalidRequest("bad", param="n"), 400, "invalid_request_error", None),
    (ProviderRejected("blocked", code="moderation_blocked"), 400, "invalid_request_error", "moderation_blocked"),
    (AuthenticationFailed("no key"), 401, "invalid_request_error", "invalid_api_key"),
    (ModelNotFound("no model", param="model"), 404, "invalid_request_error", "model_not_found"),
    (RouteNotFound("no path"), 404, "invalid_request_error", "not_found"),
    (MethodNotAllowed("no"), 405, "invalid_request_error", "method_not_allowed"),
    (PayloadTooLarge("big"), 413, "invalid_request_error", "request_too_large"),
    (RateLimited("slow down", retry_after=2.2), 429, "rate_limit_error", "rate_limit_exceeded"),
    (UpstreamError("down"), 502, "upstream_error", None),
    (UpstreamTimeout("late"), 504, "upstream_timeout", "upstream_timeout"),
    (GatewayError("internal"), 500, "server_error", None),
]


@pytest.fixture
def raising_app(make_app):
    app = make_app()
    state = {}

    @app.get("/raise")
    def raise_it():
        raise state["exc"]

    def client_for(exc):
        state["exc"] = exc
        return app.test_client()
    return client_for


@pytest.mark.parametrize("exc, status, type_, code", CASES, ids=lambda v: type(v).__name__)
def test_each_exception_class_renders_openai_error(raising_app, exc, status, type_, code):
    response = raising_app(exc).get("/raise")
    assert response.status_code == status
    assert response.mimetype == "application/json"
    assert response.json == {"error": {"message": exc.message, "type": type_, "param": exc.param, "code": code}}


def test_rate_limit_passes_retry_after_rounded_up(raising_app):
    response = raising_app(RateLimited("x", retry_after=2.2)).get("/raise")
    assert response.headers["Retry-After"] == "3"


def test_unexpected_exception_is_a_json_500_without_traceback(raising_app):
    response = raising_app(KeyError("secret-internal-detail")).get("/raise")
    assert response.status_code == 500
    error = response.json["error"]
    assert error["type"] == "server_error"
    assert "secret-internal-detail" not in response.get_data(as_text=True)
    assert "Traceback" not in response.get_data(as_text=True)


def test_flask_404_is_json(client):
    response = client.get("/no/such/path")
    assert response.status_code == 404
    assert response.json["error"]["code"] == "not_found"


def test_flask_405_is_json_with_allow_header(client, auth):
    response = client.get("/v1/chat/completions", headers=auth)
    assert response.status_code == 405
    assert response.json["error"]["type"] == "invalid_request_error"
    assert "POST" in response.headers["Allow"]


def test_body_over_the_limit_is_413_json(make_app, auth):
    client = make_app(GATEWAY_MAX_BODY_BYTES="2048").test_client()
    response = client.post("/v1/chat/completions", data=b"{" + b" " * 4096 + b"}", headers=auth,
                           content_type="application/json")
    assert response.status_code == 413
    assert response.json["error"]["code"] == "request_too_large"
    assert "2048" in response.json["error"]["message"]


@pytest.mark.parametrize("data", [b"", b"not json", b"{\"model\": ", "\"just a string\"".encode(), b"\xff\xfe"])
def test_body_that_is_not_a_json_object_is_400(client, auth, data):
    response = client.post("/v1/chat/completions", data=data, headers=auth, content_type="application/json")
    assert response.status_code == 400
    assert response.json["error"]["type"] == "invalid_request_error"


def test_json_body_is_read_whatever_the_content_type(client, auth):
    """curl -d without -H sends application/x-www-form-urlencoded; the JSON is still read."""
    response = client.post("/v1/chat/completions", headers=auth, content_type="application/x-www-form-urlencoded",
                           data=b'{"model":"local-image","messages":[{"role":"user","content":"x"}],"modalities":["image"]}')
    assert response.status_code == 200


@pytest.mark.parametrize("path, allowed", [("/healthz", "GET, HEAD"), ("/v1/chat/completions", "POST"),
                                           ("/", "GET, HEAD"), ("/static/playground.js", "GET, HEAD")])
def test_options_is_answered_in_json_not_flasks_empty_html(client, path, allowed):
    response = client.open(path, method="OPTIONS")
    assert response.status_code == 405 and response.mimetype == "application/json"
    assert response.json["error"]["code"] == "method_not_allowed"
    assert response.headers["Allow"] == allowed
