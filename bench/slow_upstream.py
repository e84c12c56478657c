#!/usr/bin/env python3
"""A slow fake provider for bench/held.py: every POST waits --delay seconds, then gets one pre-built answer.

    python3 bench/slow_upstream.py --port 9000 --delay 10 --answer answer.json

One asyncio loop holds thousands of connections (HTTP/1.1 keep-alive, one request at a time per
connection); the answer file goes out with sendfile(2), so the fake spends almost no CPU on the
megabytes it sends. `GET /count` answers `{"answered": N, "waiting": M}`: the bench reads it to
measure answers per second over a window, whatever the client, and to wait until a run has drained.
Standard library only.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal

MAX_HEAD = 64 * 1024


class SlowUpstream:
    def __init__(self, delay: float, answer: str):
        self.delay = delay
        self.answer = answer
        self.length = os.path.getsize(answer)
        self.answered = 0
        self.waiting = 0

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if len(head) > MAX_HEAD:
                    break
                request_line, *lines = head.decode("latin-1").split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}
                length = int(headers.get("content-length") or 0)
                if length:
                    await reader.readexactly(length)
                if request_line.startswith("GET /count"):
                    await self._small(writer, json.dumps({"answered": self.answered, "waiting": self.waiting}))
                    continue
                self.waiting += 1
                try:
                    await asyncio.sleep(self.delay)
                finally:
                    self.waiting -= 1
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n" % self.length)
                with open(self.answer, "rb") as file:
                    await asyncio.get_running_loop().sendfile(writer.transport, file)
                self.answered += 1
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    @staticmethod
    async def _small(writer: asyncio.StreamWriter, text: str) -> None:
        body = text.encode()
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                     % (len(body), body))
        await writer.drain()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=10.0, help="seconds before each answer (default 10)")
    parser.add_argument("--answer", required=True, help="file sent as the JSON answer of every POST")
    args = parser.parse_args()
    upstream = SlowUpstream(args.delay, args.answer)
    server = await asyncio.start_server(upstream.serve, "127.0.0.1", args.port, backlog=4096)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
