"""Settings are read once from an environment-like mapping; bad values name their variable."""
import pytest

from app import create_app
from app.config import DEFAULT_MAX_BODY_BYTES, Settings
from app.core.settings import ConfigError


def test_defaults_from_an_empty_environment():
    settings = Settings.from_env({})
    assert settings.api_keys == ()
    assert settings.upstream_timeout == 300
    assert settings.port == 8000 and settings.web_concurrency == 2
    assert settings.max_body_bytes == DEFAULT_MAX_BODY_BYTES == 32 * 1024 * 1024
    assert settings.allow_private_urls is False
    assert settings.providers["openai"].base_url == "https://api.openai.com/v1"
    assert settings.providers["ark"].base_url == "https://ark.cn-beijing.volces.com/api/v3"
    assert settings.providers["openrouter"].base_url == "https://openrouter.ai/api/v1"
    assert settings.providers["gemini"].base_url == "https://generativelanguage.googleapis.com"
    assert all(p.api_key is None for p in settings.providers.values())


def test_every_provider_variable_is_parsed():
    env = {"GATEWAY_API_KEYS": " a, b ,,c ", "GATEWAY_UPSTREAM_TIMEOUT": "120", "PORT": "5000",
           "WEB_CONCURRENCY": "4", "GATEWAY_ALLOW_PRIVATE_URLS": "yes"}
    for prefix in ("OPENAI", "ARK", "OPENROUTER", "GEMINI"):
        env[f"{prefix}_API_KEY"] = f"{prefix.lower()}-key"
        env[f"{prefix}_BASE_URL"] = f"http://{prefix.lower()}.test/base/"
        env[f"{prefix}_MODELS"] = f"{prefix.lower()}-extra"
    env["ARK_WATERMARK"] = "true"
    env["OPENROUTER_REFERER"] = "https://app.example"
    settings = Settings.from_env(env)
    assert settings.api_keys == ("a", "b", "c")
    assert settings.upstream_timeout == 120 and settings.port == 5000 and settings.web_concurrency == 4
    assert settings.allow_private_urls is True
    for name in ("openai", "ark", "openrouter", "gemini"):
        provider = settings.providers[name]
        assert provider.api_key == f"{name}-key"
        assert provider.base_url == f"http://{name}.test/base"  # trailing slash trimmed
        assert provider.extra_models == (f"{name}-extra",)
        assert provider.timeout == 120
    assert settings.providers["ark"].options["watermark"] == "true"
    assert settings.providers["openrouter"].options["referer"] == "https://app.example"


@pytest.mark.parametrize("name, value", [("GATEWAY_UPSTREAM_TIMEOUT", "soon"), ("PORT", "0"),
                                         ("WEB_CONCURRENCY", "-1"), ("GATEWAY_ALLOW_PRIVATE_URLS", "maybe"),
                                         ("GATEWAY_MAX_BODY_BYTES", "10"), ("GATEWAY_LOG_LEVEL", "LOUD"),
                                         ("PORT", "99999"), ("PORT", "80.5"), ("GATEWAY_THREADS", "inf"),
                                         ("WEB_CONCURRENCY", "2.5"), ("GATEWAY_UPSTREAM_TIMEOUT", "nan"),
                                         ("GATEWAY_DOWNLOAD_TIMEOUT", "inf")])
def test_bad_values_name_the_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


def test_repr_never_shows_keys():
    settings = Settings.from_env({"GATEWAY_API_KEYS": "client-secret", "OPENAI_API_KEY": "sk-provider-secret"})
    text = repr(settings) + repr(settings.providers["openai"])
    assert "client-secret" not in text and "sk-provider-secret" not in text


def test_create_app_reads_the_environment_when_given_nothing(monkeypatch, tmp_path):
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path))  # the test writes nothing outside its own directory
    monkeypatch.setenv("GATEWAY_API_KEYS", "from-env")
    monkeypatch.setenv("GATEWAY_MAX_BODY_BYTES", "4096")
    app = create_app()
    assert app.config["MAX_CONTENT_LENGTH"] == 4096
    assert app.test_client().get("/v1/models", headers={"Authorization": "Bearer from-env"}).status_code == 200


def test_create_app_accepts_settings_object(tmp_path):
    app = create_app(Settings.from_env({"GATEWAY_API_KEYS": "k", "GATEWAY_DATA_DIR": str(tmp_path)}))
    assert app.test_client().get("/v1/models", headers={"Authorization": "Bearer k"}).status_code == 200


def test_importing_the_package_builds_no_app():
    import flask

    import app as package
    assert not any(isinstance(value, flask.Flask) for value in vars(package).values())


def test_log_levels_are_named_in_any_case():
    assert Settings.from_env({"GATEWAY_LOG_LEVEL": "debug"}).log_level == "DEBUG"
    assert Settings.from_env({}).log_level == "INFO"
