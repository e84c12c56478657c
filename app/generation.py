"""One request on one provider client: the single seam between the API surfaces and providers, and fan-out for n."""
from __future__ import annotations

from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from dataclasses import replace
from typing import Callable, Protocol

from app.core.context import in_request_context
from app.core.request import ImageRequest
from app.core.result import GeneratedImage, ImageEvents, ImageResult, merge


class ImageClient(Protocol):
    """What the flow needs of a provider client (a ProviderClient, or one seen through retries)."""

    def max_n(self, model: str) -> int: ...

    def generate(self, request: ImageRequest) -> ImageResult: ...

    def generate_streaming(self, request: ImageRequest,
                           on_partial: Callable[[int, GeneratedImage], None]) -> ImageResult: ...


def generate(client: ImageClient, request: ImageRequest, *, fanout_threads: int = 4) -> ImageResult:
    """Run one request on one provider client; the single seam between the API surfaces and providers.

    A larger `n` than one upstream call of this model makes is split into calls run in parallel
    threads (at most `fanout_threads` at once). If any call fails the whole request fails with that
    error: a caller never receives fewer images than it asked for without being told.
    """
    per_call = client.max_n(request.model)
    if request.n > per_call:
        return _fan_out(lambda slot, part: client.generate(part).attach_text(), request, per_call, fanout_threads)
    return client.generate(request).attach_text()


def generate_events(client: ImageClient, request: ImageRequest, events: ImageEvents, *,
                    fanout_threads: int = 4) -> ImageResult:
    """Like `generate`, reporting preview frames and each finished call to `events` as they happen.

    A slot is one upstream call. When preview frames are asked for, `n` images are always made as
    `n` single-image calls, so every frame belongs to exactly one picture.
    """
    def run(slot: int, part: ImageRequest) -> ImageResult:
        result = client.generate_streaming(
            part, lambda index, image: events.partial(slot, index, image)).attach_text()
        events.finished(slot, result)
        return result

    per_call = 1 if request.params.get("partial_images", 0) > 0 else client.max_n(request.model)
    if request.n > per_call:
        return _fan_out(run, request, per_call, fanout_threads)
    return run(0, request)


def _fan_out(run: Callable[[int, ImageRequest], ImageResult], request: ImageRequest, per_call: int,
             threads: int) -> ImageResult:
    """`n` pictures as calls of at most `per_call` each; a call's slot (and variant) is its first picture's index."""
    starts = range(0, request.n, per_call)
    pool = ThreadPoolExecutor(max_workers=min(threads, len(starts)), thread_name_prefix="fanout")
    try:
        futures = [pool.submit(in_request_context(run), start,
                               replace(request, n=min(per_call, request.n - start), variant=start))
                   for start in starts]
        done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        for future in futures:
            if future in done and future.exception() is not None:
                raise future.exception()
        return merge([future.result() for future in futures])
    finally:
        # calls not yet started are cancelled; calls in flight finish in the background, unread
        pool.shutdown(wait=False, cancel_futures=True)
