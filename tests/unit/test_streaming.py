"""Streamed image answers: chunk framing, images in deltas, previews, keep-alives, late failures."""
import base64
import time

import pytest
import responses

from tests.conftest import OPENAI_BASE, chat_body
from tests.support.images import PNG_B64
from tests.support.sse import data_frames, parse

GENERATIONS = OPENAI_BASE + "/images/generations"


@pytest.fixture
def stream_client(make_app):
    return make_app(GATEWAY_STREAM_KEEPALIVE_SECONDS="0.1").test_client()


def stream(client, auth, body, path="/v1/chat/completions"):
    response = client.post(path, json=body, headers=auth)
    assert response.status_code == 200, response.get_data()
    assert response.mimetype == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-cache"
    return parse(response.get_data())


def chunks(frames):
    data = data_frames(frames)
    assert data[-1].data == "[DONE]"
    return [f.json for f in data[:-1]]


def test_chat_stream_shape_for_the_modalities_form(stream_client, auth):
    frames = chunks(stream(stream_client, auth, chat_body(stream=True, tool={"size": "32x32"}, modalities=["image"])))
    assert {c["object"] for c in frames} == {"chat.completion.chunk"}
    assert len({c["id"] for c in frames}) == 1 and frames[0]["id"].startswith("chatcmpl-")
    first = frames[0]["choices"][0]
    assert first["delta"] == {"role": "assistant", "content": ""} and first["finish_reason"] is None
    deltas = [c["choices"][0]["delta"] for c in frames]
    text = [d["content"] for d in deltas if isinstance(d.get("content"), str) and d["content"]]
    assert text == ["Placeholder image from the local provider (32x32)."]
    image = next(d for d in deltas if "images" in d)
    assert image["content"] == image["images"]  # same parts, same shape as the non-streaming answer
    url = image["images"][0]["image_url"]["url"]
    assert base64.b64decode(url.split(",", 1)[1]).startswith(b"\x89PNG")
    assert "tool_calls" in image  # both forms were asked (modalities + tool)
    assert frames[-1]["choices"][0] == {"index": 0, "delta": {}, "finish_reason": "stop", "logprobs": None}


def test_tool_form_streams_tool_calls_only(stream_client, auth):
    frames = chunks(stream(stream_client, auth, chat_body(stream=True, modalities=None, tool={"size": "32x32"})))
    deltas = [c["choices"][0]["delta"] for c in frames]
    calls = [d["tool_calls"] for d in deltas if "tool_calls" in d]
    assert len(calls) == 1 and calls[0][0]["type"] == "image_generation" and calls[0][0]["index"] == 0
    assert calls[0][0]["image_generation"]["status"] == "completed"
    assert not any("images" in d for d in deltas)


def test_n_choices_each_finish_and_usage_comes_last_when_asked(stream_client, auth):
    body = chat_body(stream=True, n=3, tool={"size": "16x16"}, stream_options={"include_usage": True})
    frames = chunks(stream(stream_client, auth, body))
    finished = sorted(c["choices"][0]["index"] for c in frames if c["choices"] and c["choices"][0]["finish_reason"])
    assert finished == [0, 1, 2]
    assert frames[-1]["choices"] == [] and frames[-1]["usage"]["generated_images"] == 3


def test_no_usage_chunk_unless_asked(stream_client, auth):
    frames = chunks(stream(stream_client, auth, chat_body(stream=True, tool={"size": "16x16"})))
    assert all("usage" not in c for c in frames)


def test_preview_frames_are_marked_and_kept_out_of_images(stream_client, auth):
    frames = chunks(stream(stream_client, auth, chat_body(stream=True, tool={"size": "32x32", "partial_images": 2})))
    deltas = [c["choices"][0]["delta"] for c in frames]
    previews = [d["partial_images"][0] for d in deltas if "partial_images" in d]
    assert [p["partial_image_index"] for p in previews] == [0, 1]
    finals = [d for d in deltas if "images" in d]
    assert len(finals) == 1
    assert all(p["image_url"]["url"] != finals[0]["images"][0]["image_url"]["url"] for p in previews)
    assert deltas.index(next(d for d in deltas if "partial_images" in d)) < deltas.index(finals[0])


