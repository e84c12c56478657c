"""quote() is a true upper bound: for every priced model and a grid of sizes, qualities, n and previews, no
answer the provider can give for that request costs more than its quote.

The "answers the provider can give" come from the providers' own request mapping (the size and tier they
send upstream) and, where the client left a choice to the model (auto size or quality), every choice.
"""
import base64
import itertools
import struct
import zlib

import pytest

from app.core.settings import ProviderSettings
from app.downloads import Downloader, DownloadPolicy
from app.core.errors import InvalidRequest
from app.core.request import ImageRequest
from app.core.result import GeneratedImage, ImageResult, Usage, merge
from app.pricing import PriceBook
from app.pricing.book import row_cost
from app.pricing.sizing import formula_tokens
from app.providers.gemini import GeminiClient
from app.providers.capabilities import ratio_and_tier
from app.providers.openai import GPT_QUALITY, OpenAIClient
from app.providers.openrouter import OpenRouterClient

BOOK = PriceBook.load()
SIZES = (None, "auto", "1024x1024", "1536x1024", "1024x1536", "1792x1024", "2048x2048", "3840x2160", "256x256",
         "1K", "2K", "4K")
QUALITIES = (None, "auto", "low", "medium", "high", "hd", "standard")
NS = (1, 3)
PROMPT = "a lighthouse at dusk, 油彩"
# sizes a model may pick itself when the client says auto
FREE_SIZES = ("1024x1024", "1536x1024", "1024x1536", "2048x2048", "3840x2160", "2160x3840", "2880x2880", "3072x1024")
FLUX_SIZES = ("1024x1024", "1920x1080", "2048x2048", "1440x2560", "1536x1024")

# one upstream model name per row pattern (the models the providers list)
MODELS = {
    "openai": ("gpt-image-2", "gpt-image-2.5-flare", "gpt-image-2.6-sunburst", "gpt-image-1.5", "gpt-image-1",
               "gpt-image-1-mini", "chatgpt-image-latest", "dall-e-3", "dall-e-2"),
    "gemini": ("gemini-3-pro-image-preview", "gemini-3.1-flash-image-preview", "gemini-2.5-flash-image"),
    "openrouter": ("google/gemini-3-pro-image-preview", "google/gemini-3.1-flash-image-preview",
                   "google/gemini-2.5-flash-image", "openai/gpt-5-image", "black-forest-labs/flux.2-pro",
                   "bytedance-seed/seedream-4.5"),
    "ark": ("doubao-seedream-4-0-250828", "doubao-seedream-4-5-251128", "doubao-seedream-5-0-260128",
            "doubao-seededit-3-0-i2i-250628", "doubao-seedream-3-0-t2i-250415"),
    "bfl": ("flux-2-pro", "flux-2-max", "flux-2-flex", "flux-2-klein-4b", "flux-2-klein-9b"),
    "xai": ("grok-imagine-image", "grok-imagine-image-quality", "grok-2-image-1212"),
}
CASES = [(provider, model) for provider, models in MODELS.items() for model in models]


def _settings(name):
    return ProviderSettings(name=name, api_key="k", base_url="https://up.test", timeout=30)


DOWNLOADER = Downloader(DownloadPolicy(max_bytes=1 << 20, timeout=5, connect_timeout=2, allow_private=True))
OPENAI = OpenAIClient(_settings("openai"), DOWNLOADER)
GEMINI = GeminiClient(_settings("gemini"), DOWNLOADER)
OPENROUTER = OpenRouterClient(_settings("openrouter"), DOWNLOADER)


def openai_fields(request: ImageRequest) -> dict:
    """The fields the OpenAI client sends for `request`; a size the model refuses raises InvalidRequest."""
    honoured, family, _ = OPENAI.prepare(request, streaming=False)
    return OPENAI.body(honoured, family)[0]


def picture(size: str) -> GeneratedImage:
    width, height = (int(side) for side in size.split("x"))
    ihdr = struct.pack(">II", width, height) + bytes([8, 2, 0, 0, 0])
    data = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return GeneratedImage(b64=base64.b64encode(data).decode(), mime="image/png")


