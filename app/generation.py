"""One request on one provider client: the single seam between the API surfaces and providers, and fan-out for n."""
from __future__ import annotations

from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import replace
from typing import Callable, Protocol

from app.core.context import in_request_context
from app.core.errors import InvalidRequest
from app.core.request import ImageRequest
from app.core.result import GeneratedImage, ImageEvents, ImageResult, merge


class ImageClient(Protocol):
    """What the flow needs of a provider client (a ProviderClient, or one seen through retries)."""

    def supports_n(self, model: str) -> bool: ...

    def generate(self, request: ImageRequest) -> ImageResult: ...

    def generate_streaming(self, request: ImageRequest,
                           on_partial: Callable[[int, GeneratedImage], None]) -> ImageResult: ...


def generate(client: ImageClient, request: ImageRequest, *, fanout_threads: int = 4) -> ImageResult:
    """Run one request on one provider client; the single seam between the API surfaces and providers.

    Providers without a native `n` get `n` single-image calls in parallel threads (at most
    `fanout_threads` at once). If any call fails the whole request fails with that error: a
    caller never receives fewer images than it asked for without being told.
    """
    _check(request)
    if request.n > 1 and not client.supports_n(request.model):
        return _fan_out(lambda slot, single: client.generate(single).attach_text(), request, fanout_threads)
    return client.generate(request).attach_text()


def generate_events(client: ImageClient, request: ImageRequest, events: ImageEvents, *,
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
