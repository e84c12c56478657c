"""The request context: what code deep down must know about the request it serves, such as its deadline.

It lives in a ContextVar, so a provider's upstream call can cut its timeout to what is left of the
request's deadline without being handed anything. Threads a request starts (fan-out, streams,
keep-alive) run in a copy of the request's context (`in_request_context`) and share this object.
Logging facts live apart, in app/observability.py: this is behaviour, that is bookkeeping.
"""
from __future__ import annotations

import contextvars
import time
from dataclasses import dataclass


@dataclass
class RequestContext:
    """Per-request facts that change what the gateway does; fields are added as the gateway learns them."""

    deadline: float | None = None  # time.perf_counter() value after which no upstream call starts
    client_id: str | None = None   # the authenticated client key's id: what is kept per client is scoped by it

    def remaining(self) -> float | None:
        """Seconds left before the deadline (negative once past it); None when there is none."""
        return None if self.deadline is None else self.deadline - time.perf_counter()


_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar("gateway_context", default=None)


def begin() -> None:
    """Start a fresh context for a new request (a worker thread serves many requests in turn)."""
    _current.set(RequestContext())


def current() -> RequestContext | None:
    return _current.get()


def set_deadline(seconds: float) -> None:
    """The current request may run `seconds` from now, retries and fallbacks included."""
    _ensure().deadline = time.perf_counter() + seconds


def set_client(client_id: str | None) -> None:
    """The current request is made with this client key (its id, never its secret)."""
    _ensure().client_id = client_id


def client_id() -> str | None:
    """The current request's client key id; None outside a request or before authentication."""
    context = _current.get()
    return context.client_id if context is not None else None


def remaining() -> float | None:
    """Seconds left of the current request's deadline; None outside a request or without a deadline."""
    context = _current.get()
    return context.remaining() if context is not None else None


def _ensure() -> RequestContext:
    context = _current.get()
    if context is None:
        context = RequestContext()
        _current.set(context)
    return context


def in_request_context(fn):
    """Wrap `fn` to run in a copy of the caller's context (for threads started by a request)."""
    context = contextvars.copy_context()
    return lambda *args, **kwargs: context.copy().run(fn, *args, **kwargs)
