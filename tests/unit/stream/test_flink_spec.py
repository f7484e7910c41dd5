"""The Flink job's spec: sources, sinks, flags and the JSON both environments exchange."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from payrecon.core.stream import MatcherConfig
from payrecon.errors import ConfigError
from payrecon.stream.events import EventFormat
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


@pytest.mark.parametrize(
    ("spec", "parsed"),
    [
        ("pay.csv", FileInput("pay.csv")),
        ("file:/data/pay.csv", FileInput("/data/pay.csv")),
        ("file:///data/pay.csv", FileInput("file:///data/pay.csv")),
        ("s3://bucket/pay/", FileInput("s3://bucket/pay/")),
        (
            "kafka://b1:9092,b2:9092/orders",
            KafkaTopic("b1:9092,b2:9092", "orders", "payrecon-stream"),
        ),
        ("kafka://b:9092/orders?group=recon", KafkaTopic("b:9092", "orders", "recon")),
    ],
)
def test_sources(spec: str, parsed: object) -> None:
    assert parse_source(spec) == parsed


@pytest.mark.parametrize(
    "spec",
    [
        "-",
        "tcp://127.0.0.1:8888",
        "file:",
        "kafka://b:9092",
        "kafka://b/t?group=",
        "kafka://b/t?x=1",
    ],
)
def test_bad_sources(spec: str) -> None:
    with pytest.raises(ConfigError):
        parse_source(spec)


def test_sinks() -> None:
    assert parse_sink("dir:/tmp/out") == DirOutput("/tmp/out")
    assert parse_sink("kafka://b:9092/alerts") == KafkaTopic("b:9092", "alerts")
    for bad in ("jsonl:x", "dir:", "stdout", "kafka://b:9092/alerts?group=g"):
        with pytest.raises(ConfigError):
            parse_sink(bad)


def test_a_pipeline_needs_a_sink_and_valid_specs() -> None:
    with pytest.raises(ConfigError, match="sink"):
        FlinkPipeline("pay.csv", "receipt.csv", ())
    with pytest.raises(ConfigError):
        FlinkPipeline("pay.csv", "tcp://h:1", ("dir:out",))
    with pytest.raises(ConfigError):
        FlinkPipeline("pay.csv", "receipt.csv", ("dir:out",), dead_letters="stdout")


def test_boundedness_and_kafka_use() -> None:
    files = FlinkPipeline("pay.csv", "receipt.csv", ("dir:out",))
    assert files.bounded and not files.uses_kafka
    out = FlinkPipeline("pay.csv", "receipt.csv", ("kafka://b:1/alerts",))
    assert out.bounded and out.uses_kafka
    live = FlinkPipeline("kafka://b:1/orders", "receipt.csv", ("dir:out",))
    assert not live.bounded and live.uses_kafka


def test_the_spec_survives_json() -> None:
    pipeline = FlinkPipeline(
        "pay.csv",
        "kafka://b:1/notes?group=g",
        ("dir:out", "kafka://b:1/alerts"),
        dead_letters="dir:dead",
        config=MatcherConfig(1, 2, 3, None),
        fmt=EventFormat(amount_field="amt", time_unit="ms", encoding="csv"),
        kafka_options={"security.protocol": "SSL"},
    )
    spec = FlinkJobSpec((pipeline, pipeline), "j", 2, "process", None, ("k.jar",), "/py")
    again = FlinkJobSpec.from_json(json.loads(json.dumps(spec.to_json())))
    assert again == spec


@pytest.mark.parametrize(
    "data", [{}, {"pipelines": []}, {"pipelines": [{"pay": "p"}]}, {"pipelines": [1]}]
)
def test_a_bad_spec_is_a_config_error(data: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        FlinkJobSpec.from_json(data)


def test_flags_make_one_pipeline() -> None:
    spec = parse_args(
        [
            "--pay=kafka://b:9092/orders?group=r",
            "--receipt=kafka://b:9092/notes?group=r",
            "--sink=kafka://b:9092/alerts",
            "--sink=dir:/tmp/x",
            "--dead-letter=dir:/tmp/dead",
            "--receipt-timeout=10s",
            "--pay-timeout=500ms",
            "--out-of-orderness=2s",
            "--idle-timeout=off",
            "--time-unit=ms",
            "--format=csv",
            "--kafka-option=security.protocol=SSL",
            "--parallelism=4",
            "--checkpoint-interval=off",
            "--jar=/opt/kafka.jar",
        ]
    )
    (pipeline,) = spec.pipelines
    assert pipeline.config == MatcherConfig(10_000, 500, 2000, None)
    assert (pipeline.fmt.time_unit, pipeline.fmt.encoding) == ("ms", "csv")
    assert pipeline.sinks == ("kafka://b:9092/alerts", "dir:/tmp/x")
    assert pipeline.kafka_options == {"security.protocol": "SSL"}
    assert (spec.parallelism, spec.checkpoint_interval_ms, spec.jars) == (
        4,
        None,
        ("/opt/kafka.jar",),
    )
    assert spec.execution_mode == "thread"


def test_flags_default_like_payrecon_stream() -> None:
    spec = parse_args(["--pay=p.csv", "--receipt=r.csv", "--sink=dir:o"])
    assert spec.pipelines[0].config == MatcherConfig(5000, 3000, 0, 30_000)
    assert spec.checkpoint_interval_ms == 10_000 and spec.parallelism is None


def test_a_spec_file(tmp_path: Path) -> None:
    spec = FlinkJobSpec((FlinkPipeline("p.csv", "r.csv", ("dir:o",)),), parallelism=1)
    path = tmp_path / "spec.json"
    path.write_text(json.dumps(spec.to_json()))
    assert parse_args(["--spec", str(path)]) == spec
    with pytest.raises(ConfigError, match="cannot read"):
        parse_args(["--spec", str(tmp_path / "missing.json")])


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--pay=p.csv"],
        ["--pay=p.csv", "--receipt=r.csv"],  # no sink
        ["--pay=p.csv", "--receipt=r.csv", "--sink=dir:o", "--receipt-timeout=5"],
        ["--pay=p.csv", "--receipt=r.csv", "--sink=dir:o", "--parallelism=0"],
        ["--pay=p.csv", "--receipt=r.csv", "--sink=dir:o", "--kafka-option=x"],
        ["--pay=p.csv", "--receipt=r.csv", "--sink=dir:o", "--execution-mode=fast"],
        ["--unknown"],
    ],
)
def test_bad_flags_are_config_errors(argv: list[str]) -> None:
    with pytest.raises(ConfigError):
        parse_args(argv)
