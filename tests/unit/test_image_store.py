"""The directory image store: signed expiring links, one key per shared directory, the sweeper; settings."""
from __future__ import annotations

import os
import stat
import threading
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from app.config import ConfigError, Settings
from app.image_store import from_settings, owner_of
from app.image_store.base import StoredImage, StoreUnavailable, StoreUnusable
from app.image_store.directory import DirectoryStore, LinkRefused
from app.image_store import signed_links
from app.image_store.signed_links import KEY_FILE
from app.image_store.sweeper import BUCKET_SECONDS, STAMP_FILE, Sweeper, main, sweep
from tests.support.images import JPEG_BYTES, PNG_BYTES

BASE = "https://gateway.example"
KEY = "k" * 40


class Clock:
    def __init__(self, now: float = 1_800_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_store(root, clock, key=KEY, ttl=3600.0) -> DirectoryStore:
    return DirectoryStore(str(root), ttl, key, sweep_interval=3600.0, clock=clock)


def link_parts(url: str) -> tuple[str, str, str, str]:
    """(owner, name, expires, signature) of a link."""
    parts = urlsplit(url)
    _, route, owner, name = parts.path.split("/")
    assert route == "images"
    query = parse_qs(parts.query)
    return owner, name, query["expires"][0], query["signature"][0]


def test_a_stored_picture_is_found_through_its_link(tmp_path, clock):
    store = make_store(tmp_path, clock)
    owner = owner_of("env-1")
    image = store.put(owner, PNG_BYTES, "image/png")
    url = store.link(image, BASE)
    assert url.startswith(f"{BASE}/images/{owner}/{image.image_id}.png?expires={int(clock.now) + 3600}&signature=")
    found = store.open_link(*link_parts(url))
    assert found.image == image and found.image.mime == "image/png"
    with open(found.path, "rb") as handle:
        assert handle.read() == PNG_BYTES
    assert found.path == os.path.join(str(tmp_path), found.relative_path)
    assert stat.S_IMODE(os.stat(found.path).st_mode) == 0o640


def test_the_extension_follows_the_sniffed_type(tmp_path, clock):
    store = make_store(tmp_path, clock)
    assert store.put(owner_of("a"), JPEG_BYTES, "image/jpeg").name.endswith(".jpg")


@pytest.mark.parametrize("tamper", ["signature", "expires", "name", "owner"])
def test_a_tampered_link_is_refused(tmp_path, clock, tamper):
    store = make_store(tmp_path, clock)
    mine = store.put(owner_of("env-1"), PNG_BYTES, "image/png")
    theirs = store.put(owner_of("env-2"), PNG_BYTES, "image/png")
    owner, name, expires, signature = link_parts(store.link(mine, BASE))
    if tamper == "signature":
        signature = signature[:-2] + ("AA" if not signature.endswith("AA") else "BB")
    elif tamper == "expires":
        expires = str(int(expires) + 86400)  # a longer life than was signed
    elif tamper == "name":
        name = theirs.name                    # my signature on another picture
    else:
        owner = theirs.owner                  # another key's pictures
    with pytest.raises(LinkRefused) as refused:
        store.open_link(owner, name, expires, signature)
    assert (refused.value.status, refused.value.code) == (403, "invalid_signature")


def test_a_link_from_another_gateway_is_refused(tmp_path, clock):
    mine = make_store(tmp_path / "a", clock, key="a" * 40)
    other = make_store(tmp_path / "b", clock, key="b" * 40)
    url = other.link(other.put(owner_of("env-1"), PNG_BYTES, "image/png"), BASE)
    with pytest.raises(LinkRefused) as refused:
        mine.open_link(*link_parts(url))
    assert refused.value.status == 403


def test_an_expired_link_is_refused_and_a_deleted_picture_is_not_found(tmp_path, clock):
    store = make_store(tmp_path, clock, ttl=60)
    url = store.link(store.put(owner_of("env-1"), PNG_BYTES, "image/png"), BASE)
    clock.now += 59
    found = store.open_link(*link_parts(url))
    os.unlink(found.path)
    with pytest.raises(LinkRefused) as gone:
        store.open_link(*link_parts(url))
    assert (gone.value.status, gone.value.code) == (404, "image_not_found")
    clock.now += 1
    with pytest.raises(LinkRefused) as expired:
        store.open_link(*link_parts(url))
    assert (expired.value.status, expired.value.code) == (403, "link_expired")


@pytest.mark.parametrize("owner, name, expires, signature, status", [
    ("../../etc", "passwd", "1", "x", 404),
    ("0" * 24, "..png", "1", "x", 404),
    ("0" * 24, "a" * 22 + ".exe", "1", "x", 404),
    ("0" * 24, "a" * 22 + ".png", None, "x", 403),
    ("0" * 24, "a" * 22 + ".png", "soon", "x", 403),
    ("0" * 24, "a" * 22 + ".png", "1", None, 403),
])
def test_malformed_links_are_refused_before_any_file_is_touched(tmp_path, clock, owner, name, expires, signature,
                                                                status):
    with pytest.raises(LinkRefused) as refused:
        make_store(tmp_path, clock).open_link(owner, name, expires, signature)
    assert refused.value.status == status


def test_without_a_configured_key_workers_sharing_the_directory_share_one_made_on_first_use(tmp_path, clock):
    stores = [make_store(tmp_path, clock, key=None) for _ in range(8)]
    barrier = threading.Barrier(len(stores))
    errors = []

    def first_use(store):
        barrier.wait()
        try:
            store.check()
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=first_use, args=(store,)) for store in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    key_file = tmp_path / KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and len(key_file.read_text().strip()) >= 32
    assert [p.name for p in tmp_path.iterdir()] == [KEY_FILE]  # no temporary file left behind
    url = stores[0].link(stores[0].put(owner_of("env-1"), PNG_BYTES, "image/png"), BASE)
    for store in stores[1:]:
        store.open_link(*link_parts(url))
    # the file's key is the one an operator can copy to GATEWAY_URL_SIGNING_KEY for other machines
    owner, name, expires, signature = link_parts(url)
    assert signed_links.sign(key_file.read_text().strip().encode(), f"{owner}/{name}", int(expires)) == signature


