"""Integration fixtures: fake upstreams on 127.0.0.1 and the real service under gunicorn (Procfile)."""
from __future__ import annotations

import pytest

from tests.conftest import CLIENT_KEY, OPENAI_KEY
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess
from tests.support.openai_fake import openai_images

UPSTREAM_TIMEOUT = 3


@pytest.fixture(scope="session")
def openai_server():
    fake = FakeUpstream(default=openai_images).start()
    yield fake
    fake.stop()


@pytest.fixture(scope="session")
def gateway(openai_server, tmp_path_factory):
    env = {
        "GATEWAY_API_KEYS": CLIENT_KEY,
        "OPENAI_API_KEY": OPENAI_KEY,
        "OPENAI_BASE_URL": openai_server.url + "/v1",
        "GATEWAY_UPSTREAM_TIMEOUT": str(UPSTREAM_TIMEOUT),
        "GATEWAY_ALLOW_PRIVATE_URLS": "true",
    }
    process = GatewayProcess(env, tmp_path_factory.mktemp("gunicorn") / "gunicorn.log").start()
    yield process
    process.stop()


@pytest.fixture
def upstream(openai_server):
    """The fake OpenAI server, with nothing queued and nothing recorded."""
    openai_server.reset()
    return openai_server


@pytest.fixture
def headers() -> dict:
    return {"Authorization": f"Bearer {CLIENT_KEY}"}


@pytest.fixture
def sdk(gateway):
    """The official OpenAI SDK pointed at the gateway (no SDK retries: each test sees one attempt)."""
    openai = pytest.importorskip("openai")
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=CLIENT_KEY, max_retries=0, timeout=30) as client:
        yield client
