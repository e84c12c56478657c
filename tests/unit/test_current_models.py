"""The December 2026 models: what each current model accepts (sizes, qualities, tiers, ratios) and what is listed."""
import pytest

from app.core.errors import InvalidRequest
from app.core.request import ImageRequest
from app.core.settings import ProviderSettings
from app.downloads import Downloader, DownloadPolicy
from app.providers.registry import PROVIDERS
from tests.conftest import ARK_BASE, GEMINI_BASE
from tests.support.images import JPEG_B64, PNG_B64
from tests.support.upstream_mock import sent

OPENAI_BASE = "https://openai.test/v1"
OPENROUTER_BASE = "https://openrouter.test/api/v1"
CURRENT_OPENAI = ["gpt-image-2", "gpt-image-2-2026-04-21", "gpt-image-2.5-flare", "gpt-image-2.5-sunburst",
                  "gpt-image-2.5-flare-2026-09-08", "gpt-image-2.6-flare", "gpt-image-2.6-sunburst"]
TOOL = "tools[0].image_generation."


def client_of(name: str, base: str):
    settings = ProviderSettings(name=name, api_key="test-key", base_url=base, timeout=30)
    return PROVIDERS[name](settings, Downloader(DownloadPolicy(1 << 20, 5, 2, True)), connect_timeout=2)


def request(model: str, **params) -> ImageRequest:
    return ImageRequest(model, "a lighthouse", params=params, param_prefix=TOOL)


# ----- OpenAI: gpt-image-2, 2.5 and 2.6 -----

def openai_body(mocked, model: str, **params) -> dict:
    mocked.post(OPENAI_BASE + "/images/generations", json={"created": 1, "data": [{"b64_json": PNG_B64}]})
    result = client_of("openai", OPENAI_BASE).generate(request(model, **params))
    return {**sent(mocked.calls[-1]).json, "dropped": result.dropped}


@pytest.mark.parametrize("model", CURRENT_OPENAI + ["gpt-image-3"])  # a future name gets the newest rules
@pytest.mark.parametrize("size", ["1536x864", "3840x2160", "2160x3840", "2880x2880", "1024x1024", "816x816"])
def test_current_gpt_image_models_take_any_size_within_openais_rules(mocked, model, size):
    body = openai_body(mocked, model, size=size, quality="high")
    assert (body["size"], body["quality"], body["dropped"]) == (size, "high", [])


@pytest.mark.parametrize("size, broken", [
    ("512x512", "at least 655,360 pixels"),      # 262,144 pixels: under the minimum
    ("800x800", "at least 655,360 pixels"),      # 640,000: just under it
    ("3856x2160", "sides up to 3840"),           # longest side over 3840
    ("3840x2176", "at most 3840x2160 pixels"),   # over 8,294,400 pixels
    ("3072x960", "aspect ratio"),                # 3.2:1
    ("1000x1000", "multiple of 16"),
])
@pytest.mark.parametrize("model", ["gpt-image-2", "gpt-image-2.5-sunburst", "gpt-image-2.6-flare"])
def test_sizes_outside_the_rules_are_a_400_naming_them_before_any_call(model, size, broken):
    with pytest.raises(InvalidRequest) as caught:
        client_of("openai", OPENAI_BASE).generate(request(model, size=size))
    assert caught.value.param == TOOL + "size" and caught.value.code == "unsupported_size"
    assert broken in caught.value.message


@pytest.mark.parametrize("tier, size", [("1K", "1024x1024"), ("2K", "2048x2048"), ("4K", "2880x2880")])
def test_tiers_are_the_squares_openai_makes(mocked, tier, size):
    assert openai_body(mocked, "gpt-image-2.6-sunburst", size=tier)["size"] == size


@pytest.mark.parametrize("quality, sent_quality", [("hd", "high"), ("standard", "medium"), ("low", "low"),
                                                   ("medium", "medium"), ("auto", "auto")])
def test_quality_words_are_openais_on_the_current_models(mocked, quality, sent_quality):
    assert openai_body(mocked, "gpt-image-2.5-flare", quality=quality)["quality"] == sent_quality


