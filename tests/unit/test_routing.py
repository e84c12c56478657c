"""Model names route to providers by pattern; only configured providers are live."""
import pytest

from app.config import Settings
from app.downloads import Downloader, DownloadPolicy
from app.errors import ModelNotFound
from app.providers.registry import PROVIDERS, Router


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
