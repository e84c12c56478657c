"""Pictures as signed links (DESIGN §8) through the app: Images API, chat, streams, the link route."""
from __future__ import annotations

import base64
import json
import os
import struct
import time
import zlib
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from app.image_store import StoreUnavailable
from tests.conftest import CLIENT_KEY, OPENAI_BASE, OPENROUTER_BASE, chat_body
from tests.support.images import PNG_BYTES
from tests.support.sse import data_frames, parse

GENERATIONS = OPENAI_BASE + "/images/generations"
SIGNING_KEY = "s" * 43
MIB = 1024 * 1024


@pytest.fixture
def app(make_app):
    return make_app(GATEWAY_URL_SIGNING_KEY=SIGNING_KEY, GATEWAY_STREAM_KEEPALIVE_SECONDS="0.1")


def generate(client, auth, **body):
    response = client.post("/v1/images/generations", headers=auth,
                           json={"model": "local-image", "prompt": "a red kite", "size": "32x32", **body})
    assert response.status_code == 200, response.json
    return response


def fetch(client, url, headers=None):
    """GET a link the way a browser would: no Authorization."""
    parts = urlsplit(url)
    response = client.get(f"{parts.path}?{parts.query}", headers=headers or {})
    response.get_data()  # read, then closed as a WSGI server would close it
    response.close()
    return response


def picture_of(client, url) -> bytes:
    response = fetch(client, url)
    assert response.status_code == 200, response.get_data()[:300]
    return response.get_data()


