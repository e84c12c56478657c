"""Property-based fuzzing of every generation route: whatever the body and headers, the gateway
answers without a 5xx of its own, with OpenAI-style JSON errors, and without a secret in sight."""
import base64
import json
import re

import pytest
import responses
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import ARK_KEY, CLIENT_KEY, GEMINI_KEY, OPENAI_KEY, OPENROUTER_KEY
from tests.support.images import JPEG_B64, PNG_B64, PNG_DATA_URL

SECRETS = (CLIENT_KEY, OPENAI_KEY, ARK_KEY, OPENROUTER_KEY, GEMINI_KEY)
PATHS = ("/v1/chat/completions", "/api/v1/chat/completions", "/v1/images/generations", "/v1/images/edits")
MODELS = ("local-image", "local-x", "gpt-image-1", "dall-e-3", "dall-e-2", "doubao-seedream-4-0-250828",
          "doubao-seededit-3-0-i2i-250628", "google/gemini-2.5-flash-image", "gemini-2.5-flash-image",
          "imagen-4.0-generate-001", "no-such-model", "")
SIZES = ("auto", "1024x1024", "512x512", "256x256", "64x64", "1536x1024", "1K", "2K", "8x8", "99999x1", "x")

# ----- strategies -----

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**40, 2**40), st.floats(allow_nan=False),
                         st.text(max_size=30))
any_json = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=12), inner, max_size=4)), max_leaves=12)


def maybe(strategy):
    return st.one_of(strategy, any_json)


image_url_values = st.sampled_from([PNG_DATA_URL, "data:image/png;base64," + JPEG_B64, "data:image/png;base64,@@",
                                    "data:text/plain;base64,aGk=", "ftp://x/y.png", "http://user:pw@x/y.png",
                                    "http://127.0.0.1:9/y.png", "data:", "not a url"])
text_part = st.fixed_dictionaries({"type": st.just("text"), "text": maybe(st.text(max_size=40))})
image_part = st.fixed_dictionaries({"type": st.just("image_url"),
                                    "image_url": maybe(st.fixed_dictionaries({"url": image_url_values}))})
content = st.one_of(st.text(max_size=60), st.none(), st.lists(st.one_of(text_part, image_part, any_json), max_size=4))
message = st.fixed_dictionaries({"role": maybe(st.sampled_from(["user", "system", "developer", "assistant", "tool"])),
                                 "content": content})
tool_params = st.dictionaries(
    st.sampled_from(["size", "quality", "background", "output_format", "output_compression", "partial_images",
                     "moderation", "input_fidelity", "watermark", "input_image_mask", "bogus"]),
    st.one_of(st.sampled_from(SIZES), st.sampled_from(["high", "low", "hd", "png", "jpeg", "webp", "transparent",
                                                       "opaque", "auto"]),
              st.integers(-5, 120), st.booleans(), st.fixed_dictionaries({"image_url": image_url_values}),
              any_json), max_size=5)
tool = st.one_of(st.fixed_dictionaries({"type": st.just("image_generation"), "image_generation": tool_params}),
                 st.fixed_dictionaries({"type": st.just("function"), "function": any_json}), any_json)
chat_body = st.fixed_dictionaries({"model": maybe(st.sampled_from(MODELS)), "messages": maybe(st.lists(message, max_size=4))},
                                  optional={"modalities": maybe(st.lists(st.sampled_from(["image", "text", "audio"]),
                                                                         max_size=3)),
                                            "tools": maybe(st.lists(tool, max_size=3)),
                                            "n": maybe(st.integers(-1, 12)),
                                            "stream": maybe(st.booleans()),
                                            "stream_options": any_json,
                                            "user": any_json, "temperature": any_json})
images_body = st.fixed_dictionaries({"prompt": maybe(st.text(max_size=60))}, optional={
    "model": maybe(st.sampled_from(MODELS)), "n": maybe(st.integers(-1, 12)), "size": maybe(st.sampled_from(SIZES)),
    "quality": any_json, "response_format": maybe(st.sampled_from(["b64_json", "url"])), "stream": maybe(st.booleans()),
    "partial_images": maybe(st.integers(-1, 4)), "style": any_json, "background": any_json,
    "images": maybe(st.lists(st.fixed_dictionaries({"image_url": image_url_values}), max_size=3)),
    "mask": maybe(st.fixed_dictionaries({"image_url": image_url_values}))})
