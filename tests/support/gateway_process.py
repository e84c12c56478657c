"""Start the real service the way users do: the Procfile's web command, under gunicorn, on loopback."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.support.processes import stop_group

ROOT = Path(__file__).resolve().parents[2]


def procfile_command() -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith("web:"):
            return line[len("web:"):].strip()
    raise RuntimeError("Procfile has no web: line")


def peak_rss_mb(pid: int) -> float:
    """The highest resident memory a process has had (VmHWM), in MB."""
    return _status_mb(pid, "VmHWM")


def rss_mb(pid: int) -> float:
    """A process's resident memory now (VmRSS), in MB."""
    return _status_mb(pid, "VmRSS")


def _status_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} for {pid}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class GatewayProcess:
    """gunicorn started through the Procfile command; stops (whole process group) on `stop()`."""

    def __init__(self, env: dict[str, str], log_path: Path):
        self.port = free_port()
        self.log_path = log_path
        self.env = {
            "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", "/tmp"),
            "PORT": str(self.port),
            "WEB_CONCURRENCY": "2",
            "PYTHONUNBUFFERED": "1",
            "GATEWAY_DATA_DIR": str(log_path.parent / "var"),  # a database of its own, next to its log
            "GATEWAY_IDEMPOTENCY_DIR": str(log_path.parent / "idempotency"),  # not the shared temp directory
            # the suite runs once per worker class: `GATEWAY_WORKER_CLASS=gthread pytest ...` (README)
            **{name: os.environ[name] for name in ("GATEWAY_WORKER_CLASS",) if name in os.environ},
            **env,
        }
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30) -> "GatewayProcess":
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(["/bin/sh", "-c", "exec " + procfile_command()], cwd=ROOT, env=self.env,
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._log.close()
                raise RuntimeError(f"gunicorn exited early:\n{self.log()}")
            try:
                if requests.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"gunicorn did not become healthy:\n{self.log()}")

    def stop(self) -> None:
        if self.proc is None:
            return
        stop_group(self.proc, timeout=15)
        self._log.close()

    def worker_pids(self) -> list[int]:
        """gunicorn's workers: the children of the master (the Procfile command execs into it)."""
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(pid) for pid in path.read_text().split()] if path.exists() else []

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