def test_a_directory_that_cannot_be_written_is_unusable_and_says_which_setting(tmp_path, clock):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    store = make_store(blocker / "images", clock)
    with pytest.raises(StoreUnusable, match="GATEWAY_IMAGE_STORE"):
        store.check()
    with pytest.raises(StoreUnavailable):
        store.put(owner_of("env-1"), PNG_BYTES, "image/png")


def test_sweep_removes_only_buckets_whose_pictures_have_all_expired(tmp_path, clock):
    store = make_store(tmp_path, clock, key=None, ttl=60)
    old = store.put(owner_of("env-1"), PNG_BYTES, "image/png")
    clock.now += BUCKET_SECONDS * 2
    young = store.put(owner_of("env-1"), PNG_BYTES, "image/png")
    assert sweep(str(tmp_path), clock.now) == 1
    assert not (tmp_path / store.relative_path(old)).exists()
    assert (tmp_path / store.relative_path(young)).exists()
    assert (tmp_path / KEY_FILE).exists()
    clock.now = young.expires  # the young picture's bucket may end later than the picture itself
    assert sweep(str(tmp_path), clock.now) == 0
    clock.now = young.expires + BUCKET_SECONDS
    assert sweep(str(tmp_path), clock.now) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == [KEY_FILE]


def test_one_sweep_per_interval_whichever_process_runs_it(tmp_path, clock):
    store = make_store(tmp_path, clock, ttl=1)
    store.put(owner_of("env-1"), PNG_BYTES, "image/png")
    clock.now += BUCKET_SECONDS + 1
    workers = [Sweeper(str(tmp_path), interval=600, clock=clock) for _ in range(3)]
    assert workers[0].run_if_due() == 1
    assert [w.run_if_due() for w in workers] == [None, None, None]  # swept less than an interval ago
    assert (tmp_path / STAMP_FILE).stat().st_mtime == clock.now
    clock.now += 600
    assert workers[2].run_if_due() == 0


def test_a_sweeper_that_never_saw_a_picture_does_nothing(tmp_path, clock):
    assert Sweeper(str(tmp_path / "never-made"), interval=1, clock=clock).run_if_due() is None


