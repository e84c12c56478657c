"""OpenAI's Images API surface (/v1/images/generations, /v1/images/edits) over the same providers."""
import base64
import io
import json

import pytest
import responses

from app.core.result import ImageResult
from app.providers.local import LocalClient
from tests.conftest import OPENAI_BASE
from tests.support.fake_upstream import Recorded
from tests.support.upstream_mock import sent as sent_call
from tests.support.images import JPEG_BYTES, PNG_B64, PNG_BYTES, PNG_DATA_URL
from tests.support.sse import data_frames, parse

GENERATIONS = OPENAI_BASE + "/images/generations"
EDITS = OPENAI_BASE + "/images/edits"


@pytest.fixture
def openai_up():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        answer = {"created": 1, "data": [{"b64_json": PNG_B64}], "quality": "high", "background": "opaque",
                  "usage": {"input_tokens": 7, "output_tokens": 70, "total_tokens": 77,
                            "input_tokens_details": {"text_tokens": 7, "image_tokens": 0}}}
        rsps.post(GENERATIONS, json=answer)
        rsps.post(EDITS, json=answer)
        yield rsps


def sent(rsps) -> Recorded:
    return sent_call(rsps.calls[-1])


def test_generation_answers_images_response(client, auth):
    response = client.post("/v1/images/generations", headers=auth,
                           json={"model": "local-image", "prompt": "a fox", "size": "48x32", "n": 2})
    assert response.status_code == 200
    body = response.json
    assert isinstance(body["created"], int) and len(body["data"]) == 2
    assert base64.b64decode(body["data"][0]["b64_json"]).startswith(b"\x89PNG")
    assert body["output_format"] == "png" and body["size"] == "48x32" and body["background"] == "opaque"
    assert body["usage"]["total_tokens"] == 0


def test_generation_on_openai_sends_the_mapped_body_and_maps_usage_back(client, auth, openai_up):
    response = client.post("/v1/images/generations", headers=auth, json={
        "model": "gpt-image-1", "prompt": "a fox", "size": "1024x1536", "quality": "high", "n": 2,
        "output_format": "webp", "output_compression": 70, "moderation": "low", "user": "u-1",
        "response_format": "b64_json"})
    assert response.status_code == 200
    assert sent(openai_up).json == {"model": "gpt-image-1", "prompt": "a fox", "n": 2, "user": "u-1",
                                    "size": "1024x1536", "quality": "high", "moderation": "low",
                                    "output_format": "webp", "output_compression": 70}
    # cost: 7 text tokens at $5/M + 70 image tokens at $40/M (gpt-image-1's price row)
    assert response.json["usage"] == {"input_tokens": 7, "output_tokens": 70, "total_tokens": 77,
                                      "input_tokens_details": {"text_tokens": 7, "image_tokens": 0},
                                      "cost": 0.002835}
    assert response.json["quality"] == "high"


def test_style_reaches_dall_e_3_and_is_dropped_elsewhere(client, auth, openai_up):
    client.post("/v1/images/generations", headers=auth, json={"model": "dall-e-3", "prompt": "x", "style": "natural"})
    assert sent(openai_up).json["style"] == "natural"
    response = client.post("/v1/images/generations", headers=auth,
                           json={"model": "gpt-image-1", "prompt": "x", "style": "natural"})
    assert "style" not in sent(openai_up).json
    assert response.headers["x-gateway-dropped-params"] == "style"


def test_model_defaults_to_the_configured_one(make_app, auth):
    client = make_app(GATEWAY_DEFAULT_IMAGE_MODEL="local-image").test_client()
    response = client.post("/v1/images/generations", headers=auth, json={"prompt": "x", "size": "16x16"})
    assert response.headers["x-gateway-provider"] == "local"


@pytest.mark.parametrize("body, param", [
    ({"model": "local-image"}, "prompt"),
    ({"model": "local-image", "prompt": ""}, "prompt"),
    ({"model": "local-image", "prompt": "x", "n": 11}, "n"),
    ({"model": "local-image", "prompt": "x", "size": "big"}, "size"),
    ({"model": "local-image", "prompt": "x", "colour": "red"}, "colour"),
    ({"model": "local-image", "prompt": "x", "style": "cartoon"}, "style"),
    ({"model": "local-image", "prompt": "x", "background": "transparent", "output_format": "jpeg"}, "background"),
    ({"model": "local-image", "prompt": "x", "response_format": "link"}, "response_format"),
])
def test_generation_validation(client, auth, body, param):
    response = client.post("/v1/images/generations", headers=auth, json=body)
    assert response.status_code == 400
    assert response.json["error"]["param"] == param


def test_multipart_edit_with_two_images_and_a_mask(client, auth, openai_up):
    response = client.post("/v1/images/edits", headers=auth, content_type="multipart/form-data", data={
        "model": "gpt-image-1", "prompt": "put them together", "n": "2", "size": "1024x1024",
        "input_fidelity": "high",
        "image[]": [(io.BytesIO(PNG_BYTES), "a.png", "image/png"), (io.BytesIO(JPEG_BYTES), "b.png", "image/png")],
        "mask": (io.BytesIO(PNG_BYTES), "mask.png", "image/png")})
    assert response.status_code == 200, response.json
    upstream = sent(openai_up)
    assert upstream.fields() == {"model": "gpt-image-1", "prompt": "put them together", "n": "2",
                                 "size": "1024x1024", "input_fidelity": "high"}
    assert [(f.content_type, f.data) for f in upstream.files("image[]")] == [("image/png", PNG_BYTES),
                                                                            ("image/jpeg", JPEG_BYTES)]
    assert upstream.files("mask")[0].data == PNG_BYTES


