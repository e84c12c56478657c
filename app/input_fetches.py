"""Client input images fetched once per request, however many upstream calls use them.

A request with `n` > 1 on a provider without a native `n` becomes `n` parallel calls, and retries
and fallbacks rebuild the upstream body again: without sharing, each of them would download the
same http(s) image anew (n× the waiting, n× the traffic to a host the client chose). Within
`shared()`, the first caller downloads and the others wait for its bytes, or its refusal.
"""
from __future__ import annotations

import contextlib
import threading
from concurrent.futures import Future
from contextvars import ContextVar
from typing import Callable, Iterator

Fetched = tuple[bytes, str]  # bytes and sniffed MIME type

_current: ContextVar["_Fetches | None"] = ContextVar("input_fetches", default=None)


@contextlib.contextmanager
def shared() -> Iterator[None]:
    """Share input downloads among everything this request runs, fan-out threads included
    (they start from a copy of this context, which holds the same table)."""
    token = _current.set(_Fetches())
    try:
        yield
    finally:
        _current.reset(token)


def fetch(url: str, download: Callable[[str], Fetched]) -> Fetched:
    """`download(url)`, or the outcome of the same download already made or under way in this request."""
    fetches = _current.get()
    return download(url) if fetches is None else fetches.get(url, download)


class _Fetches:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_url: dict[str, Future] = {}

    def get(self, url: str, download: Callable[[str], Fetched]) -> Fetched:
        with self._lock:
            outcome = self._by_url.get(url)
            mine = outcome is None
            if mine:
                outcome = self._by_url[url] = Future()
        if mine:
            try:
                outcome.set_result(download(url))
            except BaseException as exc:  # the waiters get the same refusal
                outcome.set_exception(exc)
        return outcome.result()  # the downloader's own deadline bounds the wait
