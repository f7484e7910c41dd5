"""A TCP client source: read event lines from a server such as ``nc -lk 8888``.

The classic Flink example types events into ``nc -lk 8888``; payrecon connects to it as a
client. Connecting never blocks the runtime (a non-blocking connect, checked on each
poll). Without ``follow`` the source ends when the server closes the connection, and a
server that cannot be reached after ``attempts`` tries is an input error. With ``follow``
it reconnects after every close or failure, with backoff, and never ends.

Not resumable: a server does not resend what it sent before a crash, so those events are
lost to the job unless the sender replays them (use files or Kafka when that matters).
"""

from __future__ import annotations

import errno
import logging
import select
import socket
import time
from collections.abc import Callable, Mapping

from payrecon.errors import InputError
from payrecon.stream.backoff import Backoff
from payrecon.stream.sources import READ_BYTES, ByteStreamSource

_log = logging.getLogger(__name__)
_IN_PROGRESS = {errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EALREADY}


class TcpSource(ByteStreamSource):
    """Lines from ``tcp://host:port``; see the module docstring for ends and reconnects."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        follow: bool = False,
        backoff: Backoff | None = None,
        attempts: int = 5,
        connect_timeout_s: float = 5.0,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(f"tcp://{host}:{port}", f"tcp://{host}:{port}")
        self.host, self.port, self.follow = host, port, follow
        self.backoff = backoff or Backoff()
        self.attempts = attempts
        self.connect_timeout_s = connect_timeout_s
        self.timer = timer
        self._sock: socket.socket | None = None
        self._connected = False
        self._started_at = 0.0
        self._retry_at = 0.0
        self._failures = 0

    def open(self, position: Mapping[str, int] | None) -> None:
        """Start connecting; a position is ignored (not resumable)."""
        self._connect()

    def _read(self) -> bytes | None:
        sock = self._socket()
        if sock is None or not select.select([sock], [], [], 0)[0]:
            return None
        try:
            return sock.recv(READ_BYTES)
        except OSError as exc:
            _log.warning("%s: connection lost: %s", self.name, exc.strerror or exc)
            return b""

    def _on_close(self) -> None:
        self._drop()
        if self.follow:
            _log.warning("%s: server closed the connection; reconnecting", self.name)
            self._retry_at = self.timer() + self.backoff.delay(0)
        else:
            self._closed = True

    def _socket(self) -> socket.socket | None:
        """The connected socket, or None while (re)connecting."""
        if self._connected:
            return self._sock
        if self._sock is None:
            if self.timer() >= self._retry_at:
                self._connect()
            return None
        self._finish_connect(self._sock)
        return self._sock if self._connected else None

    def _connect(self) -> None:
        try:
            family, kind, proto, _, address = socket.getaddrinfo(
                self.host, self.port, type=socket.SOCK_STREAM
            )[0]
            sock = socket.socket(family, kind, proto)
        except OSError as exc:
            self._failed(exc.strerror or str(exc))
            return
        sock.setblocking(False)
        code = sock.connect_ex(address)
        self._sock, self._started_at = sock, self.timer()
        if code == 0:
            self._up()
        elif code not in _IN_PROGRESS:
            self._failed(errno.errorcode.get(code, str(code)))

    def _finish_connect(self, sock: socket.socket) -> None:
        if select.select([], [sock], [], 0)[1]:
            code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if code == 0:
                self._up()
            else:
                self._failed(errno.errorcode.get(code, str(code)))
        elif self.timer() - self._started_at > self.connect_timeout_s:
            self._failed("timed out")

    def _up(self) -> None:
        self._connected, self._failures = True, 0
        _log.info("%s: connected", self.name)

    def _failed(self, reason: str) -> None:
        self._drop()
        self._failures += 1
        if not self.follow and self._failures >= self.attempts:
            raise InputError(f"cannot connect to {self.name}: {reason}")
        delay = self.backoff.delay(self._failures - 1)
        _log.warning("%s: cannot connect (%s); retrying in %.1f s", self.name, reason, delay)
        self._retry_at = self.timer() + delay

    def _drop(self) -> None:
        if self._sock is not None:
            self._sock.close()
        self._sock, self._connected = None, False

    def close(self) -> None:
        """Close the connection."""
        self._drop()