def test_multipart_edit_with_the_single_image_field(client, auth, openai_up):
    response = client.post("/v1/images/edits", headers=auth, content_type="multipart/form-data", data={
        "model": "gpt-image-1", "prompt": "x", "image": (io.BytesIO(PNG_BYTES), "a.png")})
    assert response.status_code == 200
    assert len(sent(openai_up).files("image[]")) == 1


def test_json_edit_with_image_references(client, auth, openai_up):
    response = client.post("/v1/images/edits", headers=auth, json={
        "model": "gpt-image-1", "prompt": "x", "images": [{"image_url": PNG_DATA_URL}],
        "mask": {"image_url": PNG_DATA_URL}})
    assert response.status_code == 200
    assert len(sent(openai_up).files("image[]")) == 1 and len(sent(openai_up).files("mask")) == 1


@pytest.mark.parametrize("kwargs, status, param", [
    ({"json": {"model": "gpt-image-1", "prompt": "x"}}, 400, "image"),
    ({"json": {"model": "gpt-image-1", "prompt": "x", "images": [{"file_id": "file-1"}]}}, 400, "images[0]"),
    ({"json": {"model": "gpt-image-1", "prompt": "x", "images": [{"image_url": "data:image/png;base64,@@"}]}},
     400, "images[0].image_url"),
    ({"content_type": "multipart/form-data",
      "data": {"prompt": "x", "image": (io.BytesIO(b"%PDF-1.4 not an image"), "a.pdf")}}, 400, "image"),
    ({"content_type": "multipart/form-data",
      "data": {"prompt": "x", "n": "two", "image": (io.BytesIO(PNG_BYTES), "a.png")}}, 400, "n"),
    ({"content_type": "multipart/form-data",
      "data": {"prompt": "x", "model": "dall-e-3", "image": (io.BytesIO(PNG_BYTES), "a.png")}}, 400, "image"),
])
def test_edit_validation(client, auth, kwargs, status, param):
    response = client.post("/v1/images/edits", headers=auth, **kwargs)
    assert response.status_code == status, response.json
    assert response.json["error"]["param"] == param


def test_all_images_blocked_is_a_400_content_filter(client, auth, monkeypatch):
    monkeypatch.setattr(LocalClient, "generate", lambda self, request: ImageResult(
        text="blocked by the safety system", finish_reason="content_filter"))
    response = client.post("/v1/images/generations", headers=auth, json={"model": "local-image", "prompt": "x"})
    assert response.status_code == 400
    assert response.json["error"]["code"] == "content_filter"
    assert response.json["error"]["message"] == "blocked by the safety system"


@pytest.mark.parametrize("path, prefix", [("/v1/images/generations", "image_generation"),
                                          ("/v1/images/edits", "image_edit")])
def test_streaming_follows_openai_image_events(client, auth, path, prefix):
    body = {"model": "local-image", "prompt": "x", "size": "32x32", "stream": True, "partial_images": 2}
    if prefix == "image_edit":
        body["images"] = [{"image_url": PNG_DATA_URL}]
    response = client.post(path, headers=auth, json=body)
    assert response.mimetype == "text/event-stream"
    frames = data_frames(parse(response.get_data()))
    assert frames[-1].data == "[DONE]"
    events = [(f.event, f.json) for f in frames[:-1]]
    assert [e for e, _ in events] == [f"{prefix}.partial_image"] * 2 + [f"{prefix}.completed"]
    assert all(data["type"] == event for event, data in events)
    assert [data["partial_image_index"] for _, data in events[:2]] == [0, 1]
    completed = events[-1][1]
    assert base64.b64decode(completed["b64_json"]).startswith(b"\x89PNG")
    assert completed["size"] == "32x32" and completed["output_format"] == "png" and "usage" in completed


def test_every_stream_event_has_the_fields_openais_event_types_require(client, auth):
    body = {"model": "local-image", "prompt": "x", "size": "32x32", "stream": True, "n": 2, "partial_images": 1}
    frames = data_frames(parse(client.post("/v1/images/generations", headers=auth, json=body).get_data()))
    events = [f.json for f in frames[:-1]]
    required = {"type", "b64_json", "background", "created_at", "output_format", "quality", "size"}
    assert all(required <= set(event) for event in events)
    assert {event["quality"] for event in events} == {"auto"}  # the local provider has no quality knob
    completed = [event for event in events if event["type"] == "image_generation.completed"]
    assert len(completed) == 2
    for event in completed:  # each call's usage on its picture: summed, the request's usage
        assert set(event["usage"]) >= {"input_tokens", "input_tokens_details", "output_tokens", "total_tokens"}
        assert set(event["usage"]["input_tokens_details"]) == {"text_tokens", "image_tokens"}


def test_images_routes_need_a_key(client):
    assert client.post("/v1/images/generations", json={"prompt": "x"}).status_code == 401
    assert client.post("/v1/images/edits", json={"prompt": "x"}).status_code == 401


def test_json_dump_of_a_failing_stream_is_valid(client, auth):
    response = client.post("/v1/images/generations", headers=auth,
                           json={"model": "local-image", "prompt": "x", "size": "8x8", "stream": True})
    assert response.status_code == 400 and json.loads(response.get_data())["error"]["param"] == "size"
