"""The real-client matrix: the service under gunicorn (Procfile), real client libraries in their own processes.

One gateway serves every client: the local provider (`local-image`), plus the fake Gemini upstream
on 127.0.0.1 for a provider whose usage carries token details. Each client script runs once per
session and reports every case as JSON; the tests check the pictures it got.
"""
from __future__ import annotations

import base64
import json
import os
import struct
import subprocess
import zlib

import pytest

from tests.clients import installs
from tests.conftest import CLIENT_KEY, GEMINI_KEY
from tests.support.fake_upstream import FakeUpstream
from tests.support.gateway_process import GatewayProcess
from tests.support.gemini_fake import gemini_generate
from tests.support.system import require_program

SCRIPT_TIMEOUT = 300


@pytest.fixture(scope="session")
def client_gateway(tmp_path_factory):
    gemini = FakeUpstream(default=gemini_generate).start()
    env = {"GATEWAY_API_KEYS": CLIENT_KEY, "GEMINI_API_KEY": GEMINI_KEY, "GEMINI_BASE_URL": gemini.url,
           "GATEWAY_STREAM_KEEPALIVE_SECONDS": "0.5", "GATEWAY_UPSTREAM_TIMEOUT": "10"}
    process = GatewayProcess(env, tmp_path_factory.mktemp("clients-gunicorn") / "gunicorn.log").start()
    yield process
    process.stop()
    gemini.stop()


@pytest.fixture(scope="session")
def install_log(tmp_path_factory):
    return tmp_path_factory.mktemp("client-installs") / "install.log"


@pytest.fixture(scope="session")
def node(install_log) -> str:
    """The distribution's node, with the pinned packages installed (npm ci) next to the scripts."""
    executable = require_program("node", "nodejs")
    installs.node_clients(require_program("npm"), install_log)
    return executable


@pytest.fixture(scope="session")
def client_python(install_log):
    """Python of the clients' own virtualenv (openai-python and LiteLLM, pinned)."""
    python, _ = installs.python_clients(install_log)
    return python


@pytest.fixture(scope="module")
def report(request, client_gateway) -> dict:
    """What the test module's client script (its SCRIPT) got, case by case: run once per module."""
    script = request.module.SCRIPT
    interpreter = request.getfixturevalue("node" if script.endswith(".mjs") else "client_python")
    return run_script([str(interpreter), script, client_gateway.url + "/v1", CLIENT_KEY])


def run_script(command: list[str], timeout: float = SCRIPT_TIMEOUT) -> dict:
    """Run a client script; it prints one JSON object whose `cases` map a case name to what it got."""
    # a plain environment: nothing of the developer's (proxies, API keys) reaches the clients; LiteLLM
    # is told not to fetch its price list from the internet at import
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"),
           "LITELLM_LOCAL_MODEL_COST_MAP": "True", "NO_COLOR": "1"}
    done = subprocess.run(command, cwd=installs.HERE, capture_output=True, timeout=timeout, env=env)
    assert done.returncode == 0, f"{command[1]} failed:\n{done.stderr.decode(errors='replace')[-4000:]}"
    return json.loads(done.stdout)["cases"]


def pictures_of(case: dict) -> list[tuple[int, tuple[int, int]]]:
    """(choice, (width, height)) of each picture a case got; each must be a data URL of a whole PNG."""
    assert "error" not in case, case["error"]
    found = []
    for picture in case["pictures"]:
        header, _, b64 = picture["data_url"].partition(",")
        assert header == "data:image/png;base64", header
        found.append((picture["choice"], decode_png(base64.b64decode(b64, validate=True))))
    return sorted(found)


CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # PNG colour type -> samples per pixel


def decode_png(data: bytes) -> tuple[int, int]:
    """Decode a PNG the long way (every chunk's CRC, the pixel data inflated to its exact length) and
    return its size: a picture that merely starts like a PNG does not pass."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    offset, chunks = 8, []
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset:offset + 4])
        kind, body = data[offset + 4:offset + 8], data[offset + 8:offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length:offset + 12 + length])
        assert zlib.crc32(kind + body) == crc, f"bad CRC in {kind!r}"
        chunks.append((kind, body))
        offset += 12 + length
    assert chunks[0][0] == b"IHDR" and chunks[-1][0] == b"IEND"
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert interlace == 0 and depth == 8
    pixels = zlib.decompress(b"".join(body for kind, body in chunks if kind == b"IDAT"))
    assert len(pixels) == height * (1 + width * CHANNELS[colour])
    return width, height


BIG = (1024, 1024)    # the local provider's default size (modalities form: no size asked)
SMALL = (64, 64)      # asked through the tool or the Images API


def each(size: tuple[int, int], n: int = 1) -> list[tuple[int, tuple[int, int]]]:
    """n pictures of one size, one per choice."""
    return [(index, size) for index in range(n)]


def known_failure(case: str, *values, reason: str):
    """A case the client itself cannot pass in that style (strict: the day it passes, the test says so)."""
    return pytest.param(case, *values, marks=pytest.mark.xfail(strict=True, reason=reason), id=case)
