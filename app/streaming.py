"""Server-sent events for image generation.

A generation runs in a background thread and reports its events through a queue; the HTTP
thread turns them into SSE frames as they arrive and writes `: keep-alive` comments while
nothing happens, so proxies and PaaS routers with idle timeouts keep the connection open.
A failure after the stream started becomes an error event followed by `[DONE]`: a stream is
never cut short silently.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Callable, Iterator

from app import observability
from app.answer_options import AnswerOptions
from app.answers import chat_usage, image_delta, images_details, images_usage, new_id, picture
from app.core.context import in_request_context
from app.core.errors import GatewayError
from app.core.result import GeneratedImage, ImageEvents, ImageResult, Usage
from app.jsonio import Raw, iter_bytes, pieces

log = logging.getLogger("gateway")

KEEPALIVE = b": keep-alive\n\n"
DONE = b"data: [DONE]\n\n"
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # tell nginx not to buffer


def sse(data: dict, event: str | None = None) -> Iterator[bytes]:
    """One SSE frame, in pieces: base64 payloads are written from their strings in slices."""
    parts, _ = pieces(data)
    head = (f"event: {event}\n".encode() if event else b"") + b"data: "
    if len(parts) == 1:  # no base64 in it: one write
        yield head + parts[0] + b"\n\n"
        return
    yield head + parts[0]
    yield from iter_bytes(parts[1:-1])
    yield parts[-1] + b"\n\n"


class BackgroundGeneration(ImageEvents):
    """Runs `work(events)` in a thread; the HTTP thread reads what happened with `next()`."""

    def __init__(self, work: Callable[[ImageEvents], ImageResult]):
        self._queue: queue.Queue = queue.Queue()
        threading.Thread(target=in_request_context(self._run), args=(work,), daemon=True, name="generation").start()

    def partial(self, slot: int, partial_index: int, image: GeneratedImage) -> None:
        self._queue.put(("partial", slot, partial_index, image))

    def finished(self, slot: int, result: ImageResult) -> None:
        stats = observability.current()
        if stats is not None:
            stats.add(images=len(result.images))
        self._queue.put(("finished", slot, result))

    def next(self, timeout: float) -> tuple | None:
        """The next event, or None when `timeout` seconds pass without one."""
        try:
            return self._queue.get(timeout=timeout)
        except queue.Empty:
            return None

    def _run(self, work) -> None:
        try:
            self._queue.put(("done", work(self)))
        except GatewayError as exc:
            self._queue.put(("error", exc))
        except Exception:  # the stream must end with an error event, not hang
            log.exception("unexpected error during a streamed generation")
            self._queue.put(("error", GatewayError("The gateway failed during generation; the error was logged")))


def events(job: BackgroundGeneration, first: tuple | None, keepalive: float) -> Iterator[tuple | None]:
    """The job's events starting with `first`; None each time `keepalive` seconds pass in silence."""
    event = first
    while True:
        yield event
        if event is not None and event[0] in ("done", "error"):
            return
        event = job.next(keepalive)


