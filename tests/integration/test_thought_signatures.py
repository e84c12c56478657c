"""The real service under gunicorn keeps Gemini's thought signatures between turns: in process, and in Redis."""
import base64
import itertools
from contextlib import ExitStack

import pytest
import requests

from tests.conftest import CLIENT_KEY
from tests.integration.conftest import running_gateway
from tests.support.gateway_process import GatewayProcess
from tests.support.gemini_fake import lead_signature, picture_signature
from tests.support.redis_server import running_redis

FLASH_31 = "gemini-3.1-flash-image"
PATH = f"/v1beta/models/{FLASH_31}:generateContent"
HEADERS = {"Authorization": f"Bearer {CLIENT_KEY}"}


@pytest.fixture(scope="module")
def one_worker(openai_server, ark_server, openrouter_server, gemini_server, tmp_path_factory):
    """In-process signatures live in each worker: one worker, so both turns meet the same memory."""
    servers = (openai_server, ark_server, openrouter_server, gemini_server)
    with running_gateway(tmp_path_factory.mktemp("signatures") / "gunicorn.log", *servers,
                         WEB_CONCURRENCY="1") as process:
        yield process


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    with running_redis(tmp_path_factory.mktemp("redis")) as redis_server:
        yield redis_server.url


@pytest.fixture
def start_redis_gateway(openai_server, ark_server, openrouter_server, gemini_server, redis_url, tmp_path):
    """Start services (two workers each) sharing signatures through one Redis; all stopped afterwards."""
    servers = (openai_server, ark_server, openrouter_server, gemini_server)
    numbers = itertools.count()
    with ExitStack() as started:
        def start() -> GatewayProcess:
            log = tmp_path / f"gunicorn-{next(numbers)}.log"
            return started.enter_context(running_gateway(log, *servers, WEB_CONCURRENCY="2",
                                                         GATEWAY_REDIS_URL=redis_url,
                                                         GATEWAY_SIGNATURE_TTL_SECONDS="600"))
        yield start


def chat(gateway, messages, **extra) -> dict:
    body = {"model": FLASH_31, "messages": messages, "modalities": ["image", "text"], **extra}
    response = requests.post(gateway.url + "/v1/chat/completions", json=body, headers=HEADERS, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def sent_model_turn(gemini) -> list[dict]:
    (turn,) = [c["parts"] for c in gemini.received(PATH)[-1].json["contents"] if c["role"] == "model"]
    return turn


def assert_signed(parts: list[dict]) -> None:
    png = base64.b64decode(parts[-1]["inlineData"]["data"])
    assert parts[-1]["thoughtSignature"] == picture_signature(png)
    assert parts[0]["thoughtSignature"] == lead_signature(png)


def test_the_answer_sent_back_carries_gemini_s_signatures(one_worker, gemini):
    messages = [{"role": "user", "content": "a lighthouse at dusk"}]
    first = chat(one_worker, messages)
    messages += [first["choices"][0]["message"], {"role": "user", "content": "now make the sky purple"}]
    second = chat(one_worker, messages)
    assert second["choices"][0]["message"]["images"]
    assert_signed(sent_model_turn(gemini))


def test_through_redis_the_signatures_outlive_the_process_that_kept_them(start_redis_gateway, gemini):
    """Kept by one service, given back by another (a restart, or the next instance behind the load balancer)."""
    messages = [{"role": "user", "content": "a lighthouse at dawn"}]
    first_service = start_redis_gateway()
    first = chat(first_service, messages, tools=[{"type": "image_generation", "image_generation": {}}])
    first_service.stop()
    messages += [first["choices"][0]["message"], {"role": "user", "content": "add a boat"}]
    second_service = start_redis_gateway()
    for _ in range(3):
        chat(second_service, messages)
        assert_signed(sent_model_turn(gemini))
