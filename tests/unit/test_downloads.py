"""The guarded downloader against a real loopback server: what it fetches and what it refuses."""
import socket

import pytest

from app.downloads import Downloader, DownloadPolicy, DownloadRefused, address_allowed
from tests.support.fake_upstream import FakeUpstream, Reply
from tests.support.images import JPEG_BYTES, PNG_BYTES


@pytest.fixture
def server():
    fake = FakeUpstream().start()
    yield fake
    fake.stop()


def downloader(allow_private=True, max_bytes=1 << 20, timeout=3.0):
    return Downloader(DownloadPolicy(max_bytes=max_bytes, timeout=timeout, connect_timeout=2,
                                     allow_private=allow_private))


@pytest.mark.parametrize("address, public", [
    ("93.184.216.34", True), ("2606:2800:220:1:248:1893:25c8:1946", True),
    ("127.0.0.1", False), ("10.1.2.3", False), ("172.16.0.1", False), ("192.168.1.1", False),
    ("169.254.169.254", False), ("100.64.0.1", False), ("0.0.0.0", False), ("224.0.0.1", False),
    ("240.0.0.1", False), ("::1", False), ("fe80::1", False), ("fc00::1", False), ("::ffff:127.0.0.1", False),
    ("ff02::1", False),
])
def test_only_public_unicast_addresses_are_allowed(address, public):
    assert address_allowed(address, allow_private=False) is public


def test_allowing_private_still_refuses_multicast_and_unspecified():
    assert address_allowed("127.0.0.1", allow_private=True)
    assert not address_allowed("224.0.0.1", allow_private=True)
    assert not address_allowed("0.0.0.0", allow_private=True)


def test_fetches_an_image_and_sniffs_its_type(server):
    server.reply("/a.jpg", Reply(body=JPEG_BYTES, headers={"Content-Type": "image/png"}))
    assert downloader().fetch(server.url + "/a.jpg") == (JPEG_BYTES, "image/jpeg")


def test_loopback_is_refused_unless_allowed_naming_the_host(server):
    server.reply("/a.png", Reply(body=PNG_BYTES))
    with pytest.raises(DownloadRefused, match="127.0.0.1 resolves to a private") as caught:
        downloader(allow_private=False).fetch(server.url + "/a.png")
    assert caught.value.host == "127.0.0.1"
    assert server.received() == []  # refused before connecting


def test_redirects_are_followed_and_rechecked(server):
    server.reply("/start", Reply(302, headers={"Location": "/final.png"}))
    server.reply("/final.png", Reply(body=PNG_BYTES))
    assert downloader().fetch(server.url + "/start")[1] == "image/png"
    server.reply("/start", Reply(302, headers={"Location": "file:///etc/passwd"}))
    with pytest.raises(DownloadRefused, match="Only http and https"):
        downloader().fetch(server.url + "/start")
    server.reply("/start", Reply(302, headers={"Location": "http://u:p@127.0.0.1/x.png"}))
    with pytest.raises(DownloadRefused, match="credentials"):
        downloader().fetch(server.url + "/start")


def test_redirect_loops_end(server):
    server.reply("/loop", *[Reply(302, headers={"Location": "/loop"})] * 10)
    with pytest.raises(DownloadRefused, match="Too many redirects"):
        downloader().fetch(server.url + "/loop")


def test_dns_rebinding_is_caught_at_connect_time(server, monkeypatch):
    """The name resolves to a public address when checked, then to loopback when connecting."""
    real = socket.getaddrinfo
    calls = {"n": 0}

    def rebinding(host, port, *args, **kwargs):
        if host == "rebind.test":
            calls["n"] += 1
            address = "93.184.216.34" if calls["n"] == 1 else "127.0.0.1"
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    port = server.url.rsplit(":", 1)[1]
    server.reply("/a.png", Reply(body=PNG_BYTES))
    with pytest.raises(DownloadRefused, match="rebind.test resolves to a private"):
        downloader(allow_private=False).fetch(f"http://rebind.test:{port}/a.png")
    assert server.received() == []


@pytest.mark.parametrize("action", [None, "chunked"])
def test_size_cap_is_enforced_while_streaming(server, action):
    server.reply("/big.png", Reply(body=PNG_BYTES + b"\0" * 300_000, action=action))
    with pytest.raises(DownloadRefused, match="larger than 100000 bytes"):
        downloader(max_bytes=100_000).fetch(server.url + "/big.png")


def test_non_image_is_refused_without_echoing_the_body(server):
    server.reply("/page", Reply(body=b"<html>secret page</html>", headers={"Content-Type": "image/png"}))
    with pytest.raises(DownloadRefused) as caught:
        downloader().fetch(server.url + "/page")
    assert "did not return a PNG" in caught.value.message and "secret" not in caught.value.message


def test_error_status_is_refused(server):
    server.reply("/gone.png", Reply(404, body=b"nope"))
    with pytest.raises(DownloadRefused, match="HTTP 404"):
        downloader().fetch(server.url + "/gone.png")


def test_slow_server_times_out(server):
    server.reply("/slow.png", Reply(body=PNG_BYTES, delay=2))
    with pytest.raises(DownloadRefused, match="timed out"):
        downloader(timeout=0.5).fetch(server.url + "/slow.png")


@pytest.mark.parametrize("url, message", [("gopher://x/1", "Only http and https"), ("http:///nohost", "no host"),
                                          ("http://no-such-host.invalid/a.png", "Cannot resolve")])
def test_bad_urls_are_refused(url, message):
    with pytest.raises(DownloadRefused, match=message):
        downloader().fetch(url)
