"""Live metrics of a stream job: a periodic log line and a Prometheus endpoint.

The job calls a :class:`MetricsReporter` after every round of its loop and once at the
end. The reporter samples the job at most every ``sample_every_s`` (cheap: a few counters
and the matcher's watermark) and keeps the latest :class:`Sample`; every ``log_every_s``
it writes one line such as::

    stream: 41,203 events/s, 1,187 pending orders, watermark lag 1.2s, 0 late, 0 dead letters

The Prometheus endpoint (``--metrics-port``) serves the latest sample from its own
registry, so nothing is global and two jobs in one process would not collide:

* ``payrecon_stream_events_total{side}``, ``payrecon_stream_outputs_total{type}``,
  ``payrecon_stream_late_events_total``, ``payrecon_stream_dead_letters_total`` (counters);
* ``payrecon_stream_events_per_second`` (over the last sampling interval),
  ``payrecon_stream_pending_orders`` and ``payrecon_stream_watermark_lag_seconds``
  (processing time minus the effective watermark; absent before the first watermark and
  after both inputs ended) (gauges).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from payrecon.core.stream import END_OF_TIME, NO_WATERMARK

if TYPE_CHECKING:
    from payrecon.stream.runtime import StreamJob


@dataclass(frozen=True)
class Sample:
    """The job's counters at one moment (``at_s`` monotonic, ``now_ms`` processing time)."""

    at_s: float
    now_ms: int
    events: Mapping[str, int]
    outputs: Mapping[str, int]
    pending_orders: int
    watermark_ms: int
    late_events: int
    dead_letters: int
    events_per_s: float = 0.0

    @property
    def events_total(self) -> int:
        """Decoded events of both sides."""
        return sum(self.events.values())

    @property
    def watermark_lag_ms(self) -> int | None:
        """Processing time minus the watermark; None without a finite watermark."""
        if self.watermark_ms in (NO_WATERMARK, END_OF_TIME):
            return None
        return self.now_ms - self.watermark_ms

    def line(self) -> str:
        """The periodic log line."""
        lag = self.watermark_lag_ms
        shown = "none" if lag is None else _seconds(lag)
        return (
            f"stream: {self.events_per_s:,.0f} events/s, {self.pending_orders:,} pending"
            f" orders, watermark lag {shown}, {self.late_events:,} late,"
            f" {self.dead_letters:,} dead letters"
        )


def _seconds(ms: int) -> str:
    return f"{ms / 1000:.1f}s" if abs(ms) < 100_000 else f"{ms / 1000:,.0f}s"


def sample(job: StreamJob, at_s: float, previous: Sample | None = None) -> Sample:
    """Read the job's counters; the rate is over the time since ``previous``."""
    matcher = job.matcher
    events = dict(job.stats.events)
    taken = Sample(
        at_s=at_s,
        now_ms=job.clock(),
        events=events,
        outputs=dict(job.stats.outputs),
        pending_orders=matcher.pending_keys,
        watermark_ms=matcher.watermarks.emitted,
        late_events=matcher.late_events,
        dead_letters=job.stats.dead_letters,
    )
    if previous is None or at_s <= previous.at_s:
        return taken
    rate = (taken.events_total - previous.events_total) / (at_s - previous.at_s)
    return Sample(**{**taken.__dict__, "events_per_s": max(rate, 0.0)})


@dataclass
class MetricsReporter:
    """Samples a job as it runs; logs a line every ``log_every_s`` (None: never)."""

    log: Callable[[str], None]
    log_every_s: float | None = 10.0
    sample_every_s: float = 1.0
    timer: Callable[[], float] = time.monotonic
    latest: Sample | None = None
    _last_log: float | None = field(default=None, repr=False)

    def __call__(self, job: StreamJob, *, final: bool = False) -> None:
        """Called by the job after each round (cheap unless a sample is due)."""
        now = self.timer()
        if self._last_log is None:
            self._last_log = now
        due = self.latest is None or now - self.latest.at_s >= self.sample_every_s
        if not (final or due):
            return
        self.latest = sample(job, now, self.latest)
        every = self.log_every_s
        if every is not None and not final and now - self._last_log >= every:
            self.log(self.latest.line())
            self._last_log = now


class PrometheusCollector:
    """Serves a reporter's latest sample as Prometheus metrics (read at scrape time)."""

    def __init__(self, reporter: MetricsReporter) -> None:
        self.reporter = reporter

    def collect(self) -> Iterator[Any]:
        """The metric families of the latest sample (none before the first one)."""
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        latest = self.reporter.latest
        if latest is None:
            return
        events = CounterMetricFamily(
            "payrecon_stream_events", "Decoded events by side", labels=["side"]
        )
        for side in ("pay", "receipt"):
            events.add_metric([side], latest.events.get(side, 0))
        yield events
        outputs = CounterMetricFamily(
            "payrecon_stream_outputs", "Matches and alerts by type", labels=["type"]
        )
        for kind, count in sorted(latest.outputs.items()):
            outputs.add_metric([kind], count)
        yield outputs
        yield CounterMetricFamily(
            "payrecon_stream_late_events",
            "Events behind the watermark",
            value=latest.late_events,
        )
        yield CounterMetricFamily(
            "payrecon_stream_dead_letters",
            "Lines that could not be decoded",
            value=latest.dead_letters,
        )
        yield GaugeMetricFamily(
            "payrecon_stream_events_per_second",
            "Decoded events per second over the last sampling interval",
            value=latest.events_per_s,
        )
        yield GaugeMetricFamily(
            "payrecon_stream_pending_orders",
            "Order ids with a side waiting for its counterpart",
            value=latest.pending_orders,
        )
        lag = latest.watermark_lag_ms
        if lag is not None:
            yield GaugeMetricFamily(
                "payrecon_stream_watermark_lag_seconds",
                "Processing time minus the effective watermark",
                value=lag / 1000,
            )


def serve_metrics(
    reporter: MetricsReporter, host: str, port: int
) -> tuple[int, Callable[[], None]]:
    """Start the Prometheus endpoint on ``host:port`` (0: any free port).

    Returns the port it listens on and a function that stops it.
    """
    from prometheus_client import CollectorRegistry, start_http_server

    registry = CollectorRegistry(auto_describe=False)
    registry.register(PrometheusCollector(reporter))
    server, thread = start_http_server(port, host, registry=registry)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(5)

    return int(server.server_address[1]), stop
