"""MIME types come from the bytes, never from labels; data URLs are checked strictly."""
import base64

import pytest

from app.core.errors import InvalidRequest
from app.media import (decode_data_url, image_size, image_size_b64, sniff_mime, sniff_mime_b64, strip_data_url,
                       to_data_url)
from tests.support.images import GIF_BYTES, JPEG_B64, JPEG_BYTES, PNG_BYTES, WEBP_BYTES, solid_png


@pytest.mark.parametrize("data, mime", [(PNG_BYTES, "image/png"), (JPEG_BYTES, "image/jpeg"),
                                        (WEBP_BYTES, "image/webp"), (GIF_BYTES, "image/gif"),
                                        (b"%PDF-1.7", None), (b"", None), (b"RIFF\0\0\0\0WAVE", None)])
def test_sniff_from_bytes_and_from_base64(data, mime):
    assert sniff_mime(data[:16]) == mime
    assert sniff_mime_b64(base64.b64encode(data).decode()) == mime


def test_a_jpeg_labelled_png_is_still_a_jpeg():
    data, mime = decode_data_url("data:image/png;base64," + JPEG_B64)
    assert mime == "image/jpeg" and data == JPEG_BYTES


@pytest.mark.parametrize("url, message", [
    ("data:image/png,rawtext", "base64"),
    ("data:image/png;base64,!!!not-base64!!!", "malformed base64"),
    ("data:image/png;base64,", "empty"),
    ("data:image/png;base64," + base64.b64encode(b"hello, not an image").decode(), "PNG, JPEG, WEBP or GIF"),
    ("data:;base64", "Malformed"),
])
def test_bad_data_urls_are_400_with_the_param(url, message):
    with pytest.raises(InvalidRequest, match=message) as caught:
        decode_data_url(url, param="messages[0].content[1].image_url.url")
    assert caught.value.param == "messages[0].content[1].image_url.url"


def test_data_url_tolerates_whitespace_missing_padding_and_urlsafe_alphabet():
    b64 = base64.urlsafe_b64encode(PNG_BYTES).decode().rstrip("=")
    wrapped = "\n".join(b64[i:i + 60] for i in range(0, len(b64), 60))
    data, mime = decode_data_url("data:image/png;base64," + wrapped)
    assert data == PNG_BYTES and mime == "image/png"


def test_dimensions_from_headers():
    assert image_size(solid_png(300, 200)) == (300, 200)
    assert image_size(JPEG_BYTES) == (1, 1)
    assert image_size(WEBP_BYTES) == (1, 1)
    assert image_size(GIF_BYTES) == (1, 1)
    assert image_size(b"nothing") is None


def test_jpeg_dimensions_found_after_a_large_exif_block():
    exif = b"\xff\xe1" + (5000).to_bytes(2, "big") + b"\0" * 4998
    jpeg = JPEG_BYTES[:2] + exif + JPEG_BYTES[2:]
    assert image_size_b64(base64.b64encode(jpeg).decode()) == (1, 1)


def test_data_url_round_trip():
    url = to_data_url("QUJD", "image/png")
    assert url == "data:image/png;base64,QUJD"
    assert strip_data_url(url) == "QUJD"
    assert strip_data_url("QUJD") == "QUJD"
