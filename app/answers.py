"""Rebuild provider results as OpenAI-shaped answers: chat completions (DESIGN §3, §10) and ImagesResponse."""
from __future__ import annotations

import secrets
import time

from app.answer_options import AnswerOptions
from app.core.result import GeneratedImage, ImageResult, Usage
from app.jsonio import Raw
from app.media import FORMAT_OF_MIME, image_size_b64

DEFAULT_OPTIONS = AnswerOptions()
# the Images API names only these qualities; the gateway's own aliases are mapped as it maps them upstream
IMAGES_QUALITIES = {"low": "low", "medium": "medium", "high": "high", "xhigh": "xhigh", "max": "max",
                    "hd": "high", "standard": "medium"}


def new_id(prefix: str) -> str:
    """Unique ids with a random suffix (ids built from a timestamp collide within a second)."""
    return f"{prefix}{secrets.token_urlsafe(18).replace('-', 'x').replace('_', 'y')}"


def chat_completion(result: ImageResult, *, model: str, want_content: bool, want_tool: bool,
                    tool_params: dict | None = None, options: AnswerOptions = DEFAULT_OPTIONS) -> dict:
    """One choice per image, in the request's answer style (DESIGN §3 `parts`, §10 `openrouter`)."""
    tool_params = tool_params or {}
    choices = []
    if result.images:
        for index, image in enumerate(result.images):
            if options.content_parts:
                fields = _message_fields(image, want_content, want_tool, tool_params, result)
            else:
                fields = {"content": image.text or "", "images": [_listed_image(image, 0)]}
            choices.append({"index": index, "message": {"role": "assistant", **fields},
                            "finish_reason": result.finish_reason, "logprobs": None})
    else:
        # the provider made no picture (a safety block, a refusal): say so in one choice
        if options.content_parts:
            message = {"role": "assistant", "content": result.text or None}
            if want_content:
                message["images"] = []
        else:
            message = {"role": "assistant", "content": result.text or "", "images": []}
        choices.append({"index": 0, "message": message, "finish_reason": result.finish_reason, "logprobs": None})
    return {
        "id": new_id("chatcmpl-"),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
        "usage": chat_usage(result.usage, options),
    }


def image_delta(image: GeneratedImage, want_content: bool, want_tool: bool, tool_params: dict,
                result: ImageResult, options: AnswerOptions = DEFAULT_OPTIONS) -> dict:
    """The streamed delta carrying one finished image, in the non-streaming answer's shapes.

    In the `openrouter` style the picture travels in `images` alone: stream accumulators that
    concatenate `content` (openai-node's helpers, LiteLLM's chunk builder) only ever see strings.
    """
    if not options.content_parts:
        return {"images": [_listed_image(image, 0)]}
    delta = {}
    if want_content:
        part = _image_part(image)
        delta["content"] = [part]
        delta["images"] = [part]
    if want_tool:
        delta["tool_calls"] = [{"index": 0, **_tool_call(image, tool_params, result)}]
    return delta


def chat_usage(usage: Usage, options: AnswerOptions = DEFAULT_OPTIONS) -> dict:
    """Chat usage. In the `openrouter` style it has OpenRouter's types: a details object carries the
    count OpenRouter's own SDKs require in it (`cached_tokens`, `reasoning_tokens`; 0 when the
    provider gave none), and a field with no value (an unknown `cost`) is left out, not null."""
    out = usage.to_dict()
    if options.content_parts:
        return out
    out = {key: value for key, value in out.items() if value is not None}
    if "prompt_tokens_details" in out:
        out["prompt_tokens_details"].setdefault("cached_tokens", 0)
    if "completion_tokens_details" in out:
        out["completion_tokens_details"].setdefault("reasoning_tokens", 0)
    return out


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
    url = image.url or Raw("data:", image.mime, ";base64,", image.b64)
    return {"type": "image_url", "image_url": {"url": url}}


def picture(image: GeneratedImage, inline_key: str) -> dict:
    """The picture's field: its link when it was stored (DESIGN §8), else its base64 under `inline_key`."""
    return {"url": image.url} if image.url else {inline_key: Raw(image.b64)}


def _listed_image(image: GeneratedImage, index: int) -> dict:
    """An `images` entry as OpenRouter writes it, with its position (LiteLLM's type requires `index`)."""
    return {**_image_part(image), "index": index}


def _tool_call(image: GeneratedImage, tool_params: dict, result: ImageResult) -> dict:
    details = {"status": "completed", **picture(image, "result"), **tool_details(image, tool_params, result)}
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


def images_response(result: ImageResult, requested: dict, options: AnswerOptions = DEFAULT_OPTIONS) -> dict:
    """OpenAI's ImagesResponse: `data[].b64_json`, the picture's format/size, usage in Images terms."""
    answer: dict = {"created": int(time.time()), "data": []}
    for image in result.images:
        item = picture(image, "b64_json")
        if image.revised_prompt:
            item["revised_prompt"] = image.revised_prompt
        answer["data"].append(item)
    if result.images:
        answer.update(images_details(result.images[0], requested, result))
    answer["usage"] = images_usage(result.usage)
    return answer


def images_details(image: GeneratedImage, requested: dict, result: ImageResult) -> dict:
    """`background`, `output_format`, `quality`, `size` in the Images API's own vocabulary.

    Clients validate these against OpenAI's enums (LiteLLM refuses an edit answer whose quality
    is `hd`), so the gateway's quality aliases are named as the API names them.
    """
    details = tool_details(image, requested, result)
    out = {key: details[key] for key in ("background", "output_format", "size") if key in details}
    quality = IMAGES_QUALITIES.get(details.get("quality", ""))
    if quality:
        out["quality"] = quality
    return out


def images_usage(usage: Usage) -> dict:
    """Usage in the Images API's terms, with the details OpenAI's type requires, whatever the provider.

    `input_tokens_details` is always there: the provider's text/image split, else every input
    token counted as text. `output_tokens_details` is there when the provider split its output
    (one of image/text known: the other is the rest of `output_tokens`).
    """
    out = usage.to_dict(prompt="input", completion="output")
    _complete_split(out.setdefault("input_tokens_details", {}), out["input_tokens"])
    outputs = out.get("output_tokens_details")
    if outputs is not None and ("image_tokens" in outputs or "text_tokens" in outputs):
        _complete_split(outputs, out["output_tokens"])
    return out


def _complete_split(details: dict, total: int) -> None:
    """`image_tokens` + `text_tokens` make `total`: the missing one is the rest (all text when neither is known)."""
    if "image_tokens" not in details:
        details["image_tokens"] = max(total - details["text_tokens"], 0) if "text_tokens" in details else 0
    details.setdefault("text_tokens", max(total - details["image_tokens"], 0))
