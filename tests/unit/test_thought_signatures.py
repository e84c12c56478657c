"""Gemini thought signatures survive a chat client: kept per picture (and client key), given back on the next turn."""
import base64
import hashlib
import json
import re
from urllib.parse import urlsplit

import pytest
import responses

from app.jsonio import BigText
from app.thought_signatures import (MemoryStore, RedisStore, Signed, digest_b64, from_settings,
                                    picture_key)
from tests.conftest import CLIENT_KEY, GEMINI_BASE
from tests.support.fake_upstream import Recorded
from tests.support.gemini_fake import (SKIP_SIGNATURES, gemini_generate, lead_signature, picture_signature,
                                       unsigned_model_turn)
from tests.support.images import PNG_BYTES, PNG_DATA_URL
from tests.support.redis_server import running_redis

SKIP = "skip_thought_signature_validator"  # Google's documented value (Gemini API FAQ, Vertex AI page)
FLASH_31 = "gemini-3.1-flash-image"
OTHER_KEY = "gw-second-client-key-77aa"


def digest(data: bytes) -> bytes:
    """The reference: SHA-256 of a picture's standard base64 form, which digest_b64 must give."""
    return hashlib.sha256(base64.b64encode(data)).digest()


# ----- the store -----

def test_memory_store_keeps_until_the_ttl_then_forgets():
    now = [1000.0]
    store = MemoryStore(ttl=60, clock=lambda: now[0])
    store.put("a", Signed("sig-a", "lead-a"))
    assert store.get("a") == Signed("sig-a", "lead-a") and store.get("b") is None
    now[0] += 59
    assert store.get("a") is not None
    now[0] += 2
    assert store.get("a") is None and len(store) == 0


def test_memory_store_is_bounded_dropping_the_least_recently_used():
    store = MemoryStore(ttl=60, max_bytes=30)
    store.put("a", Signed("x" * 10))
    store.put("b", Signed("y" * 10))
    store.get("a")                      # a is used again: b is now the oldest
    store.put("c", Signed("z" * 10, "w" * 5))
    assert store.get("b") is None and store.get("a") is not None and store.get("c") is not None
    store.put("huge", Signed("s" * 300_000))  # larger than any signature Gemini sends: not kept
    assert store.get("huge") is None and store.get("a") is not None


def test_pictures_are_keyed_by_their_bytes_and_the_client_key():
    b64 = base64.b64encode(PNG_BYTES).decode()
    assert digest_b64(b64) == digest(PNG_BYTES) == digest_b64(BigText(b64.encode()))
    assert digest(PNG_BYTES) != digest(PNG_BYTES + b"\0")
    key = picture_key("env-1", digest(PNG_BYTES))
    assert key != picture_key("env-2", digest(PNG_BYTES)) and key != picture_key(None, digest(PNG_BYTES))
    assert "env-1" not in key and digest(PNG_BYTES).hex() not in key


def test_a_long_picture_is_digested_in_slices_like_in_one_piece():
    data = bytes(range(256)) * 4000  # ~1 MB: several 256 KB slices of base64
    assert digest_b64(base64.b64encode(data).decode()) == digest(data)
    assert digest_b64(BigText(base64.b64encode(data))) == digest(data)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory):
    with running_redis(tmp_path_factory.mktemp("redis-signatures")) as server:
        yield server


def test_redis_store_shares_signatures_with_a_time_to_live(redis_server):
    import redis
    writer, reader = RedisStore(redis_server.url, ttl=30), RedisStore(redis_server.url, ttl=30)
    writer.put("k1", Signed("sig", "lead"))
    assert reader.get("k1") == Signed("sig", "lead") and reader.get("k2") is None
    ttl = redis.Redis.from_url(redis_server.url).pttl("gateway:thought-signature:k1")
    assert 0 < ttl <= 30_000


def test_redis_down_costs_the_signature_not_the_request(caplog):
    store = RedisStore("redis://:hunter2@127.0.0.1:1/0", ttl=30)
    store.put("k", Signed("sig"))
    assert store.get("k") is None
    assert "hunter2" not in caplog.text and "thought signatures" in caplog.text


