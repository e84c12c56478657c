"""Small real images for tests: a PNG drawn with the project's encoder, and tiny JPEG/WEBP/GIF files."""
from __future__ import annotations

import base64

from app.png import encode_png


def solid_png(width: int, height: int, rgb: tuple[int, int, int] = (40, 90, 200)) -> bytes:
    """A one-colour picture of the given size, drawn with the project's encoder."""
    row = bytes(rgb) * width
    return encode_png(width, height, (row for _ in range(height)))


PNG_BYTES = solid_png(8, 6)
PNG_B64 = base64.b64encode(PNG_BYTES).decode()
PNG_DATA_URL = "data:image/png;base64," + PNG_B64

# 1x1 baseline-progressive JPEG, 1x1 lossy WEBP, 1x1 GIF (well-known minimal files)
JPEG_B64 = ("/9j/4AAQSkZJRgABAQEASABIAAD/2wBDAP////////////////////////////////////////////////////////"
            "//////////////////////////////wgALCAABAAEBAREA/8QAFBABAAAAAAAAAAAAAAAAAAAAAP/aAAgBAQABPxA=")
WEBP_B64 = "UklGRiIAAABXRUJQVlA4IBYAAAAwAQCdASoBAAEADsD+JaQAA3AAAAAA"
GIF_B64 = "R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"

JPEG_BYTES = base64.b64decode(JPEG_B64)
WEBP_BYTES = base64.b64decode(WEBP_B64)
GIF_BYTES = base64.b64decode(GIF_B64)


def data_url(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64," + base64.b64encode(data).decode()
