"""Cost and quote formulas of every provider against figures worked out by hand (the arithmetic is in each test)."""
import base64
import struct
import zlib
from decimal import Decimal

import pytest

from app.core.request import ImageRef, ImageRequest, Size
from app.core.result import GeneratedImage, ImageResult, Usage, merge
from app.pricing import PriceBook
from app.pricing.sizing import formula_tokens
from app.providers.ark import usage as ark_usage
from app.providers.gemini import gemini_usage
from app.providers.openai import usage as openai_usage

BOOK = PriceBook.load()


def picture(width: int, height: int) -> GeneratedImage:
    """A PNG whose header says width x height: all the pricing reads of a picture."""
    ihdr = struct.pack(">II", width, height) + bytes([8, 2, 0, 0, 0])
    data = (b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr
            + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr)))
    return GeneratedImage(b64=base64.b64encode(data).decode(), mime="image/png")


def request(model: str, prompt: str = "a cat", n: int = 1, **params) -> ImageRequest:
    return ImageRequest(model=model, prompt=prompt, n=n, params=params)


# ----- OpenAI: gpt-image-2 (tokens) -----

def test_gpt_image_2_output_tokens_match_openais_calculator_figures():
    row = BOOK.row("openai", "gpt-image-2")
    # high: f = 96. 1024x1024: s = (2*96*1024 + 1024) // 2048 = 96; ceil(96*96*(2e6 + 1048576) / 4e6) = ceil(7023.9) = 7024
    assert formula_tokens(row, 96, 1024, 1024) == 7024
    # 1536x1024: s = (2*96*1024 + 1536) // 3072 = 64; ceil(96*64*(2e6 + 1572864) / 4e6) = ceil(5487.9) = 5488
    assert formula_tokens(row, 96, 1536, 1024) == 5488
    # low: f = 16, s = (2*16*1024 + 1024) // 2048 = 16; ceil(16*16*3048576 / 4e6) = ceil(195.1) = 196
    assert formula_tokens(row, 16, 1024, 1024) == 196


def test_gpt_image_2_cost_prices_each_kind_of_token():
    result = ImageResult(images=[picture(1536, 1024)], usage=openai_usage({
        "input_tokens": 1100, "output_tokens": 5538, "total_tokens": 6638,
        "input_tokens_details": {"text_tokens": 100, "image_tokens": 1000, "cached_text_tokens": 40,
                                 "cached_image_tokens": 200},
        "output_tokens_details": {"text_tokens": 50, "image_tokens": 5488}}))
    # text in: 60 x $5 + 40 x $1.25 = 350; image in: 800 x $8 + 200 x $2 = 6800
    # image out: 5488 x $30 = 164640; text out: 50 x $10 = 500  -> 172290 / 1e6
    assert BOOK.cost("openai", "gpt-image-2", request("gpt-image-2"), result) == Decimal("0.17229")


def test_gpt_image_2_output_without_breakdown_is_all_image_tokens():
    result = ImageResult(images=[picture(1024, 1024)],
                         usage=openai_usage({"input_tokens": 20, "output_tokens": 7024, "total_tokens": 7044}))
    # no input details and no input picture: 20 text tokens x $5 = 100; 7024 x $30 = 210720 -> 210820 / 1e6
    assert BOOK.cost("openai", "gpt-image-2", request("gpt-image-2"), result) == Decimal("0.21082")


def test_gpt_image_2_quote_counts_pictures_previews_and_text_allowance():
    # "a cat" = 5 bytes + 64 + 16 = 85 text tokens x $5 = 425 per call
    # 1024x1024 high: 7024 x $30 = 210720; text allowance 4096 x $10 = 40960
    # n = 2: 2 x (425 + 210720 + 40960) = 504210 -> / 1e6
    quote = BOOK.quote("openai", "gpt-image-2", request("gpt-image-2", n=2, size="1024x1024", quality="high"))
    assert quote == Decimal("0.50421")
    # low with 2 previews: 425 + 196 x 30 (5880) + 2 x 100 x 30 (6000) + 40960 = 53265
    previews = request("gpt-image-2", size="1024x1024", quality="low", partial_images=2)
    assert BOOK.quote("openai", "gpt-image-2", previews) == Decimal("0.053265")