def test_the_store_follows_the_settings(make_app):
    assert isinstance(make_app().extensions["gateway"].router.signatures, MemoryStore)
    app = make_app(GATEWAY_REDIS_URL="redis://127.0.0.1:1/0", GATEWAY_SIGNATURE_TTL_SECONDS="120")
    store = app.extensions["gateway"].router.signatures
    assert isinstance(store, RedisStore) and store.ttl == 120
    assert all(c.client.signatures is store for c in app.extensions["gateway"].router.channels.values())


# ----- the fake Gemini is strict -----

def test_the_fake_refuses_model_turns_without_their_signatures():
    png = PNG_BYTES
    picture = {"inlineData": {"mimeType": "image/png", "data": base64.b64encode(png).decode()}}
    turn = [{"role": "user", "parts": [{"text": "a lighthouse"}]}]
    assert unsigned_model_turn(turn + [{"role": "model", "parts": [{"text": "Here."}, picture]}]) == 1
    assert unsigned_model_turn(turn + [{"role": "model", "parts": [
        {"text": "Here.", "thoughtSignature": lead_signature(png)}, {**picture, "thoughtSignature": "forged"}]}]) == 1
    assert unsigned_model_turn(turn + [{"role": "model", "parts": [
        {"text": "Here.", "thoughtSignature": lead_signature(png)},
        {**picture, "thoughtSignature": picture_signature(png)}]}]) is None
    assert SKIP in SKIP_SIGNATURES


# ----- through the API: a first turn, then the answer sent back -----

@pytest.fixture
def gemini():
    """A `responses` mock running the fake Gemini's own handler; `seen` holds what it received."""
    seen = []

    def answer(request):
        recorded = Recorded(request.method, urlsplit(request.url).path, "",
                            {k.lower(): v for k, v in request.headers.items()}, request.body or b"")
        seen.append(recorded)
        reply = gemini_generate(recorded)
        return reply.status, {"Content-Type": "application/json"}, json.dumps(reply.json)

    with responses.RequestsMock() as mock:
        mock.add_callback(responses.POST, re.compile(re.escape(GEMINI_BASE) + r"/v1beta/models/.*"), callback=answer)
        yield seen


@pytest.fixture
def api(make_app):
    client = make_app(GATEWAY_API_KEYS=f"{CLIENT_KEY},{OTHER_KEY}").test_client()

    def post(body, key=CLIENT_KEY, style=None):
        headers = {"Authorization": f"Bearer {key}"}
        if style:
            headers["X-Gateway-Answer-Style"] = style
        response = client.post("/v1/chat/completions", json=body, headers=headers)
        assert response.status_code == 200, response.get_json()
        return response.get_json()
    return post


def first_turn(post, form: str, style: str | None = None, key: str = CLIENT_KEY, model: str = FLASH_31):
    body = {"model": model, "messages": [{"role": "user", "content": "a lighthouse at dusk"}]}
    if form == "tool":
        body["tools"] = [{"type": "image_generation", "image_generation": {}}]
    else:
        body["modalities"] = ["image", "text"]
    answer = post(body, key=key, style=style)
    return body["messages"] + [answer["choices"][0]["message"], {"role": "user", "content": "now make the sky purple"}]


def model_turn(seen) -> list[dict]:
    turns = [c for c in seen[-1].json["contents"] if c["role"] == "model"]
    assert len(turns) == 1
    return turns[0]["parts"]


def png_of(part: dict) -> bytes:
    return base64.b64decode(part["inlineData"]["data"])


@pytest.mark.parametrize("form, style", [("modalities", None), ("tool", None), ("modalities", "openrouter"),
                                         ("tool", "openrouter")])
