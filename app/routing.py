"""The router: a model name -> the channels that serve it, in the order to try them.

A channel is one upstream account: every provider with a key in the environment is a channel named
after the provider; the routing file (GATEWAY_CONFIG) adds more. A model name is served by an
alias's ordered routes when the file defines one, otherwise by every live channel of the provider
whose patterns match, in weighted random order (the first is where the request goes; the rest
are its fallbacks).
"""
from __future__ import annotations

import random
from dataclasses import dataclass, replace

from app.config import Settings
from app.core.errors import ModelNotFound
from app.downloads import Downloader
from app.providers.base import ProviderClient
from app.providers.registry import PROVIDERS, provider_for
from app.routing_config import RoutingConfig
from app.thought_signatures import SignatureStore, from_settings as signature_store


@dataclass(frozen=True)
class Channel:
    name: str
    provider: str
    client: ProviderClient
    weight: float = 1.0
    models: tuple[str, ...] = ()


@dataclass(frozen=True)
class Route:
    """Where a request may go: a channel's client and the model name to send upstream."""

    client: ProviderClient
    upstream_model: str
    channel: str


class Router:
    """One client per live channel (built once per app); routes model names to ordered channels."""

    def __init__(self, settings: Settings, downloader: Downloader, rng: random.Random | None = None,
                 signatures: SignatureStore | None = None):
        self.settings = settings
        self.routing: RoutingConfig = settings.routing or RoutingConfig()
        self._rng = rng or random.Random()
        self.channels: dict[str, Channel] = {}
        # one store for every channel: a picture made on one channel may come back through another
        self.signatures = signatures if signatures is not None else signature_store(settings)
        build = dict(connect_timeout=settings.connect_timeout, pool_size=settings.connections_per_worker,
                     max_upstream_bytes=settings.max_upstream_bytes, signatures=self.signatures)
        for name, cls in PROVIDERS.items():
            provider_settings = settings.providers.get(name)
            if provider_settings is not None and cls.is_live(provider_settings):
                client = cls(provider_settings, downloader, **build)
                self.channels[name] = Channel(name, name, client, models=provider_settings.extra_models)
        for spec in self.routing.channels.values():
            base = settings.providers[spec.provider]
            provider_settings = replace(
                base, api_key=spec.api_key, base_url=spec.base_url or base.base_url,
                timeout=spec.timeout or base.timeout, options={**base.options, **spec.options},
                extra_models=spec.models, key_env=spec.api_key_env)
            client = PROVIDERS[spec.provider](provider_settings, downloader, **build)
            self.channels[spec.name] = Channel(spec.name, spec.provider, client, spec.weight, spec.models)

    def routes(self, model: str) -> list[Route]:
        """Every route that may serve `model`, in the order to try them; 404 when there is none."""
        alias = self.routing.models.get(model)
        if alias is not None and alias.routes:
            routes = [Route(self.channels[r.channel].client, r.model, r.channel)
                      for r in alias.routes if r.channel in self.channels]
            if not routes:
                variables = sorted({self._key_variable(r.channel) for r in alias.routes})
                raise ModelNotFound(f"The model '{model}' is an alias whose channels are not configured: set "
                                    f"{', '.join(variables)}", param="model")
            return routes
        listed = [c for c in self.channels.values() if model in c.models]
        if listed:
            return [Route(c.client, model, c.name) for c in self._weighted(listed)]
        provider = provider_for(model)
        if provider is None:
            patterns = ", ".join(p for cls in PROVIDERS.values() for p in cls.model_patterns)
            raise ModelNotFound(f"The model '{model}' does not exist on this gateway. Model names follow these "
                                f"patterns: {patterns}; GET /v1/models lists the live ones", param="model")
        live = [c for c in self.channels.values() if c.provider == provider]
        if not live:
            raise ModelNotFound(f"The model '{model}' is served by {provider}, which is not configured: "
                                f"set {self.settings.providers[provider].key_variable}", param="model")
        return [Route(c.client, model, c.name) for c in self._weighted(live)]

    def route(self, model: str) -> Route:
        """The first route of `model`."""
        return self.routes(model)[0]

    def defaults(self, model: str) -> dict:
        """Image parameters the routing file sets for this public model name (the client's win)."""
        config = self.routing.models.get(model)
        return dict(config.defaults) if config is not None else {}

    def models(self) -> list[tuple[str, str]]:
        """(model id, owner) for every model a live channel serves, aliases included."""
        seen: dict[str, str] = {}
        for name, config in self.routing.models.items():
            if config.routes and any(r.channel in self.channels for r in config.routes):
                seen[name] = "gateway"
        for channel in self.channels.values():
            for model in channel.client.models():
                seen.setdefault(model, channel.provider)
        return list(seen.items())

    def _weighted(self, channels: list[Channel]) -> list[Channel]:
        """A weighted random order (Efraimidis-Spirakis); weight 0 means 'only as a fallback'."""
        def key(channel: Channel) -> float:
            return self._rng.random() ** (1.0 / channel.weight) if channel.weight > 0 else -1.0
        return sorted(channels, key=key, reverse=True)

    def _key_variable(self, channel: str) -> str:
        spec = self.routing.channels.get(channel)
        if spec is not None:
            return spec.api_key_env or "its key"
        return f"{PROVIDERS[channel].env_prefix}_API_KEY" if channel in PROVIDERS else channel
