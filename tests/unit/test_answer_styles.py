"""Answer styles (DESIGN §10): `parts` (§3) or `openrouter`, chosen by header, key default or deployment."""
import base64

import pytest

from app.answer_options import OPENROUTER, PARTS, STYLE_HEADER, AnswerOptions, choose_style
from app.config import Settings
from app.core.errors import InvalidRequest
from app.core.result import GeneratedImage, ImageResult, Usage
from app.core.settings import ConfigError
from app.idempotency import request_fingerprint
from tests.conftest import chat_body
from tests.support.images import PNG_B64
from tests.support.sse import data_frames, parse
from tests.unit.test_answers import chat_completion

OPENROUTER_STYLE = AnswerOptions(style=OPENROUTER)


def png_of(data_url: str) -> bytes:
    header, b64 = data_url.split(",", 1)
    assert header == "data:image/png;base64"
    data = base64.b64decode(b64)
    assert data.startswith(b"\x89PNG")
    return data


# -- choosing the style -----------------------------------------------------------------------

def test_the_header_wins_then_the_key_default_then_the_deployment():
    assert choose_style("openrouter", "parts", "parts") == OPENROUTER
    assert choose_style(" OpenRouter ", None, "parts") == OPENROUTER
    assert choose_style(None, "openrouter", "parts") == OPENROUTER
    assert choose_style("parts", "openrouter", "openrouter") == PARTS
    assert choose_style(None, None, "openrouter") == OPENROUTER
    assert choose_style("", None, "parts") == PARTS  # an empty header is no header


def test_a_bad_header_names_the_header():
    with pytest.raises(InvalidRequest) as caught:
        choose_style("content-parts", None, "parts")
    assert STYLE_HEADER in caught.value.message and "parts, openrouter" in caught.value.message
    assert caught.value.param == STYLE_HEADER


def test_deployment_default_from_the_environment():
    assert Settings.from_env({}).answer_style == PARTS
    assert Settings.from_env({"GATEWAY_ANSWER_STYLE": "openrouter"}).answer_style == OPENROUTER
    with pytest.raises(ConfigError, match="GATEWAY_ANSWER_STYLE must be one of parts, openrouter, got 'lists'"):
        Settings.from_env({"GATEWAY_ANSWER_STYLE": "lists"})


def test_answer_options_are_frozen():
    with pytest.raises(AttributeError):
        OPENROUTER_STYLE.style = PARTS


# -- the openrouter style, JSON answers -------------------------------------------------------

def result(*images, **kwargs):
    return ImageResult(images=list(images), usage=Usage(10, 20, 30), **kwargs).attach_text()


@pytest.mark.parametrize("want_content, want_tool", [(True, False), (False, True), (True, True)])
def test_openrouter_style_has_string_content_and_pictures_in_images_only(want_content, want_tool):
    answer = chat_completion(result(GeneratedImage(PNG_B64, "image/png"), text="Here it is."), model="m",
                             want_content=want_content, want_tool=want_tool, tool_params={"quality": "high"},
                             options=OPENROUTER_STYLE)
    (choice,) = answer["choices"]
    assert choice["finish_reason"] == "stop"
    message = choice["message"]
    assert message == {"role": "assistant", "content": "Here it is.", "images": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + PNG_B64}, "index": 0}]}


def test_openrouter_style_content_is_an_empty_string_when_the_provider_said_nothing():
    answer = chat_completion(result(GeneratedImage(PNG_B64, "image/png"), GeneratedImage(PNG_B64, "image/png")),
                             model="m", want_content=True, want_tool=False, options=OPENROUTER_STYLE)
    assert [c["message"]["content"] for c in answer["choices"]] == ["", ""]
    assert [len(c["message"]["images"]) for c in answer["choices"]] == [1, 1]


def test_openrouter_style_without_a_picture_keeps_the_providers_words_as_a_string():
    blocked = ImageResult(text="Blocked: SAFETY", finish_reason="content_filter")
    answer = chat_completion(blocked, model="m", want_content=False, want_tool=True, options=OPENROUTER_STYLE)
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": "Blocked: SAFETY", "images": []}
    assert answer["choices"][0]["finish_reason"] == "content_filter"


