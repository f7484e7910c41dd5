"""The stream matcher as a PyFlink job (imports PyFlink: run it in ``.venv-flink``).

    python -m payrecon.stream.flink_job --spec SPEC.json          # what payrecon launches
    flink run -py flink_job.py --pyFiles payrecon-flink.zip \\
        --pay kafka://… --receipt kafka://… --sink kafka://…      # on a cluster

Per pipeline::

    pay lines ──> DecodeLines ──> event time + watermarks ─┐            ┌─> matched (main)
                      └─> dead letters (side output)      ├─ key_by ─> MatchOrders
    receipt lines ─> DecodeLines ─> event time + watermarks ┘  order id └─> alerts (side output)

* ``DecodeLines`` uses the local runtime's :class:`~payrecon.stream.events.EventDecoder`;
  undecodable lines go to the ``dead-letters`` side output as JSON lines, ignored actions
  are dropped. The position of a dead letter is the line's ordinal in its task's input
  (the file's line number when one task reads a file, as here with one split per file).
* Watermarks: bounded out-of-orderness per input, with idleness unless it is off. A
  bounded input ends with the +∞ watermark, so every pending timer fires.
* ``MatchOrders`` is a ``KeyedCoProcessFunction`` around the pure
  :class:`~payrecon.core.stream.KeyMatcher`: its snapshot is the ``ValueState``, its
  ``notify_at`` drives one event-time timer (see :mod:`payrecon.stream.flink_state`).
  ``matched`` is the main output, every alert goes to the ``alerts`` side output; the
  sinks get both, as JSON lines identical to the local runtime's (same ``alert_id``).
* Sinks: ``dir:PATH`` (``FileSink``, part files ``outputs-*.jsonl``) and
  ``kafka://BOOTSTRAP/TOPIC`` (the Kafka connector, which PyFlink does not ship: add its
  jar with ``--jar`` locally or to the cluster's ``lib/``).

TypeInformation and output tags are made inside ``open()`` or while building the graph,
never captured by a function (they do not pickle).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pyflink.common import (  # type: ignore[import-not-found]
    Configuration,
    Duration,
    Encoder,
    Types,
    WatermarkStrategy,
)
from pyflink.common.serialization import SimpleStringSchema  # type: ignore[import-not-found]
from pyflink.common.watermark_strategy import TimestampAssigner  # type: ignore[import-not-found]
from pyflink.datastream import (  # type: ignore[import-not-found]
    DataStream,
    OutputTag,
    StreamExecutionEnvironment,
)
from pyflink.datastream.connectors import DeliveryGuarantee  # type: ignore[import-not-found]
from pyflink.datastream.connectors.file_system import (  # type: ignore[import-not-found]
    BucketAssigner,
    FileSink,
    FileSource,
    OutputFileConfig,
    StreamFormat,
)
from pyflink.datastream.connectors.kafka import (  # type: ignore[import-not-found]
    KafkaOffsetResetStrategy,
    KafkaOffsetsInitializer,
    KafkaRecordSerializationSchema,
    KafkaSink,
    KafkaSource,
)
from pyflink.datastream.functions import (  # type: ignore[import-not-found]
    KeyedCoProcessFunction,
    ProcessFunction,
    RuntimeContext,
)
from pyflink.datastream.state import ValueStateDescriptor  # type: ignore[import-not-found]

from payrecon.core.stream import MatcherConfig, Side, StreamEvent
from payrecon.errors import ConfigError, PayreconError
from payrecon.stream.events import DeadLetter, EventDecoder, EventFormat
from payrecon.stream.flink_spec import (
    DirOutput,
    FileInput,
    FlinkJobSpec,
    FlinkPipeline,
    KafkaTopic,
    parse_args,
    parse_sink,
    parse_source,
)
from payrecon.stream.flink_state import KeyStep, dead_letter_json, on_event, on_timer, output_json

ALERTS = "alerts"
DEAD_LETTERS = "dead-letters"
OUTPUT_PREFIX = "outputs"
OUTPUT_SUFFIX = ".jsonl"
KAFKA_HINT = (
    "the Kafka connector is not on Flink's class path: give its jar with --jar"
    " (flink-sql-connector-kafka for this Flink version) or put it in the cluster's lib/"
)

EventRow = tuple[str, int, int | None]  # order id, event time (ms), amount


def _tag(name: str) -> Any:
    return OutputTag(name, Types.STRING())


class DecodeLines(ProcessFunction):  # type: ignore[misc]
    """Lines of one input -> ``(order id, ts ms, amount)``; dead letters to a side output."""

    def __init__(self, side: Side, fmt: EventFormat, source: str) -> None:
        self._side: Side = side
        self._fmt = fmt
        self._source = source

    def open(self, runtime_context: RuntimeContext) -> None:
        self._decoder = EventDecoder(self._side, self._fmt, self._source)
        self._dead = _tag(DEAD_LETTERS)
        self._line = 0

    def process_element(self, value: str, ctx: Any) -> Iterator[Any]:
        self._line += 1
        result = self._decoder.decode(value, self._line)
        if isinstance(result, DeadLetter):
            yield self._dead, dead_letter_json(result)
        elif result is not None:
            yield (result.order_id, result.ts_ms, result.amount)


class EventTime(TimestampAssigner):  # type: ignore[misc]
    """An event's own timestamp is its event time."""

    def extract_timestamp(self, value: EventRow, record_timestamp: int) -> int:
        return value[1]


