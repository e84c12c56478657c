"""Secrets never leave in error bodies or log lines: configured ones in any 8+ character piece and any
letter case, credential shapes even when they are not ours, for every provider's error envelope."""
import json
import logging
import re

import pytest
import responses

from app.config import Settings
from app.core.redaction import MASK, Redactor, secrets_of
from app.observability import JsonFormatter, RequestIdFilter
from tests.conftest import ARK_KEY, CLIENT_KEY, OPENAI_KEY, chat_body

KEY = "sk-proj-Abc123Def456Ghi789Jkl012"


def leaks(secret: str, text: str) -> list[str]:
    """Every 8-character piece of `secret` found in `text`, whatever the letter case."""
    low, secret = text.lower(), secret.lower()
    return [secret[i:i + 8] for i in range(len(secret) - 7) if secret[i:i + 8] in low]


@pytest.mark.parametrize("text", [
    f"Incorrect API key provided: {KEY}", f"key {KEY[:12]}...", f"...{KEY[-10:]} is revoked",
    f"KEY: {KEY.upper()}", f"{KEY[3:11]}", f"a{KEY[5:20].lower()}b", f"x{KEY}y{KEY[::-1]}z{KEY[4:13]}",
])
def test_any_piece_of_eight_or_more_characters_of_a_secret_is_hidden_in_any_case(text):
    hidden = Redactor([KEY]).redact(text, shapes=False)
    assert leaks(KEY, hidden) == [] and MASK in hidden


def test_shorter_pieces_and_ordinary_text_are_left_alone():
    redactor = Redactor([KEY])
    text = f"the request failed: model gpt-image-1 at 1024x1024 (piece {KEY[:7]}); İstanbul ß ǅ"
    assert redactor.redact(text, shapes=False) == text


def test_a_secret_shorter_than_eight_characters_is_hidden_where_it_appears_whole():
    assert Redactor(["dev-key"]).redact("Bearer-less dev-key and DEV-KEY", shapes=False) == "Bearer-less *** and ***"
    assert Redactor(["abc"]).redact("abc", shapes=False) == "abc"  # too short to mean anything


@pytest.mark.parametrize("shape", [
    "sk-live-0123456789abcdef", "sk-or-v1-0123456789abcdef", "sk-gw-3f9a8b7c6d5e4f3a2b1c",
    "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6", "Bearer eyJhbGciOiJIUzI1NiJ9.payload", "bearer 0123456789abcdef",
    "ef368e0b-4512-41c2-a2c0-4efa63906f6d", "EF368E0B-4512-41C2-A2C0-4EFA63906F6D",  # Ark keys: UUIDs
    "xai-AbCdEf0123456789GhIj", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
])
def test_credential_shapes_are_hidden_even_when_not_configured(shape):
    assert shape not in Redactor().redact(f"upstream said: {shape}, sorry")


def test_messages_that_only_look_like_keys_survive():
    text = "set OPENAI_API_KEY=sk-... and send Authorization: Bearer <GATEWAY_METRICS_TOKEN> (sk-x)"
    assert Redactor().redact(text) == text


def test_secrets_come_from_settings_by_name(tmp_path):
    config = tmp_path / "gateway.toml"
    config.write_text('[channels.eu]\nprovider = "openai"\napi_key_env = "EU_KEY"\n')
    settings = Settings.from_env({
        "GATEWAY_API_KEYS": "client-one-key,client-two-key", "OPENAI_API_KEY": OPENAI_KEY, "ARK_API_KEY": ARK_KEY,
        "GATEWAY_CONFIG": str(config), "EU_KEY": "routing-file-channel-key",
        "GATEWAY_METRICS_TOKEN": "metrics-scrape-token", "GATEWAY_ADMIN_TOKEN": "admin-token-0123456789",
        "GATEWAY_REDIS_URL": "redis://:redis-password-42@127.0.0.1:6379/0",
        "GATEWAY_DATA_DIR": str(tmp_path)})
    found = secrets_of(settings)
    assert {"client-one-key", "client-two-key", OPENAI_KEY, ARK_KEY, "routing-file-channel-key",
            "metrics-scrape-token", "admin-token-0123456789", "redis-password-42"} <= found
    assert not any(value in found for value in ("127.0.0.1", str(tmp_path)))