def test_openrouter_style_usage_details_carry_the_counts_openrouter_sdks_require():
    usage = Usage(12, 1301, 1313, prompt_details={"text_tokens": 12},
                  completion_details={"image_tokens": 1290}, extra={"cost": 0.04})
    answer = chat_completion(ImageResult(images=[GeneratedImage(PNG_B64, "image/png")], usage=usage), model="m",
                             want_content=True, want_tool=False, options=OPENROUTER_STYLE)
    assert answer["usage"] == {"prompt_tokens": 12, "completion_tokens": 1301, "total_tokens": 1313, "cost": 0.04,
                               "prompt_tokens_details": {"text_tokens": 12, "cached_tokens": 0},
                               "completion_tokens_details": {"image_tokens": 1290, "reasoning_tokens": 0}}
    plain = chat_completion(ImageResult(images=[GeneratedImage(PNG_B64, "image/png")], usage=Usage(1, 2, 3)),
                            model="m", want_content=True, want_tool=False, options=OPENROUTER_STYLE)
    assert plain["usage"] == {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3}
    # OpenRouter's SDKs take `cost` as a number or not at all: an unknown cost is left out
    unpriced = ImageResult(images=[GeneratedImage(PNG_B64, "image/png")], usage=Usage(1, 2, 3, extra={"cost": None}))
    assert "cost" not in chat_completion(unpriced, model="m", want_content=True, want_tool=False,
                                         options=OPENROUTER_STYLE)["usage"]
    assert chat_completion(unpriced, model="m", want_content=True, want_tool=False)["usage"]["cost"] is None


# -- through the API: header, key default, deployment default, streams ------------------------

def post(client, auth, body, style=None, path="/v1/chat/completions"):
    headers = {**auth, **({STYLE_HEADER: style} if style is not None else {})}
    return client.post(path, json=body, headers=headers)


def test_the_header_chooses_the_style_of_a_json_answer(client, auth):
    body = chat_body(tool={"size": "32x32"})
    parts = post(client, auth, body).json["choices"][0]["message"]
    assert isinstance(parts["content"], list) and parts["tool_calls"][0]["type"] == "image_generation"
    flat = post(client, auth, body, "openrouter").json["choices"][0]["message"]
    assert flat["content"] == "Placeholder image from the local provider (32x32)."
    assert "tool_calls" not in flat
    assert png_of(flat["images"][0]["image_url"]["url"]) == png_of(parts["images"][0]["image_url"]["url"])


