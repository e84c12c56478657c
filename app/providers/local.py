"""The local placeholder provider: draws a deterministic PNG from the prompt, no network, no key.

It is the embedded default of the quick start and a stand-in for real providers in clients' CI.
The picture is a mosaic whose colours come from a hash of the prompt (and of any input images),
shaded by a vertical gradient: the same request always gives the same bytes.
"""
from __future__ import annotations

import base64
import hashlib

from app.core.request import TIER_SIDES, TIERS, ImageRequest, Size
from app.core.result import GeneratedImage, ImageResult, Usage
from app.png import encode_png
from app.providers.base import ProviderClient
from app.providers.capabilities import Bounds, Family, Sizes, params

TILES = 8
DEFAULT_SIDE = 1024
PREVIEW_GREY = (128, 128, 128)
# it draws any size from 16x16 to 4096x4096 and the tiers, transparent or not, always PNG, with previews;
# input images and a mask only change the picture's seed
LOCAL = Family("local", ("*",), params("size", "background", "output_format", "partial_images"),
               Sizes(tiers=TIERS, free=Bounds(min_side=16, max_side=4096)), max_n=10, mask=True)


class LocalClient(ProviderClient):
    name = "local"
    label = "local placeholder"
    env_prefix = "LOCAL"
    default_base_url = "local:"
    model_patterns = ("local-*",)
    known_models = ("local-image",)
    families = (LOCAL,)
    requires_key = False

    def stream_images(self, request: ImageRequest, family: Family, on_partial) -> ImageResult:
        """Preview frames like a real streaming model: the mosaic revealed row band by row band."""
        frames = request.params.get("partial_images", 0)
        if frames:
            width, height = dimensions(request.size)
            digest = hashlib.sha256(self._seed(request).digest() + request.variant.to_bytes(2, "big")).digest()
            transparent = request.params.get("background") == "transparent"
            for index in range(frames):
                png = draw(width, height, digest, transparent=transparent, reveal=(index + 1) / (frames + 1))
                on_partial(index, GeneratedImage(b64=base64.b64encode(png).decode("ascii"), mime="image/png"))
        return self.make_images(request, family)

    def make_images(self, request: ImageRequest, family: Family) -> ImageResult:
        width, height = dimensions(request.size)
        params = request.params
        dropped = ["output_format"] if params.get("output_format", "png") != "png" else []
        transparent = params.get("background") == "transparent"
        seed = self._seed(request)
        images = []
        for index in range(request.variant, request.variant + request.n):
            digest = hashlib.sha256(seed.digest() + index.to_bytes(2, "big")).digest()
            png = draw(width, height, digest, transparent=transparent)
            images.append(GeneratedImage(b64=base64.b64encode(png).decode("ascii"), mime="image/png"))
        return ImageResult(
            images=images,
            text=f"Placeholder image from the local provider ({width}x{height}).",
            usage=Usage(extra={"generated_images": len(images)}),
            background="transparent" if transparent else "opaque",
            dropped=dropped,
        )

    @staticmethod
    def _seed(request: ImageRequest):
        seed = hashlib.sha256(request.prompt.encode())
        for ref in (*request.images, *([request.mask] if request.mask else [])):
            seed.update(hashlib.sha256(ref.data or ref.url.encode()).digest())
        return seed


def dimensions(size: Size) -> tuple[int, int]:
    """Pixels of a size the family accepted: auto is 1024 square, a tier its square side."""
    if size.tier is not None:
        return TIER_SIDES[size.tier], TIER_SIDES[size.tier]
    return size.dimensions or (DEFAULT_SIDE, DEFAULT_SIDE)


def draw(width: int, height: int, digest: bytes, *, transparent: bool = False, reveal: float = 1.0) -> bytes:
    """Render the mosaic; each row is built from a few repeated tile runs, so it stays fast.

    `reveal` < 1 draws only the top part and leaves the rest grey: a preview frame.
    """
    palette = digest
    while len(palette) < TILES * TILES * 3 + 6:
        palette += hashlib.sha256(palette).digest()
    top, bottom = palette[0:3], palette[3:6]
    tiles = [palette[6 + 3 * i:9 + 3 * i] for i in range(TILES * TILES)]
    edges = [col * width // TILES for col in range(TILES + 1)]
    row_edges = [r * height // TILES for r in range(TILES + 1)]
    grey_row = (bytes(PREVIEW_GREY) + (b"\xff" if transparent else b"")) * width
    revealed = int(height * reveal)

    def rows():
        for y in range(height):
            if y >= revealed:
                yield grey_row
                continue
            t = y / max(1, height - 1)
            shade = [int(top[c] * (1 - t) + bottom[c] * t) for c in range(3)]
            tile_row = min(TILES - 1, y * TILES // height)
            on_line = y in row_edges
            runs = []
            for col in range(TILES):
                tile = tiles[tile_row * TILES + col]
                rgb = [(tile[c] + shade[c]) // 2 for c in range(3)]
                if on_line:
                    rgb = [v // 3 for v in rgb]
                pixel = bytes(rgb) + (bytes([0 if (tile_row + col) % 2 else 255]) if transparent else b"")
                runs.append(pixel * (edges[col + 1] - edges[col]))
            yield b"".join(runs)

    return encode_png(width, height, rows(), alpha=transparent)
