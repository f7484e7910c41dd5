"""Kafka for the stream tests: librdkafka's in-process mock cluster, kept alive for the
session, and ordinary clients against it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import confluent_kafka
import pytest

WAIT_S = 15.0  # only a guard against a hung test, never a measured duration


@pytest.fixture(scope="session")
def kafka() -> Iterator[str]:
    """The bootstrap address of a one-broker mock cluster."""
    cluster = confluent_kafka.Producer({"test.mock.num.brokers": 1})
    brokers = cluster.list_topics(timeout=10).brokers.values()
    yield ",".join(f"{broker.host}:{broker.port}" for broker in brokers)
    cluster.flush(1)


def topic(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def produce(
    bootstrap: str, name: str, messages: Iterable[tuple[str, bytes]], partition: int | None = None
) -> None:
    """Send ``(key, value)`` messages; keys choose the partition unless one is given."""
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap})
    for key, value in messages:
        if partition is None:
            producer.produce(name, key=key.encode(), value=value)
        else:
            producer.produce(name, key=key.encode(), value=value, partition=partition)
    assert producer.flush(WAIT_S) == 0


def create(bootstrap: str, name: str) -> None:
    """Create a topic (the mock cluster makes it with 4 partitions on first metadata)."""
    producer = confluent_kafka.Producer({"bootstrap.servers": bootstrap})
    assert producer.list_topics(name, timeout=WAIT_S).topics[name].error is None


class TopicReader:
    """Reads every partition of a topic from the start, as messages arrive."""

    def __init__(self, bootstrap: str, name: str) -> None:
        self.consumer = confluent_kafka.Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": topic("reader"),
                "enable.auto.commit": False,
            }
        )
        partitions = self.consumer.list_topics(name, timeout=WAIT_S).topics[name].partitions
        self.consumer.assign(
            [confluent_kafka.TopicPartition(name, number, 0) for number in partitions]
        )
        self.messages: list[Any] = []

    def read(self) -> list[Any]:
        """Everything that has arrived so far."""
        for message in self.consumer.consume(num_messages=1000, timeout=0.05):
            assert message.error() is None, message.error()
            self.messages.append(message)
        return self.messages

    def until(self, count: int) -> list[Any]:
        deadline = time.monotonic() + WAIT_S
        while len(self.read()) < count:
            assert time.monotonic() < deadline, f"only {len(self.messages)} of {count} arrived"
        return self.messages

    def close(self) -> None:
        self.consumer.close()


@pytest.fixture
def readers(kafka: str) -> Iterator[Callable[[str], TopicReader]]:
    """Open topic readers for a test; closed after it."""
    opened: list[TopicReader] = []

    def reader(name: str) -> TopicReader:
        opened.append(TopicReader(kafka, name))
        return opened[-1]

    yield reader
    for each in opened:
        each.close()


def committed(bootstrap: str, group: str, name: str) -> dict[int, int]:
    """The group's committed offsets per partition (negative: none)."""
    consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        partitions = consumer.list_topics(name, timeout=WAIT_S).topics[name].partitions
        offsets = consumer.committed(
            [confluent_kafka.TopicPartition(name, number) for number in partitions],
            timeout=WAIT_S,
        )
    finally:
        consumer.close()
    return {offset.partition: offset.offset for offset in offsets}


def ends(bootstrap: str, name: str) -> dict[int, int]:
    """The end offset of each partition."""
    consumer = confluent_kafka.Consumer({"bootstrap.servers": bootstrap, "group.id": "ends"})
    try:
        partitions = consumer.list_topics(name, timeout=WAIT_S).topics[name].partitions
        return {
            number: consumer.get_watermark_offsets(
                confluent_kafka.TopicPartition(name, number), timeout=WAIT_S
            )[1]
            for number in partitions
        }
    finally:
        consumer.close()
