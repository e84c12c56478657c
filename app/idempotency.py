"""Idempotency-Key: a retried image request gets the kept answer instead of paying for a second image.

Request hooks, so no view knows about it. Before a generation view runs, a request carrying the
header is authenticated, fingerprinted (method, path, raw body) and then either replayed from the
store, refused (409: the key was used for another body), made to wait for the same request already
in flight, or allowed to run holding a claim on the key (a short lease, renewed while it runs).
After the view, a 2xx answer is kept and anything else releases the claim, so a failed generation
can be retried for real.
"""
from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import threading
import time
from typing import Iterable, Iterator

from flask import Flask, Response, current_app, g, request

from app.answer_options import STYLE_HEADER
from app.auth import authenticate_request
from app.background import ProcessThread
from app.core.errors import GatewayError, InvalidRequest
from app.core.routes import GENERATION_PATHS
from app import metrics
from app.idempotency_store import (CLAIM_LEASE, OWNER_CHARS, IdempotencyStore, Record, RecordWriter, StoreUnavailable,
                                   from_settings)
from app.jobs.prefer import asks_async

log = logging.getLogger("gateway")

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEY_PATTERN = re.compile(r"[\x20-\x7e]{1,255}")  # printable ASCII
KEPT_HEADER_PREFIX = "x-gateway-"
KEPT_HEADERS = ("location", "preference-applied")  # a job's 202: where to poll it
JSON = "application/json"
MULTIPART = "multipart/form-data"
FIXED_BOUNDARY = b"idempotency-boundary"
JSON_WHITESPACE = b" \t\r\n"
ERROR_OPENING = re.compile(rb'\{\s*"error"\s*:')
OPENING_BYTES = 64
POLL_INTERVAL = 0.2          # how often a waiting request looks for the first one's answer
CLAIM_MARGIN = 30.0          # a request may outlive GATEWAY_REQUEST_DEADLINE by reading its body and writing its answer
IN_PROGRESS_RETRY_AFTER = 10
EXTENSION = "idempotency"
_STATE = "_idempotency_claim"


class Conflict(GatewayError):
    """The Idempotency-Key cannot be used for this request (another body, or still in flight)."""

    status = 409
    type = "invalid_request_error"
    code = "idempotency_key_reused"


def init_app(app: Flask) -> None:
    """Choose the store from the settings (no I/O yet) and install the hooks."""
    settings = app.extensions["gateway"].settings
    app.extensions[EXTENSION] = from_settings(settings, claim_lifetime=CLAIM_LEASE)

    @app.before_request
    def claim_or_replay() -> Response | None:
        if request.method != "POST" or not is_generation(request.url_rule):
            return None
        key = request.headers.get(HEADER)
        if key is None:
            return None
        if not KEY_PATTERN.fullmatch(key):
            raise InvalidRequest(f"The {HEADER} header must be 1 to 255 printable ASCII characters",
                                 code="invalid_idempotency_key")
        authorization = request.headers.get("Authorization")
        # only a known client may claim or replay; the blueprints' own auth hook runs after this one
        authenticate_request()
        store: IdempotencyStore = current_app.extensions[EXTENSION]
        record_key = namespaced(authorization, key)
        fingerprint = request_fingerprint(request.method, canonical_path(request.path), request.get_data(cache=True),
                                          request.mimetype_params.get("boundary") if request.mimetype == MULTIPART
                                          else None, request.headers.get(STYLE_HEADER, "").strip().lower(),
                                          asks_async(request.headers))
        wait_limit = current_app.extensions["gateway"].settings.request_deadline + CLAIM_MARGIN
        try:
            outcome = resolve(store, record_key, fingerprint, wait_limit)
        except StoreUnavailable as exc:
            # Fail open: the store is an extra guard against paying twice, and a Redis or disk outage
            # must not stop image generation itself (the request simply runs as if it had no key).
            log.warning("idempotency store unavailable (%s); running the request without Idempotency-Key "
                        "protection", exc)
            return None
        if isinstance(outcome, Record):
            log.info("idempotent replay")
            return replay(outcome)
        setattr(g, _STATE, _Claim(store, record_key, fingerprint, outcome))
        return None

    @app.after_request
    def keep_answer(response: Response) -> Response:
        claim = g.get(_STATE)
        if claim is None or not claim.open:
            return response
        ok = 200 <= response.status_code < 300
        headers = kept_headers(response)
        if response.is_streamed:
            if ok and response.mimetype == JSON:
                # a JSON answer written in slices, or keep-alive whitespace then JSON: kept as it goes by
                claim.handed_off = True
                response.response = _KeepingBody(response.response, claim, response.status_code, headers)
            else:
                claim.release()  # event streams are not kept: a retry streams a new generation
            return response
        if ok:
            claim.keep(response.status_code, headers, response.get_data())
        else:
            claim.release()
        return response

    @app.teardown_request
    def release_leftover(_exc: BaseException | None) -> None:
        claim = g.get(_STATE)
        if claim is not None and claim.open and not claim.handed_off:
            claim.release()


