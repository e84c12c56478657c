"""The provider registry: provider name -> client class. Adding a provider is one module and one line here.

Each line names a provider module's client class, libcloud-style, and is imported when this module
is: so the list below is the whole registry, one line per provider. Order matters for routing: the
first provider whose patterns match a model name serves it. OpenRouter comes first because its names
(`vendor/model`) may contain any other provider's pattern.
"""
from __future__ import annotations

from importlib import import_module

from app.providers.base import ProviderClient

PROVIDER_CLASSES = (
    "app.providers.openrouter.OpenRouterClient",
    "app.providers.openai.OpenAIClient",
    "app.providers.ark.ArkClient",
    "app.providers.gemini.GeminiClient",
    "app.providers.local.LocalClient",
    "app.providers.bfl.BflClient",
    "app.providers.xai.XaiClient",
)


def _load(path: str) -> type[ProviderClient]:
    module, _, name = path.rpartition(".")
    return getattr(import_module(module), name)


PROVIDERS: dict[str, type[ProviderClient]] = {cls.name: cls for cls in map(_load, PROVIDER_CLASSES)}


def provider_for(model: str) -> str | None:
    """The name of the provider whose model patterns match `model`, in registry order; None when none does."""
    for name, cls in PROVIDERS.items():
        if cls.serves(model):
            return name
    return None