def test_sizes_as_the_request_parser_makes_them_price_like_their_text():
    parsed = ImageRequest(model="gpt-image-2", prompt="a cat", n=2,
                          params={"size": Size("1024x1024"), "quality": "high"})
    assert BOOK.quote("openai", "gpt-image-2", parsed) == Decimal("0.50421")  # as in the test above
    tier = ImageRequest(model="x", prompt="hi", params={"size": Size("4K")})
    assert BOOK.quote("gemini", "gemini-3-pro-image-preview", tier) == Decimal("0.63338")  # see the Gemini test


def test_gpt_image_2_auto_size_and_quality_quote_the_costliest_picture():
    # auto -> 2880x2880 at high: s = 96; ceil(96*96*(2e6 + 8294400) / 4e6) = ceil(23718.4) = 23719 tokens
    # 85 x 5 + 23719 x 30 + 4096 x 10 = 425 + 711570 + 40960 = 752955
    assert BOOK.quote("openai", "gpt-image-2", request("gpt-image-2")) == Decimal("0.752955")
    # 4K is sent as 2880x2880 too (app/providers/openai.py FREE_SIZE_TIERS)
    assert BOOK.quote("openai", "gpt-image-2", request("gpt-image-2", size="4K", quality="high")) == Decimal("0.752955")


def test_gpt_image_2_edit_quote_adds_the_input_picture_allowance():
    edit = ImageRequest(model="gpt-image-2", prompt="a cat", params={"size": "1024x1024", "quality": "low"},
                        images=(ImageRef(url="https://example.test/a.png", param="image"),))
    # 425 + 8192 x $8 (65536) + 196 x 30 (5880) + 40960 = 112801
    assert BOOK.quote("openai", "gpt-image-2", edit) == Decimal("0.112801")


def test_cost_with_input_pictures_but_no_input_breakdown_is_unknown():
    edit = ImageRequest(model="gpt-image-2", prompt="a cat",
                        images=(ImageRef(url="https://example.test/a.png", param="image"),))
    result = ImageResult(images=[picture(1024, 1024)],
                         usage=openai_usage({"input_tokens": 900, "output_tokens": 7024, "total_tokens": 7924}))
    assert BOOK.cost("openai", "gpt-image-2", edit, result) is None


def test_gpt_image_1_table_quote_and_cost():
    # table: high 1536x1024 = 6208 tokens x $40 = 248320; 85 text tokens x $5 = 425; no text allowance -> 248745
    quote = BOOK.quote("openai", "gpt-image-1", request("gpt-image-1", size="1536x1024", quality="hd"))
    assert quote == Decimal("0.248745")
    # auto: the largest entry, high 1024x1536 = 6240 x 40 = 249600 + 425 = 250025
    assert BOOK.quote("openai", "gpt-image-1", request("gpt-image-1")) == Decimal("0.250025")
    result = ImageResult(images=[picture(1024, 1024)], usage=openai_usage(
        {"input_tokens": 50, "output_tokens": 4160, "input_tokens_details": {"text_tokens": 50, "image_tokens": 0}}))
    # 50 x 5 + 4160 x 40 = 250 + 166400 = 166650
    assert BOOK.cost("openai", "gpt-image-1", request("gpt-image-1"), result) == Decimal("0.16665")


def test_dall_e_3_is_priced_per_picture_by_its_real_size_and_quality():
    result = ImageResult(images=[picture(1792, 1024)], quality=None)
    assert BOOK.cost("openai", "dall-e-3", request("dall-e-3", quality="hd"), result) == Decimal("0.12")
    assert BOOK.cost("openai", "dall-e-3", request("dall-e-3"), result) == Decimal("0.08")  # standard
    assert BOOK.quote("openai", "dall-e-3", request("dall-e-3", size="1024x1024", quality="high")) == Decimal("0.08")


# ----- Seedream (per image) -----

