"""Default behaviour of a fake Volcengine Ark: answers /images/generations like Seedream does (§C), JPEG bytes.

It checks what the real service checks and the gateway must get right: a bearer key, `model` and
`prompt`, the `image` field (string or list; data URLs with a lower-case type; none for 3.0 t2i,
exactly one for SeedEdit), and the size rules of each family — so a size the gateway failed to map
comes back as Ark's own 400 `InvalidParameter`. `response_format: "url"` (Ark's default) answers with
a link to `/results/<n>.jpeg` on this same server, which it also serves.
"""
from __future__ import annotations

import base64
import itertools
import re
import time

from tests.support.fake_upstream import Recorded, Reply
from tests.support.images import JPEG_B64, JPEG_BYTES

RESULTS = "/results/"
_counter = itertools.count(1)
_TIERS = {"1K": (1024, 1024), "2K": (2048, 2048), "4K": (4096, 4096)}
_DATA_URL = re.compile(r"^data:image/[a-z]+;base64,[A-Za-z0-9+/=]+$")


def ark_error(status: int, code: str, message: str, param: str = "", kind: str = "BadRequest") -> Reply:
    return Reply(status, json={"error": {"code": code, "message": f"{message} Request id: 021fake",
                                         "param": param, "type": kind}})


def ark_images(request: Recorded) -> Reply:
    if request.method == "GET" and RESULTS in request.path:
        return Reply(body=JPEG_BYTES, headers={"Content-Type": "image/jpeg"})
    if request.method != "POST" or not request.path.endswith("/images/generations"):
        return ark_error(404, "InvalidEndpointOrModel.NotFound", f"Unknown path {request.path}.", kind="NotFound")
    if not request.headers.get("authorization", "").startswith("Bearer "):
        return ark_error(401, "AuthenticationError", "The API key is missing.", kind="Unauthorized")
    body = request.json
    for field in ("model", "prompt"):
        if not body.get(field):
            return ark_error(400, "MissingParameter", f"The request is missing `{field}`.", field)
    model = body["model"]
    problem = _image_problem(model, body.get("image"))
    if problem:
        return ark_error(400, "InvalidParameter", problem, "image")
    size = _output_size(model, body.get("size"))
    if size is None:
        return ark_error(400, "InvalidParameter", f"The parameter `size` ({body.get('size')}) is not valid.", "size")
    count = 1
    if body.get("sequential_image_generation") == "auto":
        count = int((body.get("sequential_image_generation_options") or {}).get("max_images", 15))
    width, height = size
    if body.get("response_format") == "b64_json":
        data = [{"b64_json": JPEG_B64, "size": f"{width}x{height}"} for _ in range(count)]
    else:
        host = request.headers["host"]
        data = [{"url": f"http://{host}{RESULTS}{next(_counter)}.jpeg", "size": f"{width}x{height}"}
                for _ in range(count)]
    tokens = width * height // 256 * count
    return Reply(json={"model": model, "created": int(time.time()), "data": data,
                       "usage": {"generated_images": count, "output_tokens": tokens, "total_tokens": tokens}})


def _image_problem(model: str, image) -> str | None:
    images = [] if image is None else [image] if isinstance(image, str) else image
    if not isinstance(images, list) or not all(isinstance(i, str) for i in images):
        return "`image` must be a string or a list of strings."
    if "seedream-3-0-t2i" in model and images:
        return "This model does not take input images."
    if "seededit" in model and not isinstance(image, str):
        return "SeedEdit takes exactly one input image, as a string."
    for url in images:
        if url.startswith("data:") and not (_DATA_URL.match(url) and _decodes(url.split(",", 1)[1])):
            return "Data URLs must look like data:image/<lower-case format>;base64,<data>."
        if not url.startswith(("data:", "http://", "https://")):
            return "Input images must be URLs or data URLs."
    return None


def _decodes(b64: str) -> bool:
    try:
        base64.b64decode(b64, validate=True)
    except ValueError:  # binascii.Error is a ValueError
        return False
    return True


def _output_size(model: str, size: str | None) -> tuple[int, int] | None:
    """What the model would make for this `size`, or None where real Ark answers 400."""
    if "seededit" in model:
        return (1024, 1024) if size in (None, "adaptive") else None
    if "seedream-3-0-t2i" in model:
        if size is None:
            return 1024, 1024
        dims = _wxh(size)
        return dims if dims and all(512 <= side <= 2048 for side in dims) else None
    newer = "seedream-4-0" not in model
    if size is None:
        return 2048, 2048
    if size in _TIERS:
        return None if newer and size == "1K" else _TIERS[size]
    dims = _wxh(size)
    if dims is None:
        return None
    minimum = 2560 * 1440 if newer else 1280 * 720
    pixels = dims[0] * dims[1]
    ratio = dims[0] / dims[1]
    return dims if minimum <= pixels <= 4096 * 4096 and 1 / 16 <= ratio <= 16 else None


def _wxh(size: str) -> tuple[int, int] | None:
    match = re.fullmatch(r"(\d+)x(\d+)", size or "")
    return (int(match.group(1)), int(match.group(2))) if match else None
