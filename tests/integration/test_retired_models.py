"""The real service under gunicorn: an upstream that no longer serves a retired model, and /v1/models."""
import pytest
import requests

from tests.conftest import chat_body
from tests.support.fake_upstream import Reply

OPENAI_GONE = Reply(404, json={"error": {"message": "The model `gpt-image-1` does not exist or you do not have access "
                                                    "to it.", "type": "invalid_request_error", "param": None,
                                         "code": "model_not_found"}})
GEMINI_GONE = Reply(404, json={"error": {"code": 404, "status": "NOT_FOUND", "message": "models/gemini-2.5-flash-image "
                                         "is not found for API version v1beta, or is not supported for generateContent."}})


def test_openai_saying_gpt_image_1_is_gone_is_model_retired(gateway, upstream, headers):
    upstream.reply("/v1/images/generations", OPENAI_GONE, OPENAI_GONE)
    chat = requests.post(gateway.url + "/v1/chat/completions", json=chat_body(model="gpt-image-1"), headers=headers,
                         timeout=30)
    images = requests.post(gateway.url + "/v1/images/generations", json={"model": "gpt-image-1", "prompt": "x"},
                           headers=headers, timeout=30)
    for response in (chat, images):
        assert response.status_code == 404
        error = response.json()["error"]
        assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", "model_retired", "model")
        assert "2026-10-23" in error["message"] and "gpt-image-2.6-sunburst" in error["message"]
    assert [r.json["model"] for r in upstream.received()] == ["gpt-image-1", "gpt-image-1"]  # asked, not blocked


def test_while_the_upstream_still_serves_a_retired_name_the_picture_comes_back(gateway, upstream, headers):
    response = requests.post(gateway.url + "/v1/images/generations", json={"model": "dall-e-3", "prompt": "x"},
                             headers=headers, timeout=30)
    assert response.status_code == 200 and response.json()["data"][0]["b64_json"]


def test_gemini_saying_its_model_is_gone_is_model_retired(gateway, gemini, headers):
    gemini.reply("/v1beta/models/gemini-2.5-flash-image:generateContent", GEMINI_GONE)
    response = requests.post(gateway.url + "/v1/chat/completions", json=chat_body(model="gemini-2.5-flash-image"),
                             headers=headers, timeout=30)
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "model_retired" and "2026-10-02" in error["message"]
    assert "gemini-3.1-flash-image" in error["message"]


@pytest.mark.parametrize("path", ["/v1/models", "/api/v1/models"])
def test_models_lists_the_current_models_and_no_retired_one(gateway, headers, path):
    listed = {m["id"]: m["owned_by"] for m in requests.get(gateway.url + path, headers=headers, timeout=10).json()["data"]}
    for model, owner in (("gpt-image-2.6-flare", "openai"), ("gpt-image-2.6-sunburst", "openai"),
                         ("gpt-image-2.5-flare", "openai"), ("gpt-image-2", "openai"),
                         ("gemini-3.1-flash-image", "gemini"), ("gemini-3-pro-image-preview", "gemini"),
                         ("doubao-seedream-5-0-pro-260628", "ark"),
                         ("google/gemini-3.1-flash-image-preview", "openrouter"), ("local-image", "local")):
        assert listed.get(model) == owner, model
    for retired in ("gpt-image-1", "gpt-image-1-mini", "gpt-image-1.5", "chatgpt-image-latest", "dall-e-2", "dall-e-3",
                    "gemini-2.5-flash-image", "imagen-4.0-generate-001", "google/gemini-2.5-flash-image",
                    "doubao-seedream-4-5-251128"):
        assert retired not in listed, retired
