"""The client matrix's own installs, made once and kept in tests/clients until their lock file changes.

JavaScript clients: `npm ci` from package-lock.json into tests/clients/node_modules. Python clients
(openai-python, LiteLLM): a virtualenv at tests/clients/.venv from requirements.txt, apart from the
project's: LiteLLM is a ~380 MB tree with its own pins on openai and pydantic, and a client should
run the way its users run it, in its own process and environment. Each install records a digest of
its lock file; a changed lock means a fresh install.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
NODE_MODULES = HERE / "node_modules"
VENV = HERE / ".venv"
STAMP = ".lock-sha256"
INSTALL_TIMEOUT = 900


def _digest(*files: Path) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _current(stamp: Path, digest: str) -> bool:
    return stamp.exists() and stamp.read_text().strip() == digest


def _run(command: list[str], log: Path) -> float:
    """Run an install step; its output goes to `log`, and a failure raises with the log's tail."""
    started = time.monotonic()
    with open(log, "ab") as out:
        done = subprocess.run(command, cwd=HERE, stdout=out, stderr=subprocess.STDOUT, timeout=INSTALL_TIMEOUT,
                              env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"})
    if done.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:]
        raise RuntimeError(f"{' '.join(command[:3])} failed ({done.returncode}):\n{tail}")
    return time.monotonic() - started


def node_clients(npm: str, log: Path) -> float:
    """node_modules as package-lock.json says; returns the seconds spent (0 when it was current)."""
    digest = _digest(HERE / "package.json", HERE / "package-lock.json")
    stamp = NODE_MODULES / STAMP
    if _current(stamp, digest):
        return 0.0
    seconds = _run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], log)
    stamp.write_text(digest)
    return seconds


def python_clients(log: Path) -> tuple[Path, float]:
    """The clients' virtualenv and the seconds spent making it (0 when it was current)."""
    digest = _digest(HERE / "requirements.txt") + sys.version
    stamp = VENV / STAMP
    python = VENV / "bin" / "python"
    if _current(stamp, digest) and python.exists():
        return python, 0.0
    seconds = _run([sys.executable, "-m", "venv", "--clear", str(VENV)], log)
    seconds += _run([str(python), "-m", "pip", "install", "--quiet", "-r", "requirements.txt"], log)
    stamp.write_text(digest)
    return python, seconds
