"""Guarded image downloads: the only way the gateway fetches a URL it did not choose itself.

Client-supplied image URLs and URLs in provider answers both come through here (and webhook
receivers use the same guard: `check_url`, `guarded_session`). A URL is refused
unless it is http(s) without credentials, every address its host resolves to is public (unless
private addresses are allowed), the socket really connected to such an address (so DNS rebinding
cannot slip a private address in between the check and the connection), every redirect passes the
same checks, the body stays under the size cap while it streams, and the bytes are an image.

Each download is a world of its own: a fresh session (no cookie jar, no pooled connection shared
with another client's download) whose sockets are shut down when GATEWAY_DOWNLOAD_TIMEOUT is up,
whatever they are waiting for — a host that drips one byte a second is cut at the deadline, not
after each read. A client's input images also wait for one of a few download slots per worker,
so slow hosts can hold at most that many threads.

Clients are told little about why a download failed (one message for every network-level refusal,
so they cannot map which names resolve or which addresses are private); the log has the details.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools
import http.cookiejar
import ipaddress
import logging
import socket
import threading
import time
from dataclasses import dataclass
from typing import Iterator
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from app.core.errors import GatewayError
from app.media import sniff_mime

log = logging.getLogger("gateway")

MAX_REDIRECTS = 5
SLOT_WAIT = 2.0           # seconds a client's download waits for a free slot before a 503
BUSY_RETRY_AFTER = 5
_CHUNK = 64 * 1024
_NO_COOKIES = http.cookiejar.DefaultCookiePolicy(allowed_domains=[])
_SIX_TO_FOUR = ipaddress.ip_network("2002::/16")  # embeds any IPv4 address, private ones included


class DownloadRefused(Exception):
    """A download was refused or failed. `message` is what the client may read (never the fetched
    body, never why an address was refused); `detail` is the whole story, for the log."""

    def __init__(self, message: str, host: str, detail: str | None = None):
        super().__init__(message)
        self.message = message
        self.host = host
        self.detail = detail or message


class DownloadTooLarge(DownloadRefused):
    """The image is over the size cap of this download."""


class DownloadsBusy(GatewayError):
    """Every download slot of this worker is taken by slow image hosts: try again shortly."""

    status = 503
    type = "server_error"
    code = "downloads_busy"


def _unreachable(host: str, why: str, what: str = "image") -> DownloadRefused:
    """The one refusal clients read for every network-level reason; `why` goes to the log only."""
    return DownloadRefused(f"Could not reach {host}", host, f"{what} host {host}: {why}")


@dataclass(frozen=True)
class DownloadPolicy:
    max_bytes: int
    timeout: float
    connect_timeout: float
    allow_private: bool
    max_concurrent: int = 16     # client input downloads at once, per worker process


def address_allowed(address: str, allow_private: bool) -> bool:
    """Public unicast addresses only, unless private ones are explicitly allowed."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_multicast or ip.is_unspecified:
        return False
    if allow_private:
        return True
    if ip in _SIX_TO_FOUR:
        return False
    return ip.is_global and not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved)


class _Deadline:
    """Shuts down every socket of one download when its time is up, wherever it is blocked
    (connecting, TLS, headers, body). Each socket is watched through a duplicate of its descriptor,
    so the watch survives TLS wrapping and never touches a descriptor number reused elsewhere."""

    def __init__(self, seconds: float):
        self.ends = time.monotonic() + seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def left(self) -> float:
        return max(0.001, self.ends - time.monotonic())

    def watch(self, sock: socket.socket) -> None:
        duplicate = sock.dup()
        with self._lock:
            self._sockets.append(duplicate)
            if self.expired:
                _shut(duplicate)

    def __enter__(self) -> "_Deadline":
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._timer.cancel()
        with self._lock:
            for sock in self._sockets:
                sock.close()
            self._sockets = []

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)


_deadline: contextvars.ContextVar[_Deadline | None] = contextvars.ContextVar("download_deadline", default=None)


class _PeerCheck:
    """Mixed into urllib3 connections: refuse the socket if its peer is not an allowed address, and
    put it under the current download's deadline."""

    allow_private = False

    def _new_conn(self):  # noqa: D401 - urllib3 hook
        sock = super()._new_conn()
        peer = sock.getpeername()[0]
        if not address_allowed(peer, self.allow_private):
            sock.close()
            raise _unreachable(self.host, f"connected to {peer}, a private or reserved address")
        deadline = _deadline.get()
        if deadline is not None:
            deadline.watch(sock)
        return sock


