"""The optional TOML routing file (GATEWAY_CONFIG): channels, model aliases with fallback order, defaults.

What the environment alone can't say: several channels per provider (each with its own base URL,
key, timeout and weight), public model names that map to an ordered list of channel + upstream
model (tried in order when one fails retriably), and default image parameters per model. Keys are
never required in the file: a channel names the environment variable that holds its key.

    [channels.openai-eu]
    provider = "openai"
    base_url = "https://eu.api.openai.com/v1"
    api_key_env = "OPENAI_EU_KEY"
    timeout = 240
    weight = 3

    [models."fast-image"]
    routes = ["openai-eu:gpt-image-2.6-flare", "openrouter:google/gemini-3.1-flash-image-preview"]
    defaults = { quality = "low", size = "1024x1024" }

An invalid file stops the service with a message naming the line or the key.
"""
from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from typing import Any, Mapping

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from app.core.settings import ConfigError
from app.schemas import ImageToolParamsSchema

_CHANNEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


@dataclass(frozen=True)
class ChannelConfig:
    name: str
    provider: str
    base_url: str | None = None
    api_key: str | None = None       # read from the variable the file names, never from the file
    api_key_env: str | None = None
    timeout: float | None = None
    weight: float = 1.0
    models: tuple[str, ...] = ()
    options: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:  # never print the key
        return f"ChannelConfig(name={self.name!r}, provider={self.provider!r}, base_url={self.base_url!r})"


@dataclass(frozen=True)
class ModelRoute:
    channel: str
    model: str


@dataclass(frozen=True)
class ModelConfig:
    name: str
    routes: tuple[ModelRoute, ...] = ()
    defaults: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RoutingConfig:
    channels: Mapping[str, ChannelConfig] = field(default_factory=dict)
    models: Mapping[str, ModelConfig] = field(default_factory=dict)
    prices: Mapping[str, Any] = field(default_factory=dict)  # [prices."<pattern>"] rows, see app/pricing


class _ChannelSchema(Schema):
    class Meta:
        unknown = RAISE

    provider = fields.String(required=True)
    base_url = fields.Url(require_tld=False, schemes={"http", "https"})
    api_key_env = fields.String(validate=validate.Regexp(r"^[A-Za-z_][A-Za-z0-9_]*$"))
    timeout = fields.Float(validate=validate.Range(min=1))
    weight = fields.Float(validate=validate.Range(min=0))
    models = fields.List(fields.String(validate=validate.Length(min=1)))
    options = fields.Dict(keys=fields.String(), values=fields.Raw())

    @validates_schema
    def literal_keys_stay_out(self, data, **kwargs):
        if data.get("provider") != "local" and "api_key_env" not in data:
            raise ValidationError("name the environment variable holding this channel's key", "api_key_env")


class _ModelSchema(Schema):
    class Meta:
        unknown = RAISE

    routes = fields.List(fields.String(validate=validate.Regexp(
        r"^[^:\s]+:\S+$", error="Must be 'channel:upstream-model'.")))
    defaults = fields.Dict(keys=fields.String(), values=fields.Raw())


class _FileSchema(Schema):
    class Meta:
        unknown = RAISE

    channels = fields.Dict(keys=fields.String(validate=validate.Regexp(_CHANNEL_NAME)),
                           values=fields.Nested(_ChannelSchema))
    models = fields.Dict(keys=fields.String(validate=validate.Length(min=1)), values=fields.Nested(_ModelSchema))
    prices = fields.Dict(keys=fields.String(), values=fields.Dict())


def load(path: str, environ: Mapping[str, object], providers: tuple[str, ...]) -> RoutingConfig:
    """Read and check the file; every problem is a ConfigError naming the file and the line or key.

    `providers` are the registered provider names: what a channel's `provider` may say, and the
    names of the environment's own channels.
    """
    try:
        with open(path, "rb") as handle:
            raw = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"GATEWAY_CONFIG names {path}, which does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    try:
        data = _FileSchema().load(raw)
    except ValidationError as exc:
        where, message = _first(exc.messages)
        raise ConfigError(f"{path}: {where}: {message}") from None
    channels = {name: _channel(name, spec, environ, path, providers)
                for name, spec in data.get("channels", {}).items()}
    models = {name: _model(name, spec, channels, path, providers) for name, spec in data.get("models", {}).items()}
    from app.pricing.table import PriceTableError, check_overrides  # the price row schema (app/pricing)
    try:
        prices = check_overrides(data.get("prices", {}))
    except PriceTableError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return RoutingConfig(channels=channels, models=models, prices=prices)


def _channel(name: str, spec: dict, environ: Mapping[str, object], path: str,
             providers: tuple[str, ...]) -> ChannelConfig:
    if spec["provider"] not in providers:
        raise ConfigError(f"{path}: channels.{name}.provider: Must be one of: {', '.join(providers)}.")
    if name in providers:
        raise ConfigError(f"{path}: channels.{name}: '{name}' is the name of the environment channel of that "
                          "provider; give this channel another name")
    key = None
    if spec.get("api_key_env"):
        key = str(environ.get(spec["api_key_env"]) or "").strip()
        if not key:
            raise ConfigError(f"{path}: channels.{name}.api_key_env: the variable {spec['api_key_env']} is not set")
    return ChannelConfig(
        name=name, provider=spec["provider"], base_url=(spec.get("base_url") or "").rstrip("/") or None,
        api_key=key, api_key_env=spec.get("api_key_env"), timeout=spec.get("timeout"),
        weight=spec.get("weight", 1.0), models=tuple(spec.get("models", ())),
        options={k.lower(): str(v) for k, v in spec.get("options", {}).items()},
    )


def _model(name: str, spec: dict, channels: Mapping[str, ChannelConfig], path: str,
           providers: tuple[str, ...]) -> ModelConfig:
    routes = []
    for index, text in enumerate(spec.get("routes", [])):
        channel, _, upstream = text.partition(":")
        if channel not in channels and channel not in providers:
            known = ", ".join(sorted({*channels, *providers}))
            raise ConfigError(f"{path}: models.{name}.routes[{index}]: unknown channel '{channel}' (known: {known})")
        routes.append(ModelRoute(channel=channel, model=upstream))
    try:
        defaults = ImageToolParamsSchema().load(spec.get("defaults", {}))  # the rules of a client's tool
    except ValidationError as exc:
        where, message = _first(exc.messages)
        raise ConfigError(f"{path}: models.{name}.defaults.{where}: {message}") from None
    return ModelConfig(name=name, routes=tuple(routes), defaults=defaults)


def _first(messages: Any, path: str = "") -> tuple[str, str]:
    if isinstance(messages, dict):
        key = sorted(messages, key=str)[0]
        inner = messages[key]
        # marshmallow reports dict entries as {"name": {"value": {...}}}: skip the "value" level
        if isinstance(inner, dict) and set(inner) <= {"key", "value"}:
            inner = inner.get("value", inner.get("key"))
        step = f"[{key}]" if isinstance(key, int) else (f"{path}.{key}" if path else str(key))
        return _first(inner, step if not isinstance(key, int) else path + step)
    if isinstance(messages, list) and messages:
        return (path, messages[0]) if isinstance(messages[0], str) else _first(messages[0], path)
    return path, str(messages)