def test_seedream_costs_the_pictures_ark_says_it_made_over_every_fan_out_call():
    calls = [ImageResult(images=[picture(2048, 2048)],
                         usage=ark_usage({"generated_images": 1, "output_tokens": 16384, "total_tokens": 16384}))
             for _ in range(3)]
    result = merge(calls)
    # 3 pictures x $0.04
    assert BOOK.cost("ark", "doubao-seedream-4-5-251128", request("x", n=3), result) == Decimal("0.12")
    assert BOOK.quote("ark", "doubao-seedream-4-5-251128", request("x", n=3)) == Decimal("0.12")
    # 5.0 lite: 2 x $0.035; 4.0: $0.03
    assert BOOK.quote("ark", "seedream-5-0-260128", request("x", n=2)) == Decimal("0.07")
    assert BOOK.quote("ark", "doubao-seedream-4-0-250828", request("x")) == Decimal("0.03")


def test_seedream_without_a_count_prices_the_pictures_received():
    result = ImageResult(images=[picture(2048, 2048), picture(2048, 2048)])
    assert BOOK.cost("ark", "doubao-seededit-3-0-i2i-250628", request("x", n=2), result) == Decimal("0.06")


# ----- Gemini (tokens by tier) -----

def test_gemini_3_pro_image_cost_from_usage_metadata():
    usage = gemini_usage({
        "promptTokenCount": 600, "candidatesTokenCount": 1150, "thoughtsTokenCount": 200, "totalTokenCount": 1950,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 40}, {"modality": "IMAGE", "tokenCount": 560}],
        "candidatesTokensDetails": [{"modality": "IMAGE", "tokenCount": 1120}, {"modality": "TEXT", "tokenCount": 30}]})
    result = ImageResult(images=[picture(1024, 1024)], usage=usage)
    # input 600 x $2 = 1200; image out 1120 x $120 = 134400; text + thoughts (30 + 200) x $12 = 2760 -> 138360
    assert BOOK.cost("gemini", "gemini-3-pro-image-preview", request("x"), result) == Decimal("0.13836")


def test_gemini_quote_follows_the_tier_the_provider_sends():
    # "hi": 2 bytes + 64 + 16 = 82 tokens x $2 = 164; allowance 32768 x $12 = 393216
    # 1K/2K: 1120 x $120 = 134400 -> 527780; 4K: 2000 x 120 = 240000 -> 633380
    assert BOOK.quote("gemini", "gemini-3-pro-image-preview", request("x", "hi")) == Decimal("0.52778")
    assert BOOK.quote("gemini", "gemini-3-pro-image-preview", request("x", "hi", quality="high")) == Decimal("0.63338")
    assert BOOK.quote("gemini", "gemini-3-pro-image-preview", request("x", "hi", size="4K")) == Decimal("0.63338")
    # 3.1 flash at 2K: 82 x 0.5 = 41; 1680 x 60 = 100800; 32768 x 3 = 98304 -> 199145
    assert BOOK.quote("gemini", "gemini-3.1-flash-image-preview", request("x", "hi", quality="medium")) \
        == Decimal("0.199145")


# ----- OpenRouter (its own cost) -----

def test_openrouter_cost_is_the_returned_cost_summed_without_float_drift():
    calls = [ImageResult(images=[picture(1024, 1024)], usage=Usage(extra={"cost": cost})) for cost in (0.1, 0.2)]
    result = merge(calls)
    assert result.usage.extra["cost"] == 0.30000000000000004  # what the float sum of the two calls comes to
    assert BOOK.cost("openrouter", "google/gemini-3-pro-image-preview", request("x", n=2), result) == Decimal("0.3")
    single = ImageResult(usage=Usage(extra={"cost": 0.000123456789}))
    assert BOOK.cost("openrouter", "google/gemini-3-pro-image-preview", request("x"), single) \
        == Decimal("0.0001234568")  # as returned, to 10 decimal places


def test_openrouter_without_a_returned_cost_is_unknown_even_with_a_row():
    result = ImageResult(images=[picture(1024, 1024)], usage=Usage(prompt_tokens=10, completion_tokens=1290))
    assert BOOK.cost("openrouter", "google/gemini-3-pro-image-preview", request("x"), result) is None
    assert BOOK.quote("openrouter", "google/gemini-3-pro-image-preview", request("x", "hi")) == Decimal("0.52778")
    assert BOOK.quote("openrouter", "sourceful/riverflow-v2", request("x")) is None


