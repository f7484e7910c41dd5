"""Build a stream job from the command line's choices and run it to its end or a stop.

Owns what the job uses: the sinks and the checkpoint store are closed here whatever
happens; the sources are opened and closed by the job (it knows their positions).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from pathlib import Path
from typing import TextIO

from payrecon.core.stream import SIDES, MatcherConfig, Side, StreamOutput
from payrecon.errors import ConfigError
from payrecon.stream.checkpoint import CheckpointStore
from payrecon.stream.events import EventFormat
from payrecon.stream.metrics import MetricsReporter, serve_metrics
from payrecon.stream.runtime import JobOptions, JobResult, StreamJob
from payrecon.stream.sinks import DeadLetterSink, Sink
from payrecon.stream.sources import Source
from payrecon.stream.specs import open_file_sink, open_sink, open_source

_log = logging.getLogger(__name__)


def wall_clock_ms() -> int:
    """Processing time: the wall clock in milliseconds."""
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class StreamRequest:
    """Everything ``payrecon stream`` was asked to do."""

    pay: str
    receipt: str
    config: MatcherConfig = field(default_factory=MatcherConfig)
    fmt: EventFormat = field(default_factory=EventFormat)
    sinks: tuple[str, ...] = ("stdout",)
    dead_letter: Path | None = None
    follow: bool = False
    checkpoint: Path | None = None
    checkpoint_interval_ms: int = 5000
    kafka_options: Mapping[str, str] = field(default_factory=dict)
    timezone: tzinfo = UTC
    # A log line with events/s, pending orders and watermark lag this often (None: never).
    log_every_ms: int | None = 10_000
    # Serve Prometheus metrics on (host, port); None: no endpoint.
    metrics_address: tuple[str, int] | None = None

    def __post_init__(self) -> None:
        if self.pay == "-" and self.receipt == "-":
            raise ConfigError("only one of --pay and --receipt can be read from stdin (-)")
        if self.checkpoint_interval_ms < 0:
            raise ConfigError("the checkpoint interval must not be negative")


def run_stream(
    request: StreamRequest,
    *,
    stdin: TextIO,
    stdout: TextIO,
    stop: Callable[[], bool],
    clock: Callable[[], int] = wall_clock_ms,
    log: Callable[[str], None] | None = None,
) -> JobResult:
    """Open the sinks and the checkpoint, run the job, close everything.

    ``log`` receives the periodic metrics line (default: the module's logger at INFO).
    """
    with ExitStack() as stack:
        every = request.log_every_ms
        reporter = MetricsReporter(
            log=log or _log.info, log_every_s=None if every is None else every / 1000
        )
        if request.metrics_address is not None:
            port, stop_serving = serve_metrics(reporter, *request.metrics_address)
            stack.callback(stop_serving)
            (log or _log.info)(f"stream: metrics on http://{request.metrics_address[0]}:{port}/")
        sources = _sources(request, stdin)
        sinks: list[Sink[StreamOutput]] = []
        for spec in dict.fromkeys(request.sinks):  # each sink once, in the order given
            sinks.append(stack.enter_context(closing(_sink(request, spec, stdout))))
        dead = None
        if request.dead_letter is not None:
            dead = open_file_sink(DeadLetterSink, request.dead_letter)
            stack.callback(dead.close)
        store = None
        if request.checkpoint is not None:
            store = stack.enter_context(closing(CheckpointStore(request.checkpoint)))
        options = JobOptions(checkpoint_interval_s=request.checkpoint_interval_ms / 1000)
        job = StreamJob(
            sources,
            fmt=request.fmt,
            config=request.config,
            sinks=sinks,
            dead_letters=dead,
            clock=clock,
            store=store,
            options=options,
            observer=reporter,
        )
        return job.run(stop)


def _sources(request: StreamRequest, stdin: TextIO) -> dict[Side, Source]:
    specs = {"pay": request.pay, "receipt": request.receipt}
    return {
        side: open_source(
            specs[side], follow=request.follow, kafka_options=request.kafka_options, stdin=stdin
        )
        for side in SIDES
    }


def _sink(request: StreamRequest, spec: str, stdout: TextIO) -> Sink[StreamOutput]:
    return open_sink(spec, kafka_options=request.kafka_options, stdout=stdout, tz=request.timezone)
