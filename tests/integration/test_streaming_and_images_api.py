"""Streaming and the Images API through gunicorn, driven by the official OpenAI SDK and raw HTTP."""
import base64
import io
import time
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest
import requests

from tests.conftest import chat_body
from tests.integration.conftest import STREAM_KEEPALIVE
from tests.support.fake_upstream import Reply
from tests.support.images import JPEG_BYTES, PNG_BYTES
from tests.support.openai_fake import sse_event, image_b64
from tests.support.sse import data_frames, parse


def decodes_to_image(b64: str) -> bytes:
    data = base64.b64decode(b64)
    assert data.startswith(b"\x89PNG") or data.startswith(b"\xff\xd8")
    return data


def test_sdk_images_generate(sdk, upstream):
    result = sdk.images.generate(model="gpt-image-1", prompt="a red kite", size="1536x1024", quality="low", n=2)
    assert len(result.data) == 2
    decodes_to_image(result.data[0].b64_json)
    assert result.output_format == "png" and result.usage.total_tokens == 12 + 544
    assert upstream.received("/v1/images/generations")[0].json["size"] == "1536x1024"


def test_sdk_images_edit_with_one_file(sdk, upstream):
    result = sdk.images.edit(model="gpt-image-1", prompt="add snow", image=("cat.png", PNG_BYTES, "image/png"))
    decodes_to_image(result.data[0].b64_json)
    sent = upstream.received("/v1/images/edits")[0]
    assert [f.data for f in sent.files("image[]")] == [PNG_BYTES]


def test_sdk_images_edit_with_two_files_and_a_mask(sdk, upstream):
    result = sdk.images.edit(model="gpt-image-1", prompt="merge", input_fidelity="high",
                             image=[("a.png", PNG_BYTES, "image/png"), ("b.jpg", JPEG_BYTES, "image/jpeg")],
                             mask=("mask.png", PNG_BYTES, "image/png"))
    assert len(result.data) == 1
    sent = upstream.received("/v1/images/edits")[0]
    assert [(f.content_type, f.data) for f in sent.files("image[]")] == [("image/png", PNG_BYTES),
                                                                        ("image/jpeg", JPEG_BYTES)]
    assert sent.files("mask")[0].data == PNG_BYTES
    assert sent.fields()["input_fidelity"] == "high"


def test_sdk_images_generate_stream_with_partials(sdk, upstream):
    events = list(sdk.images.generate(model="gpt-image-1", prompt="a kite", stream=True, partial_images=2))
    assert [e.type for e in events] == ["image_generation.partial_image"] * 2 + ["image_generation.completed"]
    assert [e.partial_image_index for e in events[:2]] == [0, 1]
    decodes_to_image(events[-1].b64_json)
    assert events[-1].usage.total_tokens == 281
    assert upstream.received()[0].json["stream"] is True


def test_sdk_images_edit_stream(sdk, upstream):
    events = list(sdk.images.edit(model="gpt-image-1", prompt="x", image=("a.png", PNG_BYTES, "image/png"),
                                  stream=True, partial_images=1))
    assert [e.type for e in events] == ["image_edit.partial_image", "image_edit.completed"]


def test_sdk_chat_stream_reads_every_chunk_and_the_final_image_decodes(sdk, upstream):
    stream = sdk.chat.completions.create(
        model="gpt-image-1", messages=[{"role": "user", "content": "a kite"}], modalities=["image", "text"],
        stream=True, stream_options={"include_usage": True},
        tools=[{"type": "image_generation", "image_generation": {"partial_images": 2}}])
    chunks = list(stream)
    deltas = [c.choices[0].delta for c in chunks if c.choices]
    assert deltas[0].role == "assistant"
    previews = [d.model_extra["partial_images"] for d in deltas if "partial_images" in (d.model_extra or {})]
    assert len(previews) == 2
    finals = [d.model_extra["images"] for d in deltas if "images" in (d.model_extra or {})]
    assert len(finals) == 1
    decodes_to_image(finals[0][0]["image_url"]["url"].split(",", 1)[1])
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].usage.total_tokens == 281


