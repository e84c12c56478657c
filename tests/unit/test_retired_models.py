"""Retired models: an upstream's "no such model" about one becomes 404 model_retired; relays may still serve them."""
import pytest
import responses

from app.core.errors import ModelNotFound, ModelRetired, ProviderRejected
from app.core.request import ImageRequest
from app.core.settings import ProviderSettings
from app.downloads import Downloader, DownloadPolicy
from app.providers.registry import PROVIDERS
from app.providers.retired import RETIRED, retirement
from tests.conftest import ARK_BASE, GEMINI_BASE, OPENAI_BASE, OPENROUTER_BASE, chat_body
from tests.support.images import PNG_B64

GENERATIONS = OPENAI_BASE + "/images/generations"
OK = {"created": 1, "data": [{"b64_json": PNG_B64}]}


def client_of(name: str, base: str):
    settings = ProviderSettings(name=name, api_key="test-key", base_url=base, timeout=30)
    return PROVIDERS[name](settings, Downloader(DownloadPolicy(1 << 20, 5, 2, True)), connect_timeout=2)


def openai_missing(model: str) -> dict:
    return {"error": {"message": f"The model `{model}` does not exist or you do not have access to it.",
                      "type": "invalid_request_error", "param": None, "code": "model_not_found"}}


def google_missing(model: str, method: str = "generateContent") -> dict:
    return {"error": {"code": 404, "status": "NOT_FOUND", "message": f"models/{model} is not found for API "
                      f"version v1beta, or is not supported for {method}. Call ListModels to see the list of "
                      "available models and their supported methods."}}


# (provider, base, model, the upstream URL, its status, its body, the date, a successor) for every provider
CASES = [
    ("openai", OPENAI_BASE, "gpt-image-1", GENERATIONS, 404, openai_missing("gpt-image-1"), "2026-10-23",
     "gpt-image-2.6-sunburst"),
    ("openai", OPENAI_BASE, "dall-e-3", GENERATIONS, 404, openai_missing("dall-e-3"), "2026-05-12",
     "gpt-image-2.6-flare"),
    ("openai", OPENAI_BASE, "gpt-image-1.5", GENERATIONS, 400, openai_missing("gpt-image-1.5"), "2026-12-01",
     "gpt-image-2.6-sunburst"),  # model_not_found is the signal, whatever the status
    ("openai", OPENAI_BASE, "chatgpt-image-latest", GENERATIONS, 404, openai_missing("chatgpt-image-latest"),
     "2026-12-01", "gpt-image-2.6-flare"),
    ("gemini", GEMINI_BASE, "gemini-2.5-flash-image",
     f"{GEMINI_BASE}/v1beta/models/gemini-2.5-flash-image:generateContent", 404,
     google_missing("gemini-2.5-flash-image"), "2026-10-02", "gemini-3.1-flash-image"),
    ("gemini", GEMINI_BASE, "imagen-4.0-generate-001", f"{GEMINI_BASE}/v1beta/models/imagen-4.0-generate-001:predict",
     404, google_missing("imagen-4.0-generate-001", "predict"), "2026-08-17", "gemini-3.1-flash-image"),
    ("ark", ARK_BASE, "doubao-seedream-4-5-251128", ARK_BASE + "/images/generations", 404,
     {"error": {"code": "InvalidEndpointOrModel.NotFound", "type": "NotFound", "param": "",
                "message": "The model or endpoint doubao-seedream-4-5-251128 does not exist or you do not have "
                           "access to it. Request id: 0217"}}, "2026-11-24", "doubao-seedream-5-0-pro-260628"),
    ("openrouter", OPENROUTER_BASE, "google/gemini-2.5-flash-image", OPENROUTER_BASE + "/chat/completions", 400,
     {"error": {"message": "google/gemini-2.5-flash-image is not a valid model ID", "code": 400}}, "2026-10-02",
     "google/gemini-3.1-flash-image-preview"),
]


@pytest.mark.parametrize("provider, base, model, url, status, body, date, successor", CASES,
                         ids=[case[2] for case in CASES])
def test_each_providers_not_found_for_a_retired_model_is_model_retired(
        mocked, provider, base, model, url, status, body, date, successor):
    mocked.post(url, status=status, json=body)
    with pytest.raises(ModelRetired) as caught:
        client_of(provider, base).generate(ImageRequest(model, "a lighthouse"))
    error = caught.value
    assert (error.status, error.type, error.code, error.param) == (404, "invalid_request_error", "model_retired",
                                                                    "model")
    assert model in error.message and date in error.message and successor in error.message
    assert error.try_other_routes  # a relay behind another route may still serve it


