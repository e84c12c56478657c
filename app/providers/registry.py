"""Provider registry: name -> client class, and routing a model name to a live client."""
from __future__ import annotations

from dataclasses import dataclass

from app.config import Settings
from app.downloads import Downloader
from app.errors import ModelNotFound
from app.providers.ark import ArkClient
from app.providers.base import ProviderClient
from app.providers.gemini import GeminiClient
from app.providers.local import LocalClient
from app.providers.openai import OpenAIClient
from app.providers.openrouter import OpenRouterClient

# Order matters for routing: the first provider whose patterns match a model name serves it.
# OpenRouter comes first because its names (`vendor/model`) may contain any other provider's pattern.
PROVIDERS: dict[str, type[ProviderClient]] = {
    OpenRouterClient.name: OpenRouterClient,
    OpenAIClient.name: OpenAIClient,
    ArkClient.name: ArkClient,
    GeminiClient.name: GeminiClient,
    LocalClient.name: LocalClient,
}


@dataclass(frozen=True)
class Route:
    """Where a request goes: a live client and the model name to send upstream."""

    client: ProviderClient
    upstream_model: str


class Router:
    """Holds one client per live provider (built once per app) and routes model names to them."""

    def __init__(self, settings: Settings, downloader: Downloader):
        self.settings = settings
        self.clients: dict[str, ProviderClient] = {}
        for name, cls in PROVIDERS.items():
            provider_settings = settings.providers.get(name)
            if provider_settings is not None and cls.is_live(provider_settings):
                self.clients[name] = cls(provider_settings, downloader,
                                         connect_timeout=settings.connect_timeout, pool_size=settings.threads)

    def route(self, model: str) -> Route:
        for name, cls in PROVIDERS.items():
            if cls.serves(model) or self._configured_model(name, model):
                client = self.clients.get(name)
                if client is None:
                    variable = self.settings.providers[name].key_variable
                    raise ModelNotFound(f"The model '{model}' is served by {name}, which is not configured: "
                                        f"set {variable}", param="model")
                return Route(client=client, upstream_model=model)
        patterns = ", ".join(p for cls in PROVIDERS.values() for p in cls.model_patterns)
        raise ModelNotFound(f"The model '{model}' does not exist on this gateway. Model names follow these "
                            f"patterns: {patterns}; GET /v1/models lists the live ones", param="model")

    def models(self) -> list[tuple[str, str]]:
        """(model id, provider) for every model a live provider serves."""
        return [(model, name) for name, client in self.clients.items() for model in client.models()]

    def _configured_model(self, name: str, model: str) -> bool:
        provider_settings = self.settings.providers.get(name)
        return provider_settings is not None and model in provider_settings.extra_models
