"""Stopping on signals, and reading SOURCE / SINK texts from the command line."""

from __future__ import annotations

import io
import os
import signal
from pathlib import Path
from typing import Any

import pytest

from payrecon.errors import ConfigError
from payrecon.stream.kafka import KafkaSource
from payrecon.stream.signals import stop_on_signals
from payrecon.stream.sinks import JsonLinesSink, StdoutSink
from payrecon.stream.sources import FileSource, LineIterSource
from payrecon.stream.specs import DEFAULT_GROUP, open_sink, open_source
from payrecon.stream.tcp import TcpSource
from payrecon.stream.webhook import WebhookSink

# --- signals --------------------------------------------------------------------------------


def test_first_signal_sets_the_flag_second_interrupts() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with stop_on_signals() as stop:
        assert not stop()
        os.kill(os.getpid(), signal.SIGTERM)
        assert stop() and stop.signal == signal.SIGTERM
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGTERM) is before


# --- sources --------------------------------------------------------------------------------


def source(spec: str, follow: bool = False) -> Any:
    return open_source(spec, follow=follow, kafka_options={"a": "b"}, stdin=io.StringIO(""))


def test_source_forms(tmp_path: Path) -> None:
    assert isinstance(source("-"), LineIterSource)
    plain = source(str(tmp_path / "p.csv"), follow=True)
    assert isinstance(plain, FileSource) and plain.follow
    assert source(f"file:{tmp_path}/p.csv").path == tmp_path / "p.csv"
    assert source(f"file://{tmp_path}/p.csv").path == tmp_path / "p.csv"
    tcp = source("tcp://127.0.0.1:8888", follow=True)
    assert isinstance(tcp, TcpSource) and (tcp.host, tcp.port, tcp.follow) == (
        "127.0.0.1",
        8888,
        True,
    )
    assert source("tcp://[::1]:9999").host == "::1"
    kafka = source("kafka://h1:9092,h2:9092/orders?group=recon")
    assert isinstance(kafka, KafkaSource)
    assert (kafka.bootstrap, kafka.topic, kafka.group) == ("h1:9092,h2:9092", "orders", "recon")
    assert kafka.options == {"a": "b"} and kafka.identity == "kafka:orders?group=recon"
    assert source("kafka://h:1/receipts").group == DEFAULT_GROUP


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("tcp://127.0.0.1", "not tcp://HOST:PORT"),
        ("tcp://host:99999", "not tcp://HOST:PORT"),
        ("tcp://:8888", "not tcp://HOST:PORT"),
        ("tcp://h:1/path", "not tcp://HOST:PORT"),
        ("kafka://h:1", "not kafka://BOOTSTRAP/TOPIC"),
        ("kafka:///topic", "not kafka://BOOTSTRAP/TOPIC"),
        ("kafka://h:1/a/b", "not kafka://BOOTSTRAP/TOPIC"),
        ("kafka://h:1/t?group=a&x=1", "not kafka://BOOTSTRAP/TOPIC"),
        ("kafka://h:1/t?group=", "one non-empty group"),
        ("kafka://h:1/t?group=a&group=b", "one non-empty group"),
        ("http://example.com/events", "unknown source"),
        ("file:", "names no file"),
    ],
)
def test_bad_sources(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        source(spec)


# --- sinks ----------------------------------------------------------------------------------


def sink(spec: str) -> Any:
    return open_sink(spec, kafka_options={}, stdout=io.StringIO(), tz=None)  # type: ignore[arg-type]


def test_sink_forms(tmp_path: Path) -> None:
    assert isinstance(sink("stdout"), StdoutSink)
    jsonl = sink(f"jsonl:{tmp_path}/out.jsonl")
    assert isinstance(jsonl, JsonLinesSink) and jsonl.path == tmp_path / "out.jsonl"
    jsonl.close()
    webhook = sink("webhook:http://127.0.0.1:9/alerts")
    assert isinstance(webhook, WebhookSink) and webhook.url == "http://127.0.0.1:9/alerts"
    webhook.close()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("jsonl:", "needs a file name"),
        ("jsonl:/no/such/folder/out.jsonl", "cannot write"),
        ("webhook:ftp://x", "http:// or https://"),
        ("kafka://h:1/t?group=g", "not kafka://BOOTSTRAP/TOPIC"),
        ("email:x@example.com", "unknown sink"),
    ],
)
def test_bad_sinks(spec: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        sink(spec)
