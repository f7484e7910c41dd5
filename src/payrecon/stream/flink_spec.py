"""What a Flink run of the stream matcher is asked to do: plain data, no PyFlink.

Both environments import this module: the main one writes a :class:`FlinkJobSpec` as JSON
for ``python -m payrecon.stream.flink_job --spec FILE`` (in ``.venv-flink``), and the job
reads it back, or builds the same spec from flags when a cluster runs it with
``flink run -py flink_job.py --pay … --receipt … --sink …``.

SOURCE: ``kafka://BOOTSTRAP/TOPIC?group=G`` (unbounded; needs the Kafka connector jar),
or a file or folder (bounded): ``file:PATH``, a plain path, or any URI of a Flink file
system (``s3://…``, ``hdfs://…``, ``file:///…``).

SINK: ``dir:PATH`` (a folder of JSON-lines part files, written by Flink's ``FileSink``;
on an unbounded job its files are committed at checkpoints) or ``kafka://BOOTSTRAP/TOPIC``.

A spec may hold several independent pipelines: they run as one Flink job, so tests and
benchmarks pay the JVM and mini-cluster start-up once.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, NoReturn, cast
from urllib.parse import parse_qs, urlsplit

from payrecon.core.stream import MatcherConfig
from payrecon.errors import ConfigError
from payrecon.stream.events import EventFormat

ExecutionMode = Literal["thread", "process"]
DEFAULT_CHECKPOINT_MS = 10_000
_DURATION = re.compile(r"([0-9]+)(ms|s|m)")
_MS_PER = {"ms": 1, "s": 1000, "m": 60_000}


@dataclass(frozen=True)
class FileInput:
    """A bounded input: one file or a folder of files (a path or a Flink file-system URI)."""

    path: str


@dataclass(frozen=True)
class DirOutput:
    """A folder that Flink's ``FileSink`` fills with JSON-lines part files."""

    path: str


@dataclass(frozen=True)
class KafkaTopic:
    """A Kafka topic; ``group`` only for a source."""

    bootstrap: str
    topic: str
    group: str | None = None


def parse_source(spec: str) -> FileInput | KafkaTopic:
    """A SOURCE text as an input of the Flink job; stdin and TCP are refused."""
    if spec.startswith("kafka://"):
        return _kafka(spec, source=True)
    if spec == "-" or spec.startswith("tcp://"):
        raise ConfigError(
            f"the Flink runtime reads files or Kafka, not {spec!r}; use the local runtime"
        )
    path = spec if spec.startswith("file://") else spec.removeprefix("file:")
    if not path:
        raise ConfigError(f"source {spec!r} names no file")
    return FileInput(path)


def parse_sink(spec: str) -> DirOutput | KafkaTopic:
    """A SINK text of the Flink job: ``dir:PATH`` or ``kafka://BOOTSTRAP/TOPIC``."""
    if spec.startswith("kafka://"):
        return _kafka(spec, source=False)
    if spec.startswith("dir:") and spec.removeprefix("dir:"):
        return DirOutput(spec.removeprefix("dir:"))
    raise ConfigError(f"unknown Flink sink {spec!r}: use dir:PATH or kafka://BOOTSTRAP/TOPIC")


def _kafka(spec: str, *, source: bool) -> KafkaTopic:
    parts = urlsplit(spec)
    topic = parts.path.removeprefix("/")
    query = parse_qs(parts.query, keep_blank_values=True)
    unknown = set(query) - ({"group"} if source else set())
    groups = query.get("group", ["payrecon-stream"] if source else [])
    if not parts.netloc or not topic or "/" in topic or unknown or len(groups) > 1:
        form = "kafka://BOOTSTRAP/TOPIC" + ("?group=G" if source else "")
        raise ConfigError(f"{spec!r} is not {form}")
    group = groups[0] if groups else None
    if source and not group:
        raise ConfigError(f"{spec!r}: give one non-empty group")
    return KafkaTopic(parts.netloc, topic, group)


def is_bounded(*sources: str) -> bool:
    """True when every SOURCE is a file or folder (they end)."""
    return all(isinstance(parse_source(spec), FileInput) for spec in sources)


