"""A real, throwaway redis-server on a free loopback port (no persistence), for Redis-backed tests."""
from __future__ import annotations

import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from tests.support.gateway_process import free_port
from tests.support.system import require_program

START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
START_ATTEMPTS = 3  # the free port can be taken between choosing it and redis binding it


class RedisServer:
    """redis-server bound to 127.0.0.1, saving nothing; `stop()` ends it by its PID."""

    def __init__(self, program: str, workdir: Path):
        self.program = program
        self.workdir = workdir
        self.port = 0
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> "RedisServer":
        for _ in range(START_ATTEMPTS):
            self.port = free_port()
            self.proc = subprocess.Popen(
                [self.program, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                 "--appendonly", "no", "--dir", str(self.workdir)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            deadline = time.monotonic() + START_TIMEOUT
            while time.monotonic() < deadline and self.proc.poll() is None:
                if self.command(b"PING") == b"+PONG":
                    return self
                time.sleep(0.05)
            self.stop()
        raise RuntimeError(f"redis-server did not answer PING on 127.0.0.1 within {START_TIMEOUT:g}s")

    def command(self, *words: bytes) -> bytes | None:
        """Send one inline command; the first line of the reply, or None when nobody answers."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock, sock.makefile("rb") as reply:
                sock.sendall(b" ".join(words) + b"\r\n")
                return reply.readline().rstrip(b"\r\n")
        except OSError:
            return None

    def flush(self) -> None:
        assert self.command(b"FLUSHALL") == b"+OK"

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()  # SIGTERM to this PID only
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=STOP_TIMEOUT)
        self.proc = None


@contextmanager
def running_redis(workdir: Path) -> Iterator[RedisServer]:
    """For fixtures: a started server, stopped afterwards; skipped (dev) or failed (CI) without redis-server."""
    server = RedisServer(require_program("redis-server", "/usr/bin/redis-server"), workdir).start()
    try:
        yield server
    finally:
        server.stop()
