"""Default behaviour of a fake OpenAI Images API: answers like the real one, with real PNG bytes."""
from __future__ import annotations

import base64
import time

from app.png import solid_png
from tests.support.fake_upstream import Recorded, Reply


def image_b64(index: int = 0, width: int = 16, height: int = 16) -> str:
    return base64.b64encode(solid_png(width, height, (10 * index % 256, 120, 200))).decode()


def openai_images(request: Recorded) -> Reply:
    """/images/generations (JSON) and /images/edits (multipart), GPT-image style answer."""
    if request.path.endswith("/images/generations"):
        fields = request.json
    elif request.path.endswith("/images/edits"):
        fields = request.fields()
    else:
        return Reply(404, json={"error": {"message": f"Unknown path {request.path}", "type": "invalid_request_error",
                                          "param": None, "code": None}})
    n = int(fields.get("n", 1))
    size = fields.get("size", "1024x1024")
    width, height = (16, 16) if size in (None, "auto") or "x" not in size else (
        int(size.split("x")[0]) // 64, int(size.split("x")[1]) // 64)
    answer = {
        "created": int(time.time()),
        "data": [{"b64_json": image_b64(i, width, height)} for i in range(n)],
        "usage": {"input_tokens": 12, "output_tokens": 272 * n, "total_tokens": 12 + 272 * n,
                  "input_tokens_details": {"text_tokens": 12, "image_tokens": 0}},
    }
    if str(fields.get("model", "")).startswith("gpt-image"):
        answer.update({"background": fields.get("background", "opaque"), "quality": fields.get("quality", "medium"),
                       "output_format": fields.get("output_format", "png"), "size": size})
    else:
        answer["data"] = [{**item, "revised_prompt": "revised: " + fields["prompt"]} for item in answer["data"]]
        answer.pop("usage")
    return Reply(json=answer)