def padded_png(total: int) -> bytes:
    """A valid PNG of `total` bytes: a small picture with a large text chunk."""
    text = b"Comment\0" + os.urandom((total - len(PNG_BYTES) - 20) // 2).hex().encode()[:total - len(PNG_BYTES) - 20]
    chunk = struct.pack(">I", len(text)) + b"tEXt" + text + struct.pack(">I", zlib.crc32(b"tEXt" + text))
    return PNG_BYTES[:-12] + chunk + PNG_BYTES[-12:]


def test_images_api_url_leads_to_the_same_picture_as_b64(client, auth):
    inline = base64.b64decode(generate(client, auth).json["data"][0]["b64_json"])
    answer = generate(client, auth, response_format="url").json
    assert set(answer["data"][0]) == {"url"}
    assert answer["size"] == "32x32" and answer["output_format"] == "png"  # read from the stored picture
    assert picture_of(client, answer["data"][0]["url"]) == inline


def test_a_link_is_served_with_type_length_caching_and_etag(client, auth):
    url = generate(client, auth, response_format="url").json["data"][0]["url"]
    response = fetch(client, url)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "image/png"
    assert int(response.headers["Content-Length"]) == len(response.get_data())
    cache = response.headers["Cache-Control"]
    assert cache.startswith("private, max-age=") and cache.endswith(", immutable")
    assert 3590 <= int(cache.split("max-age=")[1].split(",")[0]) <= 3600
    etag = response.headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"')
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert fetch(client, url, {"If-None-Match": etag}).status_code == 304
    with client.head(urlsplit(url).path + "?" + urlsplit(url).query) as head:
        assert head.status_code == 200 and head.headers["Content-Length"] == response.headers["Content-Length"]


def test_n_pictures_get_their_own_links(client, auth):
    urls = [item["url"] for item in generate(client, auth, response_format="url", n=3).json["data"]]
    assert len(set(urls)) == 3
    assert len({picture_of(client, url) for url in urls}) == 3


def test_chat_puts_the_link_in_content_images_and_tool_calls(client, post_chat):
    response = post_chat(chat_body(tool={"size": "32x32"}, image_response_format="url"))
    assert response.status_code == 200, response.json
    message = response.json["choices"][0]["message"]
    url = message["images"][0]["image_url"]["url"]
    assert url.startswith("http://localhost/images/")
    assert message["content"][-1] == {"type": "image_url", "image_url": {"url": url}}
    call = message["tool_calls"][0]["image_generation"]
    assert call["url"] == url and "result" not in call
    assert call["size"] == "32x32" and call["output_format"] == "png"
    assert picture_of(client, url).startswith(b"\x89PNG")


def test_chat_without_the_field_still_answers_base64(post_chat):
    message = post_chat(chat_body(tool={"size": "16x16"})).json["choices"][0]["message"]
    assert message["images"][0]["image_url"]["url"].startswith("data:image/png;base64,")
    assert "result" in message["tool_calls"][0]["image_generation"]


def test_a_link_needs_no_authorization_and_ignores_a_wrong_one(client, auth):
    url = generate(client, auth, response_format="url").json["data"][0]["url"]
    assert fetch(client, url, {"Authorization": "Bearer not-a-key"}).status_code == 200


@pytest.mark.parametrize("change, status, code", [
    (lambda u: u.replace("signature=", "signature=A"), 403, "invalid_signature"),
    (lambda u: u.split("&signature=")[0], 403, "invalid_signature"),
    (lambda u: u.replace("expires=", "expires=1"), 403, "invalid_signature"),
    (lambda u: u.replace(".png?", ".jpg?"), 403, "invalid_signature"),
    (lambda u: u.replace("/images/", "/images/x"), 404, "image_not_found"),
])
def test_a_tampered_link_is_a_json_error(client, auth, change, status, code):
    url = generate(client, auth, response_format="url").json["data"][0]["url"]
    response = fetch(client, change(url))
    assert response.status_code == status
    assert response.mimetype == "application/json"
    assert response.json["error"]["code"] == code and response.json["error"]["message"]


def test_an_expired_link_is_refused(make_app, auth):
    # 2 s: a link's expiry is a whole second, so it lives between TTL - 1 and TTL seconds
    client = make_app(GATEWAY_IMAGE_URL_TTL="2").test_client()
    url = generate(client, auth, response_format="url").json["data"][0]["url"]
    assert fetch(client, url).status_code == 200
    expires = int(parse_qs(urlsplit(url).query)["expires"][0])
    time.sleep(max(0.0, expires - time.time()) + 0.05)
    response = fetch(client, url)
    assert (response.status_code, response.json["error"]["code"]) == (403, "link_expired")


def test_pictures_are_kept_per_client_key(make_app):
    client = make_app(GATEWAY_API_KEYS="key-one,key-two", GATEWAY_URL_SIGNING_KEY=SIGNING_KEY).test_client()
    one = generate(client, {"Authorization": "Bearer key-one"}, response_format="url").json["data"][0]["url"]
    two = generate(client, {"Authorization": "Bearer key-two"}, response_format="url").json["data"][0]["url"]
    owner_one, owner_two = urlsplit(one).path.split("/")[2], urlsplit(two).path.split("/")[2]
    assert owner_one != owner_two
    # key two's signature does not open key one's picture (nor the other way round)
    forged = one.split("?")[0] + "?" + urlsplit(two).query
    assert fetch(client, forged).status_code == 403
    assert fetch(client, one.replace(owner_one, owner_two)).status_code in (403, 404)


def test_the_public_url_is_the_links_base(make_app, auth):
    client = make_app(GATEWAY_PUBLIC_URL="https://img.example.com/gw/").test_client()
    url = generate(client, auth, response_format="url").json["data"][0]["url"]
    assert url.startswith("https://img.example.com/gw/images/")
    assert picture_of(client, url.replace("/gw", "", 1)).startswith(b"\x89PNG")


@pytest.mark.parametrize("trusted, scheme", [("1", "https"), ("0", "http")])
def test_without_a_public_url_links_follow_the_scheme_a_trusted_proxy_forwards(make_app, auth, trusted, scheme):
    client = make_app(GATEWAY_TRUSTED_PROXIES=trusted).test_client()
    response = client.post("/v1/images/generations", json={"model": "local-image", "prompt": "x",
                                                           "response_format": "url"},
                           headers={**auth, "X-Forwarded-Proto": "https", "Host": "gateway.example.com"})
    assert response.json["data"][0]["url"].startswith(f"{scheme}://gateway.example.com/images/")


@pytest.mark.parametrize("path, body, param", [
    ("/v1/images/generations", {"model": "gpt-image-1", "prompt": "x", "response_format": "url"}, "response_format"),
    ("/v1/chat/completions", chat_body(model="gpt-image-1", image_response_format="url"), "image_response_format"),
])
def test_url_delivery_without_a_store_is_a_400_naming_the_setting_before_any_upstream_call(make_app, auth, path,
                                                                                            body, param):
    client = make_app(GATEWAY_IMAGE_STORE="none").test_client()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        response = client.post(path, json=body, headers=auth)
    assert not mocked.calls
    assert response.status_code == 400
    error = response.json["error"]
    assert error["param"] == param and error["code"] == "image_store_not_configured"
    assert "GATEWAY_IMAGE_STORE" in error["message"]


def test_an_unusable_directory_is_a_400_naming_the_setting(make_app, auth, tmp_path):
    (tmp_path / "file").write_text("not a directory")
    client = make_app(GATEWAY_IMAGE_STORE=f"file://{tmp_path}/file/images").test_client()
    response = client.post("/v1/images/generations", headers=auth,
                           json={"model": "local-image", "prompt": "x", "response_format": "url"})
    assert response.status_code == 400
    assert "GATEWAY_IMAGE_STORE" in response.json["error"]["message"]


def test_a_bad_format_value_is_a_400(post_chat):
    response = post_chat(chat_body(image_response_format="link"))
    assert (response.status_code, response.json["error"]["param"]) == (400, "image_response_format")


def test_a_store_failure_sends_the_paid_picture_inline_and_says_so(app, client, auth, monkeypatch):
    def broken(*args, **kwargs):
        raise StoreUnavailable("disk full")

    monkeypatch.setattr(app.extensions["gateway"].images, "put", broken)
    response = generate(client, auth, response_format="url")
    assert response.headers["x-gateway-image-delivery"] == "b64_json"
    assert base64.b64decode(response.json["data"][0]["b64_json"]).startswith(b"\x89PNG")


def test_accel_redirect_hands_the_file_to_nginx(make_app, auth, tmp_path):
    client = make_app(GATEWAY_ACCEL_REDIRECT_PREFIX="/_gateway_images/",
                      GATEWAY_IMAGE_STORE=f"file://{tmp_path}/pictures").test_client()
    url = generate(client, auth, response_format="url").json["data"][0]["url"]
    response = fetch(client, url)
    assert response.status_code == 200 and response.get_data() == b""
    target = response.headers["X-Accel-Redirect"]
    assert target.startswith("/_gateway_images/")
    assert (tmp_path / "pictures" / target.removeprefix("/_gateway_images/")).read_bytes().startswith(b"\x89PNG")
    assert response.headers["Content-Type"] == "image/png"
    assert response.headers["Cache-Control"].startswith("private, max-age=")
    assert fetch(client, url.replace("signature=", "signature=A")).status_code == 403  # checked before nginx sends


def test_chat_stream_final_frames_carry_links_and_previews_stay_inline(client, auth):
    response = client.post("/v1/chat/completions", headers=auth, json=chat_body(
        stream=True, n=2, image_response_format="url", tool={"size": "32x32", "partial_images": 2}))
    assert response.status_code == 200
    deltas = [f.json["choices"][0]["delta"] for f in data_frames(parse(response.get_data()))[:-1]
              if f.json["choices"]]
    previews = [d["partial_images"][0]["image_url"]["url"] for d in deltas if "partial_images" in d]
    assert len(previews) == 4 and all(p.startswith("data:image/png;base64,") for p in previews)
    finals = [d for d in deltas if "images" in d]
    urls = [d["images"][0]["image_url"]["url"] for d in finals]
    assert len(set(urls)) == 2 and all(u.startswith("http://localhost/images/") for u in urls)
    for delta in finals:
        call = delta["tool_calls"][0]["image_generation"]
        assert call["url"] == delta["images"][0]["image_url"]["url"] and "result" not in call
        assert picture_of(client, call["url"]).startswith(b"\x89PNG")


def test_images_stream_completed_event_carries_the_link(client, auth):
    response = client.post("/v1/images/generations", headers=auth, json={
        "model": "local-image", "prompt": "a kite", "size": "32x32", "stream": True, "partial_images": 1,
        "response_format": "url"})
    frames = [f for f in data_frames(parse(response.get_data())) if f.data != "[DONE]"]
    partial, completed = frames[0].json, frames[-1].json
    assert partial["type"] == "image_generation.partial_image" and "b64_json" in partial
    assert completed["type"] == "image_generation.completed" and "b64_json" not in completed
    assert picture_of(client, completed["url"]).startswith(b"\x89PNG")
    assert completed["size"] == "32x32"


def test_a_url_answer_for_a_2_mib_picture_is_a_few_hundred_bytes(client, auth):
    big = padded_png(2 * MIB)
    with responses.RequestsMock() as mocked:
        mocked.post(GENERATIONS, json={"created": 1, "data": [{"b64_json": base64.b64encode(big).decode()}]})
        mocked.post(GENERATIONS, json={"created": 1, "data": [{"b64_json": base64.b64encode(big).decode()}]})
        inline = client.post("/v1/chat/completions", headers=auth, json=chat_body(model="gpt-image-1"))
        linked = client.post("/v1/chat/completions", headers=auth,
                             json=chat_body(model="gpt-image-1", image_response_format="url"))
    assert len(inline.get_data()) > 2 * 4 / 3 * 2 * MIB  # the picture twice, as base64
    assert len(linked.get_data()) < 2048
    assert picture_of(client, linked.json["choices"][0]["message"]["images"][0]["image_url"]["url"]) == big


def test_the_link_route_is_404_json_when_pictures_are_not_kept_in_a_directory(make_app):
    client = make_app(GATEWAY_IMAGE_STORE="s3://bucket/pictures").test_client()
    response = client.get("/images/" + "0" * 24 + "/" + "a" * 22 + ".png?expires=1&signature=x")
    assert response.status_code == 404 and response.json["error"]["code"] == "image_not_found"


def test_a_client_key_never_appears_in_a_link(client, auth):
    url = generate(client, auth, response_format="url").json["data"][0]["url"]
    assert CLIENT_KEY not in url


def test_the_openrouter_answer_style_carries_links_too(client, post_chat):
    response = post_chat(chat_body(tool={"size": "16x16"}, image_response_format="url"),
                         headers={"X-Gateway-Answer-Style": "openrouter"})
    message = response.json["choices"][0]["message"]
    assert isinstance(message["content"], str) and "tool_calls" not in message
    assert picture_of(client, message["images"][0]["image_url"]["url"]).startswith(b"\x89PNG")


def test_an_answer_with_links_sent_back_shows_the_model_its_picture(post_chat):
    """Multi-turn edits: a tool-form answer carrying `url` instead of `result` still holds its picture."""
    first = post_chat(chat_body(tool={"size": "16x16"}, modalities=None, image_response_format="url"))
    message = first.json["choices"][0]["message"]
    url = message["tool_calls"][0]["image_generation"]["url"]
    assert "images" not in message  # the picture is in the tool call only
    answer = {"id": "gen-1", "object": "chat.completion", "created": 1, "model": "google/gemini-2.5-flash-image",
              "choices": [{"index": 0, "finish_reason": "stop", "message": {
                  "role": "assistant", "content": "", "images": [{"type": "image_url",
                                                                  "image_url": {"url": "data:image/png;base64,"
                                                                                + base64.b64encode(PNG_BYTES).decode()}}]}}],
              "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}
    with responses.RequestsMock() as mocked:
        mocked.post(OPENROUTER_BASE + "/chat/completions", json=answer)
        response = post_chat({"model": "google/gemini-2.5-flash-image", "modalities": ["image", "text"], "messages": [
            {"role": "user", "content": "a kite"}, message, {"role": "user", "content": "now purple"}]})
        sent = json.loads(mocked.calls[0].request.body)
    assert response.status_code == 200, response.json
    assert sent["messages"][1]["content"][-1] == {"type": "image_url", "image_url": {"url": url}}


def test_an_empty_url_in_a_sent_back_tool_call_is_a_400_naming_it(post_chat):
    response = post_chat({"model": "local-image", "modalities": ["image"], "messages": [
        {"role": "user", "content": "a kite"},
        {"role": "assistant", "content": None,
         "tool_calls": [{"type": "image_generation", "image_generation": {"status": "completed", "url": ""}}]},
        {"role": "user", "content": "now purple"}]})
    assert response.status_code == 400
    assert response.json["error"]["param"] == "messages[1].tool_calls[0].image_generation.url"
