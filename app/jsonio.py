"""JSON in and out of the service, in one place, tuned for answers that carry megabytes of base64.

orjson parses and writes JSON an order of magnitude faster than the standard library on these
bodies (a 2 MB picture is 2.7 MB of base64, written twice in a chat answer). Base64 payloads go
out as `Raw` pieces: they need no escaping, so they are written straight from the string they
already live in, in slices, without ever building the whole answer (or a data URL) in memory.
"""
from __future__ import annotations

import secrets
from typing import Any, Iterator

import orjson
from flask import Response

SLICE = 256 * 1024  # bytes of base64 written per piece


class Raw:
    """Text known to need no JSON escaping (base64, a data-URL prefix): written as is, in slices."""

    __slots__ = ("parts", "length")

    def __init__(self, *parts: str):
        self.parts = parts
        self.length = sum(len(part) for part in parts)

    def __str__(self) -> str:
        return "".join(self.parts)

    def __eq__(self, other: object) -> bool:  # compares like the text it stands for
        return str(self) == (str(other) if isinstance(other, Raw) else other)

    def __hash__(self) -> int:
        return hash(str(self))

    def pieces(self) -> Iterator[bytes]:
        for part in self.parts:
            for start in range(0, len(part), SLICE):
                yield part[start:start + SLICE].encode("ascii")


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    return orjson.loads(data)


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON in one piece (Raw values are materialised: fine for small documents)."""
    return orjson.dumps(obj, default=_materialise)


def pieces(obj: Any) -> tuple[list, int]:
    """The JSON of `obj` as a list of bytes and Raw values, and its total length in bytes.

    The document is written once with a placeholder for each Raw value, then split around them.
    """
    raws: list[Raw] = []
    token = f"@@raw-{secrets.token_hex(8)}-"

    def placeholder(value: Any) -> str:
        if isinstance(value, Raw):
            raws.append(value)
            return f"{token}{len(raws) - 1}@@"
        raise TypeError(f"{type(value).__name__} is not JSON serialisable")

    skeleton = orjson.dumps(obj, default=placeholder)
    if not raws:
        return [skeleton], len(skeleton)
    out: list = []
    length = 0
    rest = skeleton
    for index, raw in enumerate(raws):
        marker = f'"{token}{index}@@"'.encode()
        before, _, rest = rest.partition(marker)
        out += [before + b'"', raw, b'"']
        length += len(before) + 2 + raw.length
    out.append(rest)
    return out, length + len(rest)


def iter_bytes(parts: list) -> Iterator[bytes]:
    for part in parts:
        if isinstance(part, Raw):
            yield from part.pieces()
        else:
            yield part


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON answer; one carrying base64 goes out in slices with its exact Content-Length."""
    parts, length = pieces(obj)
    if len(parts) == 1:
        return Response(parts[0], status=status, headers=headers, mimetype="application/json")
    response = Response(iter_bytes(parts), status=status, headers=headers, mimetype="application/json")
    response.headers["Content-Length"] = str(length)
    return response


def _materialise(value: Any) -> str:
    if isinstance(value, Raw):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
