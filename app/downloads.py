"""Guarded image downloads: the only way the gateway fetches a URL it did not choose itself.

Client-supplied image URLs and URLs in provider answers both come through here. A URL is refused
unless it is http(s) without credentials, every address its host resolves to is public (unless
private addresses are allowed), the socket really connected to such an address (so DNS rebinding
cannot slip a private address in between the check and the connection), every redirect passes the
same checks, the body stays under the size cap while it streams, and the bytes are an image.
"""
from __future__ import annotations

import ipaddress
import socket
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from app.media import sniff_mime

MAX_REDIRECTS = 5
_CHUNK = 64 * 1024


class DownloadRefused(Exception):
    """A download was refused or failed; the message names the host, never the fetched body."""

    def __init__(self, message: str, host: str):
        super().__init__(message)
        self.message = message
        self.host = host


@dataclass(frozen=True)
class DownloadPolicy:
    max_bytes: int
    timeout: float
    connect_timeout: float
    allow_private: bool


def address_allowed(address: str, allow_private: bool) -> bool:
    """Public unicast addresses only, unless private ones are explicitly allowed."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if ip.is_multicast or ip.is_unspecified:
        return False
    if allow_private:
        return True
    return ip.is_global and not (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved)


class _PeerCheck:
    """Mixed into urllib3 connections: refuse the socket if its peer is not an allowed address."""

    allow_private = False

    def _new_conn(self):  # noqa: D401 - urllib3 hook
        sock = super()._new_conn()
        peer = sock.getpeername()[0]
        if not address_allowed(peer, self.allow_private):
            sock.close()
            raise DownloadRefused(f"{self.host} resolves to a private or reserved address", self.host)
        return sock


def _adapter(allow_private: bool) -> HTTPAdapter:
    checked = {"allow_private": allow_private}
    http_conn = type("GuardedHTTPConnection", (_PeerCheck, HTTPConnection), checked)
    https_conn = type("GuardedHTTPSConnection", (_PeerCheck, HTTPSConnection), checked)
    http_pool = type("GuardedHTTPPool", (HTTPConnectionPool,), {"ConnectionCls": http_conn})
    https_pool = type("GuardedHTTPSPool", (HTTPSConnectionPool,), {"ConnectionCls": https_conn})

    class GuardedAdapter(HTTPAdapter):
        def init_poolmanager(self, *args, **kwargs):
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": http_pool, "https": https_pool}

    return GuardedAdapter()


def guarded_session(allow_private: bool) -> requests.Session:
    """A requests session whose connections refuse peers that are not allowed addresses."""
    session = requests.Session()
    session.trust_env = False  # a proxy would hide the real peer from the address check
    adapter = _adapter(allow_private)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def check_url(url: str, allow_private: bool, *, what: str = "image", schemes: tuple[str, ...] = ("http", "https")) -> str:
    """The URL's host, or DownloadRefused: another scheme, credentials, a host with a non-public address."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in schemes:
        allowed = " and ".join(schemes)
        raise DownloadRefused(f"Only {allowed} {what} URLs can be used, not {parts.scheme or 'none'!r}", host)
    if not host:
        raise DownloadRefused(f"The {what} URL has no host", host)
    if parts.username is not None or parts.password is not None:
        raise DownloadRefused(f"{what.capitalize()} URLs with credentials are refused ({host})", host)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, ValueError):
        raise DownloadRefused(f"Cannot resolve {what} host {host}", host) from None
    for info in infos:
        if not address_allowed(info[4][0], allow_private):
            raise DownloadRefused(
                f"{host} resolves to a private or reserved address (set GATEWAY_ALLOW_PRIVATE_URLS to allow)", host)
    return host


class Downloader:
    """Fetches images under a policy; one per app, safe to share between threads."""

    def __init__(self, policy: DownloadPolicy):
        self.policy = policy
        self._session = guarded_session(policy.allow_private)

    def fetch(self, url: str) -> tuple[bytes, str]:
        """Download an image; returns its bytes and sniffed MIME type, or raises DownloadRefused."""
        deadline = time.monotonic() + self.policy.timeout
        for _ in range(MAX_REDIRECTS + 1):
            host = self.check_url(url)
            try:
                response = self._session.get(
                    url, stream=True, allow_redirects=False,
                    timeout=(self.policy.connect_timeout, self.policy.timeout),
                    headers={"Accept": "image/*"},
                )
            except DownloadRefused:
                raise
            except requests.Timeout:
                raise DownloadRefused(f"Download from {host} timed out", host) from None
            except requests.RequestException as exc:
                cause = exc.__context__
                while cause is not None and not isinstance(cause, DownloadRefused):
                    cause = cause.__context__
                if isinstance(cause, DownloadRefused):
                    raise cause from None
                raise DownloadRefused(f"Could not download from {host}: {type(exc).__name__}", host) from None
            with response:
                if response.is_redirect:
                    location = response.headers.get("Location", "")
                    url = urljoin(url, location)
                    continue
                if response.status_code != 200:
                    raise DownloadRefused(f"Download from {host} answered HTTP {response.status_code}", host)
                return self._read_image(response, host, deadline)
        raise DownloadRefused(f"Too many redirects starting from {host}", host)

    def check_url(self, url: str) -> str:
        """Refuse URLs we never fetch: other schemes, credentials, hosts with non-public addresses."""
        return check_url(url, self.policy.allow_private, what="image")

    def _read_image(self, response: requests.Response, host: str, deadline: float) -> tuple[bytes, str]:
        limit = self.policy.max_bytes
        declared = response.headers.get("Content-Length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise DownloadRefused(f"The image at {host} is larger than {limit} bytes", host)
        body = bytearray()
        try:
            for chunk in response.iter_content(_CHUNK):
                body += chunk
                if len(body) > limit:
                    raise DownloadRefused(f"The image at {host} is larger than {limit} bytes", host)
                if time.monotonic() > deadline:
                    raise DownloadRefused(f"Download from {host} took longer than {self.policy.timeout:g} s", host)
        except requests.RequestException:
            raise DownloadRefused(f"Download from {host} was cut off", host) from None
        mime = sniff_mime(bytes(body[:16]))
        if mime is None:
            raise DownloadRefused(f"The URL at {host} did not return a PNG, JPEG, WEBP or GIF image", host)
        return bytes(body), mime
