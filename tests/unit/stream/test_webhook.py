"""The webhook sink against a real local HTTP server (``http.server`` in a thread)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from payrecon.core.stream import StreamOutput
from payrecon.errors import ConfigError, RunError
from payrecon.stream.backoff import Backoff
from payrecon.stream.sinks import output_record
from payrecon.stream.webhook import WebhookSink
from tests.unit.stream.servers import WebhookReceiver

UNMATCHED = StreamOutput("unmatched_pay", "order01", 1606549513000, None, 100, None, "a" * 32)
MATCHED = StreamOutput("matched", "order02", 1606549520000, 1606549522000, None, None, "b" * 32)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as running:
        yield running


def sink_for(url: str, waits: list[float], **kwargs: int) -> WebhookSink:
    return WebhookSink(url, backoff=Backoff(0.01, 2.0, 1.0), sleep=waits.append, **kwargs)


def test_outputs_are_posted_in_order_on_flush(receiver: WebhookReceiver) -> None:
    waits: list[float] = []
    sink = sink_for(receiver.url, waits)
    sink.add(UNMATCHED)
    sink.add(MATCHED)
    assert receiver.received.bodies == []  # buffered until flushed
    sink.flush()
    sink.close()
    assert receiver.received.bodies == [output_record(UNMATCHED), output_record(MATCHED)]
    assert receiver.received.keys == ["a" * 32, "b" * 32]
    assert receiver.received.bodies[0]["pay"]["amount"] == 100  # money stays an integer
    assert waits == []


def test_server_errors_are_retried_with_backoff(receiver: WebhookReceiver) -> None:
    receiver.received.statuses += [503, 429, 500]
    waits: list[float] = []
    sink = sink_for(receiver.url, waits)
    sink.add(UNMATCHED)
    sink.flush()
    sink.close()
    assert receiver.received.bodies == [output_record(UNMATCHED)]
    assert receiver.received.requests == 4
    assert waits == [0.01, 0.02, 0.04]


def test_a_refusal_is_not_retried_and_stops_the_job(receiver: WebhookReceiver) -> None:
    receiver.received.statuses.append(400)
    waits: list[float] = []
    sink = sink_for(receiver.url, waits)
    sink.add(UNMATCHED)
    with pytest.raises(RunError, match="HTTP 400"):
        sink.flush()
    assert receiver.received.requests == 1 and waits == []
    receiver.received.statuses.clear()
    sink.flush()  # the output is still pending: a later flush delivers it
    sink.close()
    assert receiver.received.bodies == [output_record(UNMATCHED)]


def test_gives_up_after_the_last_attempt(receiver: WebhookReceiver) -> None:
    receiver.received.statuses += [503] * 3
    waits: list[float] = []
    sink = sink_for(receiver.url, waits, attempts=3)
    sink.add(MATCHED)
    with pytest.raises(RunError, match=r"after 3 attempt\(s\): HTTP 503"):
        sink.flush()
    sink.close()
    assert receiver.received.bodies == [] and len(waits) == 2


def test_an_unreachable_receiver_is_a_run_error() -> None:
    with WebhookReceiver() as gone:
        url = gone.url
    waits: list[float] = []
    sink = sink_for(url, waits, attempts=2)
    sink.add(MATCHED)
    with pytest.raises(RunError, match="ConnectError"):
        sink.flush()
    sink.close()


def test_a_full_buffer_is_sent_without_waiting_for_flush(receiver: WebhookReceiver) -> None:
    sink = sink_for(receiver.url, [], max_buffered=2)
    sink.add(UNMATCHED)
    assert receiver.received.requests == 0
    sink.add(MATCHED)
    assert receiver.received.requests == 2
    sink.close()


def test_only_http_urls() -> None:
    with pytest.raises(ConfigError, match="http:// or https://"):
        WebhookSink("ftp://example.com/x")
