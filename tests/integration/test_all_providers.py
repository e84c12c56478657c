"""The same requests, through the official SDK, answered by every provider: a valid image, and honest headers."""
import base64

import pytest

from app.media import image_size, sniff_mime
from app.providers.registry import PROVIDERS, provider_for

# one model per registered provider (OpenRouter and Gemini through their own fakes)
MODELS = ["gpt-image-1", "doubao-seedream-4-0-250828", "google/gemini-2.5-flash-image", "gemini-2.5-flash-image",
          "local-image", "flux-2-pro", "grok-imagine-image"]


def test_every_registered_provider_is_exercised_here():
    assert {provider_for(model) for model in MODELS} == set(PROVIDERS)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("form", ["modalities", "tool"])
def test_every_provider_answers_the_same_request_with_an_image(sdk, model, form):
    kwargs = {"modalities": ["image", "text"]} if form == "modalities" else {
        "tools": [{"type": "image_generation", "image_generation": {"size": "1024x1024"}}]}
    completion = sdk.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "a lighthouse on a cliff at dusk"}], **kwargs)
    assert completion.model == model and completion.choices[0].finish_reason == "stop"
    message = completion.choices[0].message
    if form == "modalities":
        url = message.model_extra["images"][0]["image_url"]["url"]
        header, b64 = url.split(",", 1)
        data = base64.b64decode(b64)
        assert header == f"data:{sniff_mime(data[:16])};base64"
    else:
        data = base64.b64decode(message.tool_calls[0].model_extra["image_generation"]["result"])
    assert sniff_mime(data[:16]) in ("image/png", "image/jpeg") and image_size(data) is not None


@pytest.mark.parametrize("model", MODELS)
def test_a_parameter_the_provider_does_not_know_is_named_in_the_dropped_header(sdk, model):
    """`style` is dall-e-3's alone: every other model must say it lost it, never drop it silently."""
    raw = sdk.images.with_raw_response.generate(model=model, prompt="a red kite", style="natural", size="1024x1024")
    assert raw.http_response.status_code == 200
    assert "style" in raw.headers["x-gateway-dropped-params"].split(",")
    assert raw.parse().data[0].b64_json