class ChatStream:
    """`chat.completion.chunk` frames for one streamed image request (DESIGN §3, issue: streaming)."""

    def __init__(self, *, model: str, n: int, want_content: bool, want_tool: bool, tool_params: dict,
                 include_usage: bool, options: AnswerOptions):
        self.id = new_id("chatcmpl-")
        self.options = options
        self.created = int(time.time())
        self.model = model
        self.want_content, self.want_tool, self.tool_params = want_content, want_tool, tool_params
        self.include_usage = include_usage
        self._started: set[int] = set()
        self._taken: set[int] = set()
        self._next_free = n

    def frames(self, job: BackgroundGeneration, first: tuple | None, keepalive: float) -> Iterator[bytes]:
        yield from self._start(0)
        for event in events(job, first, keepalive):
            if event is None:
                yield KEEPALIVE
            elif event[0] == "partial":
                _, slot, partial_index, image = event
                yield from self._partial(slot, partial_index, image)
            elif event[0] == "finished":
                yield from self._finished(event[1], event[2])
            elif event[0] == "done":
                if self.include_usage:
                    yield from self._frame([], usage=chat_usage(event[1].usage, self.options))
                yield DONE
            else:
                yield from sse(event[1].body())
                yield DONE

    def _frame(self, choices: list, **extra) -> Iterator[bytes]:
        return sse({"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                    "model": self.model, "choices": choices, **extra})

    def _chunk(self, index: int, delta: dict, finish_reason: str | None = None) -> Iterator[bytes]:
        return self._frame([{"index": index, "delta": delta, "finish_reason": finish_reason, "logprobs": None}])

    def _start(self, index: int) -> Iterator[bytes]:
        self._started.add(index)
        return self._chunk(index, {"role": "assistant", "content": ""})

    def _partial(self, slot: int, partial_index: int, image: GeneratedImage) -> Iterator[bytes]:
        if slot not in self._started:
            yield from self._start(slot)
        # previews live in their own field so clients that collect `images` never mistake one
        # for the final picture
        frame = {"type": "image_url", "image_url": {"url": Raw("data:", image.mime, ";base64,", image.b64)},
                 "partial_image_index": partial_index}
        yield from self._chunk(slot, {"partial_images": [frame]})

    def _finished(self, slot: int, result: ImageResult) -> Iterator[bytes]:
        if not result.images:
            yield from self._open(slot)
            self._taken.add(slot)
            if result.text:
                yield from self._chunk(slot, {"content": result.text})
            yield from self._chunk(slot, {}, result.finish_reason)
            return
        for offset, image in enumerate(result.images):
            index = self._index(slot + offset)
            yield from self._open(index)
            if image.text:
                yield from self._chunk(index, {"content": image.text})
            yield from self._chunk(index, image_delta(image, self.want_content, self.want_tool, self.tool_params, result,
                                                     self.options))
            yield from self._chunk(index, {}, result.finish_reason)

    def _open(self, index: int) -> Iterator[bytes]:
        if index not in self._started:
            yield from self._start(index)

    def _index(self, preferred: int) -> int:
        """Choice indexes are unique: a call that brings more images than its slot gets spare ones."""
        index = preferred
        if index in self._taken:
            index = self._next_free
            self._next_free += 1
        self._taken.add(index)
        return index


class ImagesStream:
    """OpenAI Images API stream events: `<prefix>.partial_image`, `<prefix>.completed` (§A.5).

    Every event carries the fields OpenAI's event types require: `background` and `quality` are
    `auto` when unknown, and every completed event has `usage` — a call's usage on its last
    picture, zero on the others, so events summed give the request's usage.
    """

    def __init__(self, prefix: str, requested: dict, options: AnswerOptions):
        self.prefix = prefix  # image_generation or image_edit
        self.requested = requested
        self.options = options

    def frames(self, job: BackgroundGeneration, first: tuple | None, keepalive: float) -> Iterator[bytes]:
        for event in events(job, first, keepalive):
            if event is None:
                yield KEEPALIVE
            elif event[0] == "partial":
                _, _, partial_index, image = event
                kind = f"{self.prefix}.partial_image"
                yield from sse({"type": kind, **self._fields(image, None), "partial_image_index": partial_index}, kind)
            elif event[0] == "finished":
                result = event[2]
                if not result.images:
                    message = result.text or "The provider blocked this image"
                    yield from sse({"type": "error", "error": {"message": message, "type": "invalid_request_error",
                                                          "param": None, "code": "content_filter"}}, "error")
                    yield DONE
                    return
                kind = f"{self.prefix}.completed"
                for position, image in enumerate(result.images):
                    last = position == len(result.images) - 1
                    fields = self._fields(image, result)
                    fields["usage"] = images_usage(result.usage if last else Usage())
                    yield from sse({"type": kind, **fields}, kind)
            elif event[0] == "done":
                yield DONE
            else:
                yield from sse({"type": "error", **event[1].body()}, "error")
                yield DONE

    def _fields(self, image: GeneratedImage, result: ImageResult | None) -> dict:
        details = images_details(image, self.requested, result or ImageResult())
        return {**picture(image, "b64_json"), "created_at": int(time.time()), "background": "auto", "quality": "auto",
                **details}


def start(work: Callable[[ImageEvents], ImageResult], first_wait: float) -> tuple[BackgroundGeneration, tuple | None]:
    """Start a generation; wait up to `first_wait` so failures that come fast keep their HTTP status."""
    job = BackgroundGeneration(work)
    first = job.next(first_wait)
    if first is not None and first[0] == "error":
        raise first[1]
    return job, first
