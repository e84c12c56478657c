"""Google Gemini Developer API: generateContent with image output (§E)."""
from __future__ import annotations

from app.generation import ImageRequest, ImageResult
from app.providers.base import ProviderClient


class GeminiClient(ProviderClient):
    name = "gemini"
    model_patterns = ("gemini-*", "imagen-*")
    known_models = ("gemini-2.5-flash-image",)

    def generate(self, request: ImageRequest) -> ImageResult:
        raise NotImplementedError
