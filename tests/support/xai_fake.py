"""Default behaviour of a fake xAI image API: /images/generations and /images/edits as Grok Imagine answers them.

It checks what xAI checks and the gateway must get right: a bearer key, a prompt, `aspect_ratio`,
`resolution` (`1k`/`2k`, lower case), `quality` and `n` from their lists, and for edits 1-3 source
images as `image: {url}` or `images: [{url}]` (data or http URLs), never both. The picture has the
asked aspect ratio, its long side 1/16 of the resolution (1k: 64 pixels). `response_format: "url"`
(xAI's default) answers with a link to `/results/<n>.png` on this server. A prompt containing
"blocked" comes back with a `block_reason` and no picture.
"""
from __future__ import annotations

import base64
import itertools

from tests.support.fake_upstream import Recorded, Reply
from tests.support.images import solid_png

RATIOS = ("1:1", "3:4", "4:3", "9:16", "16:9", "2:3", "3:2", "9:19.5", "19.5:9", "9:20", "20:9", "1:2", "2:1", "auto")
LONG_SIDE = {"1k": 64, "2k": 128}
RESULTS = "/results/"
_counter = itertools.count(1)
_pictures: dict[str, bytes] = {}


def xai_error(status: int, message: str) -> Reply:
    return Reply(status, json={"code": "Client specified an invalid argument", "error": message})


def xai_images(request: Recorded) -> Reply:
    if request.method == "GET" and request.path.startswith(RESULTS):
        return Reply(body=_pictures.get(request.path, b""), headers={"Content-Type": "image/png"})
    if not request.headers.get("authorization", "").startswith("Bearer "):
        return xai_error(401, "No API key provided")
    edit = request.path.endswith("/images/edits")
    if request.method != "POST" or not (edit or request.path.endswith("/images/generations")):
        return xai_error(404, f"Unknown path {request.path}")
    body = request.json
    problem = _problem(body, edit)
    if problem:
        return xai_error(400, problem)
    if "blocked" in body["prompt"]:
        return Reply(json={"block_reason": "The generated image was flagged by content moderation", "data": []})
    picture = _picture(body.get("aspect_ratio") or "1:1", body.get("resolution") or "1k")
    items = []
    for _ in range(body.get("n", 1)):
        if body.get("response_format") == "b64_json":
            items.append({"b64_json": base64.b64encode(picture).decode(), "mime_type": "image/png"})
        else:
            path = f"{RESULTS}{next(_counter)}.png"
            _pictures[path] = picture
            items.append({"url": f"http://{request.headers['host']}{path}", "mime_type": "image/png"})
        items[-1]["revised_prompt"] = "revised: " + body["prompt"]
    return Reply(json={"data": items, "usage": {"cost_in_usd_ticks": 200000000 * len(items)}})


def _problem(body: dict, edit: bool) -> str | None:
    if not isinstance(body.get("prompt"), str) or not body["prompt"]:
        return "prompt is required"
    for field, allowed in (("aspect_ratio", RATIOS), ("resolution", tuple(LONG_SIDE)),
                           ("quality", ("low", "medium", "high")), ("response_format", ("url", "b64_json"))):
        if field in body and body[field] not in allowed:
            return f"Invalid {field}: {body[field]!r}"
    if not isinstance(body.get("n", 1), int) or not 1 <= body.get("n", 1) <= 10:
        return "n must be between 1 and 10"
    if "size" in body or "style" in body:
        return "size and style are not supported"
    sources = ([body["image"]] if "image" in body else []) + list(body.get("images") or [])
    if not edit:
        return "image inputs go to /images/edits" if sources else None
    if "image" in body and "images" in body:
        return "image and images are mutually exclusive"
    if not 1 <= len(sources) <= 3 or not all(isinstance(s, dict) and str(s.get("url", "")).startswith(
            ("http://", "https://", "data:image/")) for s in sources):
        return "edits take 1 to 3 images, each {\"url\": ...}"
    return None


def _picture(ratio: str, resolution: str) -> bytes:
    width, height = (1, 1) if ratio == "auto" else (float(side) for side in ratio.split(":"))
    long_side = LONG_SIDE[resolution]
    scale = long_side / max(width, height)
    return solid_png(max(1, round(width * scale)), max(1, round(height * scale)), (30, 160, 90))
