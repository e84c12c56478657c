"""System programs some tests need (nginx, chromium, redis-server, wrk).

On a developer machine a missing program skips the test with the reason; in CI (`.ci/run` sets
GATEWAY_REQUIRE_SYSTEM_TESTS=1 after installing them) a missing program fails it instead, so a
broken install can never turn into a silently green run.
"""
from __future__ import annotations

import os
import shutil

import pytest


def require_program(name: str, *candidates: str) -> str:
    for candidate in (name, *candidates):
        path = shutil.which(candidate) or (candidate if os.path.isabs(candidate) and os.path.exists(candidate) else None)
        if path:
            return path
    message = f"{name} is not installed (.ci/run installs it from the distribution's packages)"
    if os.environ.get("GATEWAY_REQUIRE_SYSTEM_TESTS") == "1":
        pytest.fail(message)
    pytest.skip(message)