def test_the_background_sweeper_removes_expired_pictures(tmp_path, monkeypatch):
    monkeypatch.setattr("app.image_store.sweeper.random.uniform", lambda low, high: 0.05)
    expired = tmp_path / str(int(time.time()) - 1) / owner_of("env-1")
    expired.mkdir(parents=True)
    (expired / ("a" * 22 + ".png")).write_bytes(PNG_BYTES)
    sweeper = Sweeper(str(tmp_path), interval=0.05)
    sweeper.ensure_running()
    try:
        deadline = time.monotonic() + 10
        while expired.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        sweeper.stop()
    assert not expired.exists()


def test_the_sweep_command_sweeps_the_configured_directory(tmp_path, monkeypatch, capsys):
    (tmp_path / "images" / "1000" / owner_of("env-1")).mkdir(parents=True)
    (tmp_path / "images" / "1000" / owner_of("env-1") / ("b" * 22 + ".png")).write_bytes(PNG_BYTES)
    monkeypatch.setenv("GATEWAY_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("GATEWAY_IMAGE_STORE", raising=False)
    assert main([]) == 0
    assert capsys.readouterr().out == f"removed 1 expired pictures from {tmp_path / 'images'}\n"
    assert main(["--now"]) == 2
    monkeypatch.setenv("GATEWAY_IMAGE_STORE", "s3://bucket/pictures")
    assert main([]) == 0
    assert "lifecycle rule" in capsys.readouterr().out


@pytest.mark.parametrize("value, expected", [
    ("", ("file", "{data}/images")),
    ("file:///srv/pictures/", ("file", "/srv/pictures")),
    ("file://localhost/srv/pictures", ("file", "/srv/pictures")),
    ("none", ("none", "")),
    ("s3://my-bucket", ("s3", "my-bucket", "")),
    ("s3://my-bucket/gateway/pictures/", ("s3", "my-bucket", "gateway/pictures")),
])
def test_image_store_setting(tmp_path, value, expected):
    settings = Settings.from_env({"GATEWAY_IMAGE_STORE": value, "GATEWAY_DATA_DIR": str(tmp_path)})
    location = settings.image_store
    if expected[0] == "s3":
        assert (location.kind, location.bucket, location.prefix) == expected
        image = StoredImage(owner="0" * 24, image_id="a" * 22, ext="png", expires=1)
        key = from_settings(settings).object_key(image)
        assert key == (f"{expected[2]}/{image.key}" if expected[2] else image.key)
    else:
        assert (location.kind, location.path) == (expected[0], expected[1].format(data=tmp_path))
    assert (from_settings(settings) is None) == (expected[0] == "none")


@pytest.mark.parametrize("name, value", [
    ("GATEWAY_IMAGE_STORE", "ftp://host/dir"),
    ("GATEWAY_IMAGE_STORE", "file://otherhost/dir"),
    ("GATEWAY_IMAGE_STORE", "s3://Bad_Bucket/x"),
    ("GATEWAY_IMAGE_URL_TTL", "0"),
    ("GATEWAY_IMAGE_URL_TTL", str(8 * 24 * 3600)),
    ("GATEWAY_URL_SIGNING_KEY", "short"),
    ("GATEWAY_PUBLIC_URL", "gateway.example.com"),
    ("GATEWAY_PUBLIC_URL", "https://gateway.example.com/?x=1"),
    ("GATEWAY_S3_ENDPOINT_URL", "r2.example.com"),
    ("GATEWAY_ACCEL_REDIRECT_PREFIX", "internal"),
    ("GATEWAY_IMAGE_SWEEP_SECONDS", "0"),
])
def test_bad_delivery_settings_stop_the_service_naming_the_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        Settings.from_env({name: value})


def test_delivery_settings_are_normalised():
    settings = Settings.from_env({"GATEWAY_PUBLIC_URL": "https://gateway.example.com/img/",
                                  "GATEWAY_ACCEL_REDIRECT_PREFIX": "/_gateway_images",
                                  "GATEWAY_URL_SIGNING_KEY": KEY, "GATEWAY_IMAGE_URL_TTL": "600"})
    assert settings.public_url == "https://gateway.example.com/img"
    assert settings.accel_redirect_prefix == "/_gateway_images/"
    assert settings.image_url_ttl == 600
    assert KEY not in repr(settings)
