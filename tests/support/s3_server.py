"""A throwaway S3-compatible server (moto's server mode) on a free loopback port, for image-store tests."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import requests

from tests.support.gateway_process import free_port
from tests.support.processes import stop_group

START_TIMEOUT = 30.0
START_ATTEMPTS = 3  # the free port can be taken between choosing it and the server binding it
# moto accepts any credentials; these only have to be present for boto3 to sign
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing-access-key", "AWS_SECRET_ACCESS_KEY": "testing-secret-key",
               "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"}


class S3Server:
    """`moto_server` in its own process group; `stop()` ends that group."""

    def __init__(self, log_path: Path):
        self.log_path = log_path
        self.port = 0
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "S3Server":
        program = os.path.join(os.path.dirname(sys.executable), "moto_server")
        for _ in range(START_ATTEMPTS):
            self.port = free_port()
            with open(self.log_path, "ab") as log:
                self.proc = subprocess.Popen([program, "-H", "127.0.0.1", "-p", str(self.port)], stdout=log,
                                             stderr=subprocess.STDOUT, start_new_session=True)
            deadline = time.monotonic() + START_TIMEOUT
            while time.monotonic() < deadline and self.proc.poll() is None:
                try:
                    requests.get(self.url + "/moto-api/", timeout=1)
                    return self
                except requests.RequestException:
                    time.sleep(0.1)
            self.stop()
        raise RuntimeError(f"moto_server did not start:\n{self.log_path.read_text(errors='replace')}")

    def client(self):
        """A boto3 client for setting up buckets and reading what the gateway stored."""
        import boto3
        from botocore.config import Config

        return boto3.session.Session(aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                                     aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
                                     region_name=CREDENTIALS["AWS_REGION"]).client(
            "s3", endpoint_url=self.url, config=Config(s3={"addressing_style": "path"}))

    def stop(self) -> None:
        stop_group(self.proc, timeout=10)
        self.proc = None


@contextmanager
def running_s3(workdir: Path) -> Iterator[S3Server]:
    server = S3Server(workdir / "moto.log").start()
    try:
        yield server
    finally:
        server.stop()