def possible_results(provider, model, request):
    """Every costliest answer the provider may give this request (one per choice the model may make)."""
    row = BOOK.row(provider, model)
    params, n = request.params, request.n
    previews = params.get("partial_images", 0)
    text_in = len(request.prompt.encode())
    if row.unit == "token":
        text_out = row.max_text_output_tokens or 0
        for image_tokens in _image_token_choices(provider, model, row, params):
            out = image_tokens + previews * (row.partial_image_tokens or 0)
            yield ImageResult(images=[picture("1024x1024")] * n, usage=Usage(
                prompt_tokens=text_in * n, completion_tokens=(out + text_out) * n,
                prompt_details={"text_tokens": text_in * n, "image_tokens": 0},
                completion_details={"image_tokens": out * n, "text_tokens": text_out * n}))
    elif row.unit == "megapixel":
        size = params.get("size")
        size = row.size_tiers.get(size, size)
        for made in ([size] if size and "x" in size else FLUX_SIZES):
            yield merge([ImageResult(images=[picture(made)]) for _ in range(n)])
    elif row.per_image:
        quality = openai_fields(request).get("quality", "auto")
        quality = row.qualities.get(quality, quality)  # dall-e's documented default quality is standard
        for key in row.per_image:
            made_quality, made_size = key.split(":")
            if params.get("size") in (None, "auto", made_size) and quality in ("auto", made_quality):
                yield ImageResult(images=[picture(made_size)] * n, quality=made_quality)
    else:
        yield ImageResult(images=[picture("2048x2048")] * n, usage=Usage(extra={"generated_images": n}))


def _image_token_choices(provider, model, row, params):
    if row.size_rule == "tier":
        client = GEMINI if provider == "gemini" else OPENROUTER
        honoured, family, _ = client.prepare(ImageRequest(model=model, prompt="x", params=params), streaming=False)
        tier = ratio_and_tier(honoured, family)[1] or "1K"
        return [row.output_tokens.get(tier, row.output_tokens.get("1K"))]
    quality = GPT_QUALITY.get(params.get("quality", "auto"), "auto") if provider != "openrouter" else "auto"
    qualities = ["low", "medium", "high"] if quality == "auto" else [quality]
    if provider == "openrouter":
        sizes = ["auto"]
    else:
        sizes = [openai_fields(ImageRequest(model=model, prompt="x", params=params)).get("size", "auto")]
    if row.size_rule == "formula":
        sizes = FREE_SIZES if sizes == ["auto"] else sizes
        return [formula_tokens(row, row.formula[q], *map(int, s.split("x"))) for q in qualities for s in sizes]
    table = row.output_tokens
    return [tokens for key, tokens in table.items()
            if key.split(":")[0] in qualities and (sizes == ["auto"] or key.split(":")[1] == sizes[0])]


def requests_for(provider, model):
    for size, quality, n, previews in itertools.product(SIZES, QUALITIES, NS, (0, 2)):
        params = {k: v for k, v in (("size", size), ("quality", quality)) if v is not None}
        if previews:
            params["partial_images"] = previews
        request = ImageRequest(model=model, prompt=PROMPT, n=n, params=params)
        if provider == "openai" and "size" in params:
            try:  # sizes the model refuses never reach the upstream: nothing to price
                OPENAI.prepare(request, streaming=False)
            except InvalidRequest:
                continue
        yield request


@pytest.mark.parametrize("provider,model", CASES)
def test_no_possible_answer_costs_more_than_the_quote(provider, model):
    checked = 0
    for request in requests_for(provider, model):
        quote = BOOK.quote(provider, model, request)
        assert quote is not None, request.params
        for result in possible_results(provider, model, request):
            # OpenRouter's own cost is what it returns; its row prices the answer as the model's maker would
            cost = row_cost(BOOK.row(provider, model), request, result) if provider == "openrouter" \
                else BOOK.cost(provider, model, request, result)
            assert cost is not None, (request.params, result)
            assert cost <= quote, (request.n, request.params, cost, quote)
            checked += 1
    assert checked > 20
