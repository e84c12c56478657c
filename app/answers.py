"""Rebuild provider results as OpenAI-shaped answers: chat completions (DESIGN §3) and ImagesResponse."""
from __future__ import annotations

import secrets
import time

from app.core.result import GeneratedImage, ImageResult, Usage
from app.jsonio import Raw
from app.media import FORMAT_OF_MIME, image_size_b64


def new_id(prefix: str) -> str:
    """Unique ids with a random suffix (ids built from a timestamp collide within a second)."""
    return f"{prefix}{secrets.token_urlsafe(18).replace('-', 'x').replace('_', 'y')}"


def chat_completion(result: ImageResult, *, model: str, want_content: bool, want_tool: bool,
                    tool_params: dict | None = None) -> dict:
    """One choice per image; content parts + `images` and/or `tool_calls`, as the client asked."""
    tool_params = tool_params or {}
    choices = []
    if result.images:
        for index, image in enumerate(result.images):
            message = {"role": "assistant", **_message_fields(image, want_content, want_tool, tool_params, result)}
            choices.append({"index": index, "message": message, "finish_reason": result.finish_reason,
                            "logprobs": None})
    else:
        # the provider made no picture (a safety block, a refusal): say so in one choice
        message = {"role": "assistant", "content": result.text or None}
        if want_content:
            message["images"] = []
        choices.append({"index": 0, "message": message, "finish_reason": result.finish_reason, "logprobs": None})
    return {
        "id": new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": result.usage.to_dict(),
    }


def image_delta(image: GeneratedImage, want_content: bool, want_tool: bool, tool_params: dict,
                result: ImageResult) -> dict:
    """The streamed delta carrying one finished image, in the non-streaming answer's shapes."""
    delta = {}
    if want_content:
        part = _image_part(image)
        delta["content"] = [part]
        delta["images"] = [part]
    if want_tool:
        delta["tool_calls"] = [{"index": 0, **_tool_call(image, tool_params, result)}]
    return delta


def _message_fields(image: GeneratedImage, want_content: bool, want_tool: bool, tool_params: dict,
                    result: ImageResult) -> dict:
    fields: dict = {}
    if want_content:
        part = _image_part(image)
        content = [{"type": "text", "text": image.text}] if image.text else []
        content.append(part)
        fields["content"] = content
        fields["images"] = [part]
    else:
        fields["content"] = image.text or None
    if want_tool:
        fields["tool_calls"] = [_tool_call(image, tool_params, result)]
    return fields


def _image_part(image: GeneratedImage) -> dict:
    # one Raw value shared by `content` and `images`: the data URL is never built as a string
    return {"type": "image_url", "image_url": {"url": Raw("data:", image.mime, ";base64,", image.b64)}}


def _tool_call(image: GeneratedImage, tool_params: dict, result: ImageResult) -> dict:
    details = {"status": "completed", "result": Raw(image.b64), **tool_details(image, tool_params, result)}
    return {"id": new_id("ig_"), "type": "image_generation", "image_generation": details}


def tool_details(image: GeneratedImage, requested: dict, result: ImageResult) -> dict:
    """Format and size read from the picture; quality and background as the provider (or caller) said."""
    size = image_size_b64(image.b64)
    details = {
        "output_format": FORMAT_OF_MIME.get(image.mime),
        "size": f"{size[0]}x{size[1]}" if size else None,
        "quality": result.quality or _asked(requested.get("quality")),
        "background": result.background or _asked(requested.get("background")),
        "revised_prompt": image.revised_prompt,
    }
    return {k: v for k, v in details.items() if v is not None}


def _asked(value: str | None) -> str | None:
    """A requested value is worth echoing only when it says something ('auto' does not)."""
    return None if value in (None, "auto") else value


def images_response(result: ImageResult, requested: dict) -> dict:
    """OpenAI's ImagesResponse: `data[].b64_json`, the picture's format/size, usage in Images terms."""
    answer: dict = {"created": int(time.time()), "data": []}
    for image in result.images:
        item = {"b64_json": Raw(image.b64)}
        if image.revised_prompt:
            item["revised_prompt"] = image.revised_prompt
        answer["data"].append(item)
    if result.images:
        details = tool_details(result.images[0], requested, result)
        answer.update({k: details[k] for k in ("background", "output_format", "quality", "size") if k in details})
    answer["usage"] = images_usage(result.usage)
    return answer


def images_usage(usage: Usage) -> dict:
    """Chat-terms usage back in the Images API's input/output token terms."""
    return usage.to_dict(prompt="input", completion="output")
