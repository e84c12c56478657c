"""The answer shapes of DESIGN §3: content parts + images, tool_calls, both; one choice per image."""
import base64

import pytest

from app import answers, jsonio
from app.core.result import GeneratedImage, ImageResult, Usage
from tests.support.images import JPEG_B64, solid_png

PNG = base64.b64encode(solid_png(40, 30)).decode()


def chat_completion(*args, **kwargs):
    """The answer as a client reads it: through the gateway's own JSON writer, pieces joined."""
    parts, length = jsonio.pieces(answers.chat_completion(*args, **kwargs))
    body = b"".join(jsonio.iter_bytes(parts))
    assert len(body) == length
    return jsonio.loads(body)


def result(*images, **kwargs):
    return ImageResult(images=list(images), usage=Usage(10, 20, 30), **kwargs).attach_text()


def test_modalities_form_has_text_and_image_parts_and_images_field():
    answer = chat_completion(result(GeneratedImage(PNG, "image/png"), text="Here it is."), model="m",
                             want_content=True, want_tool=False)
    assert answer["object"] == "chat.completion" and answer["model"] == "m"
    assert answer["id"].startswith("chatcmpl-")
    (choice,) = answer["choices"]
    assert choice["finish_reason"] == "stop"
    message = choice["message"]
    part = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + PNG}}
    assert message["content"] == [{"type": "text", "text": "Here it is."}, part]
    assert message["images"] == [part]
    assert "tool_calls" not in message
    assert answer["usage"] == {"prompt_tokens": 10, "completion_tokens": 20, "total_tokens": 30}


def test_no_text_part_when_the_provider_said_nothing():
    answer = chat_completion(result(GeneratedImage(PNG, "image/png")), model="m", want_content=True,
                             want_tool=False)
    assert [p["type"] for p in answer["choices"][0]["message"]["content"]] == ["image_url"]


def test_one_choice_per_image_in_order():
    images = [GeneratedImage(PNG, "image/png"), GeneratedImage(JPEG_B64, "image/jpeg")]
    answer = chat_completion(result(*images), model="m", want_content=True, want_tool=False)
    assert [c["index"] for c in answer["choices"]] == [0, 1]
    assert answer["choices"][1]["message"]["images"][0]["image_url"]["url"].startswith("data:image/jpeg;base64,/9j/")


def test_tool_form_gives_image_generation_tool_calls_with_real_format_and_size():
    image = GeneratedImage(PNG, "image/png", revised_prompt="a finer fox")
    answer = chat_completion(result(image, quality="medium"), model="m", want_content=False, want_tool=True,
                             tool_params={"background": "opaque", "quality": "high", "size": "1024x1024"})
    message = answer["choices"][0]["message"]
    assert message["content"] is None
    assert "images" not in message
    (call,) = message["tool_calls"]
    assert call["id"].startswith("ig_") and call["type"] == "image_generation"
    assert call["image_generation"] == {"status": "completed", "result": PNG, "output_format": "png",
                                        "size": "40x30", "quality": "medium", "background": "opaque",
                                        "revised_prompt": "a finer fox"}


def test_tool_form_leaves_out_keys_with_no_value():
    answer = chat_completion(result(GeneratedImage(JPEG_B64, "image/jpeg")), model="m", want_content=False,
                             want_tool=True, tool_params={"quality": "auto"})
    details = answer["choices"][0]["message"]["tool_calls"][0]["image_generation"]
    assert set(details) == {"status", "result", "output_format", "size"}
    assert details["output_format"] == "jpeg" and details["size"] == "1x1"


def test_both_forms_when_both_were_asked():
    answer = chat_completion(result(GeneratedImage(PNG, "image/png"), text="ok"), model="m", want_content=True,
                             want_tool=True)
    message = answer["choices"][0]["message"]
    assert message["images"] and message["tool_calls"] and message["content"][0] == {"type": "text", "text": "ok"}


def test_no_image_is_one_choice_with_the_providers_finish_reason():
    answer = chat_completion(result(text="I can't draw that.", finish_reason="content_filter"), model="m",
                             want_content=True, want_tool=False)
    (choice,) = answer["choices"]
    assert choice["finish_reason"] == "content_filter"
    assert choice["message"] == {"role": "assistant", "content": "I can't draw that.", "images": []}


def test_ids_are_unique():
    ids = {chat_completion(result(GeneratedImage(PNG, "image/png")), model="m", want_content=False,
                           want_tool=True)["choices"][0]["message"]["tool_calls"][0]["id"] for _ in range(200)}
    assert len(ids) == 200


# -- the Images API answer: what OpenAI's own types require, whatever the provider ----------------

def images_answer(result_, requested=None):
    parts, _ = jsonio.pieces(answers.images_response(result_, requested or {}))
    return jsonio.loads(b"".join(jsonio.iter_bytes(parts)))


@pytest.mark.parametrize("usage, expected", [
    # OpenAI's own split is kept as it came
    (Usage(21, 1056, 1077, prompt_details={"text_tokens": 15, "image_tokens": 6},
           completion_details={"image_tokens": 1000, "text_tokens": 56}),
     {"input_tokens": 21, "output_tokens": 1056, "total_tokens": 1077,
      "input_tokens_details": {"text_tokens": 15, "image_tokens": 6},
      "output_tokens_details": {"image_tokens": 1000, "text_tokens": 56}}),
    # no split (Ark, the local provider): every input token is text; no output split is invented
    (Usage(0, 4096, 4096, extra={"generated_images": 1}),
     {"input_tokens": 0, "output_tokens": 4096, "total_tokens": 4096, "generated_images": 1,
      "input_tokens_details": {"text_tokens": 0, "image_tokens": 0}}),
    (Usage(30, 0, 30), {"input_tokens": 30, "output_tokens": 0, "total_tokens": 30,
                        "input_tokens_details": {"text_tokens": 30, "image_tokens": 0}}),
    # one side known (Gemini's modalities): the other is the rest
    (Usage(270, 1301, 1571, prompt_details={"image_tokens": 258}, completion_details={"image_tokens": 1290}),
     {"input_tokens": 270, "output_tokens": 1301, "total_tokens": 1571,
      "input_tokens_details": {"image_tokens": 258, "text_tokens": 12},
      "output_tokens_details": {"image_tokens": 1290, "text_tokens": 11}}),
    (Usage(12, 40, 52, prompt_details={"text_tokens": 12, "cached_tokens": 4}),
     {"input_tokens": 12, "output_tokens": 40, "total_tokens": 52,
      "input_tokens_details": {"text_tokens": 12, "cached_tokens": 4, "image_tokens": 0}}),
])
def test_images_usage_always_has_input_details_and_output_details_when_known(usage, expected):
    assert answers.images_usage(usage) == expected


def test_images_answer_names_qualities_as_the_images_api_does():
    image = GeneratedImage(PNG, "image/png")
    assert images_answer(ImageResult(images=[image]), {"quality": "hd"})["quality"] == "high"
    assert images_answer(ImageResult(images=[image]), {"quality": "standard"})["quality"] == "medium"
    assert images_answer(ImageResult(images=[image], quality="low"), {"quality": "hd"})["quality"] == "low"
    assert "quality" not in images_answer(ImageResult(images=[image]), {"quality": "auto"})
    answer = images_answer(ImageResult(images=[image], background="opaque"), {})
    assert (answer["size"], answer["output_format"], answer["background"]) == ("40x30", "png", "opaque")
