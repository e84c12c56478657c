"""Default behaviour of a fake OpenAI Images API: answers like the real one, with real PNG bytes."""
from __future__ import annotations

import base64
import json
import time

from tests.support.fake_upstream import Recorded, Reply
from tests.support.images import solid_png


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
    if fields.get("stream") in (True, "true"):
        return image_stream(request, fields)
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


def sse_event(kind: str, data: dict) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode()


def image_stream(request: Recorded, fields: dict) -> Reply:
    """OpenAI's streaming Images API: `partial_images` preview events, then one completed event."""
    prefix = "image_edit" if request.path.endswith("/images/edits") else "image_generation"
    common = {"background": "opaque", "output_format": "png", "quality": "low", "size": "1024x1024",
              "created_at": int(time.time())}
    body = b"".join(sse_event(f"{prefix}.partial_image", {**common, "partial_image_index": i,
                                                          "b64_json": image_b64(100 + i)})
                    for i in range(int(fields.get("partial_images", 0))))
    body += sse_event(f"{prefix}.completed", {**common, "b64_json": image_b64(0), "usage": {
        "input_tokens": 9, "output_tokens": 272, "total_tokens": 281,
        "input_tokens_details": {"text_tokens": 9, "image_tokens": 0}}})
    return Reply(body=body, headers={"Content-Type": "text/event-stream"}, action="chunked")