def order_id(event: EventRow) -> str:
    """The key of an event."""
    return event[0]


class MatchOrders(KeyedCoProcessFunction):  # type: ignore[misc]
    """The pure per-key matcher with its snapshot in ValueState and one event-time timer."""

    def __init__(self, config: MatcherConfig) -> None:
        self._config = config

    def open(self, runtime_context: RuntimeContext) -> None:
        descriptor = ValueStateDescriptor("key-matcher", Types.STRING())
        self._state = runtime_context.get_state(descriptor)
        self._alerts = _tag(ALERTS)

    def process_element1(self, value: EventRow, ctx: Any) -> Iterator[Any]:
        yield from self._event("pay", value, ctx)

    def process_element2(self, value: EventRow, ctx: Any) -> Iterator[Any]:
        yield from self._event("receipt", value, ctx)

    def on_timer(self, timestamp: int, ctx: Any) -> Iterator[Any]:
        yield from self._apply(on_timer(self._state.value(), timestamp, self._config), ctx)

    def _event(self, side: Side, value: EventRow, ctx: Any) -> Iterator[Any]:
        event = StreamEvent(side, value[0], value[1], value[2])
        yield from self._apply(on_event(self._state.value(), event, self._config), ctx)

    def _apply(self, step: KeyStep, ctx: Any) -> Iterator[Any]:
        timers = ctx.timer_service()
        if step.delete_timer is not None:
            timers.delete_event_time_timer(step.delete_timer)
        if step.register_timer is not None:
            timers.register_event_time_timer(step.register_timer)
        if step.state is None:
            self._state.clear()
        else:
            self._state.update(step.state)
        for output in step.outputs:
            text = output_json(output)
            yield text if output.type == "matched" else (self._alerts, text)


# --- building the job -----------------------------------------------------------------


def create_environment(spec: FlinkJobSpec) -> Any:
    """A stream environment configured from the spec (local mini-cluster or a cluster's)."""
    if spec.python_executable:
        # The workers' interpreter finds its own modules (pemja) through PATH.
        bin_dir = str(Path(spec.python_executable).parent)
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    config = Configuration()
    config.set_string("python.execution-mode", spec.execution_mode)
    if spec.python_executable:
        config.set_string("python.executable", spec.python_executable)
    if spec.jars:
        config.set_string("pipeline.jars", ";".join(_jar_url(jar) for jar in spec.jars))
    env = StreamExecutionEnvironment.get_execution_environment(config)
    if spec.parallelism is not None:
        env.set_parallelism(spec.parallelism)
    if spec.checkpoint_interval_ms is not None:
        env.enable_checkpointing(spec.checkpoint_interval_ms)
    if spec.watermark_interval_ms is not None:
        env.get_config().set_auto_watermark_interval(spec.watermark_interval_ms)
    return env


def _jar_url(jar: str) -> str:
    return jar if "://" in jar else Path(jar).resolve().as_uri()


def add_pipeline(env: Any, pipeline: FlinkPipeline, index: int) -> None:
    """Sources, decoding, watermarks, the matcher and the sinks of one pipeline."""
    pay, pay_dead = _events(env, pipeline, "pay", index)
    receipt, receipt_dead = _events(env, pipeline, "receipt", index)
    matched = (
        pay.connect(receipt)
        .key_by(order_id, order_id, key_type=Types.STRING())
        .process(MatchOrders(pipeline.config), Types.STRING())
        .name(f"match-{index}")
    )
    outputs = matched.union(matched.get_side_output(_tag(ALERTS)))
    for spec in pipeline.sinks:
        _sink_to(outputs, spec, pipeline, f"outputs-{index}")
    if pipeline.dead_letters is not None:
        dead = pay_dead.union(receipt_dead)
        _sink_to(dead, pipeline.dead_letters, pipeline, f"dead-letters-{index}")


