"""Read a server-sent-event body the way a strict client would, keeping comments and framing visible."""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass
class Frame:
    event: str | None
    data: str | None
    comment: str | None = None

    @property
    def json(self) -> Any:
        return json.loads(self.data)


def parse(body: bytes) -> list[Frame]:
    """Every frame must end with a blank line; a body not ending in one was cut short."""
    assert body.endswith(b"\n\n"), "the stream does not end on a frame boundary"
    frames = []
    for raw in body.decode().split("\n\n")[:-1]:
        event = data = comment = None
        for line in raw.split("\n"):
            if line.startswith(":"):
                comment = line[1:].strip()
            elif line.startswith("event: "):
                event = line[len("event: "):]
            elif line.startswith("data: "):
                data = line[len("data: "):]
            else:
                raise AssertionError(f"not an SSE line: {line[:80]!r}")
        frames.append(Frame(event, data, comment))
    return frames


def data_frames(frames: list[Frame]) -> list[Frame]:
    return [f for f in frames if f.data is not None]
