"""Default behaviour of a fake Gemini Developer API: generateContent and Imagen :predict, with real PNG bytes."""
from __future__ import annotations

import base64
import re

from tests.conftest import GEMINI_KEY
from tests.support.fake_upstream import Recorded, Reply
from tests.support.images import solid_png

_PATH = re.compile(r"^/v1beta/models/(?P<model>[^/:]+):(?P<method>generateContent|predict)$")
TEXT = "Here is your picture."
# a ratio "W:H" is drawn W*SCALE x H*SCALE pixels: small, but the shape is checkable
SCALE = 8


def image_b64(ratio: str = "1:1", index: int = 0) -> str:
    width, height = (int(side) * SCALE for side in ratio.split(":"))
    return base64.b64encode(solid_png(width, height, (30 * index % 256, 160, 90))).decode()


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
    return Reply(json={
        "candidates": [{"content": {"role": "model", "parts": [
            {"text": TEXT}, {"inlineData": {"mimeType": "image/png", "data": image_b64(ratio)}}]},
            "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 12, "candidatesTokenCount": 1301, "totalTokenCount": 1313,
                          "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 12}],
                          "candidatesTokensDetails": [{"modality": "IMAGE", "tokenCount": 1290},
                                                      {"modality": "TEXT", "tokenCount": 11}]},
        "modelVersion": match.group("model"),
        "responseId": "fake-response-1",
    })


def _predict(body: dict) -> Reply:
    parameters = body.get("parameters", {})
    ratio = parameters.get("aspectRatio", "1:1")
    count = int(parameters.get("sampleCount", 1))
    return Reply(json={"predictions": [{"bytesBase64Encoded": image_b64(ratio, i), "mimeType": "image/png"}
                                       for i in range(count)]})
