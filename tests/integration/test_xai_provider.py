"""xAI (Grok Imagine) through the real service and the official SDK: generations, edits, blocks."""
import base64
import io

from app.media import image_size
from tests.support.images import PNG_BYTES


def test_the_sdk_gets_n_pictures_of_the_asked_shape_in_one_upstream_call(sdk, xai):
    answer = sdk.images.generate(model="grok-imagine-image", prompt="a red kite", n=2, size="1792x1024",
                                 quality="hd")
    assert [image_size(base64.b64decode(item.b64_json)) for item in answer.data] == [(64, 36)] * 2
    assert [item.revised_prompt for item in answer.data] == ["revised: a red kite"] * 2
    (call,) = xai.requests
    assert call.path == "/v1/images/generations" and call.json == {
        "model": "grok-imagine-image", "prompt": "a red kite", "response_format": "b64_json", "n": 2,
        "aspect_ratio": "16:9", "quality": "high"}


def test_an_uploaded_image_becomes_a_json_edit_with_a_data_url(sdk, xai):
    answer = sdk.images.edit(model="grok-imagine-image", prompt="add a hat", image=("cat.png", io.BytesIO(PNG_BYTES)))
    assert len(answer.data) == 1
    (call,) = xai.requests
    assert call.path == "/v1/images/edits"
    assert call.json["image"] == {"url": "data:image/png;base64," + base64.b64encode(PNG_BYTES).decode()}


def test_a_blocked_picture_is_a_content_filter_choice(sdk, xai):
    completion = sdk.chat.completions.create(model="grok-imagine-image", modalities=["image", "text"],
                                             messages=[{"role": "user", "content": "something blocked"}])
    choice = completion.choices[0]
    assert choice.finish_reason == "content_filter" and "block_reason" in choice.message.content
