"""ByteDance Doubao Seedream on Volcengine Ark: /images/generations for generation and edits (§C)."""
from __future__ import annotations

from app.generation import ImageRequest, ImageResult
from app.providers.base import ProviderClient


class ArkClient(ProviderClient):
    name = "ark"
    model_patterns = ("doubao-*", "seedream-*", "seededit-*")
    known_models = ("doubao-seedream-4-0-250828", "doubao-seedream-4-5-251128")

    def generate(self, request: ImageRequest) -> ImageResult:
        raise NotImplementedError
