"""What a provider made: GeneratedImage, ImageResult and its Usage, and the events of a streamed generation."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass
class Usage:
    """Token usage in chat-completions terms (reference/providers.md §F.4)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    prompt_details: dict[str, int] = field(default_factory=dict)
    completion_details: dict[str, int] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def __add__(self, other: "Usage") -> "Usage":
        def merged(a: dict, b: dict) -> dict:
            out = dict(a)
            for key, value in b.items():
                out[key] = out.get(key, 0) + value if isinstance(value, (int, float)) else value
            return out
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.total_tokens + other.total_tokens,
            merged(self.prompt_details, other.prompt_details),
            merged(self.completion_details, other.completion_details),
            merged(self.extra, other.extra),
        )

    def to_dict(self, prompt: str = "prompt", completion: str = "completion") -> dict:
        """The usage object of an answer; the Images API names the two sides "input" and "output"."""
        out: dict[str, Any] = {
            f"{prompt}_tokens": self.prompt_tokens,
            f"{completion}_tokens": self.completion_tokens,
            "total_tokens": self.total_tokens or self.prompt_tokens + self.completion_tokens,
        }
        if self.prompt_details:
            out[f"{prompt}_tokens_details"] = dict(self.prompt_details)
        if self.completion_details:
            out[f"{completion}_tokens_details"] = dict(self.completion_details)
        out.update(self.extra)
        return out


@dataclass
class GeneratedImage:
    """One picture, kept as base64 text: the answer needs base64, so it is never decoded whole."""

    b64: str
    mime: str
    text: str | None = None
    revised_prompt: str | None = None
    url: str | None = None  # set once the picture is stored (app/delivery.py): answers link it instead


@dataclass
class ImageResult:
    """What a provider made. Text a provider said travels with the first image it came with."""

    images: list[GeneratedImage] = field(default_factory=list)
    text: str | None = None
    finish_reason: str = "stop"
    usage: Usage = field(default_factory=Usage)
    quality: str | None = None
    background: str | None = None
    dropped: list[str] = field(default_factory=list)

    def attach_text(self) -> "ImageResult":
        """Move result-level text onto the first image so one choice per image keeps it."""
        if self.text and self.images and self.images[0].text is None:
            self.images[0].text = self.text
            self.text = None
        return self


def merge(results: list[ImageResult]) -> ImageResult:
    """Combine per-call results in order: images concatenated, usage summed, the worst finish kept."""
    merged = ImageResult(images=[image for result in results for image in result.images])
    for result in results:
        merged.usage = merged.usage + result.usage
        merged.dropped = sorted(set(merged.dropped) | set(result.dropped))
        merged.quality = merged.quality or result.quality
        merged.background = merged.background or result.background
        if result.finish_reason != "stop":
            merged.finish_reason = result.finish_reason
        if result.text and not merged.text and not result.images:
            merged.text = result.text
    return merged


class ImageEvents(Protocol):
    """Receives a streaming generation's events as they happen (see app/streaming.py)."""

    def partial(self, slot: int, partial_index: int, image: GeneratedImage) -> None: ...

    def finished(self, slot: int, result: ImageResult) -> None: ...
