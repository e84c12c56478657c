"""The price data file (every row sourced and dated, every listed model priced), row matching, and overrides."""
import datetime
import tomllib
from decimal import Decimal
from importlib import resources

import pytest
from prometheus_client import REGISTRY

from app.config import ConfigError, Settings
from app.core.request import ImageRequest
from app.pricing import PriceBook, PriceTableError, record_unknown
from app.pricing.sizing import GPT_QUALITIES
from app.pricing.table import shipped_rows
from app.providers import openai as openai_provider
from app.providers.registry import PROVIDERS

# models the providers being added this round will list (FLUX per megapixel, xAI per image)
NEW_PROVIDER_MODELS = {"bfl": ("flux-2-pro", "flux-2-max", "flux-2-flex", "flux-2-klein-4b", "flux-2-klein-9b"),
                       "xai": ("grok-imagine-image", "grok-imagine-image-quality", "grok-2-image-1212")}
ARK_MODELS = ("doubao-seedream-4-0-250828", "doubao-seedream-4-5-251128", "doubao-seedream-5-0-260128",
              "doubao-seededit-3-0-i2i-250628", "doubao-seedream-3-0-t2i-250415", "seedream-4-5-251128")
OPENAI_CURRENT = ("gpt-image-2", "gpt-image-2-2026-04-21", "gpt-image-2.5-flare", "gpt-image-2.5-sunburst",
                  "gpt-image-2.5-flare-2026-09-08", "gpt-image-2.6-flare", "gpt-image-2.6-sunburst")
BOOK = PriceBook.load()


def test_data_file_is_toml_with_only_price_tables():
    document = tomllib.loads(resources.files("app.pricing").joinpath("prices.toml").read_text())
    assert set(document) == {"prices"} and len(document["prices"]) == len(shipped_rows())


@pytest.mark.parametrize("row", shipped_rows(), ids=lambda row: row.pattern)
def test_every_row_says_where_and_when_its_price_was_read(row):
    assert row.source.strip() and len(row.source) > 20
    read = datetime.date.fromisoformat(row.read)
    assert datetime.date(2025, 1, 1) <= read <= datetime.date.today()
    if row.retired:
        assert datetime.date.fromisoformat(row.retired) <= datetime.date(2026, 12, 31)
    if not row.verified:  # a figure not read in the vendor's own documents: the note says which
        assert row.note and len(row.note) > 20
    values = [v for value in vars(row).values() for v in (value.values() if isinstance(value, dict) else [value])]
    money = [value for value in values if isinstance(value, (Decimal, float))]
    assert money and all(isinstance(value, Decimal) for value in money)
    assert row.pattern == row.pattern.lower()


def test_every_model_a_provider_lists_has_a_price():
    listed = [(name, model) for name, cls in PROVIDERS.items() for model in cls.known_models]
    listed += [(name, model) for name, models in NEW_PROVIDER_MODELS.items() for model in models]
    listed += [("ark", model) for model in ARK_MODELS] + [("openai", model) for model in OPENAI_CURRENT]
    request = ImageRequest(model="m", prompt="a lighthouse")
    missing = [(name, model) for name, model in listed if BOOK.quote(name, model, request) is None]
    assert missing == []


def test_retired_models_keep_their_last_price_marked_retired():
    for provider, model in (("openai", "gpt-image-1"), ("openai", "dall-e-3"), ("openai", "gpt-image-1-mini"),
                            ("openai", "gpt-image-1.5"), ("gemini", "gemini-2.5-flash-image"),
                            ("gemini", "imagen-4.0-generate-001")):
        assert BOOK.row(provider, model).retired, model
    assert BOOK.row("openai", "gpt-image-2").retired is None


def test_the_most_specific_row_wins_and_names_are_case_insensitive():
    assert BOOK.row("openai", "GPT-Image-2.5-Flare").pattern == "gpt-image-2.5-*"
    assert BOOK.row("openai", "gpt-image-2-2026-04-21").pattern == "gpt-image-2*"
    assert BOOK.row("openai", "gpt-image-1-mini").pattern == "gpt-image-1-mini*"
    assert BOOK.row("gemini", "imagen-4.0-fast-generate-001").price == Decimal("0.02")
    # a row naming its provider only prices that provider's calls
    assert BOOK.row("openrouter", "google/gemini-3-pro-image-preview").provider == "openrouter"
    assert BOOK.row("gemini", "google/gemini-3-pro-image-preview") is None