@functools.cache
def _adapter_class(allow_private: bool) -> type[HTTPAdapter]:
    checked = {"allow_private": allow_private}
    http_conn = type("GuardedHTTPConnection", (_PeerCheck, HTTPConnection), checked)
    https_conn = type("GuardedHTTPSConnection", (_PeerCheck, HTTPSConnection), checked)
    http_pool = type("GuardedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn})
    https_pool = type("GuardedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn})

    class GuardedAdapter(HTTPAdapter):
        def init_poolmanager(self, *args, **kwargs):
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": http_pool, "https": https_pool}

    return GuardedAdapter


def guarded_session(allow_private: bool) -> requests.Session:
    """A requests session whose connections refuse peers that are not allowed addresses, keeping no cookies."""
    session = requests.Session()
    session.trust_env = False  # a proxy would hide the real peer from the address check
    session.cookies.set_policy(_NO_COOKIES)
    adapter = _adapter_class(allow_private)()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def refusal_behind(exc: BaseException) -> DownloadRefused | None:
    """The guard's refusal when it is what broke a guarded session's request (requests wraps it)."""
    cause = exc.__context__
    while cause is not None and not isinstance(cause, DownloadRefused):
        cause = cause.__context__
    return cause


def check_url(url: str, allow_private: bool, *, what: str = "image", schemes: tuple[str, ...] = ("http", "https")) -> str:
    """The URL's host, or DownloadRefused: another scheme, credentials, a host with a non-public address."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise DownloadRefused(f"The {what} URL is malformed", "", f"malformed {what} URL {url[:200]!r}") from None
    if parts.scheme not in schemes:
        allowed = " and ".join(schemes)
        raise DownloadRefused(f"Only {allowed} {what} URLs can be used, not {parts.scheme or 'none'!r}", host)
    if not host:
        raise DownloadRefused(f"The {what} URL has no host", host)
    if parts.username is not None or parts.password is not None:
        raise DownloadRefused(f"{what.capitalize()} URLs with credentials are refused ({host})", host)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError):
        raise _unreachable(host, "the name does not resolve", what) from None
    for info in infos:
        if not address_allowed(info[4][0], allow_private):
            raise _unreachable(host, f"resolves to {info[4][0]}, a private or reserved address "
                                     "(GATEWAY_ALLOW_PRIVATE_URLS is off)", what)
    return host


class Downloader:
    """Fetches images under a policy; one per app, safe to share between threads."""

    def __init__(self, policy: DownloadPolicy):
        self.policy = policy
        self._slots = threading.BoundedSemaphore(policy.max_concurrent)

    def fetch(self, url: str, *, max_bytes: int | None = None, for_client: bool = False) -> tuple[bytes, str]:
        """Download an image; returns its bytes and sniffed MIME type, or raises DownloadRefused.

        `max_bytes` lowers the size cap for this download. `for_client`: a client's input image,
        which waits at most SLOT_WAIT seconds for a download slot (DownloadsBusy, a 503, after that).
        """
        limit = self.policy.max_bytes if max_bytes is None else min(max_bytes, self.policy.max_bytes)
        with self._slot(for_client):
            try:
                return self._fetch(url, limit)
            except DownloadRefused as exc:
                log.info("image download refused: %s", exc.detail)
                raise

    @contextlib.contextmanager
    def _slot(self, needed: bool) -> Iterator[None]:
        if not needed:
            yield
            return
        if not self._slots.acquire(timeout=SLOT_WAIT):
            log.warning("all %d image download slots of this worker are busy", self.policy.max_concurrent)
            raise DownloadsBusy("The gateway is busy downloading other images; retry shortly",
                                headers={"Retry-After": str(BUSY_RETRY_AFTER)})
        try:
            yield
        finally:
            self._slots.release()

    def _fetch(self, url: str, limit: int) -> tuple[bytes, str]:
        first_host = self.check_url(url)
        with guarded_session(self.policy.allow_private) as session, _Deadline(self.policy.timeout) as deadline:
            token = _deadline.set(deadline)
            try:
                for hop in range(MAX_REDIRECTS + 1):
                    host = self.check_url(url) if hop else first_host
                    try:
                        response = session.get(
                            url, stream=True, allow_redirects=False, headers={"Accept": "image/*"},
                            timeout=(min(self.policy.connect_timeout, deadline.left()), deadline.left()))
                    except requests.RequestException as exc:
                        raise self._failure(exc, host, deadline) from None
                    with response:
                        if response.is_redirect:
                            url = urljoin(url, response.headers.get("Location", ""))
                            continue
                        if response.status_code != 200:
                            raise DownloadRefused(f"Download from {host} answered HTTP {response.status_code}", host)
                        return self._read_image(response, host, limit, deadline)
                raise _unreachable(first_host, f"more than {MAX_REDIRECTS} redirects")
            finally:
                _deadline.reset(token)

    def _failure(self, exc: requests.RequestException, host: str, deadline: _Deadline) -> DownloadRefused:
        refused = refusal_behind(exc)
        if refused is not None:
            return refused
        if deadline.expired or isinstance(exc, requests.Timeout):
            return self._timed_out(host)
        return _unreachable(host, f"{type(exc).__name__}: {exc}")

    def _timed_out(self, host: str) -> DownloadRefused:
        return DownloadRefused(f"Download from {host} took longer than {self.policy.timeout:g} s", host)

    def check_url(self, url: str) -> str:
        """Refuse URLs we never fetch: other schemes, credentials, hosts with non-public addresses."""
        return check_url(url, self.policy.allow_private, what="image")

    def _read_image(self, response: requests.Response, host: str, limit: int,
                    deadline: _Deadline) -> tuple[bytes, str]:
        declared = response.headers.get("Content-Length", "")
        if declared.isascii() and declared.isdigit() and (len(declared) > 18 or int(declared) > limit):
            raise DownloadTooLarge(f"The image at {host} is larger than {limit} bytes", host)
        body = bytearray()
        try:
            for chunk in response.iter_content(_CHUNK):
                body += chunk
                if len(body) > limit:
                    raise DownloadTooLarge(f"The image at {host} is larger than {limit} bytes", host)
        except requests.RequestException:
            if deadline.expired:
                raise self._timed_out(host) from None
            raise DownloadRefused(f"Download from {host} was cut off", host) from None
        if deadline.expired:  # the shutdown can look like a clean end of a body of unknown length
            raise self._timed_out(host)
        mime = sniff_mime(bytes(body[:16]))
        if mime is None:
            raise DownloadRefused(f"The URL at {host} did not return a PNG, JPEG, WEBP or GIF image", host)
        return bytes(body), mime
