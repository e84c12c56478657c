"""The `Prefer` request header (RFC 7240): which preferences a request states, and whether it asks for a job.

A header value is a comma-separated list of preferences, each a token with an optional value and
`;`-separated parameters (`respond-async, wait=10`, `Respond-Async; foo="a,b"`); a request may send
the header several times. Names are case-insensitive. Anything we do not understand, malformed parts
included, is ignored, as RFC 7240 §2 asks.
"""
from __future__ import annotations

import re
from typing import Iterable, Mapping

HEADER = "Prefer"
APPLIED_HEADER = "Preference-Applied"
RESPOND_ASYNC = "respond-async"

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_QUOTED = r'"(?:[^"\\]|\\.)*"'
_WORD = rf"(?:{_TOKEN}|{_QUOTED})"
# one preference or parameter: token [ "=" word ], optional whitespace around "="
_PAIR = re.compile(rf"^\s*({_TOKEN})\s*(?:=\s*({_WORD}))?\s*$")
# splits on a separator outside quoted strings
_PIECE = re.compile(rf'(?:{_QUOTED}|[^",;]|")+|[,;]')


def _unquote(word: str | None) -> str | None:
    if word is None or not word.startswith('"'):
        return word
    return re.sub(r"\\(.)", r"\1", word[1:-1])


def preferences(values: Iterable[str]) -> dict[str, tuple[str | None, dict[str, str | None]]]:
    """Every well-formed preference of the header values: lower-cased name -> (value, parameters).

    The first occurrence of a name wins (RFC 7240 §2); malformed preferences are left out.
    """
    found: dict[str, tuple[str | None, dict[str, str | None]]] = {}
    for value in values:
        for item in _split(value, ","):
            parts = _split(item, ";")
            head = _PAIR.match(parts[0]) if parts else None
            if head is None:
                continue
            name = head.group(1).lower()
            params: dict[str, str | None] = {}
            for part in parts[1:]:
                pair = _PAIR.match(part)
                if pair is not None:
                    params.setdefault(pair.group(1).lower(), _unquote(pair.group(2)))
            found.setdefault(name, (_unquote(head.group(2)), params))
    return found


def _split(text: str, separator: str) -> list[str]:
    """`text` cut at `separator` outside quoted strings; empty pieces dropped (`a,,b` is two)."""
    pieces, current = [], ""
    for match in _PIECE.finditer(text):
        token = match.group(0)
        if token == separator:
            pieces.append(current)
            current = ""
        else:  # text, quoted strings, and the other separator belong to the piece
            current += token
    pieces.append(current)
    return [piece for piece in pieces if piece.strip()]


def asks_async(headers: Mapping[str, str]) -> bool:
    """True when the request states `respond-async` (with or without a value or parameters)."""
    getlist = getattr(headers, "getlist", None)
    values = getlist(HEADER) if getlist is not None else ([headers[HEADER]] if HEADER in headers else [])
    return RESPOND_ASYNC in preferences(values)
