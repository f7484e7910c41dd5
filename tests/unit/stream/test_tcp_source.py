"""The TCP client source against a real listening socket (the ``nc -lk 8888`` setup)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from payrecon.errors import InputError
from payrecon.stream.backoff import Backoff
from payrecon.stream.sources import SourceLine
from payrecon.stream.tcp import TcpSource
from tests.unit.stream.servers import TcpServer, poll_until

FAST = Backoff(0.005, 2.0, 0.02)


@pytest.fixture
def server() -> Iterator[TcpServer]:
    with TcpServer() as listening:
        yield listening


def source_for(server: TcpServer, *, follow: bool = False) -> TcpSource:
    source = TcpSource("127.0.0.1", server.port, follow=follow, backoff=FAST)
    source.open(None)
    return source


def test_lines_until_the_server_closes(server: TcpServer) -> None:
    source = source_for(server)
    try:
        assert source.poll(10) == []  # connecting does not block
        connection = server.connection()
        connection.sendall(b"1,pay,order01,1606549513\n1,pay,order02,16065")
        got = poll_until(source, lambda lines: len(lines) >= 1)
        assert got == [SourceLine("1,pay,order01,1606549513", 1)]
        assert not source.ended
        connection.sendall(b"49520\nlast")
        connection.close()
        got = poll_until(source, lambda _: source.ended)
        assert got == [SourceLine("1,pay,order02,1606549520", 2), SourceLine("last", 3)]
    finally:
        source.close()
    assert source.name == server.url and not source.resumable and source.position() is None


def test_follow_reconnects_after_the_server_closes(server: TcpServer) -> None:
    source = source_for(server, follow=True)
    try:
        first = server.connection()
        first.sendall(b"a\n")
        first.close()
        got = poll_until(source, lambda lines: len(lines) >= 1)
        reconnected: list[socket.socket] = []

        def came_back(_: list[SourceLine]) -> bool:  # the source reconnects while polled
            connection = server.connected()
            if connection is not None:
                reconnected.append(connection)
            return bool(reconnected)

        poll_until(source, came_back)
        reconnected[0].sendall(b"b\n")
        got += poll_until(source, lambda lines: len(lines) >= 1)
        assert [line.text for line in got] == ["a", "b"]
        assert [line.position for line in got] == [1, 2]
        assert not source.ended
    finally:
        source.close()


def test_bytes_that_are_not_utf8_become_a_dead_letter_line(server: TcpServer) -> None:
    source = source_for(server)
    try:
        connection = server.connection()
        connection.sendall(b"\xff\xfe\nok\n")
        connection.close()
        got = poll_until(source, lambda _: source.ended)
    finally:
        source.close()
    assert got[0].error is not None and got[0].error.startswith("not UTF-8 text")
    assert got[1] == SourceLine("ok", 2)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port  # nothing listens there now


def test_a_server_that_never_answers_is_an_input_error_without_follow() -> None:
    source = TcpSource("127.0.0.1", free_port(), backoff=FAST, attempts=3)
    source.open(None)
    with pytest.raises(InputError, match=r"cannot connect to tcp://127\.0\.0\.1"):
        poll_until(source, lambda _: False)
    source.close()


def test_follow_keeps_trying_until_the_server_is_up() -> None:
    port = free_port()
    source = TcpSource("127.0.0.1", port, follow=True, backoff=FAST, attempts=1)
    source.open(None)
    try:
        for _ in range(20):  # many failed attempts: no error while following
            assert source.poll(10) == []
        with socket.create_server(("127.0.0.1", port)) as late_server:
            late_server.settimeout(0.005)

            def accepted(lines: list[SourceLine]) -> bool:
                try:
                    connection, _ = late_server.accept()
                except TimeoutError:
                    return False
                with connection:
                    connection.sendall(b"hello\n")
                return True

            poll_until(source, accepted)
            got = poll_until(source, lambda lines: len(lines) >= 1)
        assert got == [SourceLine("hello", 1)]
    finally:
        source.close()
