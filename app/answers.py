"""Rebuild provider results as OpenAI-shaped answers (DESIGN §3)."""
from __future__ import annotations

import secrets
import time

from app.generation import GeneratedImage, ImageResult
from app.media import FORMAT_OF_MIME, image_size_b64, to_data_url


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
            message = _message(image.text, image, want_content, want_tool, tool_params, result)
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


def _message(text: str | None, image: GeneratedImage, want_content: bool, want_tool: bool,
             tool_params: dict, result: ImageResult) -> dict:
    message: dict = {"role": "assistant"}
    if want_content:
        part = {"type": "image_url", "image_url": {"url": to_data_url(image.b64, image.mime)}}
        content = [{"type": "text", "text": text}] if text else []
        content.append(part)
        message["content"] = content
        message["images"] = [part]
    else:
        message["content"] = text or None
    if want_tool:
        message["tool_calls"] = [_tool_call(image, tool_params, result)]
    return message


def _tool_call(image: GeneratedImage, tool_params: dict, result: ImageResult) -> dict:
    size = image_size_b64(image.b64)
    details = {
        "status": "completed",
        "result": image.b64,
        "output_format": FORMAT_OF_MIME.get(image.mime),
        "size": f"{size[0]}x{size[1]}" if size else None,
        "quality": result.quality or _asked(tool_params.get("quality")),
        "background": result.background or _asked(tool_params.get("background")),
        "revised_prompt": image.revised_prompt,
    }
    return {"id": new_id("ig_"), "type": "image_generation",
            "image_generation": {k: v for k, v in details.items() if v is not None}}


def _asked(value: str | None) -> str | None:
    """A requested value is worth echoing only when it says something ('auto' does not)."""
    return None if value in (None, "auto") else value
