"""The provider registry: provider name -> client class. Adding a provider is one module and one line here.

Order matters for routing: the first provider whose patterns match a model name serves it.
OpenRouter comes first because its names (`vendor/model`) may contain any other provider's pattern.
"""
from __future__ import annotations

from app.providers.ark import ArkClient
from app.providers.base import ProviderClient
from app.providers.bfl import BflClient
from app.providers.gemini import GeminiClient
from app.providers.local import LocalClient
from app.providers.openai import OpenAIClient
from app.providers.openrouter import OpenRouterClient
from app.providers.xai import XaiClient

PROVIDERS: dict[str, type[ProviderClient]] = {cls.name: cls for cls in (
    OpenRouterClient,
    OpenAIClient,
    ArkClient,
    GeminiClient,
    LocalClient,
    BflClient,
    XaiClient,
)}


def provider_for(model: str) -> str | None:
    """The name of the provider whose model patterns match `model`, in registry order; None when none does."""
    for name, cls in PROVIDERS.items():
        if cls.serves(model):
            return name
    return None
