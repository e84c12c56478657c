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

from app.media import sniff_mime_b64

SLICE = 256 * 1024  # bytes of base64 written per piece
BIG = 16 * 1024     # picture payloads (base64 or data URLs) this long stay in the read buffer
_B64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="


class BigText:
    """A long JSON string kept as the bytes it arrived in (base64, a data URL): never copied into a str.

    Parsing a 2.7 MB base64 string into a Python str costs a copy and a scan; this keeps a window
    on the upstream's read buffer instead and offers the few string operations providers need.
    """

    __slots__ = ("buffer", "start", "end")

    def __init__(self, buffer: bytes | bytearray, start: int = 0, end: int | None = None):
        self.buffer, self.start, self.end = buffer, start, len(buffer) if end is None else end

    def __len__(self) -> int:
        return self.end - self.start

    def __bool__(self) -> bool:
        return self.end > self.start

    def __getitem__(self, key: slice) -> "BigText":
        first, last, step = key.indices(len(self))
        if step != 1:
            raise ValueError("BigText slices have step 1")
        return BigText(self.buffer, self.start + first, self.start + max(first, last))

    def startswith(self, prefix: str | tuple[str, ...]) -> bool:
        prefixes = prefix if isinstance(prefix, tuple) else (prefix,)
        return any(self.buffer.startswith(p.encode(), self.start, self.end) for p in prefixes)

    def find(self, sub: str, start: int = 0, end: int | None = None) -> int:
        stop = self.end if end is None else min(self.end, self.start + end)
        found = self.buffer.find(sub.encode(), self.start + start, stop)
        return found - self.start if found >= 0 else -1

    def head(self, size: int) -> bytes:
        return bytes(memoryview(self.buffer)[self.start:min(self.end, self.start + size)])

    def pieces(self) -> Iterator[bytes]:
        view = memoryview(self.buffer)
        for offset in range(self.start, self.end, SLICE):
            yield view[offset:min(self.end, offset + SLICE)].tobytes()

    def __str__(self) -> str:
        return memoryview(self.buffer)[self.start:self.end].tobytes().decode("utf-8")

    def __eq__(self, other: object) -> bool:
        if isinstance(other, BigText):
            return memoryview(self.buffer)[self.start:self.end] == memoryview(other.buffer)[other.start:other.end]
        return isinstance(other, str) and str(self) == other

    def __hash__(self) -> int:
        # cheap: length and both ends; equal hashes are settled by __eq__ (one memcmp), so a picture
        # met twice (content and images) is never checksummed whole
        return hash((len(self), self.head(64), bytes(memoryview(self.buffer)[max(self.start, self.end - 64):self.end])))

    def __repr__(self) -> str:
        return f"BigText({self.head(24)!r}..., {len(self)} bytes)"


def is_text(value: Any) -> bool:
    """A JSON string from an upstream answer: a str, or a BigText kept in its buffer."""
    return isinstance(value, (str, BigText))


class Raw:
    """Text known to need no JSON escaping (base64, a data-URL prefix): written as is, in slices."""

    __slots__ = ("parts", "length")

    def __init__(self, *parts: "str | BigText"):
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
            if isinstance(part, BigText):
                yield from part.pieces()
                continue
            for start in range(0, len(part), SLICE):
                yield part[start:start + SLICE].encode("utf-8")


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    return orjson.loads(data)


def loads_answer(data: bytes | bytearray) -> Any:
    """Parse a provider's answer: picture payloads in it come back as BigText windows, not str."""
    if isinstance(data, (bytes, bytearray)) and len(data) > BIG:
        parsed = _loads_keeping_big_strings(data)
        if parsed is not _NOT_DONE:
            return parsed
    return orjson.loads(data)


_NOT_DONE = object()


def _loads_keeping_big_strings(data: bytes | bytearray) -> Any:
    """Parse a skeleton in which each long escape-free base64 string is a placeholder, then put
    BigText windows on the original buffer where the placeholders are. Only valid JSON has string
    boundaries found this way; anything odd falls back to a plain parse."""
    spans = []
    for start, end in _string_spans(data):
        if end - start >= BIG and _looks_like_base64(data, start) and data.find(b"\\", start, end) < 0:
            spans.append((start, end))
    if not spans:
        return _NOT_DONE
    token = f"@@big-{secrets.token_hex(6)}-"
    skeleton = bytearray()
    cursor = 0
    for index, (start, end) in enumerate(spans):
        skeleton += data[cursor:start]
        skeleton += f"{token}{index}".encode()
        cursor = end
    skeleton += data[cursor:]
    try:
        parsed = orjson.loads(skeleton)
    except orjson.JSONDecodeError:
        return _NOT_DONE
    texts = {f"{token}{index}": BigText(data, start, end) for index, (start, end) in enumerate(spans)}
    return _swap(parsed, texts)


def _looks_like_base64(data: bytes | bytearray, start: int) -> bool:
    """Only pictures qualify: an image data URL, or base64 whose first bytes are an image's magic."""
    head = bytes(data[start:start + 64])
    if head.startswith(b"data:"):
        return head.startswith(b"data:image/")
    if head.translate(None, _B64_ALPHABET):
        return False
    return sniff_mime_b64(head.decode("ascii")) is not None


def _string_spans(data: bytes | bytearray) -> Iterator[tuple[int, int]]:
    """(start, end) of the content of each JSON string, in order (quotes in JSON only delimit strings)."""
    quote = data.find(b'"')
    while quote >= 0:
        close = data.find(b'"', quote + 1)
        while close > 0 and _escaped(data, close):
            close = data.find(b'"', close + 1)
        if close < 0:
            return
        yield quote + 1, close
        quote = data.find(b'"', close + 1)


def _escaped(data: bytes | bytearray, index: int) -> bool:
    backslashes = 0
    while index - backslashes - 1 >= 0 and data[index - backslashes - 1] == 0x5C:
        backslashes += 1
    return backslashes % 2 == 1


def _swap(value: Any, texts: dict[str, BigText]) -> Any:
    if isinstance(value, str):
        return texts.get(value, value)
    if isinstance(value, dict):
        return {key: _swap(item, texts) for key, item in value.items()}
    if isinstance(value, list):
        return [_swap(item, texts) for item in value]
    return value


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
        if isinstance(value, (Raw, BigText)):
            raws.append(value if isinstance(value, Raw) else Raw(value))
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
    if isinstance(value, (Raw, BigText)):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
