"""Image bytes and data URLs: MIME types sniffed from magic numbers, dimensions read from headers."""
from __future__ import annotations

import base64
import binascii
import re
import struct

from app.core.errors import InvalidRequest, PayloadTooLarge

PNG = "image/png"
JPEG = "image/jpeg"
WEBP = "image/webp"
GIF = "image/gif"

FORMAT_OF_MIME = {PNG: "png", JPEG: "jpeg", WEBP: "webp", GIF: "gif"}
EXTENSION_OF_MIME = {PNG: "png", JPEG: "jpg", WEBP: "webp", GIF: "gif"}

# enough base64 characters to cover the 12 bytes that tell the formats apart
_SNIFF_B64_CHARS = 16
_DATA_URL = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+)?(?P<params>(;[^;,]*)*?)(?P<b64>;base64)?,", re.I)
_B64_JUNK = re.compile(r"\s+")


def sniff_mime(head: bytes) -> str | None:
    """The image type of some bytes, from their magic number; None when they are no image we know."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return WEBP
    if head.startswith((b"GIF87a", b"GIF89a")):
        return GIF
    return None


def _head(b64, size: int):
    """The first `size` characters of base64 text held as a str or as a BigText window."""
    return b64.head(size) if hasattr(b64, "head") else b64[:size]


def sniff_mime_b64(b64) -> str | None:
    """Sniff from base64 text by decoding only its first characters, not the whole image."""
    try:
        head = base64.b64decode(_head(b64, _SNIFF_B64_CHARS), validate=False)
    except (binascii.Error, ValueError):
        return None
    return sniff_mime(head)


def to_data_url(b64: str, mime: str) -> str:
    return f"data:{mime};base64,{b64}"


def strip_data_url(value):
    """Base64 payload of a data URL (or the value itself when it carries no prefix); str or BigText."""
    if value.startswith("data:"):
        comma = value.find(",", 0, 256)  # the header is short: never scan the payload
        return value[comma + 1:] if comma >= 0 else value[len(value):]
    return value


def decode_b64(text: str) -> bytes:
    """Strict base64 decoding that tolerates whitespace, missing padding and the URL-safe alphabet."""
    cleaned = _B64_JUNK.sub("", text)
    if "-" in cleaned or "_" in cleaned:
        cleaned = cleaned.replace("-", "+").replace("_", "/")
    cleaned += "=" * (-len(cleaned) % 4)
    return base64.b64decode(cleaned, validate=True)


def decode_data_url(url: str, *, param: str | None = None, max_bytes: int | None = None) -> tuple[bytes, str]:
    """Decode a `data:` URL that must hold an image; the MIME type comes from the bytes.

    `max_bytes` bounds the decoded size, checked from the text's length before decoding anything.
    """
    match = _DATA_URL.match(url)
    if not match:
        raise InvalidRequest("Malformed data URL: expected data:<mime>;base64,<data>", param=param)
    if not match.group("b64"):
        raise InvalidRequest("Data URLs must be base64-encoded (data:<mime>;base64,<data>)", param=param)
    if max_bytes is not None and (len(url) - match.end()) * 3 // 4 > max_bytes + 3:
        raise PayloadTooLarge(f"An input image is larger than {max_bytes} bytes (GATEWAY_MAX_IMAGE_BYTES)",
                              param=param, code="image_too_large")
    try:
        data = decode_b64(url[match.end():])
    except (binascii.Error, ValueError):
        raise InvalidRequest("The data URL holds malformed base64", param=param) from None
    if not data:
        raise InvalidRequest("The data URL is empty", param=param)
    mime = sniff_mime(data[:16])
    if mime is None:
        raise InvalidRequest("The data URL does not hold a PNG, JPEG, WEBP or GIF image", param=param)
    return data, mime


def image_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from the image header (PNG, GIF, WEBP, JPEG), or None when unreadable."""
    try:
        if data.startswith(b"\x89PNG\r\n\x1a\n") and data[12:16] == b"IHDR":
            return struct.unpack(">II", data[16:24])
        if data.startswith((b"GIF87a", b"GIF89a")):
            return struct.unpack("<HH", data[6:10])
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _webp_size(data)
        if data.startswith(b"\xff\xd8"):
            return _jpeg_size(data)
    except struct.error:
        return None
    return None


def image_size_b64(b64) -> tuple[int, int] | None:
    """Dimensions from base64 text, decoding only as much as the header needs."""
    mime = sniff_mime_b64(b64)
    if mime is None:
        return None
    # PNG/GIF/WEBP keep their size in the first 30 bytes; JPEG's SOF can sit after EXIF blocks,
    # so widen the window step by step instead of decoding the whole picture.
    window = 64
    while True:
        chunk = _head(b64, window - window % 4)
        try:
            head = base64.b64decode(chunk)
        except (binascii.Error, ValueError):
            return None
        size = image_size(head)
        if size is not None or window >= len(b64) or mime != JPEG:
            return size
        window *= 4


def _webp_size(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 ":
        w, h = struct.unpack("<HH", data[26:30])
        return w & 0x3FFF, h & 0x3FFF
    if chunk == b"VP8L":
        b = data[21:25]
        w = 1 + (((b[1] & 0x3F) << 8) | b[0])
        h = 1 + (((b[3] & 0xF) << 10) | (b[2] << 2) | ((b[1] & 0xC0) >> 6))
        return w, h
    if chunk == b"VP8X":
        w = 1 + int.from_bytes(data[24:27], "little")
        h = 1 + int.from_bytes(data[27:30], "little")
        return w, h
    return None


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    i = 2
    while i + 9 < len(data):
        if data[i] != 0xFF:
            i += 1
            continue
        marker = data[i + 1]
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            h, w = struct.unpack(">HH", data[i + 5:i + 9])
            return w, h
        i += 2 + length
    return None
