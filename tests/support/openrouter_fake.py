"""Default behaviour of a fake openrouter upstream (to be completed with the openrouter provider)."""
from __future__ import annotations

from tests.support.fake_upstream import Recorded, Reply


def openrouter_chat(request: Recorded) -> Reply:
    return Reply(501, json={"error": {"message": "fake not written yet"}})
