"""The start-up summary: live providers, the playground's address, the warning when no key can call."""
import logging

from app.config import Settings
from app.startup import announce, live_providers, playground_urls


def test_live_providers_are_the_ones_with_a_key_and_local(tmp_path):
    config = tmp_path / "gateway.toml"
    config.write_text('[channels.backup]\nprovider = "openrouter"\napi_key_env = "BACKUP_KEY"\n')
    settings = Settings.from_env({"OPENAI_API_KEY": "sk-x", "GATEWAY_CONFIG": str(config), "BACKUP_KEY": "k"})
    assert live_providers(settings) == ["openrouter", "openai", "local"]


def test_the_playground_address_is_loopback_when_listening_everywhere():
    assert playground_urls([("0.0.0.0", 8000), ("::1", 9000), "/run/gateway.sock"]) == [
        "http://127.0.0.1:8000/", "http://[::1]:9000/"]


def test_a_missing_client_key_is_warned_about(caplog):
    caplog.set_level(logging.INFO, logger="gateway")
    announce(Settings.from_env({}), [("127.0.0.1", 8000)], database_keys=0)
    assert [r.levelname for r in caplog.records] == ["INFO", "INFO", "WARNING"]
    assert "GATEWAY_API_KEYS" in caplog.records[-1].getMessage()
    caplog.clear()
    announce(Settings.from_env({}), [("127.0.0.1", 8000)], database_keys=2)
    announce(Settings.from_env({"GATEWAY_API_KEYS": "k"}), [("127.0.0.1", 8000)], database_keys=None)
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