@dataclass(frozen=True)
class FlinkPipeline:
    """One pair of inputs through one matcher to its sinks."""

    pay: str
    receipt: str
    sinks: tuple[str, ...]
    dead_letters: str | None = None  # a SINK text for undecodable lines
    config: MatcherConfig = field(default_factory=MatcherConfig)
    fmt: EventFormat = field(default_factory=EventFormat)
    kafka_options: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sinks", tuple(self.sinks))
        if not self.sinks:
            raise ConfigError("the Flink job needs at least one sink (--sink)")
        for spec in (self.pay, self.receipt):
            parse_source(spec)
        for spec in (*self.sinks, *([self.dead_letters] if self.dead_letters else [])):
            parse_sink(spec)

    @property
    def bounded(self) -> bool:
        """True when both inputs are files (the job ends when both are read)."""
        return is_bounded(self.pay, self.receipt)

    @property
    def uses_kafka(self) -> bool:
        """True when an input or a sink is a Kafka topic (the connector jar is needed)."""
        specs = (self.pay, self.receipt, *self.sinks, self.dead_letters or "")
        return any(spec.startswith("kafka://") for spec in specs)

    def to_json(self) -> dict[str, Any]:
        """Plain, JSON-serialisable data."""
        return {
            "pay": self.pay,
            "receipt": self.receipt,
            "sinks": list(self.sinks),
            "dead_letters": self.dead_letters,
            "config": asdict(self.config),
            "fmt": asdict(self.fmt),
            "kafka_options": dict(self.kafka_options),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FlinkPipeline:
        """Rebuild from :meth:`to_json`."""
        return cls(
            pay=str(data["pay"]),
            receipt=str(data["receipt"]),
            sinks=tuple(data["sinks"]),
            dead_letters=data.get("dead_letters"),
            config=MatcherConfig(**data.get("config", {})),
            fmt=EventFormat(**data.get("fmt", {})),
            kafka_options=dict(data.get("kafka_options", {})),
        )


@dataclass(frozen=True)
class FlinkJobSpec:
    """The pipelines of one Flink job and how the job runs."""

    pipelines: tuple[FlinkPipeline, ...]
    job_name: str = "payrecon-stream"
    parallelism: int | None = None  # None: the cluster's default
    execution_mode: ExecutionMode = "thread"
    checkpoint_interval_ms: int | None = DEFAULT_CHECKPOINT_MS
    jars: tuple[str, ...] = ()  # added to pipeline.jars (the Kafka connector, locally)
    python_executable: str | None = None  # python.executable of the Python workers
    watermark_interval_ms: int | None = None  # None: Flink's (200 ms); tests use 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "pipelines", tuple(self.pipelines))
        object.__setattr__(self, "jars", tuple(self.jars))
        if not self.pipelines:
            raise ConfigError("a Flink job needs at least one pipeline")
        if self.parallelism is not None and self.parallelism < 1:
            raise ConfigError("the Flink parallelism must be at least 1")
        if self.execution_mode not in ("thread", "process"):
            raise ConfigError(
                f"execution mode must be thread or process, not {self.execution_mode!r}"
            )
        intervals = (self.checkpoint_interval_ms, self.watermark_interval_ms)
        if any(interval is not None and interval < 1 for interval in intervals):
            raise ConfigError("checkpoint and watermark intervals must be positive (or off)")

    def to_json(self) -> dict[str, Any]:
        """Plain, JSON-serialisable data."""
        return {
            "pipelines": [pipeline.to_json() for pipeline in self.pipelines],
            "job_name": self.job_name,
            "parallelism": self.parallelism,
            "execution_mode": self.execution_mode,
            "checkpoint_interval_ms": self.checkpoint_interval_ms,
            "jars": list(self.jars),
            "python_executable": self.python_executable,
            "watermark_interval_ms": self.watermark_interval_ms,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FlinkJobSpec:
        """Rebuild from :meth:`to_json`."""
        try:
            return cls(
                pipelines=tuple(FlinkPipeline.from_json(p) for p in data["pipelines"]),
                job_name=str(data.get("job_name", "payrecon-stream")),
                parallelism=data.get("parallelism"),
                execution_mode=data.get("execution_mode", "thread"),
                checkpoint_interval_ms=data.get("checkpoint_interval_ms", DEFAULT_CHECKPOINT_MS),
                jars=tuple(data.get("jars", ())),
                python_executable=data.get("python_executable"),
                watermark_interval_ms=data.get("watermark_interval_ms"),
            )
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"not a Flink job spec: {exc!r}") from exc


def duration_ms(text: str, option: str) -> int:
    """``500ms``, ``5s`` or ``2m`` in milliseconds (as ``payrecon stream`` takes them)."""
    found = _DURATION.fullmatch(text.strip())
    if found is None:
        raise ConfigError(f"{option}: {text!r} is not a duration like 500ms, 5s or 2m")
    return int(found.group(1)) * _MS_PER[found.group(2)]


def _optional_ms(text: str, option: str) -> int | None:
    return None if text.strip() == "off" else duration_ms(text, option)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # argparse would exit; ConfigError is exit 2 too
        raise ConfigError(message)


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="flink_job.py",
        description="payrecon's stream matcher as a Flink job (docs/deploy-flink.md).",
    )
    add = parser.add_argument
    add("--spec", type=Path, help="a JSON job spec (several pipelines); no other option then")
    add("--pay", help="pay events: kafka://BOOTSTRAP/TOPIC?group=G, or a file / folder / URI")
    add("--receipt", help="receipt events, as --pay")
    add("--sink", action="append", default=[], help="dir:PATH or kafka://BOOTSTRAP/TOPIC")
    add("--dead-letter", help="where undecodable lines go: dir:PATH or kafka://…")
    add("--receipt-timeout", default="5s", help="how long a pay waits")
    add("--pay-timeout", default="3s", help="how long a receipt waits")
    add("--out-of-orderness", default="0s", help="allowed event-time lag per input")
    add("--idle-timeout", default="30s", help="silence after which an input is idle (or off)")
    add("--time-unit", default="s", choices=("s", "ms"), help="unit of the timestamps")
    add("--format", default="auto", choices=("auto", "json", "csv"), help="event lines")
    add("--kafka-option", action="append", default=[], help="KEY=VALUE for Kafka clients")
    add("--parallelism", type=int, help="job parallelism (default: the cluster's)")
    add("--execution-mode", default="thread", choices=("thread", "process"))
    add("--checkpoint-interval", default="10s", help="Flink checkpoint interval (or off)")
    add("--jar", action="append", default=[], help="a jar for pipeline.jars (repeatable)")
    add("--python-executable", help="python.executable for the Python workers")
    add("--watermark-interval", help="how often watermarks are emitted (default: Flink's)")
    add("--job-name", default="payrecon-stream")
    return parser