@pytest.mark.parametrize("model", ["gpt-image-2", "gpt-image-2.5-flare", "gpt-image-2.6-sunburst"])
def test_transparent_backgrounds_and_formats_reach_the_current_models(mocked, model):
    body = openai_body(mocked, model, background="transparent", output_format="webp", output_compression=70,
                       moderation="low")
    assert {k: body[k] for k in ("background", "output_format", "output_compression", "moderation")} == {
        "background": "transparent", "output_format": "webp", "output_compression": 70, "moderation": "low"}
    assert "response_format" not in body and body["dropped"] == []


def test_the_current_models_make_n_in_one_call_and_stream_previews():
    openai = PROVIDERS["openai"]
    for model in CURRENT_OPENAI:
        family = openai.family_of(model)
        assert family.max_n == 10 and family.max_images == 16 and family.mask
        assert "partial_images" in family.params and "input_fidelity" in family.edit_params


def test_a_retired_model_keeps_its_own_rules_for_relays_that_still_serve_it():
    openai = PROVIDERS["openai"]
    assert openai.family_of("gpt-image-1").sizes.free is None  # three fixed sizes only
    assert openai.family_of("gpt-image-1-mini").edit_params == openai.family_of("gpt-image-1").edit_params - {
        "input_fidelity"}
    assert openai.family_of("dall-e-3").name == "dall-e-3" and openai.family_of("chatgpt-image-latest").name == "gpt-image-1"


# ----- Gemini: 3.1 Flash Image, 3.1 Flash Lite Image, 3 Pro Image -----

def gemini_config(mocked, model: str, **params) -> tuple[dict, list[str]]:
    reply = {"candidates": [{"content": {"role": "model", "parts": [{"inlineData": {"mimeType": "image/png",
                                                                                    "data": PNG_B64}}]},
                             "finishReason": "STOP"}]}
    mocked.post(f"{GEMINI_BASE}/v1beta/models/{model}:generateContent", json=reply)
    result = client_of("gemini", GEMINI_BASE).generate(request(model, **params))
    return sent(mocked.calls[-1]).json["generationConfig"].get("imageConfig", {}), result.dropped


@pytest.mark.parametrize("model, params, config, dropped", [
    ("gemini-3.1-flash-image", {"size": "512x4096"}, {"aspectRatio": "1:8"}, []),
    ("gemini-3.1-flash-image", {"size": "4096x1024"}, {"aspectRatio": "4:1"}, []),
    ("gemini-3.1-flash-image", {"size": "4K"}, {"imageSize": "4K"}, []),
    ("gemini-3.1-flash-image", {"quality": "medium"}, {"imageSize": "2K"}, []),
    ("gemini-3.1-flash-image-preview", {"size": "1536x1024", "quality": "high"},
     {"aspectRatio": "3:2", "imageSize": "4K"}, []),
    ("gemini-3-pro-image", {"size": "512x4096"}, {"aspectRatio": "9:16"}, []),  # Pro has the 10 standard ratios
    ("gemini-3-pro-image-preview", {"size": "2K"}, {"imageSize": "2K"}, []),
    ("gemini-3.1-flash-lite-image", {"size": "512x4096"}, {"aspectRatio": "1:8"}, []),
    ("gemini-3.1-flash-lite-image", {"size": "2K"}, {}, ["size"]),  # 1K only: another tier is dropped, named
    ("gemini-3.1-flash-lite-image", {"quality": "high"}, {}, ["quality"]),
])
def test_gemini_image_models_get_their_own_ratios_and_tiers(mocked, model, params, config, dropped):
    assert gemini_config(mocked, model, **params) == (config, dropped)


def test_gemini_3_image_models_take_fourteen_input_images():
    gemini = PROVIDERS["gemini"]
    assert gemini.family_of("gemini-3.1-flash-image").max_images == 14
    assert gemini.family_of("gemini-3-pro-image-preview").max_images == 14


# ----- Seedream on Ark: 4.0, 4.5, 5.0-lite, 5.0-pro -----

def ark_body(mocked, model: str, **params) -> dict:
    mocked.post(ARK_BASE + "/images/generations", json={"data": [{"b64_json": JPEG_B64}]})
    client_of("ark", ARK_BASE).generate(request(model, **params))
    return sent(mocked.calls[-1]).json


