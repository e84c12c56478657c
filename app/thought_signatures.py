"""Gemini's thought signatures, kept between turns under a digest of the picture they came with.

Gemini 3 image models sign their answers: `thoughtSignature` on the first part after their thoughts
and on every image part. On the next turn, a model turn sent back should carry those signatures
again (Gemini 3.1 Flash Image refuses it otherwise). A chat client sending the gateway's earlier
answer back has only the picture, so the gateway keeps each picture's signatures, keyed by a digest of
its bytes and the client key that asked for it (one key never finds another's), and puts them back
when that picture returns in an assistant turn (app/providers/gemini.py). The digest is the SHA-256 of
the bytes' standard base64 form: the text Gemini sends and the gateway sends back, hashed as it is
(no decoding: a quarter of the cost on a 2 MiB picture).

In Redis when GATEWAY_REDIS_URL is set (every worker and instance sees them), else in each worker's
memory: bounded (MEMORY_MAX_BYTES, least recently used dropped first), like Redis with a time to
live (GATEWAY_SIGNATURE_TTL_SECONDS). A signature that cannot be found is not an error: Gemini is
then sent Google's documented value that skips the check.
"""
from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from app import jsonio
from app.jsonio import BigText
from app.redis_link import RedisLink, RedisUnavailable

DEFAULT_TTL = 24 * 3600.0          # a conversation picked up the next day still has its signatures
MEMORY_MAX_BYTES = 16 * 1024 * 1024
MAX_SIGNATURE_CHARS = 256 * 1024   # bigger signatures are not kept (Gemini's are a few KB)
REDIS_PREFIX = "gateway:thought-signature:"
_DIGEST_SLICE = 256 * 1024         # base64 characters hashed at a time

log = logging.getLogger("gateway.thought_signatures")


@dataclass(frozen=True)
class Signed:
    """What Gemini signed around one picture: the picture's part, and the answer's first part when that was
    text before the picture (Google signs the first part after the thoughts, whichever it is)."""

    picture: str
    lead: str | None = None

    def size(self) -> int:
        return len(self.picture) + len(self.lead or "")

    def to_bytes(self) -> bytes:
        return jsonio.dumps({"picture": self.picture, "lead": self.lead})

    @classmethod
    def from_bytes(cls, data: bytes) -> "Signed | None":
        try:
            value = jsonio.loads(data)
            return cls(picture=str(value["picture"]), lead=value.get("lead"))
        except (ValueError, KeyError, TypeError):
            return None


def picture_key(scope: str | None, digest: bytes) -> str:
    """The store key of a picture seen by one client key: neither the key id nor the digest alone."""
    return hashlib.sha256((scope or "").encode() + b"\0" + digest).hexdigest()


def digest_b64(b64) -> bytes:
    """The digest of a picture: SHA-256 of its standard base64 form, taken from the base64 text itself
    (a str or a jsonio.BigText), hashed in slices without decoding. Text in another form (line breaks, no padding) gives another digest: that picture is then
    simply not recognised, and Gemini gets the value that skips its check."""
    hashed = hashlib.sha256()
    if isinstance(b64, BigText):  # hashed where it lies, in the upstream's read buffer: no copy
        with memoryview(b64.buffer) as view:
            hashed.update(view[b64.start:b64.end])
    else:
        for start in range(0, len(b64), _DIGEST_SLICE):
            hashed.update(b64[start:start + _DIGEST_SLICE].encode("ascii", "replace"))
    return hashed.digest()


class SignatureStore:
    """Where signatures live; `get` answers None for anything unknown, expired or unreachable."""

    def get(self, key: str) -> Signed | None:
        raise NotImplementedError

    def put(self, key: str, signed: Signed) -> None:
        raise NotImplementedError


class MemoryStore(SignatureStore):
    """This worker's memory: entries expire after `ttl`, and the least recently used go past `max_bytes`."""

    def __init__(self, ttl: float = DEFAULT_TTL, max_bytes: int = MEMORY_MAX_BYTES, clock=time.monotonic):
        self.ttl = ttl
        self.max_bytes = max_bytes
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, Signed]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key: str) -> Signed | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry[0] <= self._clock():
                self._drop(key)
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def put(self, key: str, signed: Signed) -> None:
        if signed.size() > MAX_SIGNATURE_CHARS:
            return
        with self._lock:
            if key in self._entries:
                self._drop(key)
            self._entries[key] = (self._clock() + self.ttl, signed)
            self._bytes += signed.size()
            while self._bytes > self.max_bytes:
                self._drop(next(iter(self._entries)))

    def __len__(self) -> int:
        return len(self._entries)

    def _drop(self, key: str) -> None:
        _, signed = self._entries.pop(key)
        self._bytes -= signed.size()


class RedisStore(SignatureStore):
    """Redis shared by every worker and instance; entries expire by themselves. An outage only costs the
    signatures (Gemini then gets the value that skips its check), never the request."""

    def __init__(self, url: str, ttl: float = DEFAULT_TTL, prefix: str = REDIS_PREFIX):
        self._link = RedisLink(url)
        self.ttl = ttl
        self._prefix = prefix

    def get(self, key: str) -> Signed | None:
        try:
            with self._link.session() as client:
                data = client.get(self._prefix + key)
        except RedisUnavailable as exc:
            log.warning("thought signatures unavailable: %s", exc)
            return None
        return Signed.from_bytes(data) if data is not None else None

    def put(self, key: str, signed: Signed) -> None:
        if signed.size() > MAX_SIGNATURE_CHARS:
            return
        try:
            with self._link.session() as client:
                client.set(self._prefix + key, signed.to_bytes(), px=max(1, int(self.ttl * 1000)))
        except RedisUnavailable as exc:
            log.warning("thought signatures not kept: %s", exc)


def from_settings(settings) -> SignatureStore:
    """Redis when GATEWAY_REDIS_URL is set, this worker's memory otherwise."""
    if settings.redis_url:
        return RedisStore(settings.redis_url, settings.signature_ttl)
    return MemoryStore(settings.signature_ttl)
