"""OpenRouter: image generation through its chat completions route (§D)."""
from __future__ import annotations

from app.generation import ImageRequest, ImageResult
from app.providers.base import ProviderClient


class OpenRouterClient(ProviderClient):
    name = "openrouter"
    model_patterns = ("*/*",)
    known_models = ("google/gemini-2.5-flash-image",)

    def generate(self, request: ImageRequest) -> ImageResult:
        raise NotImplementedError