# ----- FLUX (per megapixel), xAI (per image), local -----

@pytest.mark.parametrize("width,height,expected", [
    (1024, 1024, "0.03"),    # 1,048,576 px = 1 MP
    (1920, 1080, "0.045"),   # 2,073,600 px = 1.98 MP -> 2: 0.03 + 0.015
    (2048, 2048, "0.075"),   # 4 MP: 0.03 + 3 x 0.015
    (1025, 1024, "0.045"),   # one column over 1 MP -> 2 MP
])
def test_flux_2_pro_costs_per_megapixel_read_from_the_picture(width, height, expected):
    result = ImageResult(images=[picture(width, height)])
    assert BOOK.cost("bfl", "flux-2-pro", request("flux-2-pro"), result) == Decimal(expected)


def test_flux_2_pro_edit_adds_the_input_megapixels_and_links_make_it_unknown():
    data = base64.b64decode(picture(1024, 1024).b64)
    edit = ImageRequest(model="flux-2-pro", prompt="x", params={"size": "1024x1024"},
                        images=(ImageRef(url="data:image/png;base64,", param="image", data=data, mime="image/png"),))
    # output 1 MP $0.03 + input 1 MP x $0.015
    assert BOOK.quote("bfl", "flux-2-pro", edit) == Decimal("0.045")
    assert BOOK.cost("bfl", "flux-2-pro", edit, ImageResult(images=[picture(1024, 1024)])) == Decimal("0.045")
    linked = ImageRequest(model="flux-2-pro", prompt="x", images=(ImageRef(url="https://e.test/a.png", param="image"),))
    assert BOOK.quote("bfl", "flux-2-pro", linked) is None
    # auto size: 4 MP bound = 0.075; klein 4B at 2 MP: 0.014 + 0.001
    assert BOOK.quote("bfl", "flux-2-pro", request("flux-2-pro", n=2)) == Decimal("0.15")
    assert BOOK.cost("bfl", "flux-2-klein-4b", request("x"), ImageResult(images=[picture(1920, 1080)])) \
        == Decimal("0.015")


def test_flux_picture_without_a_readable_size_is_unknown():
    result = ImageResult(images=[GeneratedImage(b64="bm90IGFuIGltYWdl", mime="image/png")])
    assert BOOK.cost("bfl", "flux-2-pro", request("flux-2-pro"), result) is None


def test_xai_costs_per_picture():
    result = ImageResult(images=[picture(1024, 1024), picture(1024, 1024)])
    assert BOOK.cost("xai", "grok-imagine-image", request("x", n=2), result) == Decimal("0.04")
    assert BOOK.quote("xai", "grok-imagine-image-quality", request("x", n=3)) == Decimal("0.15")
    assert BOOK.row("xai", "grok-imagine-image-2.0") is None  # a newer model is not priced as an older one


def test_local_provider_costs_nothing_and_unknown_models_cost_unknown():
    result = ImageResult(images=[picture(64, 64)])
    assert BOOK.cost("local", "local-image", request("local-image"), result) == Decimal(0)
    assert BOOK.quote("local", "local-image", request("local-image", n=10)) == Decimal(0)
    assert BOOK.cost("openai", "gpt-image-9", request("gpt-image-9"), result) is None
    assert BOOK.quote("openai", "gpt-image-9", request("gpt-image-9")) is None


def test_token_priced_answer_without_usage_is_unknown_not_free():
    result = ImageResult(images=[picture(1024, 1024)])
    assert BOOK.cost("openai", "gpt-image-2", request("gpt-image-2"), result) is None
    assert BOOK.cost("gemini", "gemini-3-pro-image-preview", request("x"), result) is None


def test_money_is_decimal_and_plain():
    quote = BOOK.quote("ark", "doubao-seedream-4-0-250828", request("x", n=10))
    assert isinstance(quote, Decimal) and str(quote) == "0.3"
    assert str(BOOK.quote("local", "local-image", request("local-image"))) == "0"
