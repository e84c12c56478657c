"""The answer shapes of DESIGN §3: content parts + images, tool_calls, both; one choice per image."""
import base64

from app import answers, jsonio
from app.core.result import GeneratedImage, ImageResult, Usage
from app.png import solid_png
from tests.support.images import JPEG_B64

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