# well-formed requests with every valid knob varied, so the fuzzer also reaches the providers
VALID_PARAMS = {"size": st.sampled_from(SIZES[:7]), "quality": st.sampled_from(["auto", "high", "medium", "low", "hd",
                                                                               "standard"]),
                "background": st.sampled_from(["auto", "opaque"]), "output_format": st.sampled_from(["png", "webp"]),
                "moderation": st.sampled_from(["low", "auto"]), "watermark": st.booleans(),
                "partial_images": st.integers(0, 3), "input_fidelity": st.sampled_from(["high", "low"])}
valid_tool_params = st.fixed_dictionaries({}, optional=VALID_PARAMS)
valid_chat_body = st.fixed_dictionaries(
    {"model": st.sampled_from(MODELS[:10]),
     "messages": st.lists(st.fixed_dictionaries({"role": st.sampled_from(["user", "system", "assistant"]),
                                                 "content": st.text(min_size=1, max_size=40)}), max_size=2).map(
         lambda earlier: earlier + [{"role": "user", "content": [{"type": "text", "text": "a fox"},
                                                                  {"type": "image_url", "image_url": {"url": PNG_DATA_URL}}]
                                     if len(earlier) % 2 else "a lighthouse"}])},
    optional={"modalities": st.sampled_from([["image", "text"], ["image"]]),
              "tools": valid_tool_params.map(lambda p: [{"type": "image_generation", "image_generation": p}]),
              "n": st.integers(1, 3), "stream": st.booleans(), "stream_options": st.just({"include_usage": True}),
              "user": st.text(max_size=10)}).filter(lambda b: "modalities" in b or "tools" in b)
valid_images_body = st.fixed_dictionaries({"prompt": st.text(min_size=1, max_size=40), "model": st.sampled_from(MODELS[:10])},
                                          optional={**VALID_PARAMS, "n": st.integers(1, 3), "stream": st.booleans(),
                                                    "images": st.just([{"image_url": PNG_DATA_URL}])})
bodies = st.one_of(valid_chat_body, valid_chat_body, valid_images_body, valid_images_body, chat_body, images_body,
                   any_json)

header_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
VALID_AUTH = f"Bearer {CLIENT_KEY}"
headers = st.fixed_dictionaries({
    "Authorization": st.one_of(st.just(VALID_AUTH), st.just(VALID_AUTH), st.just(VALID_AUTH),
                               st.just(f"bearer {CLIENT_KEY}"), header_text, st.just("Bearer "),
                               st.just(f"Basic {CLIENT_KEY}"))}, optional={
    "X-Request-ID": header_text,
    "Idempotency-Key": header_text,
    "Content-Type": st.sampled_from(["application/json", "text/plain", "multipart/form-data",
                                     "application/x-www-form-urlencoded", "application/json; charset=latin-1"]),
    "Accept": header_text,
})

# ----- upstreams: every provider answers with a picture, whatever it was asked -----

PROVIDER_ANSWERS = {
    re.compile(r"https://openai\.test/v1/images/(generations|edits)"):
        {"created": 1, "data": [{"b64_json": PNG_B64}]},
    re.compile(r"https://ark\.test/api/v3/images/generations"):
        {"created": 1, "data": [{"b64_json": JPEG_B64, "size": "1x1"}], "usage": {"generated_images": 1}},
    re.compile(r"https://openrouter\.test/api/v1/chat/completions"):
        {"choices": [{"finish_reason": "stop", "message": {"role": "assistant", "content": "ok",
                                                           "images": [{"type": "image_url",
                                                                       "image_url": {"url": PNG_DATA_URL}}]}}]},
    re.compile(r"https://gemini\.test/v1beta/models/.*:generateContent"):
        {"candidates": [{"finishReason": "STOP", "content": {"parts": [
            {"inlineData": {"mimeType": "image/png", "data": PNG_B64}}]}}]},
    re.compile(r"https://gemini\.test/v1beta/models/.*:predict"):
        {"predictions": [{"bytesBase64Encoded": PNG_B64, "mimeType": "image/png"}]},
}


def healthy_upstreams(rsps):
    for pattern, answer in PROVIDER_ANSWERS.items():
        rsps.add(responses.POST, pattern, json=answer)


