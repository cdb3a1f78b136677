"""A near-free replay server: ``python -m benchmarks.replay --upstream URL [--latency S]``.

It answers every GET from a cache of pre-rendered responses (status line, headers and body as one
``bytes``), so that serving a page costs about a microsecond per item and the client's own cost is
what a benchmark measures. A request it has not seen yet is fetched once from ``--upstream`` (the
emulator) and kept, keyed by its target, ``Authorization`` and ``Prefer`` (Graph finds the tenant in
the token); links in the body that point at the upstream are rewritten to point here. So the warm-up
run of a benchmark renders every page once, and the timed runs only replay them.

``--latency`` delays every answer (a timer, no task per request), as the emulator's flag does.
It prints ``replay listening on http://127.0.0.1:P`` once bound, and serves until terminated.
HTTP/1.1 with keep-alive, GET only, no request bodies: exactly what the benchmarks send.
"""

from __future__ import annotations

import argparse
import asyncio
import email.utils
import signal
import sys
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

ANNOUNCEMENT = "replay listening on "
_EXECUTOR = ThreadPoolExecutor(max_workers=8)


def _render(status: int, body: bytes, content_type: str) -> bytes:
    reason = {200: "OK", 401: "Unauthorized", 404: "Not Found"}.get(status, "Status")
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n"
        f"Date: {email.utils.formatdate(usegmt=True)}\r\n"
        "\r\n"
    )
    return head.encode("latin-1") + body


class Replay:
    def __init__(self, upstream: str, latency: float) -> None:
        self.upstream = upstream.rstrip("/")
        self.upstream_origin = "/".join(self.upstream.split("/")[:3]).encode()
        self.origin = b""  # set once bound
        self.latency = latency
        self.cache: dict[tuple[bytes, bytes, bytes], bytes] = {}
        self.pending: dict[tuple[bytes, bytes, bytes], asyncio.Future[bytes]] = {}

    def fetch(self, target: bytes, authorization: bytes, prefer: bytes) -> bytes:
        """Ask the upstream once (in a thread) and render what it answered."""
        origin = self.upstream_origin.decode()
        request = urllib.request.Request(origin + target.decode("latin-1"))
        if authorization:
            request.add_header("Authorization", authorization.decode("latin-1"))
        if prefer:
            request.add_header("Prefer", prefer.decode("latin-1"))
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                status, body = response.status, response.read()
                content_type = response.headers.get("Content-Type", "application/json")
        except urllib.error.HTTPError as error:
            status, body = error.code, error.read()
            content_type = error.headers.get("Content-Type", "text/plain")
        return _render(status, body.replace(self.upstream_origin, self.origin), content_type)


class _Protocol(asyncio.Protocol):
    def __init__(self, replay: Replay) -> None:
        self.replay = replay
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
            self.answer(head)

    def answer(self, head: bytes) -> None:
        lines = head.split(b"\r\n")
        target = lines[0].split(b" ")[1]
        authorization = prefer = b""
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            lowered = name.strip().lower()
            if lowered == b"authorization":
                authorization = value.strip()
            elif lowered == b"prefer":
                prefer = value.strip()
        key = (target, authorization, prefer)
        rendered = self.replay.cache.get(key)
        if rendered is not None:
            self.send(rendered)
            return
        # Not seen yet: render it once from the upstream (answers on a connection keep their order,
        # since a client sends its next request on it only after this answer).
        future = self.replay.pending.get(key)
        if future is None:
            future = self.loop.run_in_executor(
                _EXECUTOR, self.replay.fetch, target, authorization, prefer
            )
            self.replay.pending[key] = future

            def keep(done: asyncio.Future[bytes], key: tuple[bytes, bytes, bytes] = key) -> None:
                self.replay.pending.pop(key, None)
                if not done.cancelled() and done.exception() is None:
                    self.replay.cache[key] = done.result()

            future.add_done_callback(keep)
        future.add_done_callback(lambda done: self.send(done.result()))

    def send(self, rendered: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if self.replay.latency > 0:
            self.loop.call_later(self.replay.latency, self._write, rendered)
        else:
            transport.write(rendered)

    def _write(self, rendered: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(rendered)

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None


async def serve(upstream: str, latency: float, port: int) -> None:
    replay = Replay(upstream, latency)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Protocol(replay), "127.0.0.1", port, backlog=1024)
    bound = server.sockets[0].getsockname()[1]
    replay.origin = f"http://127.0.0.1:{bound}".encode()
    print(f"{ANNOUNCEMENT}http://127.0.0.1:{bound}", flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    async with server:
        await stop.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.replay")
    parser.add_argument("--upstream", required=True, help="the emulator's origin, http://host:port")
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    asyncio.run(serve(args.upstream, args.latency, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
