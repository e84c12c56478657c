"""How many provider answers one worker reads into memory at once: the valve for bursts of arriving pictures.

A held generation costs tens of kilobytes while it waits; its picture costs megabytes once read. When
many generations finish together (a wave of clients that started together, a provider that was slow
for everyone), every waiting request would take its answer into memory at the same moment and then
queue for the CPU to rebuild and send it: 2,000 answers of 1.4 MB took an instance to 1.7 GB. Reading
at most READS_PER_WORKER answers at once leaves the others in the kernel's socket buffers until the
worker is ready for them (bench/held.py: 350 MB at 2,000 in flight). A read of a remote answer takes
well under a second, so the valve costs no throughput.
"""
from __future__ import annotations

import functools
import threading

READS_PER_WORKER = 16


@functools.cache
def slots() -> threading.BoundedSemaphore:
    """Made on first use, in the worker: under gevent, after gunicorn patched `threading` (a semaphore
    made before the patch would block the whole event loop)."""
    return threading.BoundedSemaphore(READS_PER_WORKER)
