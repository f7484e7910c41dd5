"""Kafka topics as a source of event lines and as a sink of outputs (confluent-kafka).

Source. One message is one event line. The job reads **every partition** of the topic
itself (``assign``), rather than letting the consumer group share partitions out: a keyed
two-input matcher must see an order's pay and its receipt in the same process, and a
group rebalance that sent them to two instances would turn matches into false alerts.
The group (``group.id``) still holds the committed offsets, so lag tools and a restart
without state see where the job is. Auto-commit is off; offsets are committed only by
:meth:`KafkaSource.commit`, which the runtime calls after a checkpoint (outputs durable,
state saved). Where to start, per partition: the checkpoint's offset, else the group's
committed offset, else ``auto.offset.reset`` (default ``earliest``: skip nothing). The
partitions are listed once at start; restart the job after adding partitions.

Sink. Key = order id, value = the output as JSON (as in the JSON-lines file), header
``alert_id``. The producer is idempotent with ``acks=all``; :meth:`KafkaSink.flush`
returns only when every output so far is acknowledged, and raises otherwise.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from payrecon.core.stream import StreamOutput
from payrecon.errors import ConfigError, RunError, require
from payrecon.stream.sinks import output_record
from payrecon.stream.sources import Position, SourceLine, decoded

_log = logging.getLogger(__name__)
_METADATA_TIMEOUT_S = 10.0
_COMMIT_TIMEOUT_S = 10.0


def _kafka() -> Any:
    require("confluent_kafka", "kafka")
    import confluent_kafka

    return confluent_kafka


def _client(make: Any, config: dict[str, Any]) -> Any:
    """A consumer or producer; settings librdkafka refuses are a configuration error."""
    try:
        return make(config)
    except _kafka().KafkaException as exc:
        raise ConfigError(f"kafka settings refused: {exc}") from exc


class KafkaSource:
    """Lines from every partition of one topic; see the module docstring."""

    resumable = True
    ended = False  # a topic never ends

    def __init__(
        self, bootstrap: str, topic: str, group: str, options: Mapping[str, str] | None = None
    ) -> None:
        self.bootstrap, self.topic, self.group = bootstrap, topic, group
        self.options = dict(options or {})
        self.name = f"kafka:{topic}"
        self.identity = f"kafka:{topic}?group={group}"
        self._consumer: Any = None
        self._next: dict[int, int] = {}

    def open(self, position: Mapping[str, int] | None) -> None:
        """Assign every partition, starting at the checkpoint's or the group's offsets."""
        kafka = _kafka()
        config = {
            "bootstrap.servers": self.bootstrap,
            "group.id": self.group,
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": "earliest",
            "logger": _log,
            **self.options,
        }
        self._consumer = _client(kafka.Consumer, config)
        try:
            partitions = self._partitions(kafka)
            starts = self._consumer.committed(partitions, timeout=_METADATA_TIMEOUT_S)
        except kafka.KafkaException as exc:
            raise RunError(f"kafka topic {self.topic!r} on {self.bootstrap}: {exc}") from exc
        saved = {int(partition): int(offset) for partition, offset in (position or {}).items()}
        for start in starts:
            if start.partition in saved:
                start.offset = saved[start.partition]
            if start.offset >= 0:
                self._next[start.partition] = start.offset
        self._consumer.assign(starts)

    def _partitions(self, kafka: Any) -> list[Any]:
        metadata = self._consumer.list_topics(self.topic, timeout=_METADATA_TIMEOUT_S)
        topic = metadata.topics.get(self.topic)
        if topic is None or topic.error is not None or not topic.partitions:
            reason = topic.error if topic is not None else "no metadata"
            raise ConfigError(f"kafka topic {self.topic!r} on {self.bootstrap}: {reason}")
        return [kafka.TopicPartition(self.topic, number) for number in sorted(topic.partitions)]

    def poll(self, max_lines: int) -> list[SourceLine]:
        """The messages fetched so far, up to ``max_lines``; positions ``partition:offset``."""
        lines: list[SourceLine] = []
        for message in self._consumer.consume(num_messages=max_lines, timeout=0):
            error = message.error()
            if error is not None:
                if error.fatal():
                    raise RunError(f"kafka topic {self.topic!r}: {error}")
                _log.warning("kafka topic %r: %s", self.topic, error)
                continue
            partition, offset = message.partition(), message.offset()
            self._next[partition] = offset + 1
            lines.append(decoded(message.value() or b"", f"{partition}:{offset}"))
        return lines

    def position(self) -> Position | None:
        """The next offset to read, per partition read or committed so far."""
        return {str(partition): offset for partition, offset in sorted(self._next.items())}

    def commit(self, position: Position | None) -> None:
        """Commit the checkpointed offsets to the group (synchronously)."""
        if not position:
            return
        kafka = _kafka()
        offsets = [
            kafka.TopicPartition(self.topic, int(partition), offset)
            for partition, offset in position.items()
        ]
        try:
            self._consumer.commit(offsets=offsets, asynchronous=False)
        except kafka.KafkaException as exc:  # the checkpoint, not the group, is the truth
            _log.warning("kafka topic %r: offsets not committed: %s", self.topic, exc)

    def close(self) -> None:
        """Leave without committing anything more."""
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


class KafkaSink:
    """Outputs to a topic, keyed by order id; see the module docstring."""

    def __init__(
        self,
        bootstrap: str,
        topic: str,
        options: Mapping[str, str] | None = None,
        *,
        flush_timeout_s: float = 30.0,
    ) -> None:
        config = {
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "logger": _log,
            **(options or {}),
        }
        self.topic = topic
        self.flush_timeout_s = flush_timeout_s
        self._producer = _client(_kafka().Producer, config)
        self._failures: list[str] = []

    def add(self, item: StreamOutput) -> None:
        """Queue one output; waits while the producer's queue is full."""
        value = json.dumps(output_record(item), ensure_ascii=False).encode()
        while True:
            try:
                self._producer.produce(
                    self.topic,
                    value=value,
                    key=item.order_id.encode(),
                    headers={"alert_id": item.alert_id},
                    on_delivery=self._delivered,
                )
                break
            except BufferError:
                self._producer.poll(0.1)
        self._producer.poll(0)

    def _delivered(self, error: Any, message: Any) -> None:
        if error is not None:
            self._failures.append(str(error))

    def flush(self) -> None:
        """Return once every output so far is acknowledged; raise when one is not."""
        remaining = self._producer.flush(self.flush_timeout_s)
        failures, self._failures = self._failures, []
        if remaining or failures:
            reason = failures[0] if failures else f"{remaining} still unacknowledged"
            raise RunError(f"kafka topic {self.topic!r}: outputs not delivered: {reason}")

    def close(self) -> None:
        """Give queued outputs a moment; unconfirmed ones are replayed from the checkpoint."""
        self._producer.flush(1.0)