def test_a_bad_header_is_a_400_before_anything_is_generated(client, auth):
    response = post(client, auth, chat_body(), "flat")
    assert response.status_code == 400
    error = response.json["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == STYLE_HEADER
    assert STYLE_HEADER in error["message"]
    images = client.post("/v1/images/generations", json={"model": "local-image", "prompt": "a fox"},
                         headers={**auth, STYLE_HEADER: "flat"})
    assert images.status_code == 400 and images.json["error"]["param"] == STYLE_HEADER


def test_the_deployment_default_applies_without_a_header(make_app, auth):
    client = make_app(GATEWAY_ANSWER_STYLE="openrouter").test_client()
    message = post(client, auth, chat_body()).json["choices"][0]["message"]
    assert isinstance(message["content"], str)
    assert isinstance(post(client, auth, chat_body(), "parts").json["choices"][0]["message"]["content"], list)


def test_the_client_keys_default_beats_the_deployments_and_loses_to_the_header(make_app):
    app = make_app(GATEWAY_ANSWER_STYLE="parts")
    _, secret = app.extensions["gateway"].key_store.create({"name": "sdk-user", "answer_style": "openrouter"})
    key = {"Authorization": f"Bearer {secret}"}
    client = app.test_client()
    assert isinstance(post(client, key, chat_body()).json["choices"][0]["message"]["content"], str)
    assert isinstance(post(client, key, chat_body(), "parts").json["choices"][0]["message"]["content"], list)


def test_a_database_keys_answer_style_is_its_default(make_app):
    """A key made with answer_style (admin API / `keys create --answer-style`) answers in it; the header wins."""
    app = make_app(GATEWAY_ADMIN_TOKEN="admin-token-style-test")
    admin = {"Authorization": "Bearer admin-token-style-test"}
    client = app.test_client()
    flat = client.post("/admin/v1/keys", json={"name": "litellm-app", "answer_style": "openrouter"}, headers=admin).json
    plain = client.post("/admin/v1/keys", json={"name": "python-app"}, headers=admin).json
    as_flat, as_plain = ({"Authorization": f"Bearer {key['key']}"} for key in (flat, plain))
    assert isinstance(post(client, as_flat, chat_body()).json["choices"][0]["message"]["content"], str)
    assert isinstance(post(client, as_flat, chat_body(), "parts").json["choices"][0]["message"]["content"], list)
    assert isinstance(post(client, as_plain, chat_body()).json["choices"][0]["message"]["content"], list)


def stream_chunks(client, auth, body, style):
    response = post(client, auth, body, style)
    assert response.status_code == 200 and response.mimetype == "text/event-stream"
    data = data_frames(parse(response.get_data()))
    assert data[-1].data == "[DONE]"
    return [frame.json for frame in data[:-1]]


@pytest.mark.parametrize("form", [{"modalities": ["image", "text"]}, {"modalities": None, "tool": {}},
                                  {"modalities": ["image"], "tool": {"partial_images": 2}}])
def test_openrouter_style_streams_carry_strings_and_images_never_parts_or_tool_calls(make_app, auth, form):
    client = make_app(GATEWAY_STREAM_KEEPALIVE_SECONDS="0.1").test_client()
    frames = stream_chunks(client, auth, chat_body(stream=True, n=2, stream_options={"include_usage": True},
                                                   **form), "openrouter")
    deltas = [(choice["index"], choice["delta"]) for frame in frames for choice in frame["choices"]]
    assert all(isinstance(delta.get("content", ""), str) for _, delta in deltas)
    assert not any("tool_calls" in delta for _, delta in deltas)
    pictures = {index: delta["images"] for index, delta in deltas if "images" in delta}
    assert sorted(pictures) == [0, 1] and all(len(images) == 1 for images in pictures.values())
    for images in pictures.values():
        assert images[0]["type"] == "image_url" and images[0]["index"] == 0
        png_of(images[0]["image_url"]["url"])
    text = "".join(delta.get("content", "") for index, delta in deltas if index == 0)
    assert text.startswith("Placeholder image from the local provider")  # the provider's words, as a string
    assert frames[-1]["choices"] == [] and frames[-1]["usage"]["generated_images"] == 2


def test_images_api_answers_do_not_depend_on_the_style(client, auth):
    body = {"model": "local-image", "prompt": "a fox", "size": "48x32"}
    plain = client.post("/v1/images/generations", json=body, headers=auth).json
    styled = client.post("/v1/images/generations", json=body, headers={**auth, STYLE_HEADER: "openrouter"}).json
    assert plain["data"] == styled["data"] and plain["usage"] == styled["usage"]


def test_an_idempotency_key_replays_only_in_the_style_it_was_answered_in():
    body = b'{"model": "local-image"}'
    default = request_fingerprint("POST", "/v1/chat/completions", body)
    assert request_fingerprint("POST", "/v1/chat/completions", body, answer_style="") == default
    assert request_fingerprint("POST", "/v1/chat/completions", body, answer_style="openrouter") != default


def test_reusing_an_idempotency_key_with_another_style_is_a_conflict(make_app, auth, tmp_path):
    client = make_app(GATEWAY_IDEMPOTENCY_DIR=str(tmp_path)).test_client()
    headers = {**auth, "Idempotency-Key": "style-test"}
    first = client.post("/v1/chat/completions", json=chat_body(), headers=headers)
    assert first.status_code == 200 and isinstance(first.json["choices"][0]["message"]["content"], list)
    again = client.post("/v1/chat/completions", json=chat_body(), headers={**headers, STYLE_HEADER: "openrouter"})
    assert again.status_code == 409 and again.json["error"]["code"] == "idempotency_key_reused"
    replay = client.post("/v1/chat/completions", json=chat_body(), headers=headers)
    assert replay.headers["Idempotent-Replayed"] == "true" and replay.get_data() == first.get_data()