def test_gpt_size_and_quality_words_match_what_the_openai_provider_sends():
    """quote() spells sizes and qualities as app/providers/openai.py does; a change there must show here."""
    row = BOOK.row("openai", "gpt-image-2")
    assert dict(row.size_tiers) == openai_provider.TIER_SIZES
    width, height = openai_provider.GPT_IMAGE_2.sizes.free.max_area
    assert row.auto_size == "2880x2880" and 2880 * 2880 == width * height
    assert GPT_QUALITIES == {k: v for k, v in openai_provider.GPT_QUALITY.items() if k != "auto"}


# ----- overrides -----

def test_an_override_changes_only_the_fields_it_sets_and_adds_new_rows():
    book = PriceBook.load({"gpt-image-2*": {"image_output": "25"},
                           "my-model-*": {"unit": "image", "price": 0.5}})
    row = book.row("openai", "gpt-image-2")
    assert row.image_output == Decimal("25") and row.text_input == Decimal("5.00")
    assert row.source == "routing file (GATEWAY_CONFIG)" and row.read is None
    assert book.row("openai", "my-model-x").price == Decimal("0.5")  # a TOML float, read without drift
    assert PriceBook.load().row("openai", "gpt-image-2").image_output == Decimal("30.00")  # shipped rows untouched


def test_override_rows_come_before_more_specific_shipped_rows():
    book = PriceBook.load({"gpt-image-*": {"unit": "image", "price": "0.01"}})
    assert book.quote("openai", "gpt-image-2.5-flare", ImageRequest(model="x", prompt="p", n=3)) == Decimal("0.03")


@pytest.mark.parametrize("overrides,named", [
    ({"new-model": {"price": "0.1"}}, 'prices."new-model".unit'),
    ({"gpt-image-2*": {"image_output": "-1"}}, 'prices."gpt-image-2*".image_output'),
    ({"gpt-image-2*": {"image_outptu": "1"}}, 'prices."gpt-image-2*".image_outptu'),
    ({"gpt-image-2*": {"output_tokens": {"high:1024x1024": "many"}}}, 'prices."gpt-image-2*".output_tokens.high:1024x1024'),
    ({"x-*": {"unit": "token", "text_input": "1", "image_output": "2"}}, 'prices."x-*".size_rule'),
    ({"x-*": {"unit": "megapixel", "first_megapixel": "abc"}}, 'prices."x-*".first_megapixel'),
    ({"x-*": "0.04"}, 'prices."x-*"'),
])
def test_a_bad_override_is_refused_naming_the_key(overrides, named):
    with pytest.raises(PriceTableError) as caught:
        PriceBook.load(overrides)
    assert str(caught.value).startswith(named + ":") or str(caught.value).startswith(named + " ")


def test_routing_file_prices_are_checked_at_start_up(tmp_path):
    path = tmp_path / "gateway.toml"
    path.write_text('[prices."gpt-image-2*"]\nimage_output = "25"\n\n[prices."house-*"]\nunit = "image"\nprice = "0.2"\n')
    routing = Settings.from_env({"GATEWAY_CONFIG": str(path)}).routing
    book = PriceBook.load(routing.prices)
    assert book.row("openai", "gpt-image-2").image_output == Decimal("25")
    assert book.quote("openai", "house-special", ImageRequest(model="x", prompt="p", n=2)) == Decimal("0.4")

    path.write_text('[prices."house-*"]\nunit = "image"\nprice = "free"\n')
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({"GATEWAY_CONFIG": str(path)})
    assert str(caught.value) == f'{path}: prices."house-*".price: Not a valid number.'


def test_unknown_price_is_counted_by_provider_and_model():
    def count():
        return REGISTRY.get_sample_value("gateway_price_unknown_total", {"provider": "openai", "model": "gpt-x"}) or 0
    before = count()
    record_unknown("openai", "gpt-x")
    record_unknown("openai", "gpt-x")
    assert count() == before + 2


def test_model_labels_are_bounded_and_say_when_a_model_is_first_labelled():
    from app.metrics import MAX_MODEL_LABELS, ModelLabels
    labels = ModelLabels()
    assert labels.label("openrouter", "m0") == ("m0", True)
    assert labels.label("openrouter", "m0") == ("m0", False)
    for number in range(1, MAX_MODEL_LABELS):
        assert labels.label("openrouter", f"m{number}") == (f"m{number}", True)
    assert labels.label("openrouter", "one-too-many") == ("other", False)
    assert labels.label("openrouter", "m5") == ("m5", False)  # the labelled ones keep theirs