def leaky_upstreams(rsps, status):
    """Failing upstreams whose error messages echo the key they were sent (some real ones do)."""
    def echo(request):
        key = request.headers.get("Authorization") or request.headers.get("x-goog-api-key") or ""
        return status, {"Retry-After": "1"}, json.dumps({"error": {"message": f"bad key {key}", "code": status}})
    for pattern in PROVIDER_ANSWERS:
        rsps.add_callback(responses.POST, pattern, callback=echo)


@pytest.fixture(scope="module")
def fuzz_client(tmp_path_factory):
    from app import create_app
    env = {"GATEWAY_API_KEYS": CLIENT_KEY, "OPENAI_API_KEY": OPENAI_KEY, "OPENAI_BASE_URL": "https://openai.test/v1",
           "ARK_API_KEY": ARK_KEY, "ARK_BASE_URL": "https://ark.test/api/v3", "OPENROUTER_API_KEY": OPENROUTER_KEY,
           "OPENROUTER_BASE_URL": "https://openrouter.test/api/v1", "GEMINI_API_KEY": GEMINI_KEY,
           "GEMINI_BASE_URL": "https://gemini.test", "GATEWAY_MAX_ATTEMPTS": "1",
           "GATEWAY_STREAM_KEEPALIVE_SECONDS": "5", "GATEWAY_DOWNLOAD_TIMEOUT": "1", "GATEWAY_CONNECT_TIMEOUT": "1",
           "GATEWAY_IDEMPOTENCY_DIR": str(tmp_path_factory.mktemp("idempotency")),
           "GATEWAY_DATA_DIR": str(tmp_path_factory.mktemp("data")),
           "GATEWAY_MAX_BODY_BYTES": str(4 * 1024 * 1024)}
    return create_app(env).test_client()


def check(response, path):
    body = response.get_data()
    text = body.decode("utf-8", "replace")
    for secret in SECRETS:
        assert secret not in text, f"a secret leaked from {path}"
    assert "Traceback" not in text
    if response.mimetype == "text/event-stream":
        assert body.endswith(b"data: [DONE]\n\n")
        return
    assert response.mimetype == "application/json", f"{response.status_code} {response.mimetype}: {text[:200]}"
    payload = json.loads(body)
    if response.status_code >= 400:
        assert set(payload) == {"error"} and set(payload["error"]) == {"message", "type", "param", "code"}
        assert isinstance(payload["error"]["message"], str) and payload["error"]["message"]


def send(client, path, body, head):
    raw = json.dumps(body).encode() if not isinstance(body, bytes) else body
    return client.post(path, data=raw, headers=head)


@settings(max_examples=500, deadline=None, derandomize=False,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                 HealthCheck.data_too_large])
@given(path=st.sampled_from(PATHS), body=bodies, head=headers)
def test_fuzzed_requests_never_get_a_5xx_a_non_json_error_or_a_secret(fuzz_client, path, body, head):
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        healthy_upstreams(rsps)
        response = send(fuzz_client, path, body, head)
        check(response, path)
    assert response.status_code < 500, response.get_data()[:300]


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(path=st.sampled_from(PATHS[:3]), model=st.sampled_from(MODELS[2:10]),
       status=st.sampled_from([400, 401, 403, 404, 429, 500, 502, 503]), stream=st.booleans())
def test_failing_upstreams_that_echo_keys_never_leak_them(fuzz_client, path, model, status, stream):
    if path.endswith("/images/generations"):
        body = {"model": model, "prompt": "a fox", "stream": stream}
    else:
        body = {"model": model, "messages": [{"role": "user", "content": "a fox"}], "modalities": ["image"],
                "stream": stream}
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        leaky_upstreams(rsps, status)
        response = send(fuzz_client, path, body, {"Authorization": f"Bearer {CLIENT_KEY}"})
        check(response, path)
    assert response.status_code != 500


WELL_FORMED_MODELS = ("local-image", "gpt-image-1", "doubao-seedream-4-0-250828", "google/gemini-2.5-flash-image",
                      "gemini-2.5-flash-image")
well_formed_params = st.fixed_dictionaries({}, optional={
    "size": st.sampled_from(["auto", "1024x1024", "1536x1024", "1024x1536"]),
    "quality": st.sampled_from(["auto", "high", "medium", "low"]), "background": st.sampled_from(["auto", "opaque"]),
    "partial_images": st.integers(0, 3), "moderation": st.sampled_from(["low", "auto"])})


