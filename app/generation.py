"""The neutral ImageRequest / ImageResult every provider speaks, and the request -> provider flow."""
from __future__ import annotations

from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Callable, Protocol

from app.errors import InvalidRequest
from app.observability import in_request_context

if TYPE_CHECKING:
    from app.providers.base import ProviderClient


@dataclass(frozen=True)
class ImageRef:
    """An input image as the client gave it: decoded already for data URLs, fetched lazily for http(s)."""

    url: str
    param: str
    data: bytes | None = None
    mime: str | None = None

    @property
    def is_remote(self) -> bool:
        return self.data is None


@dataclass(frozen=True)
class ImageRequest:
    """What a provider must make, independent of the API surface that asked for it."""

    model: str
    prompt: str
    n: int = 1
    params: dict[str, Any] = field(default_factory=dict)
    images: tuple[ImageRef, ...] = ()
    mask: ImageRef | None = None
    messages: tuple[dict, ...] = ()
    user: str | None = None
    param_prefix: str = ""          # where the image parameters sat in the client's body
    prompt_param: str = "prompt"    # where the prompt came from, for error messages
    variant: int = 0                # which of the n pictures a fanned-out call makes (for seeded providers)

    @property
    def is_edit(self) -> bool:
        return bool(self.images)

    def param_path(self, name: str) -> str:
        """Dotted path of an image parameter in the client's request, e.g. tools[0].image_generation.size."""
        return self.param_prefix + name

    def with_n(self, n: int) -> "ImageRequest":
        return replace(self, n=n)


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


class ImageEvents(Protocol):
    """Receives a streaming generation's events as they happen (see app/streaming.py)."""

    def partial(self, slot: int, partial_index: int, image: GeneratedImage) -> None: ...

    def finished(self, slot: int, result: ImageResult) -> None: ...


def generate(client: "ProviderClient", request: ImageRequest, *, fanout_threads: int = 4) -> ImageResult:
    """Run one request on one provider client; the single seam between the API surfaces and providers.

    Providers without a native `n` get `n` single-image calls in parallel threads (at most
    `fanout_threads` at once). If any call fails the whole request fails with that error: a
    caller never receives fewer images than it asked for without being told.
    """
    _check(request)
    if request.n > 1 and not client.supports_n(request.model):
        return _fan_out(lambda slot, single: client.generate(single).attach_text(), request, fanout_threads)
    return client.generate(request).attach_text()


def generate_events(client: "ProviderClient", request: ImageRequest, events: ImageEvents, *,
                    fanout_threads: int = 4) -> ImageResult:
    """Like `generate`, reporting preview frames and each finished call to `events` as they happen.

    A slot is one upstream call. When preview frames are asked for, `n` images are always made as
    `n` single-image calls, so every frame belongs to exactly one picture.
    """
    _check(request)

    def run(slot: int, single: ImageRequest) -> ImageResult:
        result = client.generate_streaming(
            single, lambda index, image: events.partial(slot, index, image)).attach_text()
        events.finished(slot, result)
        return result

    wants_partials = request.params.get("partial_images", 0) > 0
    if request.n > 1 and (wants_partials or not client.supports_n(request.model)):
        return _fan_out(run, request, fanout_threads)
    return run(0, request)


def _check(request: ImageRequest) -> None:
    if request.mask is not None and not request.images:
        raise InvalidRequest("input_image_mask needs an input image", param=request.mask.param)


def _fan_out(run: Callable[[int, ImageRequest], ImageResult], request: ImageRequest, threads: int) -> ImageResult:
    single = request.with_n(1)
    pool = ThreadPoolExecutor(max_workers=min(threads, request.n), thread_name_prefix="fanout")
    try:
        futures = [pool.submit(in_request_context(run), slot, replace(single, variant=slot))
                   for slot in range(request.n)]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        for future in futures:
            if future in done and future.exception() is not None:
                raise future.exception()
        return merge([future.result() for future in futures])
    finally:
        # calls not yet started are cancelled; calls in flight finish in the background, unread
        pool.shutdown(wait=False, cancel_futures=True)


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
