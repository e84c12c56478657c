"""Client keys: every /v1 and /api/v1 route needs one; /healthz does not."""
import pytest

from tests.conftest import CLIENT_KEY, chat_body

ROUTES = [("post", "/v1/chat/completions"), ("post", "/api/v1/chat/completions"),
          ("get", "/v1/models"), ("get", "/api/v1/models"), ("get", "/v1/models/local-image")]


@pytest.mark.parametrize("method, path", ROUTES)
@pytest.mark.parametrize("header", [None, "Bearer wrong-key", "Basic " + CLIENT_KEY, "Bearer ", CLIENT_KEY])
def test_missing_or_wrong_key_is_401(client, method, path, header):
    headers = {"Authorization": header} if header is not None else {}
    response = getattr(client, method)(path, json=chat_body(), headers=headers)
    assert response.status_code == 401
    assert response.json["error"]["code"] == "invalid_api_key"
    assert response.json["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("method, path", ROUTES)
def test_no_keys_configured_means_every_call_is_401_saying_what_to_set(make_app, method, path):
    client = make_app(GATEWAY_API_KEYS="").test_client()
    response = getattr(client, method)(path, json=chat_body(), headers={"Authorization": "Bearer anything"})
    assert response.status_code == 401
    assert "GATEWAY_API_KEYS" in response.json["error"]["message"]


def test_any_of_several_keys_works(make_app):
    client = make_app(GATEWAY_API_KEYS="first-key, second-key").test_client()
    for key in ("first-key", "second-key"):
        assert client.get("/v1/models", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    assert client.get("/v1/models", headers={"Authorization": "Bearer third-key"}).status_code == 401


def test_bearer_scheme_is_case_insensitive(client):
    assert client.get("/v1/models", headers={"Authorization": f"bearer {CLIENT_KEY}"}).status_code == 200


def test_healthz_needs_no_key(make_app):
    client = make_app(GATEWAY_API_KEYS="").test_client()
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json == {"status": "ok"}


def test_wrong_key_is_not_echoed(client):
    response = client.get("/v1/models", headers={"Authorization": "Bearer leaked-looking-key-123"})
    assert "leaked-looking-key-123" not in response.get_data(as_text=True)