def is_generation(rule) -> bool:
    """True for a generation route's rule (idempotency, jobs and the usage ledger cover the same three)."""
    return rule is not None and rule.rule in GENERATION_PATHS


def namespaced(authorization: str, key: str) -> str:
    """The store key: a digest naming the client (the store's unit of space), then a digest of the client
    key and the Idempotency-Key, so clients never share answers. Neither key is recoverable from it."""
    client_key = authorization.partition(" ")[2].strip()
    client = hashlib.sha256(client_key.encode()).digest()
    owner = hashlib.sha256(b"idempotency-owner\0" + client).hexdigest()[:OWNER_CHARS]
    return owner + hashlib.sha256(b"idempotency\0" + client + key.encode("ascii")).hexdigest()


def canonical_path(path: str) -> str:
    """/api/v1/... and /v1/... are one API: the same request sent to either twin is the same request."""
    return path.removeprefix("/api") if path.startswith("/api/v1/") else path


def request_fingerprint(method: str, path: str, body: bytes, boundary: str | None = None,
                        answer_style: str = "", asynchronous: bool = False) -> str:
    """A digest of the request as sent: method, path, raw body bytes (and the answer style asked in
    a header, which changes the answer's shape: DESIGN §10; and `Prefer: respond-async`, which makes
    the answer a job: DESIGN §9).

    A multipart body's boundary is swapped for a fixed one first: HTTP clients (httpx, requests)
    draw a new random boundary for every attempt, so without this no retried upload would match.
    RFC 2046 forbids the delimiter inside the parts, so the swap changes nothing else.
    """
    if boundary:
        body = body.replace(b"--" + boundary.encode("latin-1"), b"--" + FIXED_BOUNDARY)
    digest = hashlib.sha256(f"{method} {path}\n".encode())
    if answer_style:
        digest.update(f"style: {answer_style}\n".encode())
    if asynchronous:
        digest.update(b"respond-async\n")
    digest.update(body)
    return digest.hexdigest()


def resolve(store: IdempotencyStore, key: str, fingerprint: str, wait_limit: float) -> Record | str:
    """The kept answer to replay, or a claim token to run the request with; Conflict when neither.

    Waits (polling) while the same request is in flight elsewhere: its answer is replayed when it
    comes; if it fails instead, its claim goes away and this request claims the key and runs.
    """
    give_up = time.monotonic() + wait_limit
    while True:
        record = store.get(key)
        if record is not None:
            if record.fingerprint != fingerprint:
                raise _reused()
            return record
        token = store.claim(key, fingerprint)
        if token is not None:
            # The request in flight may have kept its answer and let go of the key between our
            # lookup and our claim (both stores write the record before dropping the claim): look
            # once more, or the same image would be generated and paid for twice.
            if store.get(key) is None:
                return token
            store.release(key, token)
            continue
        holder = store.claimant(key)
        if holder is None:
            continue  # released (or stale) in between: look again
        if holder and holder != fingerprint:
            raise _reused()
        if time.monotonic() >= give_up:
            raise Conflict("A request with this Idempotency-Key is still in progress; retry later",
                           code="idempotency_key_in_progress",
                           headers={"Retry-After": str(IN_PROGRESS_RETRY_AFTER), "x-should-retry": "true"})
        time.sleep(POLL_INTERVAL)