def test_sdk_chat_stream_on_the_local_provider_with_n(sdk):
    chunks = list(sdk.chat.completions.create(model="local-image", messages=[{"role": "user", "content": "x"}],
                                              modalities=["image"], n=2, stream=True))
    finished = {c.choices[0].index for c in chunks if c.choices and c.choices[0].finish_reason == "stop"}
    assert finished == {0, 1}


def test_mid_stream_upstream_failure_reaches_the_sdk_as_an_error(sdk, upstream):
    partial = sse_event("image_generation.partial_image", {"partial_image_index": 0, "b64_json": image_b64(1)})
    # the preview arrives, then the connection dies before the final image: after the first wait, so the
    # stream has started and the failure must arrive as an error event
    upstream.reply("/v1/images/generations", Reply(body=partial, headers={"Content-Type": "text/event-stream"},
                                                   action="chunked_cut", delay=STREAM_KEEPALIVE * 1.5))
    stream = sdk.chat.completions.create(
        model="gpt-image-1", messages=[{"role": "user", "content": "x"}], modalities=["image"], stream=True,
        tools=[{"type": "image_generation", "image_generation": {"partial_images": 1}}])
    seen = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in stream:
            seen.append(chunk)
    assert any("partial_images" in (c.choices[0].delta.model_extra or {}) for c in seen if c.choices)
    assert "openai" in caught.value.message


def test_raw_sse_framing_keepalives_and_done(gateway, upstream, headers):
    upstream.reply("/v1/images/generations", Reply(json={"created": 1, "data": [{"b64_json": image_b64()}]},
                                                   delay=STREAM_KEEPALIVE * 3))
    started = time.monotonic()
    with requests.post(gateway.url + "/v1/chat/completions", headers=headers, stream=True, timeout=30,
                       json=chat_body(model="gpt-image-1", stream=True)) as response:
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        pieces = response.iter_content(chunk_size=None)
        first = next(pieces)
        first_after = time.monotonic() - started
        body = first + b"".join(pieces)
    assert first.startswith(b"data: {") and first_after < STREAM_KEEPALIVE * 2.5, "headers waited for the upstream"
    frames = parse(body)
    assert sum(1 for f in frames if f.comment == "keep-alive") >= 2
    assert body.endswith(b"data: [DONE]\n\n")
    assert all(f.data is None or f.event is None for f in frames)


def test_raw_images_stream_framing(gateway, headers):
    response = requests.post(gateway.url + "/v1/images/generations", headers=headers, timeout=30, json={
        "model": "local-image", "prompt": "x", "size": "64x64", "stream": True, "partial_images": 3})
    frames = data_frames(parse(response.content))
    assert [f.event for f in frames] == ["image_generation.partial_image"] * 3 + ["image_generation.completed", None]
    assert frames[-1].data == "[DONE]"


def test_several_concurrent_streams_are_served_in_parallel(gateway, upstream, headers):
    delay = 1.5
    for _ in range(6):
        upstream.reply("/v1/images/generations",
                       Reply(json={"created": 1, "data": [{"b64_json": image_b64()}]}, delay=delay))

    def one_stream(_):
        with requests.post(gateway.url + "/v1/chat/completions", headers=headers, stream=True, timeout=30,
                           json=chat_body(model="gpt-image-1", stream=True)) as response:
            return response.content

    started = time.monotonic()
    with ThreadPoolExecutor(6) as pool:
        bodies = list(pool.map(one_stream, range(6)))
    elapsed = time.monotonic() - started
    assert all(body.endswith(b"data: [DONE]\n\n") and b'"images"' in body for body in bodies)
    assert elapsed < delay * 3, f"6 streams of {delay}s took {elapsed:.1f}s: they did not run concurrently"


def test_multipart_edit_through_curl_style_request(gateway, upstream, headers):
    files = [("image[]", ("a.png", io.BytesIO(PNG_BYTES), "image/png")),
             ("image[]", ("b.jpg", io.BytesIO(JPEG_BYTES), "image/jpeg"))]
    response = requests.post(gateway.url + "/v1/images/edits", headers=headers, timeout=30, files=files,
                             data={"model": "gpt-image-1", "prompt": "x", "n": "2"})
    assert response.status_code == 200, response.text
    assert len(response.json()["data"]) == 2
    assert upstream.received("/v1/images/edits")[0].fields()["n"] == "2"
