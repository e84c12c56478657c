"""JSON in and out of the service, in one place so the encoder can be swapped for a faster one."""
from __future__ import annotations

import json
from typing import Any

from flask import Response


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def loads(data: bytes | str) -> Any:
    return json.loads(data)


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(dumps(obj), status=status, headers=headers, mimetype="application/json")
