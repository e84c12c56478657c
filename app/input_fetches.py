"""Client input images fetched once per request, however many upstream calls use them, within the
request's image budget.

A request with `n` > 1 on a provider without a native `n` becomes `n` parallel calls, and retries
and fallbacks rebuild the upstream body again: without sharing, each of them would download the
same http(s) image anew (n× the waiting, n× the traffic to a host the client chose). Within
`shared()`, the first caller downloads and the others wait for its bytes, or its refusal.

The budget (`limits()`, set by the view from what the body already carries) caps each download at
GATEWAY_MAX_IMAGE_BYTES and all of a request's downloads together at what is left of
GATEWAY_MAX_TOTAL_IMAGE_BYTES.
"""
from __future__ import annotations

import contextlib
import threading
from concurrent.futures import Future
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Callable, Iterator

from app.downloads import DownloadRefused, DownloadTooLarge

Fetched = tuple[bytes, str]  # bytes and sniffed MIME type


@dataclass(frozen=True)
class Budget:
    """Bytes a request's downloads may add: each at most `per_image`, together at most `left`
    (what GATEWAY_MAX_TOTAL_IMAGE_BYTES, `limit`, leaves after the images the body carries)."""

    left: int
    per_image: int
    limit: int


_budget: ContextVar[Budget | None] = ContextVar("input_budget", default=None)
_current: ContextVar["_Fetches | None"] = ContextVar("input_fetches", default=None)


@contextlib.contextmanager
def limits(budget: Budget) -> Iterator[None]:
    """Downloads started inside (threads started inside included) stay within `budget`."""
    token = _budget.set(budget)
    try:
        yield
    finally:
        _budget.reset(token)


@contextlib.contextmanager
def shared() -> Iterator[None]:
    """Share input downloads among everything this request runs, fan-out threads included
    (they start from a copy of this context, which holds the same table)."""
    token = _current.set(_Fetches(_budget.get()))
    try:
        yield
    finally:
        _current.reset(token)


def fetch(url: str, download: Callable[..., Fetched]) -> Fetched:
    """`download(url)`, or the outcome of the same download already made or under way in this request.

    `download` is `Downloader.fetch`: it is called with the size cap left in the budget and as a
    client's download (so it waits for a download slot).
    """
    fetches = _current.get()
    if fetches is None:
        fetches = _Fetches(_budget.get())
    return fetches.get(url, download)


class _Fetches:
    def __init__(self, budget: Budget | None) -> None:
        self._lock = threading.Lock()
        self._by_url: dict[str, Future] = {}
        self._budget = budget
        self._left = budget.left if budget is not None else 0

    def get(self, url: str, download: Callable[..., Fetched]) -> Fetched:
        with self._lock:
            outcome = self._by_url.get(url)
            mine = outcome is None
            if mine:
                outcome = self._by_url[url] = Future()
        if mine:
            try:
                outcome.set_result(self._download(url, download))
            except BaseException as exc:  # the waiters get the same refusal
                outcome.set_exception(exc)
        return outcome.result()  # the downloader's own deadline bounds the wait

    def _download(self, url: str, download: Callable[..., Fetched]) -> Fetched:
        if self._budget is None:
            return download(url, for_client=True)
        with self._lock:
            left = self._left
        if left <= 0:
            raise self._over_total(url)
        try:
            data, mime = download(url, max_bytes=min(self._budget.per_image, left), for_client=True)
        except DownloadTooLarge:
            if left < self._budget.per_image:
                raise self._over_total(url) from None
            raise
        with self._lock:
            self._left -= len(data)
            over = self._left < 0  # downloads of this request that ran side by side
        if over:
            raise self._over_total(url)
        return data, mime

    def _over_total(self, url: str) -> DownloadRefused:
        return DownloadRefused(f"The images of this request are larger than {self._budget.limit} bytes in all "
                               "(GATEWAY_MAX_TOTAL_IMAGE_BYTES, counting the images in the body)", "",
                               f"total image budget exceeded by {url[:200]}")
