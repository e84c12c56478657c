"""Reading a chat conversation's turns, for providers that are sent the whole conversation (OpenRouter, Gemini).

The chat request parser (app/chat_request.py) decides what a request asks for; this module only
walks messages it has already validated, so providers need nothing from the parser.
"""
from __future__ import annotations

from typing import Any, Iterator

IMAGE_TOOL = "image_generation"  # the tool type (and its parameters' key) that asks for pictures


def text_of(content: Any) -> str:
    """A message's text: the string itself, or its text parts joined by newlines (image parts left out)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(part["text"] for part in content if part["type"] == "text" and part["text"])


def turn_parts(message: dict, index: int) -> Iterator[tuple[dict, str | None]]:
    """A turn's text and image parts, each image with the dotted path of its URL in the client's body
    (text parts: None).

    An assistant turn's pictures come from the first place that holds any: its content parts, its
    `images` (OpenRouter's convention), or the pictures of its `image_generation` tool calls (their
    base64 `result` turned into data URL parts, or their `url` when the answer carried links). Our own
    answers carry one picture in several of these places, so a client that sends an answer back
    unchanged shows the model each picture once.
    """
    content = message.get("content")
    if isinstance(content, str):
        if content:
            yield {"type": "text", "text": content}, None
        content = []
    for part_index, part in enumerate(content or []):
        url_param = f"messages[{index}].content[{part_index}].image_url.url" if part["type"] == "image_url" else None
        yield part, url_param
    if message["role"] != "assistant" or any(part["type"] == "image_url" for part in content or []):
        return
    if message.get("images"):
        for image_index, part in enumerate(message["images"]):
            yield part, f"messages[{index}].images[{image_index}].image_url.url"
        return
    for picture in message.get("tool_calls") or []:
        field = "result" if "result" in picture else "url"  # base64, or a link to the picture
        url = "data:image/png;base64," + picture["result"] if field == "result" else picture["url"]
        param = f"messages[{index}].tool_calls[{picture['index']}].{IMAGE_TOOL}.{field}"
        yield {"type": "image_url", "image_url": {"url": url}}, param
