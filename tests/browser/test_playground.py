"""The playground page (GET /): served safely by Flask, and driven in a real Chromium against gunicorn."""
from __future__ import annotations

import base64
import json
import os
import re
import struct
import subprocess

import pytest
import requests

from tests.conftest import CLIENT_KEY
from tests.support.images import PNG_B64, PNG_BYTES
from tests.support.system import require_program

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
KEY_STORAGE = "image-gateway-playground.key"
LONG_BASE64 = re.compile(r"[A-Za-z0-9+/]{200,}")


def png_size(data: bytes) -> tuple[int, int]:
    assert data.startswith(PNG_SIGNATURE)
    return struct.unpack(">II", data[16:24])


def decode_data_url(url: str) -> tuple[str, bytes]:
    head, _, payload = url.partition(",")
    assert head.startswith("data:") and head.endswith(";base64"), url[:60]
    return head[5:-7], base64.b64decode(payload)


# ------------------------------------------------------------------ without a browser

def test_page_is_served_without_a_key_with_a_strict_policy(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    policy = response.headers["Content-Security-Policy"]
    directives = {d.split()[0]: d.split()[1:] for d in policy.split("; ")}
    assert directives["default-src"] == ["'self'"]
    assert directives["script-src"] == ["'self'"]
    assert directives["style-src"] == ["'self'"]
    assert directives["img-src"] == ["'self'", "data:", "blob:"]
    assert directives["connect-src"] == ["'self'"]
    assert directives["object-src"] == ["'none'"]
    assert directives["frame-ancestors"] == ["'none'"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "no-referrer"

    html = response.get_data(as_text=True)
    scripts = re.findall(r"<script\b([^>]*)>(.*?)</script>", html, re.S)
    assert scripts == [(' src="/static/playground.js" defer', "")]
    assert re.findall(r'<link rel="stylesheet" href="([^"]+)"', html) == ["/static/playground.css"]
    assert " style=" not in html and "<style" not in html and " on" + "click=" not in html
    assert not re.search(r"(src|href)=\"(https?:)?//", html), "the page loads nothing from another origin"
    assert CLIENT_KEY not in html and "Bearer " + CLIENT_KEY not in html


def test_page_controls_all_have_labels(client):
    html = client.get("/").get_data(as_text=True)
    ids = re.findall(r"<(?:input|select|textarea)\b[^>]*\bid=\"([^\"]+)\"", html)
    assert {"key", "model", "prompt", "image", "size", "custom-size", "quality", "output-format", "background",
            "n", "partial-images"} <= set(ids)
    labelled = set(re.findall(r"<label\b[^>]*\bfor=\"([^\"]+)\"", html))
    assert set(ids) <= labelled


@pytest.mark.parametrize("path, mimetype", [("/static/playground.js", "text/javascript"),
                                            ("/static/playground.css", "text/css")])
def test_static_files_are_served(client, path, mimetype):
    response = client.get(path)
    assert response.status_code == 200
    assert response.mimetype == mimetype
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert len(response.get_data()) > 1000
    response.close()


def test_api_routes_still_need_the_key(client):
    assert client.get("/v1/models").status_code == 401


def test_script_keeps_the_key_out_of_local_storage():
    from pathlib import Path
    script = (Path(__file__).resolve().parents[2] / "app" / "static" / "playground.js").read_text()
    assert "localStorage" not in script
    assert "sessionStorage" in script
    assert "innerHTML" not in script and "eval(" not in script


# ------------------------------------------------------------------ in Chromium

def open_with_key(page, key: str = CLIENT_KEY):
    page.goto("/")
    page.fill("#key", key)


def load_models(page):
    open_with_key(page)
    page.locator("#model option[value='local-image']").wait_for(state="attached")
    page.select_option("#model", "local-image")


def generate(page, prompt: str):
    page.fill("#prompt", prompt)
    page.click("#generate")
    page.wait_for_selector("#status[data-state='done'], #status[data-state='error']")


def curl_body(curl: str) -> dict:
    """The JSON body of the page's curl command (single-quoted after -d)."""
    quoted = curl.split(" -d '", 1)[1]
    assert quoted.endswith("'")
    return json.loads(quoted[:-1].replace("'\\''", "'"))


def assert_clean(watch, gateway_url: str):
    assert watch.errors == [], watch.errors
    assert watch.csp_violations() == [], watch.csp_violations()
    for request in watch.requests:
        assert request.url.startswith((gateway_url + "/", "data:", "blob:")), request.url
    for request in watch.api_calls():
        assert request.headers.get("authorization", "").startswith("Bearer "), request.url


def test_generate_streams_previews_then_the_image(page, watch, playground_gateway, tmp_path):
    load_models(page)
    page.select_option("#size", "custom")
    page.fill("#custom-size", "256x192")
    page.fill("#partial-images", "2")
    generate(page, "a lighthouse at dusk")
    assert page.get_attribute("#status", "data-state") == "done", page.inner_text("#status")
    assert page.is_hidden("#error")

    # the final picture: a data URL holding a PNG of the asked size
    final = page.locator("#results figure[data-final] img")
    assert final.count() == 1
    mime, data = decode_data_url(final.get_attribute("src"))
    assert mime == "image/png" and data.startswith(PNG_SIGNATURE)
    assert png_size(data) == (256, 192)
    page.wait_for_selector("#results figure[data-width]")
    assert page.inner_text("#results figure .info") == "256 × 192 px · image/png"

    # the previews came before it and stay visible, counted
    assert page.inner_text("#preview-count") == "2"
    previews = page.locator("#previews img")
    assert previews.count() == 2
    for index in range(2):
        preview_mime, preview = decode_data_url(previews.nth(index).get_attribute("src"))
        assert preview_mime == "image/png" and png_size(preview) == (256, 192) and preview != data

    # the provider's text, the provider header
    assert "Placeholder image from the local provider" in page.inner_text("#results")
    assert "provider: local" in page.inner_text("#meta")
    assert "cost: $0" in page.inner_text("#meta")  # the local provider is free; the stream's usage says so

    # the download link gives the same PNG under a sensible name
    link = page.locator("#results a.download")
    name = link.get_attribute("download")
    assert re.fullmatch(r"local-image-\d{8}-\d{6}-1\.png", name), name
    with page.expect_download() as info:
        link.click()
    download = info.value
    assert download.suggested_filename == name
    saved = tmp_path / name
    download.save_as(saved)
    assert saved.read_bytes() == data

    # the curl command: same request, non-streaming, the model, $GATEWAY_KEY and never the key
    curl = page.inner_text("#curl")
    assert curl.startswith(f"curl -s '{playground_gateway.url}/v1/chat/completions'")
    assert "$GATEWAY_KEY" in curl and CLIENT_KEY not in curl
    assert curl_body(curl) == {"model": "local-image", "modalities": ["image", "text"],
                            "messages": [{"role": "user", "content": "a lighthouse at dusk"}],
                            "tools": [{"type": "image_generation", "image_generation": {"size": "256x192"}}],
                            "n": 1}
    assert "partial_images is left out" in page.inner_text("#curl-note")

    # the raw answer, rebuilt from the stream, with every base64 payload shortened
    page.click("#raw-details summary")
    raw = page.inner_text("#raw")
    answer = json.loads(raw)
    assert answer["object"] == "chat.completion" and answer["model"] == "local-image"
    url = answer["choices"][0]["message"]["images"][0]["image_url"]["url"]
    assert re.fullmatch(r"data:image/png;base64,iVBORw0KGgoA…\(\d+ chars\)", url), url
    assert answer["choices"][0]["finish_reason"] == "stop"
    assert not LONG_BASE64.search(raw)

    # what went over the wire: the typed key on every call, the streamed request as specified
    calls = watch.api_calls()
    assert [c.url.removeprefix(playground_gateway.url) for c in calls] == ["/v1/models", "/v1/chat/completions"]
    assert all(c.headers["authorization"] == f"Bearer {CLIENT_KEY}" for c in calls)
    assert calls[1].post_data_json == {
        "model": "local-image", "modalities": ["image", "text"],
        "messages": [{"role": "user", "content": "a lighthouse at dusk"}],
        "tools": [{"type": "image_generation", "image_generation": {"size": "256x192", "partial_images": 2}}],
        "n": 1, "stream": True, "stream_options": {"include_usage": True}}

    # the key is in sessionStorage only, and nowhere in the document
    assert page.evaluate(f"sessionStorage.getItem('{KEY_STORAGE}')") == CLIENT_KEY
    assert page.evaluate("localStorage.length") == 0
    assert CLIENT_KEY not in page.content()
    assert_clean(watch, playground_gateway.url)

    page.screenshot(path=tmp_path / "playground.png", full_page=True)  # kept with the test's files, for a look


def test_edit_with_an_input_image_and_two_images(page, watch, playground_gateway):
    load_models(page)
    page.set_input_files("#image", files=[{"name": "cat.png", "mimeType": "image/png", "buffer": PNG_BYTES}])
    page.wait_for_selector("#image-preview:not([hidden])")
    assert "cat.png" in page.inner_text("#image-caption")
    page.select_option("#size", "custom")
    page.fill("#custom-size", "64x64")
    page.fill("#n", "2")
    page.fill("#partial-images", "1")
    page.select_option("#background", "transparent")
    generate(page, "add snow")
    assert page.get_attribute("#status", "data-state") == "done", page.inner_text("#status")

    finals = page.locator("#results figure[data-final] img")
    assert finals.count() == 2
    pictures = [decode_data_url(finals.nth(i).get_attribute("src"))[1] for i in range(2)]
    assert all(png_size(p) == (64, 64) for p in pictures)
    assert page.inner_text("#preview-count") == "2"
    assert [page.get_attribute(f"#results figure:nth-child({i + 1}) a.download", "download")[-6:]
            for i in range(2)] == ["-1.png", "-2.png"]

    body = watch.api_calls()[-1].post_data_json
    assert body["messages"][-1]["content"] == [
        {"type": "text", "text": "add snow"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64," + PNG_B64}}]
    assert body["n"] == 2
    assert body["tools"][0]["image_generation"] == {"size": "64x64", "background": "transparent",
                                                    "partial_images": 1}

    curl = page.inner_text("#curl")
    assert PNG_B64 not in curl
    assert curl_body(curl)["messages"][-1]["content"][1] == {"type": "image_url",
                                                             "image_url": {"url": "INPUT_IMAGE_DATA_URL"}}
    assert "cat.png" in page.inner_text("#curl-note") and "INPUT_IMAGE_DATA_URL" in page.inner_text("#curl-note")
    assert_clean(watch, playground_gateway.url)


def test_wrong_key_shows_the_api_message(page, watch, playground_gateway):
    # freeze timers so the key's debounced model reload waits: Generate then goes out with the wrong key
    page.clock.install()
    load_models(page)
    page.fill("#key", "not-the-key")
    generate(page, "a red kite")
    error = page.inner_text("#error")
    assert "Incorrect client key" in error and "invalid_api_key" in error and "HTTP 401" in error
    assert page.get_attribute("#status", "data-state") == "error"
    assert page.locator("#results img").count() == 0

    page.clock.run_for(1000)  # the model list is fetched again with the new key, and fails the same way
    page.wait_for_selector("#models-error:not([hidden])")
    assert "Incorrect client key" in page.inner_text("#models-error")
    assert page.locator("#model option").count() == 0

    keys = [c.headers["authorization"] for c in watch.api_calls()]
    assert keys == [f"Bearer {CLIENT_KEY}", "Bearer not-the-key", "Bearer not-the-key"]
    assert page.evaluate(f"sessionStorage.getItem('{KEY_STORAGE}')") == "not-the-key"
    assert_clean(watch, playground_gateway.url)


@pytest.mark.parametrize("size, message, detail", [
    ("8x8", "tools[0].image_generation.size: 8x8 is too small", "param: tools[0].image_generation.size"),
    ("5000x5000", "local-image does not make 5000x5000 images", "code: unsupported_size"),
])
def test_validation_errors_show_the_api_message(page, watch, playground_gateway, size, message, detail):
    load_models(page)
    page.select_option("#size", "custom")
    page.fill("#custom-size", size)
    generate(page, "a lighthouse")
    assert page.get_attribute("#status", "data-state") == "error"
    error = page.inner_text("#error")
    assert message in error and detail in error
    assert page.locator("#results img").count() == 0
    assert_clean(watch, playground_gateway.url)


def test_model_list_follows_the_key_and_the_key_survives_a_reload(page, playground_gateway):
    open_with_key(page, "wrong")
    page.wait_for_selector("#models-error:not([hidden])")
    assert "Incorrect client key" in page.inner_text("#models-error")
    page.fill("#key", CLIENT_KEY)
    page.locator("#model option[value='local-image']").wait_for(state="attached")
    assert page.is_hidden("#models-error")

    page.reload()
    assert page.input_value("#key") == CLIENT_KEY
    page.locator("#model option[value='local-image']").wait_for(state="attached")

    page.click("#forget-key")
    assert page.input_value("#key") == ""
    assert page.evaluate(f"sessionStorage.getItem('{KEY_STORAGE}')") is None
    assert page.locator("#model option").count() == 0


def test_stream_error_frame_and_keep_alives_are_handled(page, watch, playground_gateway):
    """A late failure arrives as a data: {"error": ...} frame inside a 200 stream: it must be shown."""
    chunk = {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 1, "model": "local-image"}
    preview = {"type": "image_url", "image_url": {"url": "data:image/png;base64," + PNG_B64},
               "partial_image_index": 0}
    frames = [
        ": keep-alive",
        "data: " + json.dumps({**chunk, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                                      "finish_reason": None}]}),
        ": keep-alive",
        "data: " + json.dumps({**chunk, "choices": [{"index": 0, "delta": {"partial_images": [preview]},
                                                      "finish_reason": None}]}),
        "data: " + json.dumps({"error": {"message": "The provider took too long", "type": "upstream_timeout",
                                         "param": None, "code": "upstream_timeout"}}),
        "data: [DONE]",
    ]
    body = "\r\n\r\n".join(frames) + "\r\n\r\n"  # CRLF line ends are legal SSE too
    page.route("**/v1/chat/completions", lambda route: route.fulfill(
        status=200, content_type="text/event-stream", body=body))
    load_models(page)
    generate(page, "a slow picture")
    assert page.get_attribute("#status", "data-state") == "error"
    error = page.inner_text("#error")
    assert "The provider took too long" in error and "code: upstream_timeout" in error
    assert page.inner_text("#preview-count") == "1"
    assert page.locator("#results figure[data-final]").count() == 0
    page.click("#raw-details summary")
    assert "2 keep-alives" in page.inner_text("#raw-details summary")
    assert json.loads(page.inner_text("#raw"))["error"]["code"] == "upstream_timeout"
    assert_clean(watch, playground_gateway.url)


def test_copy_button_copies_the_curl_command(context, page, playground_gateway):
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=playground_gateway.url)
    load_models(page)
    page.fill("#prompt", "the teapot's spout")
    page.click("#copy-curl")
    page.wait_for_selector("#copy-status:has-text('Copied')")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == page.inner_text("#curl")
    assert curl_body(copied)["messages"] == [{"role": "user", "content": "the teapot's spout"}]
    assert CLIENT_KEY not in copied


def test_curl_command_runs_in_a_shell(page, playground_gateway):
    """Pasted into a shell with GATEWAY_KEY set, the command really gets the picture (quoting included)."""
    curl = require_program("curl")
    load_models(page)
    page.fill("#prompt", "the teapot's spout, \"quoted\" and $HOME")
    page.select_option("#size", "custom")
    page.fill("#custom-size", "32x48")
    command = page.inner_text("#curl")
    env = {"PATH": os.path.dirname(curl) + os.pathsep + os.environ.get("PATH", ""), "GATEWAY_KEY": CLIENT_KEY}
    done = subprocess.run(["/bin/sh", "-c", command], env=env, capture_output=True, timeout=30, check=True)
    answer = json.loads(done.stdout)
    assert answer["object"] == "chat.completion", answer
    mime, data = decode_data_url(answer["choices"][0]["message"]["images"][0]["image_url"]["url"])
    assert mime == "image/png" and png_size(data) == (32, 48)
    # the local provider draws from the prompt: same bytes means the shell passed the prompt untouched
    direct = requests.post(playground_gateway.url + "/v1/chat/completions", timeout=30,
                           headers={"Authorization": f"Bearer {CLIENT_KEY}"},
                           json={"model": "local-image", "modalities": ["image"],
                                 "messages": [{"role": "user", "content": "the teapot's spout, \"quoted\" and $HOME"}],
                                 "tools": [{"type": "image_generation", "image_generation": {"size": "32x48"}}]})
    assert decode_data_url(direct.json()["choices"][0]["message"]["images"][0]["image_url"]["url"])[1] == data


def test_a_later_refused_run_clears_the_previous_runs_status_and_answer(page, watch, playground_gateway):
    load_models(page)
    generate(page, "a lighthouse")
    assert page.get_attribute("#status", "data-state") == "done" and page.text_content("#raw").strip()
    page.click("#forget-key")
    page.fill("#prompt", "a red kite")
    page.click("#generate")
    page.wait_for_selector("#error:not([hidden])")
    assert "Enter your client key first" in page.inner_text("#error")
    assert page.inner_text("#status").strip() == "" and page.get_attribute("#status", "data-state") == "idle"
    assert page.text_content("#raw").strip() == "" and page.locator("#results img").count() == 0
    assert_clean(watch, playground_gateway.url)


def test_the_page_fits_a_phone(browser, playground_gateway):
    """390 CSS pixels wide (a current phone): no horizontal scrolling, before or after a run."""
    context = browser.new_context(base_url=playground_gateway.url, viewport={"width": 390, "height": 844})
    try:
        page = context.new_page()
        page.set_default_timeout(15_000)
        load_models(page)
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.fill("#n", "2")
        generate(page, "a lighthouse on a very long and winding coast, seen from far away at dusk")
        assert page.locator("#results img").count() == 2
        page.click("#raw-details summary")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
    finally:
        context.close()
