"""Default behaviour of a fake gemini upstream (to be completed with the gemini provider)."""
from __future__ import annotations

from tests.support.fake_upstream import Recorded, Reply


def gemini_generate(request: Recorded) -> Reply:
    return Reply(501, json={"error": {"message": "fake not written yet"}})