# ----- every provider, an upstream echoing our key into every field of its error -----

# keys shaped like the real ones (the shared test keys spell words like "provider", which any text may hold)
PROVIDERS = [  # model, the key, the environment that configures it
    ("gpt-image-1", "sk-proj-7Qm2Xv9Lp4Rt8Zc1Wn6Yb3Kd5Hf", {"OPENAI_API_KEY": ...}),
    ("doubao-seedream-4-0-250828", "ef368e0b-4512-41c2-a2c0-4efa63906f6d", {"ARK_API_KEY": ...}),
    ("google/gemini-2.5-flash-image", "sk-or-v1-9f8e7d6c5b4a39281706f5e4d3c2b1a0", {"OPENROUTER_API_KEY": ...}),
    ("gemini-2.5-flash-image", "AIzaSyD4vQ9mL2xR7tK1pW8nZ3bC6hJ0fG5sY2e", {"GEMINI_API_KEY": ...}),
    ("flux-2-pro", "4b2c9e1f-77aa-4d0e-b3c1-9f8e2d7a6c5b", {"BFL_API_KEY": ..., "BFL_BASE_URL": "https://bfl.test"}),
    ("grok-imagine-image", "xai-Zr4Tq8Wm2Yp6Ls1Vk9Hn3Jd7Bf5Gc0Xa4Ue8Qi",
     {"XAI_API_KEY": ..., "XAI_BASE_URL": "https://xai.test/v1"}),
]


def echoing(key: str, variant: str) -> dict:
    """An error body with the key (cut or upper-cased) in every place any provider reads text from."""
    echo = {"prefix": key[:12], "suffix": key[-10:], "upper": key.upper(), "whole": key}[variant]
    text = f"relay saw Authorization: Bearer {echo}"
    return {"error": {"message": text, "code": echo, "param": echo, "type": echo, "status": echo,
                      "details": [{"reason": echo, "fieldViolations": [{"field": echo, "description": text}]}]},
            "detail": text, "message": text, "code": echo}


@pytest.mark.parametrize("status", [400, 422, 429, 500])
@pytest.mark.parametrize("variant", ["prefix", "suffix", "upper", "whole"])
@pytest.mark.parametrize("model, key, env", PROVIDERS, ids=[p[0] for p in PROVIDERS])
def test_no_provider_error_passes_a_key_to_the_client_or_the_log(make_app, auth, caplog, model, key, env, variant,
                                                                  status):
    caplog.set_level(logging.DEBUG)
    client = make_app(**{name: key if value is ... else value for name, value in env.items()}).test_client()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        for method in ("POST", "GET"):
            rsps.add(method, re.compile(r"https://[a-z]+\.test/.*"), json=echoing(key, variant), status=status)
        response = client.post("/v1/chat/completions", json=chat_body(model=model), headers=auth)
        streamed = client.post("/v1/chat/completions", json=chat_body(model=model, stream=True), headers=auth)
        stream_body = streamed.get_data(as_text=True)
    assert response.status_code >= 400
    error = response.json["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert leaks(key, json.dumps(error)) == [], error
    assert leaks(key, stream_body) == [], stream_body[:300]
    formatter, with_id = JsonFormatter(), RequestIdFilter()
    for record in caplog.records:
        with_id.filter(record)
        assert leaks(key, formatter.format(record)) == [], record.getMessage()


def test_a_client_key_in_a_log_line_is_hidden(client, caplog):
    caplog.set_level(logging.INFO)
    logging.getLogger("gateway").info("someone sent %s", CLIENT_KEY.upper())
    record = caplog.records[-1]
    RequestIdFilter().filter(record)
    assert leaks(CLIENT_KEY, JsonFormatter().format(record)) == []


def test_a_uuid_request_id_stays_readable_in_the_log(client, auth, caplog):
    caplog.set_level(logging.INFO, logger="gateway")
    request_id = "0b6f5a44-7f1c-4d8e-9a7b-2c3d4e5f6a7b"
    client.get("/v1/models", headers={**auth, "X-Request-ID": request_id})
    record = next(r for r in caplog.records if r.name == "gateway.request")
    RequestIdFilter().filter(record)
    assert json.loads(JsonFormatter().format(record))["request_id"] == request_id
