"""``payrecon stream`` as a process reading TCP servers, as in the ``nc -lk 8888`` example."""

from __future__ import annotations

import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.stream.conftest import WAIT_S
from tests.unit.stream.servers import TcpServer

PAY_513 = b'{"userId": 1, "action": "pay", "orId": "order01", "timestamp": 1606549513}\n'
PAY_520 = b"2,pay,order02,1606549520\n"
RECEIPT_522 = b"order02,wechat,1606549522\n"
RECEIPT_536 = b'{"orId": "order01", "payChannel": "wechat", "timestamp": 1606549536}\n'
MATCHED = "matched> order02 pay 2020-11-28 15:45:20 receipt 2020-11-28 15:45:22"


class Job:
    """A ``payrecon stream`` process whose stdout lines are read as they come."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "payrecon", "stream", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def line(self) -> str:
        return self.lines.get(timeout=WAIT_S)

    def finish(self) -> tuple[int, list[str], str]:
        code = self.process.wait(WAIT_S)
        self._reader.join(WAIT_S)
        assert self.process.stderr is not None
        rest = []
        while not self.lines.empty():
            rest.append(self.lines.get())
        return code, rest, self.process.stderr.read()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(WAIT_S)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def servers() -> Iterator[tuple[TcpServer, TcpServer]]:
    with TcpServer() as pay, TcpServer() as receipt:
        yield pay, receipt


def test_two_servers_until_they_close(servers: tuple[TcpServer, TcpServer]) -> None:
    pay, receipt = servers
    job = Job("--pay", pay.url, "--receipt", receipt.url)
    try:
        to_pay, to_receipt = pay.connection(), receipt.connection()
        to_pay.sendall(PAY_513 + PAY_520)
        to_receipt.sendall(RECEIPT_522 + RECEIPT_536)
        to_pay.close()
        to_receipt.close()
        code, lines, err = job.finish()
    finally:
        job.kill()
    assert code == 1, err
    assert sorted(lines) == sorted(
        [
            MATCHED,
            "unmatched_pay> order01 pay 2020-11-28 15:45:13",
            "unmatched_receipt> order01 receipt 2020-11-28 15:45:36",
        ]
    )
    assert "2 pay and 2 receipt events" in err


def test_follow_reconnects_and_sigterm_stops_cleanly(
    servers: tuple[TcpServer, TcpServer],
) -> None:
    pay, receipt = servers
    job = Job("--pay", pay.url, "--receipt", receipt.url, "--follow")
    try:
        to_pay, to_receipt = pay.connection(), receipt.connection()
        to_pay.sendall(PAY_520)
        to_receipt.sendall(RECEIPT_522)
        assert job.line() == MATCHED  # flushed while the job waits for more
        to_pay.close()  # like restarting nc: the job connects again
        pay.connection().sendall(b"3,pay,order03,1606549530\n")
        to_receipt.sendall(b"order03,alipay,1606549531\n")
        assert job.line().startswith("matched> order03")
        job.process.send_signal(signal.SIGTERM)
        code, lines, err = job.finish()
    finally:
        job.kill()
    assert code == 130
    assert lines == []
    assert "stopped by SIGTERM; sinks flushed" in err
    assert "no outputs were written" not in err  # they were: flushed before the exit
    assert "2 pay and 2 receipt events" in err


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_metrics_endpoint_and_log_line_while_following(tmp_path: Path) -> None:
    pay, receipt = tmp_path / "pay.csv", tmp_path / "receipt.csv"
    pay.write_text("2,pay,order02,1606549520\n3,pay,order03,1606549530\n", encoding="utf-8")
    receipt.write_text("order02,wechat,1606549522\n", encoding="utf-8")
    port = _free_port()
    job = Job(
        *("--pay", str(pay), "--receipt", str(receipt), "--follow"),
        *("--metrics-port", str(port), "--log-every", "1s"),
    )
    try:
        assert job.line().startswith("matched> order02")
        deadline = time.monotonic() + WAIT_S
        text = ""
        while "payrecon_stream_pending_orders 1.0" not in text:
            assert time.monotonic() < deadline, text
            try:
                text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
            except httpx.TransportError:
                time.sleep(0.1)
        time.sleep(1.5)  # a log line falls due every second
        job.process.send_signal(signal.SIGTERM)
        code, _, err = job.finish()
    finally:
        job.kill()
    assert 'payrecon_stream_events_total{side="pay"} 2.0' in text
    assert 'payrecon_stream_outputs_total{type="matched"} 1.0' in text
    assert code == 130
    assert f"stream: metrics on http://127.0.0.1:{port}/" in err
    assert "1 pending orders, watermark lag" in err