@pytest.mark.parametrize("provider, base, model, url, status, body", [
    ("openai", OPENAI_BASE, "gpt-image-7", GENERATIONS, 404, openai_missing("gpt-image-7")),
    ("gemini", GEMINI_BASE, "gemini-4-image", f"{GEMINI_BASE}/v1beta/models/gemini-4-image:generateContent", 404,
     google_missing("gemini-4-image")),
    ("ark", ARK_BASE, "doubao-seedream-9-9-991231", ARK_BASE + "/images/generations", 404,
     {"error": {"code": "InvalidEndpointOrModel.NotFound", "type": "NotFound", "message": "no such model"}}),
    ("openrouter", OPENROUTER_BASE, "acme/painter", OPENROUTER_BASE + "/chat/completions", 400,
     {"error": {"message": "acme/painter is not a valid model ID", "code": 400}}),
])
def test_a_model_the_table_does_not_know_stays_model_not_found(mocked, provider, base, model, url, status, body):
    mocked.post(url, status=status, json=body)
    with pytest.raises(ModelNotFound) as caught:
        client_of(provider, base).generate(ImageRequest(model, "a lighthouse"))
    assert not isinstance(caught.value, ModelRetired)
    assert (caught.value.status, caught.value.code, caught.value.param) == (404, "model_not_found", "model")


def test_other_failures_about_a_retired_model_are_left_as_they_are(mocked):
    mocked.post(GENERATIONS, status=400, json={"error": {"message": "Invalid size", "type": "invalid_request_error",
                                                         "param": "size", "code": "invalid_value"}})
    with pytest.raises(ProviderRejected):
        client_of("openai", OPENAI_BASE).generate(ImageRequest("gpt-image-1", "x"))
    # an OpenRouter 404 about routing preferences is not a missing model
    mocked.post(OPENROUTER_BASE + "/chat/completions", status=404,
                json={"error": {"message": "No endpoints found matching your data policy", "code": 404}})
    with pytest.raises(ProviderRejected):
        client_of("openrouter", OPENROUTER_BASE).generate(ImageRequest("google/gemini-2.5-flash-image", "x"))


def test_the_gateway_never_refuses_a_retired_name_itself(mocked):
    """A relay behind OPENAI_BASE_URL that still serves gpt-image-1 gets the request, and its picture comes back."""
    mocked.post(GENERATIONS, json=OK)
    result = client_of("openai", OPENAI_BASE).generate(ImageRequest("gpt-image-1", "a lighthouse",
                                                                    params={"size": "1024x1536"}))
    assert len(result.images) == 1 and len(mocked.calls) == 1


def test_the_api_answers_model_retired_on_both_surfaces(client, auth):
    with responses.RequestsMock() as rsps:
        rsps.post(GENERATIONS, status=404, json=openai_missing("gpt-image-1"))
        rsps.post(GENERATIONS, status=404, json=openai_missing("gpt-image-1"))
        chat = client.post("/v1/chat/completions", json=chat_body(model="gpt-image-1"), headers=auth)
        images = client.post("/v1/images/generations", json={"model": "gpt-image-1", "prompt": "x"}, headers=auth)
    for response in (chat, images):
        assert response.status_code == 404
        error = response.get_json()["error"]
        assert (error["type"], error["code"], error["param"]) == ("invalid_request_error", "model_retired", "model")
        assert "2026-10-23" in error["message"] and "gpt-image-2.6-sunburst" in error["message"]


def relay_config(tmp_path, weight: int = 0) -> str:
    path = tmp_path / "gateway.toml"
    path.write_text(f'[channels.relay]\nprovider = "openai"\nbase_url = "https://relay.test/v1"\n'
                    f'api_key_env = "RELAY_KEY"\nweight = {weight}\n')
    return str(path)


def test_a_relay_that_still_serves_a_retired_model_answers_after_openai_says_it_is_gone(tmp_path, make_app, auth):
    client = make_app(GATEWAY_CONFIG=relay_config(tmp_path), RELAY_KEY="sk-relay-123456").test_client()
    with responses.RequestsMock() as rsps:
        official = rsps.post(GENERATIONS, status=404, json=openai_missing("gpt-image-1"))
        relay = rsps.post("https://relay.test/v1/images/generations", json=OK)
        response = client.post("/v1/chat/completions", json=chat_body(model="gpt-image-1"), headers=auth)
    assert response.status_code == 200 and response.headers["x-gateway-channel"] == "relay"
    assert len(official.calls) == 1 and len(relay.calls) == 1
    assert response.get_json()["choices"][0]["message"]["images"]


def test_when_no_route_serves_it_the_answer_is_model_retired_and_no_channel_cools_down(tmp_path, make_app, auth):
    app = make_app(GATEWAY_CONFIG=relay_config(tmp_path), RELAY_KEY="sk-relay-123456", GATEWAY_COOLDOWN_FAILURES="1")
    client = app.test_client()
    with responses.RequestsMock() as rsps:
        rsps.post(GENERATIONS, status=404, json=openai_missing("gpt-image-1"))
        rsps.post("https://relay.test/v1/images/generations", status=404, json=openai_missing("gpt-image-1"))
        response = client.post("/v1/images/generations", json={"model": "gpt-image-1", "prompt": "x"}, headers=auth)
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "model_retired"
    health = app.extensions["gateway"].health
    assert not health.cooled("openai") and not health.cooled("relay")


def test_the_table_is_well_formed():
    for row in RETIRED:
        assert row.patterns and row.successors and row.vendor and row.source
        assert row.date.startswith("2026-")
        assert all(retirement(successor) is None for successor in row.successors), "a successor is itself retired"
    assert retirement("GPT-Image-1-Mini").date == "2026-12-01"  # names match case-insensitively, most specific first
    assert retirement("gpt-image-1").date == "2026-10-23"
    assert retirement("gpt-image-2") is None and retirement("gpt-image-2.6-flare") is None
