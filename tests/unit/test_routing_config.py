"""The routing file: what it may say, and start-up refusals that name the line or the key."""
import pytest

from app import create_app
from app.config import Settings
from app.core.settings import ConfigError

GOOD = """
[channels.openai-eu]
provider = "openai"
base_url = "https://eu.openai.test/v1"
api_key_env = "OPENAI_EU_KEY"
timeout = 120
weight = 3
options = { organization = "org-eu" }

[channels.backup]
provider = "openrouter"
api_key_env = "BACKUP_KEY"
weight = 0
models = ["vendor/special-model"]

[models."fast-image"]
routes = ["openai-eu:gpt-image-1-mini", "backup:google/gemini-2.5-flash-image"]
defaults = { quality = "low", size = "1024x1024" }

[models."gpt-image-1"]
defaults = { moderation = "low" }
"""


def load(tmp_path, text, **env):
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    return Settings.from_env({"GATEWAY_CONFIG": str(path), **env})


def test_a_good_file(tmp_path):
    routing = load(tmp_path, GOOD, OPENAI_EU_KEY="sk-eu", BACKUP_KEY="sk-or").routing
    eu = routing.channels["openai-eu"]
    assert (eu.provider, eu.base_url, eu.api_key, eu.timeout, eu.weight) == (
        "openai", "https://eu.openai.test/v1", "sk-eu", 120, 3)
    assert eu.options == {"organization": "org-eu"}
    assert routing.channels["backup"].models == ("vendor/special-model",)
    fast = routing.models["fast-image"]
    assert [(r.channel, r.model) for r in fast.routes] == [("openai-eu", "gpt-image-1-mini"),
                                                          ("backup", "google/gemini-2.5-flash-image")]
    assert fast.defaults == {"quality": "low", "size": "1024x1024"}
    assert routing.models["gpt-image-1"].routes == ()
    assert "sk-eu" not in repr(routing)


@pytest.mark.parametrize("text, message", [
    ("[channels.x\nprovider = 1", "not valid TOML.*line 1"),
    ('[channels.x]\nprovider = "nope"\napi_key_env = "K"', r"channels\.x\.provider: Must be one of"),
    ('[channels.x]\nprovider = "openai"\napi_key = "sk-literal"', r"channels\.x\.api_key: Unknown field"),
    ('[channels.x]\nprovider = "openai"', r"channels\.x\.api_key_env: name the environment variable"),
    ('[channels.x]\nprovider = "openai"\napi_key_env = "UNSET_VAR"', "UNSET_VAR is not set"),
    ('[channels.openai]\nprovider = "openai"\napi_key_env = "K"', "environment channel"),
    ('[channels.x]\nprovider = "openai"\napi_key_env = "K"\nweight = -1', r"channels\.x\.weight"),
    ('[channels.x]\nprovider = "openai"\napi_key_env = "K"\nbase_url = "ftp://x"', r"channels\.x\.base_url"),
    ('[models.a]\nroutes = ["nowhere:gpt-image-1"]', r"models\.a\.routes\[0\]: unknown channel 'nowhere'"),
    ('[models.a]\nroutes = ["no-colon"]', r"models\.a\.routes"),
    ('[models.a]\ndefaults = { size = "huge" }', r"models\.a\.defaults\.size"),
    ('[models.a]\ndefaults = { colour = "red" }', r"models\.a\.defaults\.colour: Unknown field"),
    ('[extras]\nx = 1', r"extras: Unknown field"),
])
def test_invalid_files_are_refused_naming_the_line_or_key(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message) as caught:
        load(tmp_path, text, K="k")
    assert "gateway.toml" in str(caught.value)


def test_missing_file_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        Settings.from_env({"GATEWAY_CONFIG": str(tmp_path / "absent.toml")})


def test_the_app_refuses_to_start_on_a_bad_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[models.a]\nroutes = [\"x:y\"]")
    with pytest.raises(ConfigError, match="unknown channel"):
        create_app({"GATEWAY_CONFIG": str(path), "GATEWAY_API_KEYS": "k"})