def _events(env: Any, pipeline: FlinkPipeline, side: Side, index: int) -> tuple[Any, Any]:
    spec = pipeline.pay if side == "pay" else pipeline.receipt
    target = parse_source(spec)
    lines = _source(env, target, pipeline, f"{side}-{index}")
    source_name = target.path if isinstance(target, FileInput) else spec  # as named locally
    decoded = lines.process(
        DecodeLines(side, pipeline.fmt, source_name), Types.PICKLED_BYTE_ARRAY()
    ).name(f"decode-{side}-{index}")
    timed = decoded.assign_timestamps_and_watermarks(_watermarks(pipeline.config))
    return timed, decoded.get_side_output(_tag(DEAD_LETTERS))


def _watermarks(config: MatcherConfig) -> Any:
    strategy = WatermarkStrategy.for_bounded_out_of_orderness(
        Duration.of_millis(config.out_of_orderness_ms)
    )
    if config.idle_timeout_ms is not None:
        strategy = strategy.with_idleness(Duration.of_millis(config.idle_timeout_ms))
    return strategy.with_timestamp_assigner(EventTime())


def _source(
    env: Any, target: FileInput | KafkaTopic, pipeline: FlinkPipeline, name: str
) -> DataStream:
    if isinstance(target, FileInput):
        source = FileSource.for_record_stream_format(
            StreamFormat.text_line_format(), target.path
        ).build()
    else:
        source = _kafka_source(target, pipeline)
    return env.from_source(source, WatermarkStrategy.no_watermarks(), name)


def _kafka_source(topic: KafkaTopic, pipeline: FlinkPipeline) -> Any:
    try:
        builder = (
            KafkaSource.builder()
            .set_bootstrap_servers(topic.bootstrap)
            .set_topics(topic.topic)
            .set_group_id(topic.group)
            .set_starting_offsets(
                KafkaOffsetsInitializer.committed_offsets(KafkaOffsetResetStrategy.EARLIEST)
            )
            .set_value_only_deserializer(SimpleStringSchema())
        )
        for key, value in pipeline.kafka_options.items():
            builder = builder.set_property(key, value)
        return builder.build()
    except TypeError as exc:  # py4j: 'JavaPackage' object is not callable
        raise ConfigError(KAFKA_HINT) from exc


def _sink_to(stream: Any, spec: str, pipeline: FlinkPipeline, name: str) -> None:
    target = parse_sink(spec)
    if isinstance(target, DirOutput):
        stream.sink_to(_file_sink(target)).name(name)
    else:
        stream.sink_to(_kafka_sink(target, pipeline)).name(name)


def _file_sink(target: DirOutput) -> Any:
    names = (
        OutputFileConfig.builder()
        .with_part_prefix(OUTPUT_PREFIX)
        .with_part_suffix(OUTPUT_SUFFIX)
        .build()
    )
    return (
        FileSink.for_row_format(target.path, Encoder.simple_string_encoder())
        .with_bucket_assigner(BucketAssigner.base_path_bucket_assigner())
        .with_output_file_config(names)
        .build()
    )


def _kafka_sink(topic: KafkaTopic, pipeline: FlinkPipeline) -> Any:
    try:
        serializer = (
            KafkaRecordSerializationSchema.builder()
            .set_topic(topic.topic)
            .set_value_serialization_schema(SimpleStringSchema())
            .build()
        )
        builder = (
            KafkaSink.builder()
            .set_bootstrap_servers(topic.bootstrap)
            .set_record_serializer(serializer)
            .set_delivery_guarantee(DeliveryGuarantee.AT_LEAST_ONCE)
        )
        for key, value in pipeline.kafka_options.items():
            builder = builder.set_property(key, value)
        return builder.build()
    except TypeError as exc:
        raise ConfigError(KAFKA_HINT) from exc


def run(spec: FlinkJobSpec) -> dict[str, Any]:
    """Build every pipeline into one job, run it; what happened, as plain data."""
    env = create_environment(spec)
    for index, pipeline in enumerate(spec.pipelines):
        add_pipeline(env, pipeline, index)
    result = env.execute(spec.job_name)
    return {"job": spec.job_name, "net_runtime_ms": result.get_net_runtime()}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: 0 when the job ran, 2 for a bad spec (message on stderr)."""
    try:
        spec = parse_args(sys.argv[1:] if argv is None else argv)
        summary = run(spec)
    except PayreconError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    sys.stdout.write(json.dumps(summary) + "\n")
    return 0


if __name__ == "__main__":
    # Run the imported module, not __main__: the functions are then pickled by reference
    # to payrecon.stream.flink_job, which the workers import (from the venv or --pyFiles).
    from payrecon.stream.flink_job import main as _main

    sys.exit(_main())