def _reused() -> Conflict:
    # x-should-retry: the OpenAI SDKs retry 409s unless told not to, and a retry cannot help here
    return Conflict("This Idempotency-Key was already used with a different request body; "
                    "use a new key for a new request", headers={"x-should-retry": "false"})


def kept_headers(response: Response) -> tuple[tuple[str, str], ...]:
    """What a replay carries besides the body: the content type, the x-gateway-* headers, and a job's
    Location and Preference-Applied."""
    kept = [("Content-Type", response.headers.get("Content-Type", JSON))]
    kept += [(name, value) for name, value in response.headers.items()
             if name.lower().startswith(KEPT_HEADER_PREFIX) or name.lower() in KEPT_HEADERS]
    return tuple(kept)


def replay(record: Record) -> Response:
    response = Response(record.body, status=record.status, headers=list(record.headers))
    response.headers[REPLAYED_HEADER] = "true"
    return response


class _Heartbeat:
    """Renews every open claim of this process every RENEW_EVERY seconds, from one thread.

    A claim is a lease of CLAIM_LEASE seconds: while its request runs (a generation takes minutes)
    the lease is renewed; when the worker dies (kill -9, out of memory) nobody renews it and a retry
    with the same key runs again within seconds.
    """

    def __init__(self, interval: float):
        self.interval = interval
        self._claims: set["_Claim"] = set()
        self._lock = threading.Lock()
        self._pid = 0  # the process the claims belong to (a forked worker inherits none of them)
        self._thread = ProcessThread("idempotency-heartbeat", self._run)

    def add(self, claim: "_Claim") -> None:
        with self._lock:
            if self._pid != os.getpid():
                self._pid, self._claims = os.getpid(), set()
            self._claims.add(claim)
        self._thread.ensure_running()

    def discard(self, claim: "_Claim") -> None:
        with self._lock:
            self._claims.discard(claim)

    def _run(self, stopped: threading.Event) -> None:
        while not stopped.wait(self.interval):
            with self._lock:
                claims = list(self._claims)
            for claim in claims:
                claim.renew()


RENEW_EVERY = CLAIM_LEASE / 4
_HEARTBEAT = _Heartbeat(RENEW_EVERY)


