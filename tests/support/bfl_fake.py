"""Default behaviour of a fake Black Forest Labs API: asynchronous FLUX.2 tasks, polled until Ready.

`POST /v1/<model>` checks what BFL checks and the gateway must get right (the `x-key` header, a
prompt, width/height multiples of 16 from 64 up to 4 megapixels, at most 8 input images) and answers
`{"id", "polling_url"}`, the polling URL on this same server. `GET /v1/get_result?id=` answers
Pending for the first POLLS_PENDING looks, then Ready with `result.sample`, a link to `/results/<id>.png`
(a picture of width/16 x height/16 pixels). Prompts steer the outcome: "moderate-request" ends
Request Moderated, "moderate-content" Content Moderated, "fail-task" Error, "never-ready" stays Pending.
"""
from __future__ import annotations

import base64
import itertools
import threading
from urllib.parse import parse_qs

from tests.support.fake_upstream import Recorded, Reply
from tests.support.images import solid_png

POLLS_PENDING = 1
RESULTS = "/results/"
INPUT_FIELDS = ("input_image",) + tuple(f"input_image_{index}" for index in range(2, 9))
OUTCOMES = {"moderate-request": "Request Moderated", "moderate-content": "Content Moderated", "fail-task": "Error",
            "never-ready": "Pending"}

_ids = itertools.count(1)
_tasks: dict[str, dict] = {}
_lock = threading.Lock()


def detail(status: int, message: str, field: str | None = None) -> Reply:
    """FastAPI's error shapes: a string detail, or a list of field errors for a 422."""
    if field is None:
        return Reply(status, json={"detail": message})
    return Reply(status, json={"detail": [{"loc": ["body", field], "msg": message, "type": "value_error"}]})


def bfl_tasks(request: Recorded) -> Reply:
    if request.method == "GET" and request.path.startswith(RESULTS):
        task = _tasks.get(request.path[len(RESULTS):].removesuffix(".png"))
        if task is None:
            return Reply(404, body=b"expired", headers={"Content-Type": "text/plain"})
        return Reply(body=solid_png(task["width"] // 16, task["height"] // 16, (200, 90, 40)),
                     headers={"Content-Type": "image/png"})
    if not request.headers.get("x-key"):
        return detail(403, "Not authenticated")
    if request.method == "GET" and request.path == "/v1/get_result":
        return _poll(parse_qs(request.query).get("id", [""])[0])
    if request.method == "POST" and request.path.startswith("/v1/flux-"):
        return _submit(request)
    return detail(404, "Not Found")


def _submit(request: Recorded) -> Reply:
    body = request.json
    if not isinstance(body.get("prompt"), str) or not body["prompt"]:
        return detail(422, "Field required", "prompt")
    width, height = body.get("width", 1024), body.get("height", 1024)
    for field, side in (("width", width), ("height", height)):
        if not isinstance(side, int) or side < 64 or side % 16:
            return detail(422, "Input should be a multiple of 16, at least 64", field)
    if width * height > 2048 * 2048:
        return detail(422, "The output may have at most 4 megapixels", "width")
    extra = [key for key in body if key.startswith("input_image") and key not in INPUT_FIELDS]
    if extra:
        return detail(422, "Extra inputs are not permitted", extra[0])
    for field in INPUT_FIELDS:
        value = body.get(field)
        if value is not None and not (value.startswith("http") or _is_base64_image(value)):
            return detail(422, "Input should be a URL or a base64-encoded image", field)
    if body.get("output_format", "jpeg") not in ("jpeg", "png"):
        return detail(422, "Input should be 'jpeg' or 'png'", "output_format")
    task_id = f"task-{next(_ids)}"
    outcome = next((status for word, status in OUTCOMES.items() if word in body["prompt"]), "Ready")
    host = request.headers["host"]
    with _lock:
        _tasks[task_id] = {"width": width, "height": height, "looks": 0, "outcome": outcome, "host": host}
    return Reply(json={"id": task_id, "polling_url": f"http://{host}/v1/get_result?id={task_id}"})


def _poll(task_id: str) -> Reply:
    with _lock:
        task = _tasks.get(task_id)
        if task is not None:
            task["looks"] += 1
    if task is None:
        return Reply(json={"id": task_id, "status": "Task not found"})
    if task["looks"] <= POLLS_PENDING or task["outcome"] == "Pending":
        return Reply(json={"id": task_id, "status": "Pending", "progress": 0.5})
    if task["outcome"] != "Ready":
        details = {"Moderation Reasons": ["Derivative Works"]} if "Moderated" in task["outcome"] else {}
        return Reply(json={"id": task_id, "status": task["outcome"], "details": details, "result": None})
    return Reply(json={"id": task_id, "status": "Ready", "result": {
        "sample": f"http://{task['host']}{RESULTS}{task_id}.png", "seed": 42, "prompt": "..."}})


def _is_base64_image(value: str) -> bool:
    try:
        return base64.b64decode(value[:16] + "=" * (-len(value[:16]) % 4))[:1] in (b"\x89", b"\xff", b"R", b"G")
    except ValueError:
        return False
