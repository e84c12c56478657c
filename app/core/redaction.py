"""Secrets kept out of what leaves the process: every field of an error body, every log line.

A relay in front of a provider can echo our request headers into an error's message, code or
param, and a provider can quote part of the key it was sent, upper-cased or cut. So any run of
MIN_RUN (8) or more characters of a configured secret, in any letter case, becomes `***`, and so
does anything shaped like a credential even when it is not ours (sk-..., AIza..., Bearer ...,
xai-..., whsec_..., and UUIDs, the shape of Ark keys, which have no prefix). Secrets shorter than
MIN_RUN are hidden where they appear whole.

Which secrets: read from Settings by name, so a new setting needs no change here when it follows
the convention — every field named `*_key`, `*_keys`, `*_token`, `*_secret`, `*_secrets` (text,
bytes or a tuple of them), the password of every `*_url`, and the key of every provider and
routing-file channel. Anything else can be added with `register()`.

The cost on the common path (a log line with no secret in it) is one pass over every fourth
character of the text; the exact scan runs only where a piece of a secret was seen.
"""
from __future__ import annotations

import base64
import dataclasses
import re
import threading
from typing import Any, Iterable
from urllib.parse import urlsplit

MIN_RUN = 8
MIN_WHOLE = 6            # a secret shorter than MIN_RUN is hidden when it appears whole, if at least this long
MASK = "***"
SECRET_SUFFIXES = ("_key", "_keys", "_token", "_secret", "_secrets")
_PROBE = 4               # every run of MIN_RUN characters holds a PROBE-aligned PROBE-gram (MIN_RUN >= 2 * PROBE - 1)
_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")  # keeps every index in place
_SHAPES = re.compile(
    r"\bsk-[A-Za-z0-9_\-.*]{8,}"                      # OpenAI, OpenRouter, this gateway's sk-gw- keys
    r"|\bAIza[0-9A-Za-z_\-]{20,}"                     # Google
    r"|\bxai-[A-Za-z0-9_\-]{16,}"                     # xAI
    r"|\bwhsec_[A-Za-z0-9+/=]{16,}"                   # Standard Webhooks secrets
    r"|\bBearer\s+[A-Za-z0-9._~+/=\-]{8,}"            # whatever an Authorization header carried
    r"|\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b",  # Ark (and other UUID-shaped) keys
    re.IGNORECASE)


class Redactor:
    """Hides a fixed set of secrets (and credential shapes) in text."""

    def __init__(self, secrets: Iterable[str] = ()):
        self.secrets = frozenset(s for s in secrets if s and len(s) >= MIN_WHOLE)
        long = [s.translate(_LOWER) for s in self.secrets if len(s) >= MIN_RUN]
        self._runs = frozenset(s[i:i + MIN_RUN] for s in long for i in range(len(s) - MIN_RUN + 1))
        self._probes = frozenset(s[i:i + _PROBE] for s in long for i in range(len(s) - _PROBE + 1))
        short = sorted((s for s in self.secrets if len(s) < MIN_RUN), key=len, reverse=True)
        self._whole = re.compile("|".join(map(re.escape, short)), re.IGNORECASE) if short else None

    def redact(self, text: str, *, shapes: bool = True) -> str:
        """`text` with every secret run (and, with `shapes`, every credential shape) replaced by ***."""
        if not text:
            return text
        low = text.translate(_LOWER)
        text = self._hide_runs(text, low)
        if self._whole is not None:
            text = self._whole.sub(MASK, text)
        if shapes and ("-" in text or "_" in text or "aiza" in low or "bearer" in low):  # every shape holds one
            text = _SHAPES.sub(MASK, text)
        return text

    def _hide_runs(self, text: str, low: str) -> str:
        if not self._runs or self._probes.isdisjoint(low[i:i + _PROBE] for i in range(0, len(low) - _PROBE + 1, _PROBE)):
            return text
        runs = self._runs
        spans: list[list[int]] = []
        for start in range(len(low) - MIN_RUN + 1):
            if low[start:start + MIN_RUN] in runs:
                if spans and start <= spans[-1][1]:
                    spans[-1][1] = start + MIN_RUN
                else:
                    spans.append([start, start + MIN_RUN])
        if not spans:
            return text
        pieces, cursor = [], 0
        for start, end in spans:
            pieces += [text[cursor:start], MASK]
            cursor = end
        pieces.append(text[cursor:])
        return "".join(pieces)


def secrets_of(settings: Any) -> set[str]:
    """Every secret the settings hold, by the naming convention (see the module docstring)."""
    found: set[str] = set()
    for spec in dataclasses.fields(settings):
        value = getattr(settings, spec.name, None)
        if spec.name.endswith(SECRET_SUFFIXES):
            found.update(_texts(value))
        elif spec.name.endswith("_url") and isinstance(value, str) and value:
            found.update(_url_password(value))
    for provider in (getattr(settings, "providers", None) or {}).values():
        found.update(_texts(provider.api_key))
    routing = getattr(settings, "routing", None)
    for channel in (getattr(routing, "channels", None) or {}).values():
        found.update(_texts(getattr(channel, "api_key", None)))
    return found


def _texts(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value.strip()]
    if isinstance(value, bytes):  # binary secrets (a webhook secret) travel as base64 text
        return [base64.b64encode(value).decode("ascii")]
    if isinstance(value, (tuple, list, frozenset, set)):
        return [text for item in value for text in _texts(item)]
    return []


def _url_password(url: str) -> list[str]:
    try:
        password = urlsplit(url).password
    except ValueError:
        return []
    return [password] if password else []


_lock = threading.Lock()
_active = Redactor()


def install(settings: Any) -> None:
    """Hide the secrets of `settings` from now on (in this process, added to those already known)."""
    register(*secrets_of(settings))


def register(*secrets: str) -> None:
    """Hide these secrets too."""
    global _active
    with _lock:
        _active = Redactor(_active.secrets | {s for s in secrets if s})


def redact(text: str, *, shapes: bool = True) -> str:
    """`text` as it may leave the process: see `Redactor.redact`."""
    return _active.redact(text, shapes=shapes)