class _Claim:
    """One request's hold on a key: either kept (answer stored) or released, exactly once; renewed
    by the heartbeat until then."""

    def __init__(self, store: IdempotencyStore, key: str, fingerprint: str, token: str):
        self.store = store
        self.key = key
        self.fingerprint = fingerprint
        self.token = token
        self.open = True
        self.handed_off = False  # a streamed body now owns it (it outlives the request context)
        _HEARTBEAT.add(self)

    def renew(self) -> None:
        try:
            held = self.store.renew(self.key, self.token)
        except StoreUnavailable as exc:
            log.warning("idempotency store unavailable (%s); a claim could not be renewed", exc)
            return
        except Exception:
            log.exception("failed to renew an Idempotency-Key claim")
            return
        if not held and self.open:
            # it lapsed (this process stalled past the lease) and a retry may have taken it over
            log.warning("an Idempotency-Key claim lapsed while its request was running")
            _HEARTBEAT.discard(self)

    def keep(self, status: int, headers: tuple[tuple[str, str], ...], body: bytes) -> None:
        if self.open:
            self._end(lambda: self.store.put(self.key, self.token, Record(self.fingerprint, status, headers, body)))

    def release(self) -> None:
        if self.open:
            self._end(lambda: self.store.release(self.key, self.token))

    def start_record(self, status: int, headers: tuple[tuple[str, str], ...]) -> RecordWriter | None:
        """A writer for a body that arrives in pieces; None (and the claim released) when the store fails."""
        try:
            return self.store.writer(self.key, self.token, Record(self.fingerprint, status, headers, b""))
        except Exception as exc:
            self._report(exc)
            self.release()
            return None

    def end_record(self, writer: RecordWriter, keep: bool) -> None:
        if self.open:
            self._end(writer.commit if keep else writer.abort)

    def _end(self, action) -> None:
        self.open = False
        _HEARTBEAT.discard(self)
        try:
            not_kept = action()
            if not_kept:
                metrics.IDEMPOTENCY_NOT_KEPT.labels(not_kept).inc()
                log.warning("a successful answer was not kept for Idempotency-Key replays (%s)", not_kept)
        except Exception as exc:
            self._report(exc)
            if not isinstance(exc, StoreUnavailable):
                # never leave the key claimed by mistake: waiters would hang on it until it went stale
                with contextlib.suppress(Exception):
                    self.store.release(self.key, self.token)

    @staticmethod
    def _report(exc: Exception) -> None:
        if isinstance(exc, StoreUnavailable):
            # the answer still goes to the client; only a retry will not find it
            log.warning("idempotency store unavailable (%s); the answer was not kept", exc)
        else:
            log.error("failed to keep an answer for Idempotency-Key", exc_info=exc)


class _KeepingBody:
    """Wraps a streamed JSON body: bytes pass through unchanged and are written to the store as they go.

    Two kinds of answer come this way: a JSON answer written lazily in slices (its status is real),
    and the keep-alive answer (status 200 sent first, whitespace, then the JSON or an error object).
    Leading whitespace is not kept, and a body that turns out to be `{"error": ...}` is not kept.
    If the client hangs up first, the WSGI server calls close() early: the rest of the body is then
    read anyway (the generation is paid for), so a retry with the same key finds the answer.
    """

    def __init__(self, body: Iterable[bytes], claim: _Claim, status: int, headers: tuple[tuple[str, str], ...]):
        self._body = body
        self._pieces = iter(body)
        self._claim = claim
        self._writer = claim.start_record(status, headers)
        self._opening = b""       # the first bytes after the whitespace, to recognise an error object
        self._complete = False

    def __iter__(self) -> Iterator[bytes]:
        for piece in self._pieces:
            self._collect(piece)
            yield piece
        self._finish()

    def close(self) -> None:
        try:
            if not self._complete and self._writer is not None:
                for piece in self._pieces:  # the client is gone: finish reading for the next retry
                    self._collect(piece)
                self._finish()
        except Exception:
            log.exception("failed to finish an abandoned answer for Idempotency-Key")
        finally:
            if self._writer is not None:
                self._claim.end_record(self._writer, keep=False)  # no-op once ended
            self._claim.release()
            close = getattr(self._body, "close", None)
            if close is not None:
                close()

    def _collect(self, piece: bytes) -> None:
        if self._writer is None:
            return
        if not self._opening:
            piece = piece.lstrip(JSON_WHITESPACE)
            if not piece:
                return
        if len(self._opening) < OPENING_BYTES:
            self._opening += piece[:OPENING_BYTES]
        try:
            self._writer.write(piece)
        except StoreUnavailable:
            self._claim.end_record(self._writer, keep=False)
            self._writer = None

    def _finish(self) -> None:
        self._complete = True
        if self._writer is not None:
            # our error bodies are {"error": {...}} with that one key; an answer never starts so
            self._claim.end_record(self._writer, keep=bool(self._opening) and not ERROR_OPENING.match(self._opening))
