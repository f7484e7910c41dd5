"""Kafka source and sink against librdkafka's mock cluster: events in, alerts out, and
offsets committed only once the outputs they produced are durable."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from payrecon.core.stream import MatcherConfig, StreamOutput
from payrecon.errors import ConfigError, RunError
from payrecon.stream.checkpoint import CheckpointStore
from payrecon.stream.events import DeadLetter, EventFormat
from payrecon.stream.kafka import KafkaSink, KafkaSource
from payrecon.stream.launch import wall_clock_ms
from payrecon.stream.runtime import JobOptions, JobResult, StreamJob, run_bounded
from payrecon.stream.sinks import Sink, output_record
from tests.integration.stream.conftest import (
    WAIT_S,
    TopicReader,
    committed,
    create,
    ends,
    produce,
    topic,
)

NEVER_FIRE = MatcherConfig(out_of_orderness_ms=10**9)  # only matches, whatever the order


def pay(order: str, ts: int) -> tuple[str, bytes]:
    event = {"userId": 1, "action": "pay", "orId": order, "timestamp": ts}
    return order, json.dumps(event).encode()


def receipt(order: str, ts: int) -> tuple[str, bytes]:
    return order, json.dumps({"orId": order, "payChannel": "wechat", "timestamp": ts}).encode()


class ListSink:
    def __init__(self, fail: bool = False) -> None:
        self.items: list[Any] = []
        self.fail = fail

    def add(self, item: Any) -> None:
        self.items.append(item)

    def flush(self) -> None:
        if self.fail:
            raise RunError("the sink is down")

    def close(self) -> None:
        pass


def until(condition: Callable[[], bool]) -> Callable[[], bool]:
    """A stop flag: true once ``condition()`` holds or the guard time is over."""
    deadline = time.monotonic() + WAIT_S
    return lambda: condition() or time.monotonic() > deadline


@pytest.fixture
def checkpoints(tmp_path: Path) -> Iterator[Callable[[], CheckpointStore]]:
    opened: list[CheckpointStore] = []

    def store() -> CheckpointStore:
        for previous in opened:
            previous.close()
        opened.clear()
        opened.append(CheckpointStore(tmp_path / "cp.sqlite"))
        return opened[0]

    yield store
    for remaining in opened:
        remaining.close()


def run_job(
    bootstrap: str,
    topics: tuple[str, str],
    group: str,
    sinks: list[Sink[StreamOutput]],
    stop: Callable[[], bool],
    *,
    store: CheckpointStore | None = None,
    config: MatcherConfig = NEVER_FIRE,
    dead: Sink[DeadLetter] | None = None,
) -> JobResult:
    sources = {
        "pay": KafkaSource(bootstrap, topics[0], group),
        "receipt": KafkaSource(bootstrap, topics[1], group),
    }
    job = StreamJob(
        sources,  # type: ignore[arg-type]
        fmt=EventFormat(),
        config=config,
        sinks=sinks,
        dead_letters=dead,
        clock=wall_clock_ms,
        store=store,
        options=JobOptions(checkpoint_interval_s=0.05),
    )
    return job.run(stop)


def test_events_in_alerts_out_on_a_topic(
    kafka: str,
    checkpoints: Callable[[], CheckpointStore],
    readers: Callable[[str], TopicReader],
) -> None:
    pays = [pay("order01", 1606549513), pay("order02", 1606549520), pay("order03", 1606549530)]
    receipts = [receipt("order02", 1606549522), receipt("order01", 1606549536)]
    receipts.append(receipt("order04", 1606549540))
    end = [pay("zz-end", 1606559999)], [receipt("zz-end", 1606559999)]  # moves event time on
    topics, out = (topic("pay"), topic("receipt")), topic("alerts")
    produce(kafka, topics[0], pays + end[0], partition=0)  # one partition: in order
    produce(kafka, topics[1], receipts + end[1], partition=0)
    expected = ListSink()  # the same events as bounded lines: the reference answer
    lines = (
        [value.decode() for _, value in pays + end[0]],
        [value.decode() for _, value in receipts + end[1]],
    )
    run_bounded(
        *lines,
        fmt=EventFormat(),
        config=MatcherConfig(),
        sinks=[expected],
        dead_letters=None,
        pay_source="p",
        receipt_source="r",
        clock=wall_clock_ms,
    )
    assert {item.type for item in expected.items} == {
        "matched",
        "unmatched_pay",
        "unmatched_receipt",
    }
    create(kafka, out)
    seen = ListSink()
    sink = KafkaSink(kafka, out)
    result = run_job(
        kafka,
        topics,
        "alerts-group",
        [sink, seen],
        until(lambda: len(seen.items) >= len(expected.items)),
        store=checkpoints(),
        config=MatcherConfig(),
    )
    sink.close()
    messages = readers(out).until(len(expected.items))
    assert result.stopped and result.checkpoint is not None
    got = {json.loads(message.value())["alert_id"]: message for message in messages}
    assert set(got) == {item.alert_id for item in expected.items}
    for item in expected.items:
        message = got[item.alert_id]
        assert message.key() == item.order_id.encode()
        assert json.loads(message.value()) == output_record(item)
        assert dict(message.headers()) == {"alert_id": item.alert_id.encode()}


def test_a_restart_with_the_same_checkpoint_and_group_loses_and_skips_nothing(
    kafka: str, checkpoints: Callable[[], CheckpointStore]
) -> None:
    topics, group = (topic("pay"), topic("receipt")), topic("recon")
    orders = [f"o{number:03d}" for number in range(200)]
    produce(kafka, topics[0], [pay(order, 1000 + i) for i, order in enumerate(orders[:100])])
    produce(kafka, topics[1], [receipt(order, 1001 + i) for i, order in enumerate(orders[:50])])

    first_sink = ListSink()
    first = run_job(
        kafka,
        topics,
        group,
        [first_sink],
        until(lambda: len(first_sink.items) >= 50),
        store=checkpoints(),
    )
    assert first.stopped and len(first_sink.items) == 50  # 50 pays still wait
    store = checkpoints()
    saved = store.load()
    assert saved is not None and saved.sequence == first.checkpoint
    assert len(saved.matcher["keys"]) == 50
    for side, name in zip(("pay", "receipt"), topics, strict=True):  # committed = checkpoint
        assert committed(kafka, group, name) == {
            int(partition): offset for partition, offset in saved.positions[side].items()
        }
        assert committed(kafka, group, name) == ends(kafka, name)

    later = orders[50:]
    produce(kafka, topics[0], [pay(order, 1100 + i) for i, order in enumerate(orders[100:])])
    produce(kafka, topics[1], [receipt(order, 1051 + i) for i, order in enumerate(later)])
    second_sink = ListSink()
    second = run_job(
        kafka,
        topics,
        group,
        [second_sink],
        until(lambda: len(second_sink.items) >= 150),
        store=store,
    )
    assert second.resumed_from == first.checkpoint
    got = [item.order_id for item in first_sink.items + second_sink.items]
    assert sorted(got) == orders  # every order matched exactly once: none lost or skipped
    assert {item.type for item in first_sink.items + second_sink.items} == {"matched"}
    assert second.stats.events == {"pay": 200, "receipt": 200}


def test_offsets_are_not_committed_when_the_outputs_are_not_durable(
    kafka: str, checkpoints: Callable[[], CheckpointStore]
) -> None:
    topics, group = (topic("pay"), topic("receipt")), topic("recon")
    produce(kafka, topics[0], [pay("a", 1000)])
    produce(kafka, topics[1], [receipt("a", 1001)])
    broken = ListSink(fail=True)
    store = checkpoints()
    with pytest.raises(RunError, match="the sink is down"):
        run_job(kafka, topics, group, [broken], until(lambda: False), store=store)
    assert store.load() is None  # the events were read, but nothing was made durable
    for name in topics:
        assert all(offset < 0 for offset in committed(kafka, group, name).values())


def test_undecodable_messages_become_dead_letters(kafka: str) -> None:
    topics = (topic("pay"), topic("receipt"))
    produce(kafka, topics[0], [("k", b"\xff\xfe"), ("k", b"{not json")], partition=2)
    create(kafka, topics[1])
    dead = ListSink()
    run_job(kafka, topics, topic("g"), [], until(lambda: len(dead.items) >= 2), dead=dead)
    letters = sorted(dead.items, key=lambda letter: letter.position)
    assert [(letter.source, letter.position) for letter in letters] == [
        (f"kafka:{topics[0]}", "2:0"),
        (f"kafka:{topics[0]}", "2:1"),
    ]
    assert letters[0].reason.startswith("not UTF-8 text")
    assert letters[1].reason.startswith("bad JSON")


def test_a_missing_topic_is_a_config_error(kafka: str) -> None:
    source = KafkaSource(kafka, topic("missing"), "g")
    with pytest.raises(ConfigError, match="kafka topic"):
        source.open(None)
    source.close()


def test_the_sink_raises_when_outputs_are_not_acknowledged() -> None:
    sink = KafkaSink("127.0.0.1:1", "alerts", {"message.timeout.ms": "300"})
    sink.add(StreamOutput("matched", "a", 1, 2, None, None, "d" * 32))
    with pytest.raises(RunError, match="outputs not delivered"):
        sink.flush()
    sink.close()


def test_settings_librdkafka_refuses_are_config_errors(kafka: str) -> None:
    with pytest.raises(ConfigError, match="kafka settings refused"):
        KafkaSink(kafka, "alerts", {"no.such.setting": "1"})
    with pytest.raises(ConfigError, match="kafka settings refused"):
        KafkaSource(kafka, "orders", "g", {"no.such.setting": "1"}).open(None)
