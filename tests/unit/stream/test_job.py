"""The unbounded runtime loop with an injected clock: idleness, stops, checkpoint order and
restoring; bounded runs as its special case.

The sources here are a scripted implementation of the :class:`Source` interface (and real
files); time is a fake clock that ``sleep`` advances, so nothing waits on the wall clock.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payrecon.core.stream import MatcherConfig, Side, StreamOutput
from payrecon.errors import ConfigError, RunError
from payrecon.stream.checkpoint import Checkpoint, CheckpointStore
from payrecon.stream.events import DeadLetter, EventFormat
from payrecon.stream.runtime import (
    BOUNDED,
    JobOptions,
    JobResult,
    StreamJob,
    _round_robin,
    interleave,
)
from payrecon.stream.sources import FileSource, LineIterSource, Position, Source, SourceLine

MS = EventFormat(time_unit="ms")
Log = list[tuple[str, ...]]


class FakeTime:
    """Processing time in ms; ``sleep`` moves it on."""

    def __init__(self) -> None:
        self.now_ms = 1_000_000

    def clock(self) -> int:
        return self.now_ms

    def timer(self) -> float:
        return self.now_ms / 1000

    def sleep(self, seconds: float) -> None:
        self.now_ms += round(seconds * 1000)


class ScriptedSource:
    """One scripted batch per poll, then nothing (or the end); records opens and commits."""

    def __init__(
        self,
        name: str,
        batches: Iterable[list[str]] = (),
        *,
        ends: bool = False,
        resumable: bool = True,
        log: Log | None = None,
    ) -> None:
        self.name = name
        self.identity = f"scripted:{name}"
        self.resumable = resumable
        self.ended = False
        self.opened_at: Any = "never"
        self.batches = deque(batches)
        self.ends = ends
        self.read = 0
        self.log = log if log is not None else []

    def open(self, position: Mapping[str, int] | None) -> None:
        self.opened_at = position

    def poll(self, max_lines: int) -> list[SourceLine]:
        if not self.batches:
            self.ended = self.ends
            return []
        lines = []
        for text in self.batches.popleft():
            self.read += 1
            lines.append(SourceLine(text, self.read))
        return lines

    def position(self) -> Position | None:
        return {"read": self.read} if self.resumable else None

    def commit(self, position: Position | None) -> None:
        self.log.append(("commit", self.name))

    def close(self) -> None:
        pass


class ListSink:
    """Keeps outputs, with the processing time they arrived at; logs flushes."""

    def __init__(self, name: str, log: Log, time: FakeTime, fail: bool = False) -> None:
        self.name, self.log, self.time, self.fail = name, log, time, fail
        self.items: list[Any] = []
        self.at_ms: list[int] = []

    def add(self, item: Any) -> None:
        self.items.append(item)
        self.at_ms.append(self.time.now_ms)

    def flush(self) -> None:
        if self.fail:
            raise RunError(f"{self.name} cannot flush")
        self.log.append(("flush", self.name))

    def close(self) -> None:
        pass


class LoggedStore(CheckpointStore):
    def __init__(self, path: Path, log: Log) -> None:
        super().__init__(path)
        self.log = log

    def save(self, checkpoint: Checkpoint) -> int:
        self.log.append(("save",))
        return super().save(checkpoint)


@pytest.fixture
def time() -> FakeTime:
    return FakeTime()


@pytest.fixture
def log() -> Log:
    return []


@pytest.fixture
def stores(tmp_path: Path, log: Log) -> Iterator[Callable[[], LoggedStore]]:
    opened: list[LoggedStore] = []

    def store() -> LoggedStore:
        for previous in opened:
            previous.close()
        opened.clear()
        opened.append(LoggedStore(tmp_path / "cp.sqlite", log))
        return opened[0]

    yield store
    for remaining in opened:
        remaining.close()


def job(
    pay: Source,
    receipt: Source,
    time: FakeTime,
    sinks: list[ListSink],
    *,
    config: MatcherConfig | None = None,
    store: CheckpointStore | None = None,
    options: JobOptions | None = None,
    dead: ListSink | None = None,
) -> StreamJob:
    return StreamJob(
        {"pay": pay, "receipt": receipt},
        fmt=MS,
        config=config or MatcherConfig(),
        sinks=sinks,
        dead_letters=dead,
        clock=time.clock,
        store=store,
        options=options or JobOptions(checkpoint_interval_s=None),
        timer=time.timer,
        sleep=time.sleep,
    )


def stop_when(condition: Callable[[], bool], rounds: int = 10_000) -> Callable[[], bool]:
    """Stop once ``condition()`` holds, or after ``rounds`` checks (then the test fails)."""
    calls = iter(range(rounds))
    return lambda: condition() or next(calls, None) is None


def kinds(items: Iterable[Any]) -> list[tuple[str, str]]:
    return [(item.type, item.order_id) for item in items if isinstance(item, StreamOutput)]


# --- processing time drives idleness -------------------------------------------------------


def test_a_silent_input_stops_holding_the_watermark_after_the_idle_timeout(
    time: FakeTime, log: Log
) -> None:
    pay = ScriptedSource("pay", [["1,pay,a,0", "1,pay,b,10000"]])
    receipt = ScriptedSource("receipt")  # live, never a line
    sink = ListSink("out", log, time)
    config = MatcherConfig(idle_timeout_ms=1000)
    started = time.now_ms
    result = job(pay, receipt, time, [sink], config=config).run(stop_when(lambda: bool(sink.items)))
    assert kinds(sink.items) == [("unmatched_pay", "a")]
    assert sink.at_ms[0] - started > 1000  # only once the receipt input was idle
    assert result.stopped and not result.finished


def test_without_idleness_a_silent_input_holds_the_watermark(time: FakeTime, log: Log) -> None:
    pay = ScriptedSource("pay", [["1,pay,a,0", "1,pay,b,10000"]])
    sink = ListSink("out", log, time)
    job(pay, ScriptedSource("receipt"), time, [sink]).run(stop_when(lambda: False, rounds=500))
    assert sink.items == []
    assert time.now_ms - 1_000_000 > 5000  # rounds went by, idle, in processing time


def test_idle_rounds_flush_waiting_outputs(time: FakeTime, log: Log) -> None:
    pay = ScriptedSource("pay", [["1,pay,a,0"]])
    receipt = ScriptedSource("receipt", [["a,wechat,1"]])
    sink = ListSink("out", log, time)
    job(pay, receipt, time, [sink], options=JobOptions(checkpoint_interval_s=None)).run(
        stop_when(lambda: ("flush", "out") in log)
    )
    assert kinds(sink.items) == [("matched", "a")]


# --- stopping and checkpoints --------------------------------------------------------------


def test_a_stop_writes_a_final_checkpoint_with_the_pending_state(
    time: FakeTime, log: Log, stores: Callable[[], LoggedStore]
) -> None:
    pay = ScriptedSource("pay", [["1,pay,a,0"]])
    receipt = ScriptedSource("receipt")
    store = stores()
    result = job(pay, receipt, time, [], store=store).run(stop_when(lambda: pay.read == 1))
    assert result.stopped and result.checkpoint == 1
    saved = store.load()
    assert saved is not None and not saved.finished and saved.ended == ()
    assert saved.positions == {"pay": {"read": 1}, "receipt": {"read": 0}}
    assert [key["order_id"] for key in saved.matcher["keys"]] == ["a"]
    assert saved.stats["events"] == {"pay": 1}


def test_sinks_are_flushed_before_each_checkpoint_and_offsets_committed_after(
    time: FakeTime, log: Log, stores: Callable[[], LoggedStore]
) -> None:
    pay = ScriptedSource("pay", [["1,pay,a,0"], ["1,pay,b,10"], ["1,pay,c,20"]], log=log)
    receipt = ScriptedSource("receipt", [["a,x,1"], ["b,x,11"], ["c,x,21"]], log=log)
    sinks = [ListSink("first", log, time), ListSink("second", log, time)]
    dead = ListSink("dead", log, time)
    options = JobOptions(checkpoint_interval_s=0, flush_interval_s=None)
    result = job(pay, receipt, time, sinks, store=stores(), options=options, dead=dead).run(
        stop_when(lambda: receipt.read == 3)
    )
    saves = [index for index, entry in enumerate(log) if entry == ("save",)]
    assert len(saves) >= 2 and result.checkpoint == len(saves)
    for index in saves:
        assert log[index - 3 : index] == [
            ("flush", "first"),
            ("flush", "second"),
            ("flush", "dead"),
        ]
        assert log[index + 1 : index + 3] == [("commit", "pay"), ("commit", "receipt")]
    assert log.count(("commit", "pay")) == len(saves)  # a commit only ever follows a save
    assert kinds(sinks[0].items) == [("matched", "a"), ("matched", "b"), ("matched", "c")]


def test_a_sink_that_cannot_flush_leaves_checkpoint_and_offsets_untouched(
    time: FakeTime, log: Log, stores: Callable[[], LoggedStore]
) -> None:
    pay = ScriptedSource("pay", [["1,pay,a,0"]], log=log)
    receipt = ScriptedSource("receipt", [["a,x,1"]], log=log)
    broken = ListSink("broken", log, time, fail=True)
    store = stores()
    with pytest.raises(RunError, match="broken cannot flush"):
        job(pay, receipt, time, [broken], store=store).run(stop_when(lambda: receipt.read == 1))
    assert store.load() is None
    assert not any(entry[0] in ("save", "commit") for entry in log)


def test_a_restart_restores_the_matcher_and_reads_on_from_the_saved_offsets(
    tmp_path: Path, time: FakeTime, log: Log, stores: Callable[[], LoggedStore]
) -> None:
    pay_path, receipt_path = tmp_path / "pay.csv", tmp_path / "receipt.csv"
    pay_path.write_text("1,pay,a,1000\n", encoding="utf-8")
    receipt_path.write_text("", encoding="utf-8")

    def run(until: Callable[[ListSink], bool]) -> tuple[JobResult, ListSink]:
        sink = ListSink("out", log, time)
        pay, receipt = FileSource(pay_path, follow=True), FileSource(receipt_path, follow=True)
        result = job(pay, receipt, time, [sink], store=stores()).run(
            stop_when(lambda: until(sink), rounds=50)
        )
        return result, sink

    first, _ = run(lambda sink: False)
    assert first.stopped and first.resumed_from is None and first.checkpoint == 1
    with receipt_path.open("a", encoding="utf-8") as file:
        file.write("a,wechat,1500\n")
    second, sink = run(lambda sink: bool(sink.items))
    assert second.resumed_from == 1
    assert kinds(sink.items) == [("matched", "a")]  # the pay came from the checkpoint
    assert second.stats.events == {"pay": 1, "receipt": 1}  # and was not read again


def test_a_checkpoint_of_other_sources_is_refused(
    time: FakeTime, log: Log, stores: Callable[[], LoggedStore]
) -> None:
    job(ScriptedSource("pay"), ScriptedSource("receipt"), time, [], store=stores()).run(
        stop_when(lambda: True)
    )
    other = job(ScriptedSource("orders"), ScriptedSource("receipt"), time, [], store=stores())
    with pytest.raises(ConfigError, match="was written for"):
        other.run()


def test_a_finished_run_is_not_run_again(
    time: FakeTime, log: Log, stores: Callable[[], LoggedStore]
) -> None:
    pay = ScriptedSource("pay", [["1,pay,a,0"]], ends=True)
    receipt = ScriptedSource("receipt", ends=True)
    sink = ListSink("out", log, time)
    first = job(pay, receipt, time, [sink], store=stores()).run()
    assert first.finished and kinds(sink.items) == [("unmatched_pay", "a")]
    pay_again = ScriptedSource("pay", [["1,pay,z,0"]], ends=True)
    again = job(pay_again, ScriptedSource("receipt"), time, [sink], store=stores()).run()
    assert again.already_finished and again.finished and again.resumed_from == first.checkpoint
    assert pay_again.opened_at == "never"
    assert again.stats.outputs == {"unmatched_pay": 1}


def test_a_source_that_cannot_resume_is_opened_fresh_with_a_warning(
    time: FakeTime,
    log: Log,
    stores: Callable[[], LoggedStore],
    caplog: pytest.LogCaptureFixture,
) -> None:
    def sources() -> tuple[ScriptedSource, ScriptedSource]:
        return ScriptedSource("pay", [["1,pay,a,0"]]), ScriptedSource("receipt", resumable=False)

    pay, receipt = sources()
    job(pay, receipt, time, [], store=stores()).run(stop_when(lambda: pay.read == 1))
    pay, receipt = sources()
    with caplog.at_level(logging.WARNING):
        job(pay, receipt, time, [], store=stores()).run(stop_when(lambda: True))
    assert pay.opened_at == {"read": 1} and receipt.opened_at is None
    assert "receipt cannot resume" in caplog.text


def test_an_input_that_ended_before_the_checkpoint_is_not_read_again(
    time: FakeTime, log: Log, stores: Callable[[], LoggedStore]
) -> None:
    pay = ScriptedSource("pay", [["1,pay,a,0"]], ends=True)
    receipt = ScriptedSource("receipt")
    job(pay, receipt, time, [], store=stores()).run(stop_when(lambda: pay.ended))
    pay = ScriptedSource("pay", [["1,pay,b,0"]], ends=True)
    result = job(pay, ScriptedSource("receipt"), time, [], store=stores()).run(
        stop_when(lambda: True)
    )
    assert pay.opened_at == "never" and result.stats.events == {"pay": 1}


# --- lines that are not events --------------------------------------------------------------


def test_unreadable_stream_lines_become_dead_letters(time: FakeTime, log: Log) -> None:
    class Broken(ScriptedSource):
        def poll(self, max_lines: int) -> list[SourceLine]:
            self.ended = True
            return [SourceLine("\ufffd\n", "0:7", "not UTF-8 text: invalid start byte at byte 0")]

    dead = ListSink("dead", log, time)
    result = job(Broken("pay"), ScriptedSource("receipt", ends=True), time, [], dead=dead).run()
    assert dead.items == [
        DeadLetter("pay", "pay", "0:7", "\ufffd", "not UTF-8 text: invalid start byte at byte 0")
    ]
    assert result.stats.dead_letters == 1 and result.finished


# --- bounded runs: the order of reading does not depend on the batch size ------------------

_lines = st.lists(st.sampled_from(["x", "y", "z"]), max_size=8)


@given(pay=_lines, receipt=_lines, batch=st.integers(min_value=1, max_value=5))
def test_interleaved_batches_read_in_round_robin_order(
    pay: list[str], receipt: list[str], batch: int
) -> None:
    sources: dict[Side, LineIterSource] = {
        "pay": LineIterSource(pay, "p"),
        "receipt": LineIterSource(receipt, "r"),
    }
    for source in sources.values():
        source.open(None)
    order: list[tuple[Side, str | None, int]] = []
    ended: set[Side] = set()
    while len(ended) < 2:
        batches = {side: s.poll(batch) for side, s in sources.items() if side not in ended}
        ends = {side for side in batches if sources[side].ended}
        for side, line in interleave(batches, ends):
            if line is None:
                ended.add(side)
                order.append((side, None, _count(order, side)))
            else:
                order.append((side, line.text, int(line.position)))
    assert order == list(_round_robin({"pay": pay, "receipt": receipt}))


def _count(order: list[tuple[Side, str | None, int]], side: Side) -> int:
    return sum(1 for entry in order if entry[0] == side and entry[1] is not None)


_events = st.lists(
    st.tuples(
        st.sampled_from(["pay", "receipt"]),
        st.sampled_from(["a", "b", "c", "d"]),
        st.integers(min_value=0, max_value=20_000),
    ),
    max_size=20,
)


@given(events=_events, batch=st.integers(min_value=2, max_value=9))
def test_bounded_outputs_do_not_depend_on_the_batch_size(
    events: list[tuple[str, str, int]], batch: int
) -> None:
    pay = [f"1,pay,{order},{ts}" for side, order, ts in events if side == "pay"]
    receipt = [f"{order},x,{ts}" for side, order, ts in events if side == "receipt"]

    def outputs(options: JobOptions) -> list[StreamOutput]:
        time, log = FakeTime(), []
        sink = ListSink("out", log, time)
        sources = (LineIterSource(pay, "p"), LineIterSource(receipt, "r"))
        job(*sources, time, [sink], options=options).run()
        return list(sink.items)

    one_by_one = JobOptions(batch=1, flush_interval_s=None, checkpoint_interval_s=None)
    assert outputs(JobOptions(batch=batch, checkpoint_interval_s=None)) == outputs(one_by_one)
    assert BOUNDED.checkpoint_interval_s is None and BOUNDED.flush_interval_s is None


def test_job_needs_both_sides(time: FakeTime) -> None:
    with pytest.raises(ConfigError, match="pay source and a receipt source"):
        StreamJob(
            {"pay": ScriptedSource("pay")},  # type: ignore[dict-item]
            fmt=MS,
            config=MatcherConfig(),
            sinks=[],
            clock=time.clock,
        )


@pytest.mark.parametrize(
    "options",
    [{"batch": 0}, {"poll_interval_s": -1.0}, {"checkpoint_interval_s": -1.0}],
)
def test_bad_job_options(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        JobOptions(**options)
