"""Settings: named defaults, read once from the environment (or a dict in tests), here only."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Mapping

DEFAULT_PORT = 8000
DEFAULT_WEB_CONCURRENCY = 2
DEFAULT_THREADS = 16
DEFAULT_UPSTREAM_TIMEOUT = 300.0
DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024
DEFAULT_DOWNLOAD_MAX_BYTES = 20 * 1024 * 1024
DEFAULT_DOWNLOAD_TIMEOUT = 30.0
DEFAULT_FANOUT_THREADS = 4
DEFAULT_STREAM_KEEPALIVE = 5.0
DEFAULT_IMAGE_MODEL = "gpt-image-1"

# provider name -> (env prefix, default base URL). Adding a provider adds a line here only if it
# is configured through the environment; the client module itself is the other half.
PROVIDER_ENV = {
    "openai": ("OPENAI", "https://api.openai.com/v1"),
    "ark": ("ARK", "https://ark.cn-beijing.volces.com/api/v3"),
    "openrouter": ("OPENROUTER", "https://openrouter.ai/api/v1"),
    "gemini": ("GEMINI", "https://generativelanguage.googleapis.com"),
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class ConfigError(ValueError):
    """A setting has a value the service cannot start with; the message names the variable."""


@dataclass(frozen=True)
class ProviderSettings:
    """One upstream account: where it lives, its key, and provider-specific extras."""

    name: str
    api_key: str | None
    base_url: str
    timeout: float
    extra_models: tuple[str, ...] = ()
    options: Mapping[str, str] = field(default_factory=dict)

    @property
    def key_variable(self) -> str:
        return f"{PROVIDER_ENV[self.name][0]}_API_KEY" if self.name in PROVIDER_ENV else ""

    def __repr__(self) -> str:  # never print the key
        return f"ProviderSettings(name={self.name!r}, base_url={self.base_url!r}, key={'set' if self.api_key else 'unset'})"


@dataclass(frozen=True)
class Settings:
    """Everything the service is configured with; built once, then only read."""

    api_keys: tuple[str, ...] = ()
    providers: Mapping[str, ProviderSettings] = field(default_factory=dict)
    upstream_timeout: float = DEFAULT_UPSTREAM_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    allow_private_urls: bool = False
    download_max_bytes: int = DEFAULT_DOWNLOAD_MAX_BYTES
    download_timeout: float = DEFAULT_DOWNLOAD_TIMEOUT
    fanout_threads: int = DEFAULT_FANOUT_THREADS
    stream_keepalive: float = DEFAULT_STREAM_KEEPALIVE
    default_image_model: str = DEFAULT_IMAGE_MODEL
    log_prompts: bool = False
    metrics_token: str | None = None
    port: int = DEFAULT_PORT
    web_concurrency: int = DEFAULT_WEB_CONCURRENCY
    threads: int = DEFAULT_THREADS
    log_level: str = "INFO"

    def __repr__(self) -> str:  # never print client keys
        return f"Settings(api_keys=<{len(self.api_keys)} keys>, providers={list(self.providers)})"

    @classmethod
    def from_env(cls, environ: Mapping[str, object] | None = None) -> "Settings":
        """Parse settings from an environment-like mapping (os.environ by default).

        Tests pass a plain dict with the same variable names, so there is one parsing path.
        """
        env = _Env(os.environ if environ is None else environ)
        timeout = env.number("GATEWAY_UPSTREAM_TIMEOUT", DEFAULT_UPSTREAM_TIMEOUT, minimum=1)
        providers = {}
        for name, (prefix, default_base) in PROVIDER_ENV.items():
            options = {
                key[len(prefix) + 1:].lower(): value
                for key, value in env.items()
                if key.startswith(prefix + "_")
                and key not in (f"{prefix}_API_KEY", f"{prefix}_BASE_URL", f"{prefix}_MODELS")
            }
            providers[name] = ProviderSettings(
                name=name,
                api_key=env.text(f"{prefix}_API_KEY") or None,
                base_url=(env.text(f"{prefix}_BASE_URL") or default_base).rstrip("/"),
                timeout=timeout,
                extra_models=env.words(f"{prefix}_MODELS"),
                options=options,
            )
        providers["local"] = ProviderSettings(
            name="local", api_key=None, base_url="local:", timeout=timeout,
            extra_models=env.words("LOCAL_MODELS"),
        )
        return cls(
            api_keys=env.words("GATEWAY_API_KEYS"),
            providers=providers,
            upstream_timeout=timeout,
            connect_timeout=env.number("GATEWAY_CONNECT_TIMEOUT", DEFAULT_CONNECT_TIMEOUT, minimum=0.1),
            max_body_bytes=int(env.number("GATEWAY_MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES, minimum=1024)),
            allow_private_urls=env.flag("GATEWAY_ALLOW_PRIVATE_URLS", False),
            download_max_bytes=int(env.number("GATEWAY_DOWNLOAD_MAX_BYTES", DEFAULT_DOWNLOAD_MAX_BYTES, minimum=1024)),
            download_timeout=env.number("GATEWAY_DOWNLOAD_TIMEOUT", DEFAULT_DOWNLOAD_TIMEOUT, minimum=0.1),
            fanout_threads=int(env.number("GATEWAY_FANOUT_THREADS", DEFAULT_FANOUT_THREADS, minimum=1)),
            stream_keepalive=env.number("GATEWAY_STREAM_KEEPALIVE_SECONDS", DEFAULT_STREAM_KEEPALIVE, minimum=0.05),
            default_image_model=env.text("GATEWAY_DEFAULT_IMAGE_MODEL") or DEFAULT_IMAGE_MODEL,
            log_prompts=env.flag("GATEWAY_LOG_PROMPTS", False),
            metrics_token=env.text("GATEWAY_METRICS_TOKEN") or None,
            port=int(env.number("PORT", DEFAULT_PORT, minimum=1)),
            web_concurrency=int(env.number("WEB_CONCURRENCY", DEFAULT_WEB_CONCURRENCY, minimum=1)),
            threads=int(env.number("GATEWAY_THREADS", DEFAULT_THREADS, minimum=1)),
            log_level=(env.text("GATEWAY_LOG_LEVEL") or "INFO").upper(),
        )


class _Env:
    """Typed reads from an environment mapping; every error names the variable."""

    def __init__(self, mapping: Mapping[str, object]):
        self._mapping = mapping

    def items(self):
        return ((str(k), self.text(str(k))) for k in self._mapping)

    def text(self, name: str) -> str:
        value = self._mapping.get(name)
        return "" if value is None else str(value).strip()

    def words(self, name: str) -> tuple[str, ...]:
        value = self._mapping.get(name)
        if isinstance(value, (list, tuple)):
            return tuple(str(v).strip() for v in value if str(v).strip())
        return tuple(part.strip() for part in self.text(name).split(",") if part.strip())

    def number(self, name: str, default: float, minimum: float) -> float:
        raw = self.text(name)
        if not raw:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number, got {raw!r}") from None
        if value < minimum:
            raise ConfigError(f"{name} must be at least {minimum:g}, got {raw!r}")
        return value

    def flag(self, name: str, default: bool) -> bool:
        raw = self.text(name).lower()
        if name not in self._mapping:
            return default
        if raw in _TRUE:
            return True
        if raw in _FALSE:
            return False
        raise ConfigError(f"{name} must be one of true/false/1/0/yes/no/on/off, got {raw!r}")
