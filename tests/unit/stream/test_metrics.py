"""Live metrics of a stream job: samples, the periodic log line, the Prometheus endpoint.

The job runs on a fake clock (``sleep`` moves it on), so the log interval is exact and
nothing waits on the wall clock; the endpoint is a real HTTP server on 127.0.0.1.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from payrecon.core.stream import MatcherConfig
from payrecon.stream.events import EventFormat
from payrecon.stream.metrics import MetricsReporter, Sample, sample, serve_metrics
from payrecon.stream.runtime import JobOptions, StreamJob
from tests.unit.stream.test_job import FakeTime, ListSink, ScriptedSource

MS = EventFormat(time_unit="ms")
PAYS = ["1,pay,o1,1000", "2,pay,o2,1100", "3,pay,o3,1200"]
RECEIPTS = ["o1,wechat,1050"]


def job_for(time: FakeTime, reporter: MetricsReporter) -> StreamJob:
    """Three pays and one receipt in the first round, then silence (inputs never end)."""
    return StreamJob(
        {
            "pay": ScriptedSource("pay", [PAYS]),
            "receipt": ScriptedSource("receipt", [RECEIPTS]),
        },
        fmt=MS,
        config=MatcherConfig(),  # no idleness timeout: the watermark stays at 1050
        sinks=[ListSink("out", [], time)],
        clock=time.clock,
        options=JobOptions(checkpoint_interval_s=None),
        timer=time.timer,
        sleep=time.sleep,
        observer=reporter,
    )


def until(time: FakeTime, ms: int) -> Callable[[], bool]:
    end = time.now_ms + ms
    return lambda: time.now_ms >= end


def test_samples_count_events_pending_orders_and_watermark_lag() -> None:
    time, lines = FakeTime(), []
    reporter = MetricsReporter(log=lines.append, log_every_s=2.0, timer=time.timer)
    job = job_for(time, reporter)

    job.run(until(time, 5_000))

    latest = reporter.latest
    assert latest is not None
    assert latest.events == {"pay": 3, "receipt": 1}
    assert latest.outputs == {"matched": 1}
    assert latest.pending_orders == 2  # o2 and o3 wait for their receipts
    assert latest.watermark_ms == 1050  # the receipt input holds it back
    assert latest.watermark_lag_ms == time.now_ms - 1050
    assert latest.late_events == 0 and latest.dead_letters == 0
    # A line every 2 s of the 5 s run: at 2 s and at 4 s, none for the final sample.
    assert len(lines) == 2
    assert "2 pending orders" in lines[0] and "0 dead letters" in lines[0]
    assert "watermark lag 1,003s" in lines[-1]  # logged at 1,004 s of processing time


def test_no_log_line_when_turned_off() -> None:
    time, lines = FakeTime(), []
    reporter = MetricsReporter(log=lines.append, log_every_s=None, timer=time.timer)
    job_for(time, reporter).run(until(time, 5_000))
    assert lines == [] and reporter.latest is not None


def test_the_rate_is_over_the_time_since_the_previous_sample() -> None:
    time = FakeTime()
    reporter = MetricsReporter(log=lambda _: None, log_every_s=None, timer=time.timer)
    job = job_for(time, reporter)
    job.run(until(time, 100))
    before = Sample(
        at_s=10.0,
        now_ms=0,
        events={"pay": 1},
        outputs={},
        pending_orders=0,
        watermark_ms=0,
        late_events=0,
        dead_letters=0,
    )
    assert sample(job, 12.0, before).events_per_s == pytest.approx(1.5)  # 3 more in 2 s
    assert sample(job, 12.0).events_per_s == 0.0  # no previous sample: no rate yet


def test_lag_is_unknown_before_the_first_watermark_and_after_the_end() -> None:
    base = Sample(0.0, 5_000, {}, {}, 0, -(2**63), 0, 0)
    assert base.watermark_lag_ms is None
    assert "watermark lag none" in base.line()
    ended = Sample(0.0, 5_000, {}, {}, 0, 2**63 - 1, 0, 0)
    assert ended.watermark_lag_ms is None


def test_the_prometheus_endpoint_serves_the_latest_sample() -> None:
    time = FakeTime()
    reporter = MetricsReporter(log=lambda _: None, log_every_s=None, timer=time.timer)
    port, stop = serve_metrics(reporter, "127.0.0.1", 0)
    try:
        assert "payrecon_stream" not in httpx.get(f"http://127.0.0.1:{port}/").text
        job_for(time, reporter).run(until(time, 3_000))
        text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    finally:
        stop()
    assert 'payrecon_stream_events_total{side="pay"} 3.0' in text
    assert 'payrecon_stream_events_total{side="receipt"} 1.0' in text
    assert 'payrecon_stream_outputs_total{type="matched"} 1.0' in text
    assert "payrecon_stream_pending_orders 2.0" in text
    assert "payrecon_stream_dead_letters_total 0.0" in text
    lag = (time.now_ms - 1050) / 1000
    assert f"payrecon_stream_watermark_lag_seconds {lag}" in text
    with pytest.raises(httpx.TransportError):
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)