@settings(max_examples=120, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(model=st.sampled_from(WELL_FORMED_MODELS), params=well_formed_params, n=st.integers(1, 3),
       stream=st.booleans(), form=st.sampled_from(["modalities", "tool", "both"]),
       prompt=st.text(min_size=1, max_size=80).filter(str.strip))
def test_well_formed_requests_succeed(fuzz_client, model, params, n, stream, form, prompt):
    body = {"model": model, "n": n, "stream": stream, "messages": [{"role": "user", "content": prompt}]}
    if form != "tool":
        body["modalities"] = ["image", "text"]
    if form != "modalities":
        body["tools"] = [{"type": "image_generation", "image_generation": params}]
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        healthy_upstreams(rsps)
        response = send(fuzz_client, "/v1/chat/completions", body, {"Authorization": f"Bearer {CLIENT_KEY}"})
        check(response, "/v1/chat/completions")
    assert response.status_code == 200, response.get_data()[:300]


# ----- structural limits: the answer is exactly what the limits say, whatever the shape -----

LIMITS = {"GATEWAY_MAX_MESSAGES": "6", "GATEWAY_MAX_INPUT_IMAGES": "4", "GATEWAY_MAX_IMAGE_BYTES": "3000",
          "GATEWAY_MAX_TOTAL_IMAGE_BYTES": "7000"}


@pytest.fixture(scope="module")
def limited_client(tmp_path_factory):
    from app import create_app
    return create_app({"GATEWAY_API_KEYS": CLIENT_KEY, "GATEWAY_DATA_DIR": str(tmp_path_factory.mktemp("data")),
                       **LIMITS}).test_client()


def expected_refusal(depth: int, padding: int, turns: list[list[int]]) -> tuple[int, str | None]:
    """The status and error code the limits call for: shape first, then messages, then images in order."""
    from app.request_body import MAX_JSON_DEPTH, MAX_JSON_VALUES
    if depth + 1 > MAX_JSON_DEPTH:
        return 400, "json_too_deep"
    if padding > MAX_JSON_VALUES:
        return 400, "json_too_complex"
    if len(turns) > int(LIMITS["GATEWAY_MAX_MESSAGES"]):
        return 400, "too_many_messages"
    total = 0
    for count, size in enumerate((size for turn in turns for size in turn), start=1):
        if count > int(LIMITS["GATEWAY_MAX_INPUT_IMAGES"]):
            return 400, "too_many_images"
        if size > int(LIMITS["GATEWAY_MAX_IMAGE_BYTES"]):
            return 413, "image_too_large"
        total += size
        if total > int(LIMITS["GATEWAY_MAX_TOTAL_IMAGE_BYTES"]):
            return 413, "images_too_large"
    return 200, None


def image_of(size: int) -> str:
    from tests.support.images import PNG_BYTES
    return "data:image/png;base64," + base64.b64encode(PNG_BYTES + b"\0" * (size - len(PNG_BYTES))).decode()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(depth=st.one_of(st.integers(0, 70), st.just(1000)),
       padding=st.one_of(st.integers(0, 500), st.integers(100_050, 150_000)),
       turns=st.lists(st.lists(st.integers(100, 3500), max_size=3), min_size=1, max_size=8),
       roles=st.lists(st.sampled_from(["user", "assistant"]), min_size=8, max_size=8))
def test_structural_limits_decide_the_answer(limited_client, depth, padding, turns, roles):
    messages = []
    for index, sizes in enumerate(turns):
        role = "user" if index == len(turns) - 1 else roles[index]
        parts = [{"type": "text", "text": f"turn {index}"}] + [
            {"type": "image_url", "image_url": {"url": image_of(size)}} for size in sizes]
        messages.append({"role": role, "content": parts})
    body = {"model": "local-image", "modalities": ["image"], "messages": messages,
            "tools": [{"type": "image_generation", "image_generation": {"size": "16x16"}}],
            "metadata": json.loads("[" * depth + "]" * depth) if depth else None, "padding": [0] * padding}
    response = send(limited_client, "/v1/chat/completions", body, {"Authorization": f"Bearer {CLIENT_KEY}"})
    check(response, "/v1/chat/completions")
    status, code = expected_refusal(depth, padding, turns)
    assert (response.status_code, response.json.get("error", {}).get("code")) == (status, code), response.json