def parse_args(argv: Sequence[str]) -> FlinkJobSpec:
    """The job spec from the job's command line (``--spec FILE`` or the flags)."""
    args = _parser().parse_args(list(argv))
    if args.spec is not None:
        try:
            return FlinkJobSpec.from_json(json.loads(args.spec.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the job spec {args.spec}: {exc}") from exc
    if not args.pay or not args.receipt:
        raise ConfigError("give --pay and --receipt (or --spec FILE)")
    pipeline = FlinkPipeline(
        pay=args.pay,
        receipt=args.receipt,
        sinks=tuple(args.sink),
        dead_letters=args.dead_letter,
        config=MatcherConfig(
            receipt_timeout_ms=duration_ms(args.receipt_timeout, "--receipt-timeout"),
            pay_timeout_ms=duration_ms(args.pay_timeout, "--pay-timeout"),
            out_of_orderness_ms=duration_ms(args.out_of_orderness, "--out-of-orderness"),
            idle_timeout_ms=_optional_ms(args.idle_timeout, "--idle-timeout"),
        ),
        fmt=EventFormat(time_unit=args.time_unit, encoding=args.format),
        kafka_options=_pairs(args.kafka_option),
    )
    return FlinkJobSpec(
        pipelines=(pipeline,),
        job_name=args.job_name,
        parallelism=args.parallelism,
        execution_mode=cast(ExecutionMode, args.execution_mode),
        checkpoint_interval_ms=_optional_ms(args.checkpoint_interval, "--checkpoint-interval"),
        jars=tuple(args.jar),
        python_executable=args.python_executable,
        watermark_interval_ms=None
        if args.watermark_interval is None
        else duration_ms(args.watermark_interval, "--watermark-interval"),
    )


def _pairs(texts: Sequence[str]) -> dict[str, str]:
    options: dict[str, str] = {}
    for text in texts:
        key, sep, value = text.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--kafka-option: {text!r} is not KEY=VALUE")
        options[key.strip()] = value.strip()
    return options
