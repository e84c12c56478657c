"""Stopping what a test started: a whole process group, politely first (servers fork workers)."""
from __future__ import annotations

import os
import signal
import subprocess


def stop_group(proc: subprocess.Popen | None, timeout: float = 15) -> None:
    """SIGTERM the process group of `proc`, then SIGKILL it if it does not exit within `timeout`."""
    if proc is None or proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
