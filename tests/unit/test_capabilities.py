"""Each provider's declaration is the one source: dropped parameters, sizes, n, limits, models, README."""
import re
from pathlib import Path

import pytest

from app.core.errors import InvalidRequest
from app.core.request import ImageRef, ImageRequest, Size
from app.core.settings import ProviderSettings
from app.downloads import Downloader, DownloadPolicy
from app.core.request import IMAGE_PARAMETERS
from app.providers.capabilities import Bounds, Sizes, matches
from app.providers.registry import PROVIDERS
from tests.support.images import PNG_BYTES

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
KNOWN = [(name, model) for name, cls in PROVIDERS.items() for model in cls.known_models]


def client_of(name: str):
    cls = PROVIDERS[name]
    settings = ProviderSettings(name=name, api_key="test-key", base_url=cls.default_base_url, timeout=5)
    return cls(settings, Downloader(DownloadPolicy(1 << 20, 5, 2, False)))


def inputs_for(name: str, model: str) -> tuple[ImageRef, ...]:
    """The input images a model needs at least (SeedEdit edits exactly one)."""
    needed = PROVIDERS[name].family_of(model).min_images
    return tuple(ImageRef("data:", f"messages[0].content[{i}].image_url.url", PNG_BYTES, "image/png")
                 for i in range(needed))


@pytest.mark.parametrize("name, model", KNOWN)
def test_a_parameter_no_provider_knows_is_dropped_and_named_by_every_model(name, model):
    """The base computes what is dropped from the family's allow-list: nothing new is ever silently lost."""
    request = ImageRequest(model, "x", params={"future_knob": 1, "size": "auto"}, images=inputs_for(name, model))
    honoured, _, dropped = client_of(name).prepare(request, streaming=False)
    assert "future_knob" in dropped and "future_knob" not in honoured.params


@pytest.mark.parametrize("name, model", KNOWN)
def test_previews_are_ignored_outside_streams_and_named_in_streams_where_they_cannot_be_made(name, model):
    client = client_of(name)
    request = ImageRequest(model, "x", params={"partial_images": 2}, images=inputs_for(name, model))
    _, _, dropped = client.prepare(request, streaming=False)
    assert dropped == []
    honoured, family, dropped = client.prepare(request, streaming=True)
    previews = "partial_images" in family.params
    assert ("partial_images" in honoured.params) == previews and ("partial_images" in dropped) != previews


@pytest.mark.parametrize("name", PROVIDERS)
def test_every_declaration_is_complete(name):
    cls = PROVIDERS[name]
    assert cls.name == name and cls.label and cls.env_prefix and cls.default_base_url
    assert cls.model_patterns and cls.known_models and cls.families
    assert cls.families[-1].patterns == ("*",), "the last family takes every name the provider is routed"
    assert all(cls.serves(model) for model in cls.known_models)
    for family in cls.families:
        assert family.params <= set(IMAGE_PARAMETERS) and "size" in family.params


def test_model_names_match_one_way_everywhere_case_insensitively():
    assert matches("GPT-Image-1", ("gpt-image-*",)) and matches("Black-Forest-Labs/FLUX.2-pro", ("black-forest-labs/*",))
    assert not matches("gpt-image-1", ("dall-e-*",))
    assert PROVIDERS["openai"].family_of("DALL-E-3").name == "dall-e-3"


def test_size_is_parsed_once_and_stays_the_text_the_client_sent():
    assert (Size("1536x1024").dimensions, Size("2K").tier, Size("auto").is_auto) == ((1536, 1024), "2K", True)
    assert Size("1536x1024") == "1536x1024" and ImageRequest("m", "x", params={"size": "2K"}).size.tier == "2K"
    with pytest.raises(InvalidRequest) as caught:
        ImageRequest("m", "x", params={"size": "huge"}, param_prefix="tools[0].image_generation.")
    assert caught.value.param == "tools[0].image_generation.size"


@pytest.mark.parametrize("size, made", [("auto", True), ("2K", True), ("4K", "refused"), ("1024x512", True),
                                        ("4096x512", "refused"), ("1000x1004", "refused")])
def test_sizes_say_what_a_family_makes(size, made):
    sizes = Sizes(tiers=("1K", "2K"), free=Bounds(multiple=8, max_side=2048, max_ratio=3))
    if made == "refused":
        with pytest.raises(ValueError):
            sizes.honours(Size(size))
    else:
        assert sizes.honours(Size(size)) is made


def test_dropping_sizes_are_dropped_not_refused():
    sizes = Sizes(tiers=("1K",), ratios=("1:1", "16:9"), others="drop")
    assert sizes.honours(Size("4K")) is False and sizes.honours(Size("3000x100")) is True


def test_limits_are_checked_before_any_call():
    client = client_of("openai")
    refs = tuple(ImageRef("data:", f"messages[0].content[{i}].image_url.url", PNG_BYTES, "image/png") for i in range(17))
    with pytest.raises(InvalidRequest, match="at most 16") as caught:
        client.prepare(ImageRequest("gpt-image-1", "x", images=refs), streaming=False)
    assert caught.value.param == refs[16].param
    with pytest.raises(InvalidRequest, match="4000"):
        client.prepare(ImageRequest("dall-e-3", "x" * 4001), streaming=False)


def readme_table(header: str) -> list[str]:
    lines = README.splitlines()
    start = lines.index(header) + 2
    return list(__import__("itertools").takewhile(lambda line: line.startswith("|"), lines[start:]))


def test_the_readme_provider_table_is_the_registry():
    rows = [f"| {cls.label} | {', '.join(f'`{p}`' for p in cls.model_patterns)} | "
            + (f"`{cls.env_prefix}_API_KEY` |" if cls.requires_key else "none: always live |")
            for cls in PROVIDERS.values()]
    assert readme_table("| provider | models (routing by name) | key |") == rows


@pytest.mark.parametrize("name", [name for name, cls in PROVIDERS.items() if cls.requires_key])
def test_the_readme_configuration_names_every_providers_variables_and_default_base(name):
    cls = PROVIDERS[name]
    row = next((line for line in README.splitlines()
                if line.startswith(f"| `{cls.env_prefix}_API_KEY`, `{cls.env_prefix}_BASE_URL` |")), None)
    assert row is not None, f"no configuration row for {cls.env_prefix}_API_KEY"
    assert re.search(re.escape(cls.default_base_url) + r"\b", row)
