"""Model names route to providers by pattern; only configured providers are live."""
import pytest

from app.config import Settings
from app.core.errors import ModelNotFound
from app.downloads import Downloader, DownloadPolicy
from app.providers.registry import PROVIDERS
from app.routing import Router


def router(**env):
    return Router(Settings.from_env(env), Downloader(DownloadPolicy(1, 1, 1, False)))


@pytest.mark.parametrize("model, provider", [("gpt-image-1", "openai"), ("gpt-image-1.5", "openai"),
                                             ("dall-e-3", "openai"), ("chatgpt-image-latest", "openai"),
                                             ("local-image", "local"), ("local-anything", "local")])
def test_patterns_route_to_their_provider(model, provider):
    route = router(OPENAI_API_KEY="sk-x").route(model)
    assert route.client.name == provider
    assert route.upstream_model == model


def test_provider_without_key_is_404_naming_the_variable():
    with pytest.raises(ModelNotFound, match="OPENAI_API_KEY") as caught:
        router().route("gpt-image-1")
    assert caught.value.status == 404 and caught.value.code == "model_not_found"


def test_unknown_model_is_404_listing_patterns():
    with pytest.raises(ModelNotFound, match="gpt-image-\\*") as caught:
        router().route("claude-3")
    assert "does not exist" in caught.value.message


def test_local_is_always_live():
    assert router().route("local-image").client.name == "local"


def test_configured_extra_models_route_and_are_listed():
    r = router(OPENAI_API_KEY="sk-x", OPENAI_MODELS="my-finetune")
    assert r.route("my-finetune").client.name == "openai"
    assert ("my-finetune", "openai") in r.models()


def test_models_lists_only_live_providers():
    names = {provider for _, provider in router().models()}
    assert names == {"local"}
    names = {provider for _, provider in router(OPENAI_API_KEY="sk-x").models()}
    assert names == {"local", "openai"}


def test_every_registered_provider_has_a_name_and_patterns():
    for name, cls in PROVIDERS.items():
        assert cls.name == name and cls.model_patterns


def router_with_file(tmp_path, text, **env):
    import random

    path = tmp_path / "gateway.toml"
    path.write_text(text)
    return Router(Settings.from_env({"GATEWAY_CONFIG": str(path), **env}), Downloader(DownloadPolicy(1, 1, 1, False)),
                  rng=random.Random(7))


CHANNELS = """
[channels.heavy]
provider = "openai"
api_key_env = "HEAVY_KEY"
weight = 9
[channels.spare]
provider = "openai"
api_key_env = "SPARE_KEY"
weight = 0
[models."house-style"]
routes = ["spare:dall-e-3", "heavy:gpt-image-1"]
"""


def test_plain_names_go_to_every_channel_of_their_provider_weighted(tmp_path):
    router = router_with_file(tmp_path, CHANNELS, OPENAI_API_KEY="sk-a", HEAVY_KEY="sk-h", SPARE_KEY="sk-s")
    firsts = [router.routes("gpt-image-1")[0].channel for _ in range(200)]
    assert firsts.count("heavy") > firsts.count("openai") > 0
    assert "spare" not in firsts, "weight 0 channels are fallbacks only"
    assert {r.channel for r in router.routes("gpt-image-1")} == {"openai", "heavy", "spare"}
    assert router.routes("gpt-image-1")[-1].channel == "spare"


def test_an_alias_keeps_its_order_and_names_its_upstream_models(tmp_path):
    router = router_with_file(tmp_path, CHANNELS, HEAVY_KEY="sk-h", SPARE_KEY="sk-s")
    assert [(r.channel, r.upstream_model) for r in router.routes("house-style")] == [
        ("spare", "dall-e-3"), ("heavy", "gpt-image-1")]
    assert ("house-style", "gateway") in router.models()


def test_file_channels_use_their_own_key_base_url_and_timeout(tmp_path):
    text = ('[channels.eu]\nprovider = "openai"\nbase_url = "https://eu.test/v1"\napi_key_env = "EU_KEY"\n'
            'timeout = 42\n')
    client = router_with_file(tmp_path, text, EU_KEY="sk-eu").channels["eu"].client
    assert (client.settings.api_key, client.settings.base_url, client.settings.timeout) == (
        "sk-eu", "https://eu.test/v1", 42)
    assert client.settings.key_variable == "EU_KEY"
