"""Read a validated chat-completions request as an image request (DESIGN §2)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterable, Iterator
from urllib.parse import urlsplit

from app.core.conversation import IMAGE_TOOL, text_of, turn_parts
from app.core.errors import InvalidRequest, PayloadTooLarge
from app.core.request import ImageRef, ImageRequest
from app.input_fetches import Budget
from app.media import decode_data_url

if TYPE_CHECKING:
    from app.config import Settings

HOW_TO_ASK = ('This gateway generates images: ask with "modalities": ["image", "text"] or with a tool '
              '{"type": "image_generation", "image_generation": {...}}')


@dataclass(frozen=True)
class ChatAsk:
    """An image request plus which answer shapes the client asked for."""

    request: ImageRequest
    want_content: bool
    want_tool: bool
    stream: bool = False
    include_usage: bool = False
    image_response_format: str = "b64_json"  # or "url" (DESIGN §8)
    download_budget: Budget | None = None


def check_message_count(payload: Any, limits: "Settings") -> None:
    """GATEWAY_MAX_MESSAGES, checked on the parsed body before the schema walks every message."""
    messages = payload.get("messages") if isinstance(payload, dict) else None
    if isinstance(messages, list) and len(messages) > limits.max_messages:
        raise InvalidRequest(f"At most {limits.max_messages} messages per request (GATEWAY_MAX_MESSAGES)",
                             param="messages", code="too_many_messages")


def read_chat_request(data: dict, limits: "Settings | None" = None) -> ChatAsk:
    """Decide whether the chat request asks for an image and build the neutral ImageRequest.

    `limits` (the settings) bounds input images (every image of the conversation), image bytes and
    prompt length; the number of messages was bounded before the schema (`check_message_count`).
    """
    want_content = "image" in (data.get("modalities") or [])
    tool_index, tool_params = _image_tool(data.get("tools") or [])
    want_tool = tool_index is not None
    if not want_content and not want_tool:
        raise InvalidRequest(HOW_TO_ASK, param="modalities")

    messages = data["messages"]
    index = _last_user_message(messages)
    content = messages[index].get("content")
    prompt = text_of(content)
    if not prompt.strip():
        raise InvalidRequest("The last user message has no text to use as the image prompt",
                             param=f"messages[{index}].content")
    check_prompt(prompt, limits, f"messages[{index}].content")
    mask_url = (tool_params.get("input_image_mask") or {}).get("image_url")
    budget = image_budget(_conversation_images(messages), limits,
                          mask=(f"tools[{tool_index}].{IMAGE_TOOL}.input_image_mask.image_url", mask_url))
    max_bytes = limits.max_image_bytes if limits is not None else None
    images = tuple(_input_images(content, index, max_bytes))
    mask = None
    if "input_image_mask" in tool_params:
        mask = _mask(tool_params["input_image_mask"], f"tools[{tool_index}].{IMAGE_TOOL}.input_image_mask",
                     max_bytes)
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
    return ChatAsk(request=request, want_content=want_content, want_tool=want_tool,
                   stream=bool(data.get("stream")),
                   include_usage=bool((data.get("stream_options") or {}).get("include_usage")),
                   image_response_format=data.get("image_response_format") or "b64_json",
                   download_budget=budget)


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


def check_prompt(prompt: str, limits, param: str) -> None:
    if limits is not None and len(prompt) > limits.max_prompt_chars:
        raise InvalidRequest(f"The prompt is longer than {limits.max_prompt_chars} characters "
                             "(GATEWAY_MAX_PROMPT_CHARS)", param=param, code="prompt_too_long")


def image_budget(images: Iterable[tuple[str, "str | int | None"]], limits, *,
                 mask: tuple[str, "str | int | None"] = ("", None)) -> Budget | None:
    """Count and size every image the request makes the gateway fetch or forward, before any work.

    `images` are (param, what) pairs, `what` being a URL (a data URL's decoded size is known from its
    length; an http(s) URL counts now and is sized when downloaded) or the size of an upload. The mask
    adds its bytes, not to the count. Returns what is left for downloads.
    """
    if limits is None:
        return None
    carried = 0
    for count, (param, what) in enumerate((*images, mask) if mask[1] is not None else images, start=1):
        if param != mask[0] and count > limits.max_input_images:
            raise InvalidRequest(f"At most {limits.max_input_images} input images per request, the whole "
                                 "conversation included (GATEWAY_MAX_INPUT_IMAGES)", param=param,
                                 code="too_many_images")
        size = what if isinstance(what, int) else _data_url_size(what)
        if size > limits.max_image_bytes:
            raise PayloadTooLarge(f"An input image is larger than {limits.max_image_bytes} bytes "
                                  "(GATEWAY_MAX_IMAGE_BYTES)", param=param, code="image_too_large")
        carried += size
        if carried > limits.max_total_image_bytes:
            raise PayloadTooLarge(f"The input images of this request are larger than {limits.max_total_image_bytes} "
                                  "bytes in all (GATEWAY_MAX_TOTAL_IMAGE_BYTES)", param=param,
                                  code="images_too_large")
    return Budget(left=limits.max_total_image_bytes - carried, per_image=limits.max_image_bytes,
                  limit=limits.max_total_image_bytes)


def _data_url_size(url: "str | None") -> int:
    """Decoded bytes of a data URL, from its length (0 for other URLs, which are sized when fetched)."""
    if not isinstance(url, str) or not url.startswith("data:"):
        return 0
    comma = url.find(",", 0, 256)
    return max(0, (len(url) - comma - 1) * 3 // 4 - 2) if comma >= 0 else 0


def _conversation_images(messages: list[dict]) -> Iterator[tuple[str, str]]:
    """(param, URL) of every image in the conversation, as providers sent the whole of it see them."""
    for index, message in enumerate(messages):
        for part, url_param in turn_parts(message, index):
            if part["type"] == "image_url":
                yield url_param, part["image_url"]["url"]


def _input_images(content, message_index: int, max_bytes: int | None):
    if not isinstance(content, list):
        return
    for part_index, part in enumerate(content):
        if part["type"] == "image_url":
            param = f"messages[{message_index}].content[{part_index}].image_url.url"
            yield image_ref(part["image_url"]["url"], param, max_bytes)


def _mask(mask: dict, param: str, max_bytes: int | None) -> ImageRef:
    if "file_id" in mask:
        raise InvalidRequest("input_image_mask.file_id is not supported: this gateway keeps no files; "
                             "send the mask as input_image_mask.image_url (a data URL)", param=param + ".file_id")
    return image_ref(mask["image_url"], param + ".image_url", max_bytes)


def image_ref(url: str, param: str, max_bytes: int | None = None) -> ImageRef:
    """Decode data URLs now (bad ones are the client's 400); http(s) URLs are fetched when needed."""
    if url.startswith("data:"):
        data, mime = decode_data_url(url, param=param, max_bytes=max_bytes)
        return ImageRef(url=url, param=param, data=data, mime=mime)
    try:
        parts = urlsplit(url)
        hostname, _ = parts.hostname, parts.port
    except ValueError:  # e.g. http://[::1/a.png, a port past 65535
        raise InvalidRequest("The image URL is malformed", param=param) from None
    if parts.scheme not in ("http", "https") or not hostname:
        raise InvalidRequest("Image URLs must be data: URLs or http(s) URLs", param=param)
    if parts.username is not None or parts.password is not None:
        raise InvalidRequest("Image URLs must not carry credentials", param=param)
    return ImageRef(url=url, param=param)