V40, V45, V50 = "doubao-seedream-4-0-250828", "doubao-seedream-4-5-251128", "doubao-seedream-5-0-260128"
V50_PRO = "doubao-seedream-5-0-pro-260628"


@pytest.mark.parametrize("model, size, upstream", [
    (V40, "1K", "1K"), (V40, "4K", "4K"), (V40, "1024x1024", "1024x1024"), (V40, "512x512", "960x960"),
    (V45, "1K", "2K"), (V45, "4K", "4K"), (V45, "2560x1440", "2560x1440"),
    (V45, "2048x1024", "2560x1440"),  # 2,097,152 pixels < 3,686,400: the recommended size of the nearest ratio
    (V50, "1K", "2K"), (V50, "2K", "2K"), (V50, "4K", "3K"), (V50, "3072x3072", "3072x3072"),
    (V50, "1920x1080", "2560x1440"),
    ("doubao-seedream-5-0-lite-260128", "4K", "3K"),
    (V50_PRO, "1K", "1K"), (V50_PRO, "2K", "2K"), (V50_PRO, "2720x1530", "2720x1530"),
])
def test_seedream_sizes_follow_each_models_tiers_and_minimum_pixels(mocked, model, size, upstream):
    assert ark_body(mocked, model, size=size)["size"] == upstream


@pytest.mark.parametrize("model, size", [(V50, "4096x4096"), (V50_PRO, "4K"), (V50_PRO, "2560x2560"),
                                         (V45, "5000x4000")])
def test_seedream_sizes_over_a_models_maximum_are_a_400(model, size):
    with pytest.raises(InvalidRequest) as caught:
        client_of("ark", ARK_BASE).generate(request(model, size=size))
    assert caught.value.code == "unsupported_size" and caught.value.param == TOOL + "size"


def test_seedream_5_pro_is_never_sent_the_sequential_fields_it_refuses(mocked):
    body = ark_body(mocked, V50_PRO, output_format="png")
    assert "sequential_image_generation" not in body and "stream" not in body
    assert body["output_format"] == "png"
    lite = ark_body(mocked, V50)
    assert lite["sequential_image_generation"] == "disabled" and lite["stream"] is False


def test_only_seedream_5_chooses_its_output_format(mocked):
    assert ark_body(mocked, V50, output_format="png")["output_format"] == "png"
    assert "output_format" not in ark_body(mocked, V45, output_format="png")


# ----- OpenRouter: the Gemini image models it relays -----

@pytest.mark.parametrize("model, params, config, dropped", [
    ("google/gemini-3.1-flash-image-preview", {"size": "512x4096"}, {"aspect_ratio": "1:8"}, []),
    ("google/gemini-3.1-flash-lite-image", {"size": "2K"}, None, ["size"]),
    ("google/gemini-3-pro-image-preview", {"size": "4K"}, {"image_size": "4K"}, []),
])
def test_openrouter_sends_each_gemini_model_only_what_it_makes(mocked, model, params, config, dropped):
    mocked.post(OPENROUTER_BASE + "/chat/completions", json={
        "choices": [{"index": 0, "finish_reason": "stop", "message": {
            "role": "assistant", "content": "", "images": [{"type": "image_url", "image_url": {
                "url": "data:image/png;base64," + PNG_B64}}]}}]})
    result = client_of("openrouter", OPENROUTER_BASE).generate(request(model, **params))
    assert sent(mocked.calls[-1]).json.get("image_config") == config and result.dropped == dropped


# ----- what is listed -----

def test_every_listed_model_is_current_and_the_default_image_model_is_one_of_them():
    from app.config import DEFAULT_IMAGE_MODEL
    from app.providers.retired import retirement
    listed = [model for cls in PROVIDERS.values() for model in cls.known_models]
    assert [model for model in listed if retirement(model) is not None] == []
    assert DEFAULT_IMAGE_MODEL in PROVIDERS["openai"].known_models
    assert set(CURRENT_OPENAI) <= set(PROVIDERS["openai"].known_models)
