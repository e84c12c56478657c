"""Default behaviour of a fake ark upstream (to be completed with the ark provider)."""
from __future__ import annotations

from tests.support.fake_upstream import Recorded, Reply


def ark_images(request: Recorded) -> Reply:
    return Reply(501, json={"error": {"message": "fake not written yet"}})
