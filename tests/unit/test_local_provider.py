"""The local placeholder provider: deterministic PNGs of the asked size, no network."""
import base64
import zlib

import pytest

from app.core.errors import InvalidRequest
from app.core.request import ImageRequest
from app.core.settings import ProviderSettings
from app.downloads import Downloader, DownloadPolicy
from app.media import image_size
from app.providers.local import LocalClient


@pytest.fixture
def local():
    settings = ProviderSettings(name="local", api_key=None, base_url="local:", timeout=1)
    return LocalClient(settings, Downloader(DownloadPolicy(1, 1, 1, False)))


def png_of(result, index=0) -> bytes:
    return base64.b64decode(result.images[index].b64)


def test_same_prompt_same_bytes_other_prompt_other_bytes(local):
    a = png_of(local.generate(ImageRequest("local-image", "a fox")))
    b = png_of(local.generate(ImageRequest("local-image", "a fox")))
    c = png_of(local.generate(ImageRequest("local-image", "a cat")))
    assert a == b and a != c
    assert a.startswith(b"\x89PNG\r\n\x1a\n")


@pytest.mark.parametrize("size, dims", [("auto", (1024, 1024)), ("256x256", (256, 256)), ("1536x1024", (1536, 1024)),
                                        ("1K", (1024, 1024)), ("2K", (2048, 2048)), ("33x17", (33, 17))])
def test_draws_the_asked_size(local, size, dims):
    result = local.generate(ImageRequest("local-image", "x", params={"size": size}))
    assert image_size(png_of(result)) == dims


@pytest.mark.parametrize("size", ["8x8", "5000x1000"])
def test_sizes_out_of_range_are_400(local, size):
    with pytest.raises(InvalidRequest, match="sides from 16 to 4096"):
        local.generate(ImageRequest("local-image", "x", params={"size": size}))


def test_n_images_differ(local):
    result = local.generate(ImageRequest("local-image", "x", n=3, params={"size": "64x64"}))
    assert len({png_of(result, i) for i in range(3)}) == 3
    assert result.usage.to_dict()["generated_images"] == 3


def test_transparent_background_gives_an_rgba_png(local):
    data = png_of(local.generate(ImageRequest("local-image", "x", params={"size": "32x32",
                                                                          "background": "transparent"})))
    assert data[25] == 6  # IHDR colour type: truecolour with alpha
    raw = zlib.decompress(data[data.index(b"IDAT") + 4:data.index(b"IEND") - 8])
    assert len(raw) == 32 * (1 + 32 * 4)


def test_parameters_it_cannot_honour_are_named(local):
    result = local.generate(ImageRequest("local-image", "x", params={"size": "32x32", "quality": "high",
                                                                     "output_format": "jpeg", "watermark": True}))
    assert result.dropped == ["output_format", "quality", "watermark"]
    assert result.images[0].mime == "image/png"
