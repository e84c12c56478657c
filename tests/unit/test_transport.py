"""Provider HTTP: no state carried between requests, and Retry-After values that cannot be waited for."""
import pytest
import responses

from app.core.errors import RateLimited, UpstreamError
from app.core.request import ImageRequest
from app.core.settings import ProviderSettings
from app.downloads import Downloader, DownloadPolicy
from app.providers.openai import OpenAIClient
from tests.conftest import OPENAI_BASE, chat_body
from tests.support.fake_upstream import FakeUpstream, Reply
from tests.support.images import PNG_B64
from tests.support.openai_fake import openai_images


@pytest.fixture
def upstream():
    fake = FakeUpstream(openai_images).start()
    yield fake
    fake.stop()


def test_a_cookie_set_by_a_provider_is_never_sent_back(upstream):
    """One client's exchange must not shape another's: a provider's session cookie stays with its answer."""
    upstream.reply("/v1/images/generations", Reply(json={"data": [{"b64_json": PNG_B64}]},
                                                   headers={"Set-Cookie": "tenant=client-a; Path=/"}))
    settings = ProviderSettings(name="openai", api_key="sk-test", base_url=upstream.url + "/v1", timeout=5)
    client = OpenAIClient(settings, Downloader(DownloadPolicy(1 << 20, 5, 2, True)), connect_timeout=2)
    client.generate(ImageRequest("gpt-image-1", "for client A"))
    client.generate(ImageRequest("gpt-image-1", "for client B"))
    first, second = upstream.requests
    assert first.json["prompt"] == "for client A" and second.json["prompt"] == "for client B"
    assert "cookie" not in second.headers, "the second request carried the first one's cookie"


@pytest.mark.parametrize("headers", [{"Retry-After": "inf"}, {"Retry-After": "1e400"}, {"Retry-After": "nan"},
                                     {"retry-after-ms": "nan"}, {"retry-after-ms": "inf", "Retry-After": "-3"}])
def test_an_unusable_retry_after_is_a_429_without_one(post_chat, headers):
    with responses.RequestsMock() as mocked:
        mocked.post(OPENAI_BASE + "/images/generations", status=429, headers=headers,
                    json={"error": {"message": "slow down", "type": "requests"}})
        answer = post_chat(chat_body(model="gpt-image-1"))
        assert len(mocked.calls) == 1
    assert answer.status_code == 429
    assert answer.json["error"]["type"] == "rate_limit_error"
    assert "Retry-After" not in answer.headers


def test_a_huge_retry_after_is_capped_at_a_day(post_chat):
    with responses.RequestsMock() as mocked:
        mocked.post(OPENAI_BASE + "/images/generations", status=429, headers={"Retry-After": "1e300"},
                    json={"error": {"message": "slow down"}})
        answer = post_chat(chat_body(model="gpt-image-1"))
    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "86400"


@pytest.mark.parametrize("headers", [{"Retry-After": "inf"}, {"retry-after-ms": "nan"}, {"Retry-After": "1e400"}])
def test_an_unusable_retry_after_on_a_503_is_a_502_and_is_retried_at_once(make_app, auth, headers):
    """The retry waits its own backoff (0 here), not an endless or invalid Retry-After."""
    client = make_app(GATEWAY_MAX_ATTEMPTS="2", GATEWAY_RETRY_BACKOFF_SECONDS="0").test_client()
    with responses.RequestsMock() as mocked:
        mocked.post(OPENAI_BASE + "/images/generations", status=503, headers=headers,
                    json={"error": {"message": "overloaded"}})
        answer = client.post("/v1/chat/completions", json=chat_body(model="gpt-image-1"), headers=auth)
        assert len(mocked.calls) == 2
    assert answer.status_code == 502
    assert answer.json["error"]["type"] == "upstream_error"


@pytest.mark.parametrize("value", [float("inf"), float("nan"), -1.0])
def test_rate_limited_never_writes_an_unusable_retry_after(value):
    assert "Retry-After" not in RateLimited("slow", retry_after=value).headers


def test_transport_failures_name_the_provider_and_never_requests():
    settings = ProviderSettings(name="openai", api_key="sk-test", base_url="http://127.0.0.1:9/v1", timeout=5)
    client = OpenAIClient(settings, Downloader(DownloadPolicy(1 << 20, 5, 2, True)), connect_timeout=2)
    with pytest.raises(UpstreamError) as caught:
        client.generate(ImageRequest("gpt-image-1", "x"))
    assert caught.value.retriable and "openai" in caught.value.message
    assert "requests" not in caught.value.message.lower()
