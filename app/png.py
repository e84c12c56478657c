"""A minimal PNG encoder (stdlib zlib + struct): enough for the local provider's placeholder pictures."""
from __future__ import annotations

import struct
import zlib
from typing import Iterable


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(width: int, height: int, rows: Iterable[bytes], *, alpha: bool = False, level: int = 6) -> bytes:
    """Encode rows of raw 8-bit RGB (or RGBA) pixels, top to bottom, each without a filter byte."""
    header = struct.pack(">IIBBBBB", width, height, 8, 6 if alpha else 2, 0, 0, 0)
    compressor = zlib.compressobj(level)
    parts = []
    for row in rows:
        parts.append(compressor.compress(b"\x00" + row))
    parts.append(compressor.flush())
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", b"".join(parts))
            + _chunk(b"IEND", b""))
