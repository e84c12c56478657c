"""Default behaviour of a fake Gemini Developer API: generateContent and Imagen :predict, with real PNG bytes.

Gemini 3 models (names holding "gemini-3") think and sign as the real ones do: the answer starts with a
thought part, and the first part after it (the text) and the picture carry a `thoughtSignature`. They
also check the model turns sent back: every picture must carry the signature this fake gave it (or
Google's documented value that skips the check), and so must a turn's first part, else the request is
refused with a 400 INVALID_ARGUMENT, as Gemini 3.1 Flash Image does.
"""
from __future__ import annotations

import base64
import hashlib
import re

from tests.conftest import GEMINI_KEY
from tests.support.fake_upstream import Recorded, Reply
from tests.support.images import solid_png

_PATH = re.compile(r"^/v1beta/models/(?P<model>[^/:]+):(?P<method>generateContent|predict)$")
TEXT = "Here is your picture."
THOUGHT = "Planning the composition: a lighthouse, warm light, the sea to the left."
# the two values Google documents for a signature a client cannot give back (validation skipped)
SKIP_SIGNATURES = ("skip_thought_signature_validator", "context_engineering_is_the_way_to_go")
# a ratio "W:H" is drawn W*SCALE x H*SCALE pixels: small, but the shape is checkable
SCALE = 8


def image_b64(ratio: str = "1:1", index: int = 0) -> str:
    width, height = (int(side) * SCALE for side in ratio.split(":"))
    return base64.b64encode(solid_png(width, height, (30 * index % 256, 160, 90))).decode()


def picture_signature(png: bytes) -> str:
    """The signature this fake gives a picture it made (what a valid one looks like: opaque base64)."""
    return base64.b64encode(hashlib.sha256(b"fake-gemini picture " + png).digest()).decode()


def lead_signature(png: bytes) -> str:
    """The signature of the text part the fake sent before that picture."""
    return base64.b64encode(hashlib.sha256(b"fake-gemini lead " + png).digest()).decode()


def thinks(model: str) -> bool:
    return "gemini-3" in model


def google_error(code: int, status: str, message: str, **extra) -> Reply:
    return Reply(code, json={"error": {"code": code, "message": message, "status": status, **extra}})


def gemini_generate(request: Recorded) -> Reply:
    """Answer like the real API: a key check, then one text part and one inlineData PNG (or predictions)."""
    match = _PATH.match(request.path)
    if match is None:
        return google_error(404, "NOT_FOUND", f"Method not found: {request.path}")
    if request.headers.get("x-goog-api-key") != GEMINI_KEY:
        return google_error(400, "INVALID_ARGUMENT", "API key not valid. Please pass a valid API key.", details=[
            {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
             "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}}])
    body = request.json
    if match.group("method") == "predict":
        return _predict(body)
    ratio = body.get("generationConfig", {}).get("imageConfig", {}).get("aspectRatio", "1:1")
    model = match.group("model")
    if thinks(model):
        refused = unsigned_model_turn(body.get("contents") or [])
        if refused is not None:
            return google_error(400, "INVALID_ARGUMENT", "Unable to submit request because it has an invalid thought "
                                f"signature for content at index {refused}.")
        parts = signed_parts(body.get("contents") or [], ratio)
    else:
        parts = [{"text": TEXT}, {"inlineData": {"mimeType": "image/png", "data": image_b64(ratio)}}]
    return Reply(json={
        "candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 1301, "totalTokenCount": 1313,
                          "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 12}],
                          "candidatesTokensDetails": [{"modality": "IMAGE", "tokenCount": 1290},
                                                      {"modality": "TEXT", "tokenCount": 11}]},
        "modelVersion": match.group("model"),
        "responseId": "fake-response-1",
    })


def signed_parts(contents: list, ratio: str) -> list[dict]:
    """A thought, then the text and a picture, both signed. Each conversation gets its own picture (its
    colour comes from the conversation's turns), so pictures of different requests differ."""
    colour = tuple(hashlib.sha256(repr(contents).encode()).digest()[:3])
    width, height = (int(side) * SCALE for side in ratio.split(":"))
    png = solid_png(width, height, colour)
    b64 = base64.b64encode(png).decode()
    return [{"text": THOUGHT, "thought": True},
            {"text": TEXT, "thoughtSignature": lead_signature(png)},
            {"inlineData": {"mimeType": "image/png", "data": b64}, "thoughtSignature": picture_signature(png)}]


def unsigned_model_turn(contents: list) -> int | None:
    """The index of the first model turn whose signatures are missing or not this fake's; None when all are."""
    for index, content in enumerate(contents):
        parts = content.get("parts") or [] if isinstance(content, dict) else []
        if content.get("role") != "model" or not parts:
            continue
        pictures = [base64.b64decode(part["inlineData"]["data"]) for part in parts if "inlineData" in part]
        for part in parts:
            signature = part.get("thoughtSignature")
            if "inlineData" in part:
                valid = (picture_signature(base64.b64decode(part["inlineData"]["data"])),)
            elif part is parts[0]:
                valid = tuple(lead_signature(png) for png in pictures)
            else:
                continue  # only the first part and the pictures are signed
            if signature not in valid + SKIP_SIGNATURES:
                return index
    return None


def _predict(body: dict) -> Reply:
    parameters = body.get("parameters", {})
    ratio = parameters.get("aspectRatio", "1:1")
    count = int(parameters.get("sampleCount", 1))
    return Reply(json={"predictions": [{"bytesBase64Encoded": image_b64(ratio, i), "mimeType": "image/png"}
                                       for i in range(count)]})