def test_our_answer_sent_back_carries_the_signatures_gemini_gave_it(gemini, api, form, style):
    messages = first_turn(api, form, style)
    second = api({"model": FLASH_31, "messages": messages, "modalities": ["image", "text"]}, style=style)
    assert second["choices"][0]["message"]["images"]
    parts = model_turn(gemini)
    pictures = [p for p in parts if "inlineData" in p]
    assert len(pictures) == 1  # each picture once, whichever places of the answer hold it
    png = png_of(pictures[0])
    assert pictures[0]["thoughtSignature"] == picture_signature(png)
    assert parts[0]["thoughtSignature"] == lead_signature(png)  # the text before the picture, as Gemini signed it
    assert "thought" not in json.dumps(parts).replace("thoughtSignature", "")  # thoughts are not sent back


def test_a_picture_the_gateway_never_saw_gets_the_value_that_skips_the_check(gemini, api):
    messages = [{"role": "user", "content": "a lighthouse"},
                {"role": "assistant", "content": [{"type": "text", "text": "Here it is."},
                                                  {"type": "image_url", "image_url": {"url": PNG_DATA_URL}}]},
                {"role": "user", "content": "now at night"}]
    api({"model": FLASH_31, "messages": messages, "modalities": ["image", "text"]})
    parts = model_turn(gemini)
    assert [p.get("thoughtSignature") for p in parts] == [SKIP, SKIP]


def test_a_model_turn_of_text_only_gets_the_skip_value_on_its_first_part(gemini, api):
    messages = [{"role": "user", "content": "draw me something"}, {"role": "assistant", "content": "What should it be?"},
                {"role": "user", "content": "a lighthouse"}]
    api({"model": FLASH_31, "messages": messages, "modalities": ["image", "text"]})
    assert model_turn(gemini) == [{"text": "What should it be?", "thoughtSignature": SKIP}]


def test_one_client_key_never_gets_another_keys_signatures(gemini, api):
    messages = first_turn(api, "modalities")
    api({"model": FLASH_31, "messages": messages, "modalities": ["image", "text"]}, key=OTHER_KEY)
    assert [p.get("thoughtSignature") for p in model_turn(gemini)] == [SKIP, SKIP]
    api({"model": FLASH_31, "messages": messages, "modalities": ["image", "text"]})  # the key that made it
    parts = model_turn(gemini)
    assert parts[1]["thoughtSignature"] == picture_signature(png_of(parts[1]))


def test_signatures_are_kept_per_picture_across_turns(gemini, api):
    messages = first_turn(api, "modalities")
    second = api({"model": FLASH_31, "messages": messages, "modalities": ["image", "text"]})
    messages += [second["choices"][0]["message"], {"role": "user", "content": "and add a moon"}]
    api({"model": FLASH_31, "messages": messages, "modalities": ["image", "text"]})
    turns = [c["parts"] for c in gemini[-1].json["contents"] if c["role"] == "model"]
    assert len(turns) == 2
    for parts in turns:
        png = png_of(parts[-1])
        assert (parts[0]["thoughtSignature"], parts[-1]["thoughtSignature"]) == (lead_signature(png),
                                                                                 picture_signature(png))
    assert png_of(turns[0][-1]) != png_of(turns[1][-1])


def test_models_that_do_not_sign_get_no_signatures(gemini, api):
    messages = first_turn(api, "modalities", model="gemini-2.5-flash-image")
    api({"model": "gemini-2.5-flash-image", "messages": messages, "modalities": ["image", "text"]})
    assert all("thoughtSignature" not in part for part in model_turn(gemini))


def test_the_signature_setting_is_read_once(make_app):
    from app.config import Settings
    assert Settings.from_env({}).signature_ttl == 24 * 3600
    assert Settings.from_env({"GATEWAY_SIGNATURE_TTL_SECONDS": "600"}).signature_ttl == 600
    with pytest.raises(ValueError, match="GATEWAY_SIGNATURE_TTL_SECONDS"):
        Settings.from_env({"GATEWAY_SIGNATURE_TTL_SECONDS": "soon"})
    assert isinstance(from_settings(Settings.from_env({})), MemoryStore)
