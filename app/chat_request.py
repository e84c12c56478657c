"""Read a validated chat-completions request as an image request (DESIGN §2)."""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from app.errors import InvalidRequest
from app.generation import ImageRef, ImageRequest
from app.media import decode_data_url
from app.schemas import IMAGE_TOOL

HOW_TO_ASK = ('This gateway generates images: ask with "modalities": ["image", "text"] or with a tool '
              '{"type": "image_generation", "image_generation": {...}}')


@dataclass(frozen=True)
class ChatAsk:
    """An image request plus which answer shapes the client asked for."""

    request: ImageRequest
    want_content: bool
    want_tool: bool
    tool_params: dict
    stream: bool = False
    include_usage: bool = False


def read_chat_request(data: dict) -> ChatAsk:
    """Decide whether the chat request asks for an image and build the neutral ImageRequest."""
    want_content = "image" in (data.get("modalities") or [])
    tool_index, tool_params = _image_tool(data.get("tools") or [])
    want_tool = tool_index is not None
    if not want_content and not want_tool:
        raise InvalidRequest(HOW_TO_ASK, param="modalities")

    messages = data["messages"]
    index = _last_user_message(messages)
    content = messages[index].get("content")
    prompt = _prompt(content)
    if not prompt.strip():
        raise InvalidRequest("The last user message has no text to use as the image prompt",
                             param=f"messages[{index}].content")
    images = tuple(_input_images(content, index))
    mask = None
    if "input_image_mask" in tool_params:
        mask = _mask(tool_params["input_image_mask"], f"tools[{tool_index}].{IMAGE_TOOL}.input_image_mask")
    params = {k: v for k, v in tool_params.items() if k != "input_image_mask"}
    request = ImageRequest(
        model=data["model"],
        prompt=prompt,
        n=data.get("n", 1),
        params=params,
        images=images,
        mask=mask,
        messages=tuple(messages),
        user=data.get("user"),
        param_prefix=f"tools[{tool_index}].{IMAGE_TOOL}." if want_tool else "",
        prompt_param=f"messages[{index}].content",
    )
    return ChatAsk(request=request, want_content=want_content, want_tool=want_tool, tool_params=tool_params,
                   stream=bool(data.get("stream")),
                   include_usage=bool((data.get("stream_options") or {}).get("include_usage")))


def _image_tool(tools: list[dict]) -> tuple[int | None, dict]:
    for index, tool in enumerate(tools):
        if tool.get("type") == IMAGE_TOOL:
            return index, dict(tool.get(IMAGE_TOOL) or {})
    return None, {}


def _last_user_message(messages: list[dict]) -> int:
    for index in range(len(messages) - 1, -1, -1):
        if messages[index]["role"] == "user":
            return index
    raise InvalidRequest("The conversation has no user message to take the image prompt from",
                         param="messages")


def _prompt(content) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(part["text"] for part in content if part["type"] == "text" and part["text"])


def _input_images(content, message_index: int):
    if not isinstance(content, list):
        return
    for part_index, part in enumerate(content):
        if part["type"] == "image_url":
            param = f"messages[{message_index}].content[{part_index}].image_url.url"
            yield image_ref(part["image_url"]["url"], param)


def _mask(mask: dict, param: str) -> ImageRef:
    if "file_id" in mask:
        raise InvalidRequest("input_image_mask.file_id is not supported: this gateway keeps no files; "
                             "send the mask as input_image_mask.image_url (a data URL)", param=param + ".file_id")
    return image_ref(mask["image_url"], param + ".image_url")


def image_ref(url: str, param: str) -> ImageRef:
    """Decode data URLs now (bad ones are the client's 400); http(s) URLs are fetched when needed."""
    if url.startswith("data:"):
        data, mime = decode_data_url(url, param=param)
        return ImageRef(url=url, param=param, data=data, mime=mime)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest("Image URLs must be data: URLs or http(s) URLs", param=param)
    if parts.username is not None or parts.password is not None:
        raise InvalidRequest("Image URLs must not carry credentials", param=param)
    return ImageRef(url=url, param=param)
