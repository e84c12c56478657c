"""The guarded downloader against a real loopback server: what it fetches and what it refuses."""
import socket
import threading
import time

import pytest

from app import downloads
from app.downloads import Downloader, DownloadPolicy, DownloadRefused, DownloadsBusy, address_allowed
from tests.support.fake_upstream import FakeUpstream, Reply
from tests.support.image_host import ImageHost
from tests.support.images import JPEG_BYTES, PNG_BYTES


@pytest.fixture
def server():
    fake = FakeUpstream().start()
    yield fake
    fake.stop()


@pytest.fixture
def host():
    """An image host that drips a byte every 0.2 s (for 10 s at most)."""
    fake = ImageHost(drip=0.2, drip_for=10).start()
    yield fake
    fake.stop()


def downloader(allow_private=True, max_bytes=1 << 20, timeout=3.0, max_concurrent=16):
    return Downloader(DownloadPolicy(max_bytes=max_bytes, timeout=timeout, connect_timeout=2,
                                     allow_private=allow_private, max_concurrent=max_concurrent))


@pytest.mark.parametrize("address, public", [
    ("93.184.216.34", True), ("2606:2800:220:1:248:1893:25c8:1946", True),
    ("127.0.0.1", False), ("10.1.2.3", False), ("172.16.0.1", False), ("192.168.1.1", False),
    ("169.254.169.254", False), ("100.64.0.1", False), ("0.0.0.0", False), ("224.0.0.1", False),
    ("240.0.0.1", False), ("::1", False), ("fe80::1", False), ("fc00::1", False), ("::ffff:127.0.0.1", False),
    ("ff02::1", False),
    # 6to4 embeds an IPv4 address (2002:7f00:1:: is 127.0.0.1; a relay may route it anywhere): all refused
    ("2002:7f00:1::", False), ("2002:a9fe:a9fe::1", False), ("2002:808:808::1", False),
    # NAT64 and IPv4-compatible forms of loopback
    ("64:ff9b::7f00:1", False), ("::127.0.0.1", False),
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


GENERIC = "Could not reach "


def test_loopback_is_refused_unless_allowed_telling_the_client_nothing_more(server):
    server.reply("/a.png", Reply(body=PNG_BYTES))
    with pytest.raises(DownloadRefused, match=GENERIC) as caught:
        downloader(allow_private=False).fetch(server.url + "/a.png")
    assert caught.value.host == "127.0.0.1"
    assert "private" not in caught.value.message and "GATEWAY_" not in caught.value.message
    assert "127.0.0.1 a private or reserved address" in caught.value.detail.replace("resolves to ", "").replace(",", "")
    assert server.received() == []  # refused before connecting


def test_an_unknown_name_and_a_private_address_look_the_same_to_the_client(server):
    """Otherwise a client could map which internal names exist."""
    with pytest.raises(DownloadRefused) as unknown:
        downloader(allow_private=False).fetch("http://no-such-host.invalid/a.png")
    with pytest.raises(DownloadRefused) as private:
        downloader(allow_private=False).fetch("http://localhost/a.png")
    assert unknown.value.message.replace("no-such-host.invalid", "H") == private.value.message.replace("localhost", "H")
    assert "does not resolve" in unknown.value.detail and "private" in private.value.detail


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
    with pytest.raises(DownloadRefused, match=GENERIC) as caught:
        downloader().fetch(server.url + "/loop")
    assert "more than 5 redirects" in caught.value.detail


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
    with pytest.raises(DownloadRefused, match=GENERIC) as caught:
        downloader(allow_private=False).fetch(f"http://rebind.test:{port}/a.png")
    assert "connected to 127.0.0.1, a private or reserved address" in caught.value.detail
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
    with pytest.raises(DownloadRefused, match="took longer than 0.5 s"):
        downloader(timeout=0.5).fetch(server.url + "/slow.png")


@pytest.mark.parametrize("url, message", [("gopher://x/1", "Only http and https"), ("http:///nohost", "no host"),
                                          ("http://no-such-host.invalid/a.png", GENERIC),
                                          ("http://[::1/a.png", "malformed"), ("http://x:99999/a.png", "malformed")])
def test_bad_urls_are_refused(url, message):
    with pytest.raises(DownloadRefused, match=message):
        downloader().fetch(url)


@pytest.mark.parametrize("path", ["/drip-body/a.png", "/drip-headers/a.png"])
def test_a_dripping_host_is_cut_at_the_whole_download_deadline(host, path):
    """One byte every 0.2 s resets any per-read timeout forever; the deadline still ends it."""
    started = time.monotonic()
    with pytest.raises(DownloadRefused, match="took longer than 1 s"):
        downloader(timeout=1.0).fetch(host.url + path)
    assert time.monotonic() - started < 2.0


def test_no_cookie_travels_from_one_download_to_the_next(host):
    """A cookie an image host sets during one client's download is never sent with another's."""
    fetcher = downloader()
    fetcher.fetch(host.url + "/cookie/client-a")
    fetcher.fetch(host.url + "/cookie/client-b")
    fetcher.fetch(host.url + "/redirect/after.png")  # nor from one hop of a download to the next
    assert host.cookies_sent() == [None, None, None, None]


def test_client_downloads_wait_for_a_slot_then_get_a_503(host, monkeypatch):
    monkeypatch.setattr(downloads, "SLOT_WAIT", 0.3)
    fetcher = downloader(timeout=3.0, max_concurrent=1)
    slow = threading.Thread(target=lambda: pytest.raises(DownloadRefused, fetcher.fetch, host.url + "/drip-body/a.png",
                                                         for_client=True))
    slow.start()
    time.sleep(0.3)
    started = time.monotonic()
    with pytest.raises(DownloadsBusy) as caught:
        fetcher.fetch(host.url + "/b.png", for_client=True)
    assert 0.25 < time.monotonic() - started < 1.5
    assert caught.value.status == 503 and caught.value.headers["Retry-After"]
    # a provider's own result URL is not a client's download: it never waits for a slot
    assert fetcher.fetch(host.url + "/c.png")[1] == "image/png"
    slow.join()
    assert fetcher.fetch(host.url + "/d.png", for_client=True)[1] == "image/png"  # the slot came back


def test_max_bytes_lowers_the_cap_for_one_download(server):
    server.reply("/a.png", Reply(body=PNG_BYTES + b"\0" * 5000))
    with pytest.raises(downloads.DownloadTooLarge, match="larger than 1024 bytes"):
        downloader().fetch(server.url + "/a.png", max_bytes=1024)
