"""Real local servers for the stream tests: a TCP listener (like ``nc -lk``) and an HTTP
receiver for webhooks, each served from a thread."""

from __future__ import annotations

import json
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

from payrecon.stream.sources import Source, SourceLine

WAIT_S = 10.0  # only a guard against a hung test, never a measured duration


class TcpServer:
    """Listens on 127.0.0.1; the test takes each accepted connection and drives it."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.url = f"tcp://127.0.0.1:{self.port}"
        self._accepted: queue.Queue[socket.socket] = queue.Queue()
        self._open: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return  # closed
            self._open.append(connection)
            self._accepted.put(connection)

    def connection(self) -> socket.socket:
        """The next client that connected (waits for it)."""
        return self._accepted.get(timeout=WAIT_S)

    def connected(self) -> socket.socket | None:
        """The next client that connected, or None if none is waiting."""
        try:
            return self._accepted.get_nowait()
        except queue.Empty:
            return None

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread (Linux)
        self.sock.close()
        for connection in self._open:
            connection.close()
        self._thread.join(WAIT_S)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def poll_until(
    source: Source, done: Callable[[list[SourceLine]], bool], batch: int = 100
) -> list[SourceLine]:
    """Poll ``source`` until ``done(lines so far)``; fails rather than hang."""
    lines: list[SourceLine] = []
    deadline = time.monotonic() + WAIT_S
    while not done(lines):
        assert time.monotonic() < deadline, f"gave up waiting; got {lines}"
        lines += source.poll(batch)
        time.sleep(0.002)
    return lines


@dataclass
class Received:
    """What the webhook receiver got, and the statuses it is told to answer with."""

    bodies: list[dict[str, Any]] = field(default_factory=list)
    keys: list[str | None] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)  # answered in turn; then 200
    requests: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class WebhookReceiver:
    """``http.server`` in a thread: stores each POSTed JSON body it answers with 2xx."""

    def __init__(self) -> None:
        self.received = Received()
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with received.lock:
                    received.requests += 1
                    status = received.statuses.pop(0) if received.statuses else 200
                    if 200 <= status < 300:
                        received.bodies.append(json.loads(body))
                        received.keys.append(self.headers.get("Idempotency-Key"))
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.01,), daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(WAIT_S)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
