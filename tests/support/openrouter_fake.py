"""Default behaviour of a fake OpenRouter chat completions route: answers like the real one, with real PNGs.

The picture's shape follows `image_config`: 16 px on its short side at the aspect ratio asked for,
times 2 or 4 for the 2K and 4K tiers, so tests can read what was honoured from the PNG header.
"""
from __future__ import annotations

import base64
import hashlib
import secrets
import time

from tests.support.fake_upstream import Recorded, Reply
from tests.support.images import solid_png

SHORT_SIDE = 16
TIER_SCALE = {"1K": 1, "2K": 2, "4K": 4}
IMAGE_ONLY_VENDORS = ("black-forest-labs/", "bytedance-seed/", "sourceful/")
PROMPT_TOKENS_PER_IMAGE = 258
IMAGE_TOKENS = 1290


def error(status: int, message: str, **metadata) -> Reply:
    body = {"error": {"code": status, "message": message, **({"metadata": metadata} if metadata else {})}}
    return Reply(status, json=body)


def dimensions(image_config: dict) -> tuple[int, int]:
    width, height = (int(x) for x in image_config.get("aspect_ratio", "1:1").split(":"))
    scale = TIER_SCALE.get(image_config.get("image_size", "1K"), 1)
    if width >= height:
        return round(SHORT_SIDE * width / height) * scale, SHORT_SIDE * scale
    return SHORT_SIDE * scale, round(SHORT_SIDE * height / width) * scale


def png_data_url(body: dict) -> str:
    """A PNG whose colour comes from the conversation, so different prompts give different pictures."""
    digest = hashlib.sha256(repr(body.get("messages")).encode()).digest()
    png = solid_png(*dimensions(body.get("image_config") or {}), rgb=(digest[0], digest[1], digest[2]))
    return "data:image/png;base64," + base64.b64encode(png).decode()


def openrouter_chat(request: Recorded) -> Reply:
    """POST .../chat/completions (non-streaming), OpenRouter style: `message.images`, usage with cost."""
    if not request.path.endswith("/chat/completions"):
        return error(404, f"Not Found: {request.path}")
    if not request.headers.get("authorization", "").startswith("Bearer "):
        return error(401, "No auth credentials found")
    body = request.json
    modalities = body.get("modalities") or []
    model = body.get("model", "")
    if not body.get("messages"):
        return error(400, "Input required: specify \"messages\"")
    if "image" not in modalities:
        return error(400, "This model generates images: ask with modalities [\"image\"]")
    if "text" in modalities and model.startswith(IMAGE_ONLY_VENDORS):
        return error(404, "No endpoints found that support the requested output modalities: image, text")
    input_images = sum(1 for message in body["messages"] if isinstance(message.get("content"), list)
                       for part in message["content"] if part.get("type") == "image_url")
    prompt_tokens = 12 + PROMPT_TOKENS_PER_IMAGE * input_images
    image = {"type": "image_url", "image_url": {"url": png_data_url(body)}, "index": 0}
    return Reply(json={
        "id": f"gen-{int(time.time())}-{secrets.token_hex(6)}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "provider": "Google AI Studio",
        "system_fingerprint": None,
        "choices": [{
            "index": 0, "logprobs": None, "finish_reason": "stop", "native_finish_reason": "STOP",
            "message": {"role": "assistant", "content": None if "text" not in modalities else "Here is your image.",
                        "refusal": None, "reasoning": None, "images": [image]},
        }],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": IMAGE_TOKENS,
                  "total_tokens": prompt_tokens + IMAGE_TOKENS, "cost": 0.039, "is_byok": False,
                  "prompt_tokens_details": {"cached_tokens": 0},
                  "completion_tokens_details": {"reasoning_tokens": 0, "image_tokens": IMAGE_TOKENS}},
    })