def test_keepalive_comments_while_the_provider_works(stream_client, auth):
    def slow(request):
        time.sleep(0.45)
        return 200, {}, '{"created": 1, "data": [{"b64_json": "%s"}]}' % PNG_B64

    with responses.RequestsMock() as rsps:
        rsps.add_callback("POST", GENERATIONS, callback=slow)
        frames = stream(stream_client, auth, chat_body(model="gpt-image-1", stream=True))
    keepalives = [f for f in frames if f.comment == "keep-alive"]
    assert len(keepalives) >= 2
    first_data = next(i for i, f in enumerate(frames) if f.data)
    assert first_data == 0, "the role chunk goes out before the keep-alives"


def test_failure_after_the_stream_started_is_an_error_event_then_done(stream_client, auth):
    def slow_failure(request):
        time.sleep(0.3)
        return 500, {}, '{"error": {"message": "The server had an error"}}'

    with responses.RequestsMock() as rsps:
        rsps.add_callback("POST", GENERATIONS, callback=slow_failure)
        frames = data_frames(stream(stream_client, auth, chat_body(model="gpt-image-1", stream=True)))
    assert frames[-1].data == "[DONE]"
    error = frames[-2].json["error"]
    assert error["type"] == "upstream_error" and "HTTP 500" in error["message"]


def test_a_fast_failure_keeps_its_http_status(stream_client, auth):
    with responses.RequestsMock() as rsps:
        rsps.post(GENERATIONS, status=429, json={"error": {"message": "slow down"}}, headers={"Retry-After": "3"})
        response = stream_client.post("/v1/chat/completions", json=chat_body(model="gpt-image-1", stream=True),
                                      headers=auth)
    assert response.status_code == 429 and response.mimetype == "application/json"
    assert response.headers["Retry-After"] == "3"


def test_openai_partial_images_are_forwarded_from_the_upstream_stream(stream_client, auth):
    upstream_events = (
        'event: image_generation.partial_image\n'
        'data: {"type":"image_generation.partial_image","partial_image_index":0,"b64_json":"%s"}\n\n'
        ': comment lines are skipped\n\n'
        'event: image_generation.completed\n'
        'data: {"type":"image_generation.completed","b64_json":"%s","quality":"low",'
        '"usage":{"input_tokens":3,"output_tokens":100,"total_tokens":103}}\n\n' % (PNG_B64, PNG_B64))
    with responses.RequestsMock() as rsps:
        rsps.post(GENERATIONS, body=upstream_events, content_type="text/event-stream")
        body = chat_body(model="gpt-image-1", stream=True, tool={"partial_images": 1},
                         stream_options={"include_usage": True})
        frames = chunks(stream(stream_client, auth, body))
        sent = rsps.calls[0].request
    import json
    assert json.loads(sent.body)["stream"] is True and json.loads(sent.body)["partial_images"] == 1
    deltas = [c["choices"][0]["delta"] for c in frames if c["choices"]]
    assert any("partial_images" in d for d in deltas)
    tool = next(d for d in deltas if "tool_calls" in d)["tool_calls"][0]["image_generation"]
    assert tool["quality"] == "low"
    assert frames[-1]["usage"]["completion_tokens"] == 100


def test_openai_stream_error_event_becomes_our_error(stream_client, auth):
    upstream_events = ('event: error\ndata: {"type":"error","error":{"message":"Your request was rejected",'
                       '"type":"image_generation_user_error","code":"moderation_blocked"}}\n\n')
    with responses.RequestsMock() as rsps:
        rsps.post(GENERATIONS, body=upstream_events, content_type="text/event-stream")
        response = stream_client.post("/v1/chat/completions", headers=auth, json=chat_body(
            model="gpt-image-1", stream=True, tool={"partial_images": 2}))
    assert response.status_code == 400
    assert response.json["error"]["code"] == "moderation_blocked"


def test_n_pictures_with_previews_are_different_pictures(stream_client, auth):
    frames = chunks(stream(stream_client, auth, chat_body(stream=True, n=2, tool={"size": "16x16", "partial_images": 1})))
    finals = [c["choices"][0]["delta"]["images"][0]["image_url"]["url"] for c in frames
              if c["choices"] and "images" in c["choices"][0]["delta"]]
    assert len(finals) == 2 and finals[0] != finals[1]


def test_an_upstream_that_answers_plain_json_to_a_stream_request_still_works(stream_client, auth):
    with responses.RequestsMock() as rsps:
        rsps.post(GENERATIONS, json={"created": 1, "data": [{"b64_json": PNG_B64}]})
        frames = chunks(stream(stream_client, auth, chat_body(model="gpt-image-1", stream=True,
                                                                 tool={"partial_images": 2})))
    assert any("tool_calls" in c["choices"][0]["delta"] for c in frames if c["choices"])
