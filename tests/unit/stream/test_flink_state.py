"""The Flink job's per-key steps, driven by a miniature of Flink's keyed timer semantics.

``FlinkModel`` does what the Flink runtime does around ``MatchOrders``: one ValueState
text and a set of event-time timers per key, a watermark per input of
``max ts - out_of_orderness - 1`` (Flink's bounded out-of-orderness), and timers that fire,
in timestamp order, only when the combined watermark advances. Its outputs must equal the
local :class:`StreamMatcher`'s.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from payrecon.core.stream import (
    END_OF_TIME,
    NO_WATERMARK,
    MatcherConfig,
    Side,
    StreamEvent,
    StreamMatcher,
    StreamOutput,
)
from payrecon.stream.events import DeadLetter
from payrecon.stream.flink_state import (
    KeyStep,
    dead_letter_from_json,
    dead_letter_json,
    flink_timer,
    on_event,
    on_timer,
    output_from_json,
    output_json,
)
from payrecon.stream.sinks import DeadLetterSink, JsonLinesSink

CONFIG = MatcherConfig(receipt_timeout_ms=5000, pay_timeout_ms=3000)


class FlinkModel:
    """Flink's side of a KeyedCoProcessFunction, in miniature (one task, both inputs)."""

    def __init__(self, config: MatcherConfig) -> None:
        self.config = config
        self.state: dict[str, str] = {}
        self.timers: dict[str, set[int]] = {}
        self.max_ts: dict[Side, int] = {}
        self.ended: set[Side] = set()
        self.watermark = NO_WATERMARK
        self.outputs: list[StreamOutput] = []

    def element(self, event: StreamEvent) -> None:
        self._apply(event.order_id, on_event(self.state.get(event.order_id), event, self.config))
        self.max_ts[event.side] = max(event.ts_ms, self.max_ts.get(event.side, NO_WATERMARK))
        self._advance()

    def end(self, side: Side) -> None:
        self.ended.add(side)
        self._advance()

    def _input_watermark(self, side: Side) -> int:
        if side in self.ended:
            return END_OF_TIME
        if side not in self.max_ts:
            return NO_WATERMARK
        return self.max_ts[side] - self.config.out_of_orderness_ms - 1

    def _advance(self) -> None:
        mark = min(self._input_watermark("pay"), self._input_watermark("receipt"))
        if mark <= self.watermark:
            return  # Flink fires timers only when the watermark moves forward
        self.watermark = mark
        while due := sorted((t, k) for k, ts in self.timers.items() for t in ts if t <= mark):
            ts, key = due[0]
            self.timers[key].discard(ts)
            self._apply(key, on_timer(self.state.get(key), ts, self.config))

    def _apply(self, key: str, step: KeyStep) -> None:
        timers = self.timers.setdefault(key, set())
        if step.delete_timer is not None:
            timers.discard(step.delete_timer)
        if step.register_timer is not None:
            timers.add(step.register_timer)
        if step.state is None:
            self.state.pop(key, None)
        else:
            self.state[key] = step.state
        self.outputs += step.outputs


def run_both(
    events: list[StreamEvent], config: MatcherConfig = CONFIG
) -> tuple[list[StreamOutput], list[StreamOutput]]:
    """The local matcher's and the Flink model's outputs for ``events`` (arrival order)."""
    local, model = StreamMatcher(config), FlinkModel(config)
    outputs: list[StreamOutput] = []
    for event in events:
        outputs += local.process(event, now_ms=0)
        model.element(event)
    outputs += local.finish()
    model.end("pay")
    model.end("receipt")
    return outputs, model.outputs


def ev(side: Side, order_id: str, ts_ms: int, amount: int | None = None) -> StreamEvent:
    return StreamEvent(side, order_id, ts_ms, amount)


def test_a_pay_registers_a_timer_one_ms_before_its_timeout() -> None:
    step = on_event(None, ev("pay", "o1", 1000), CONFIG)
    assert (step.outputs, step.delete_timer, step.register_timer) == ([], None, 5999)
    assert step.state is not None
    assert flink_timer(6000) == 5999 and flink_timer(None) is None


def test_a_match_deletes_the_timer_and_clears_the_state() -> None:
    pending = on_event(None, ev("receipt", "o1", 1000, 5), CONFIG).state
    step = on_event(pending, ev("pay", "o1", 2500, 7), CONFIG)
    assert [o.type for o in step.outputs] == ["matched", "amount_mismatch"]
    assert (step.state, step.delete_timer, step.register_timer) == (None, 3999, None)


def test_a_duplicate_keeps_the_timer_and_counts_in_the_state() -> None:
    first = on_event(None, ev("pay", "o1", 1000), CONFIG)
    second = on_event(first.state, ev("pay", "o1", 1200), CONFIG)
    third = on_event(second.state, ev("pay", "o1", 1300), CONFIG)
    assert [o.type for o in second.outputs + third.outputs] == ["duplicate", "duplicate"]
    assert second.outputs[0].alert_id != third.outputs[0].alert_id  # the count is in the state
    assert (third.delete_timer, third.register_timer) == (None, None)


def test_the_timer_alerts_the_pending_side_and_clears_the_state() -> None:
    pending = on_event(None, ev("pay", "o1", 1000), CONFIG).state
    assert on_timer(pending, 5998, CONFIG).outputs == []  # not due: the key keeps waiting
    step = on_timer(pending, 5999, CONFIG)
    assert [o.type for o in step.outputs] == ["unmatched_pay"]
    assert (step.state, step.delete_timer, step.register_timer) == (None, 5999, None)
    assert on_timer(None, 5999, CONFIG) == KeyStep([], None, None, None)


def test_an_event_past_the_timer_expires_the_old_side_and_moves_the_timer() -> None:
    pending = on_event(None, ev("pay", "o1", 1000), CONFIG).state
    step = on_event(pending, ev("receipt", "o1", 7000), CONFIG)
    assert [o.type for o in step.outputs] == ["unmatched_pay"]
    assert (step.delete_timer, step.register_timer) == (5999, 9999)


def test_timers_fire_at_the_same_watermark_as_the_local_runtime() -> None:
    # Both inputs reach 6000, the pay's deadline: the local watermark is 6000 and fires it;
    # Flink's is 5999, which reaches the timer only because it sits 1 ms early.
    events = [ev("pay", "o1", 1000), ev("pay", "o2", 6000), ev("receipt", "o3", 6000)]
    local, model = StreamMatcher(CONFIG), FlinkModel(CONFIG)
    local_out = [out for event in events for out in local.process(event, 0)]
    for event in events:
        model.element(event)
    assert [o.type for o in local_out] == [o.type for o in model.outputs] == ["unmatched_pay"]


def on_time_stream(rng: random.Random, config: MatcherConfig) -> list[StreamEvent]:
    """Unique orders, gaps well clear of the timeouts, each input at most
    ``out_of_orderness`` behind its own maximum, the inputs interleaved at random."""
    sides: dict[Side, list[StreamEvent]] = {"pay": [], "receipt": []}
    clock = 0
    for n in range(rng.randint(1, 60)):
        clock += rng.randint(0, 1500)
        shape = rng.choice(("pay first", "receipt first", "pay only", "receipt only", "far"))
        gap = {"far": 9000, "pay first": rng.randint(0, 4000)}.get(shape, rng.randint(0, 2000))
        first, second = ("receipt", "pay") if shape == "receipt first" else ("pay", "receipt")
        if shape != "receipt only":
            sides[first].append(ev(first, f"o{n}", clock, rng.choice((None, 100, 200))))
        if shape != "pay only":
            sides[second].append(ev(second, f"o{n}", clock + gap, rng.choice((None, 100))))
    for events in sides.values():
        events.sort(key=lambda e: e.ts_ms)
        for i in range(len(events) - 1):  # swap neighbours within the allowance
            a, b = events[i], events[i + 1]
            if b.ts_ms - a.ts_ms <= config.out_of_orderness_ms and rng.random() < 0.5:
                events[i], events[i + 1] = b, a
    merged = []
    queues = {side: list(reversed(events)) for side, events in sides.items()}
    while queues["pay"] or queues["receipt"]:
        side: Side = rng.choice([s for s in ("pay", "receipt") if queues[s]])
        merged.append(queues[side].pop())
    return merged


@pytest.mark.parametrize("seed", range(40))
def test_random_on_time_streams_give_the_local_outputs(seed: int) -> None:
    rng = random.Random(seed)
    config = MatcherConfig(out_of_orderness_ms=rng.choice((0, 300, 2000)))
    local, flink = run_both(on_time_stream(rng, config), config)
    assert sorted(flink, key=repr) == sorted(local, key=repr)


def test_output_lines_are_the_local_json_lines_sink_s(tmp_path: Path) -> None:
    outputs = run_both([ev("pay", "订单1", 1000, 5), ev("receipt", "订单1", 2000, 6)])[1]
    path = tmp_path / "out.jsonl"
    sink = JsonLinesSink(path)
    for output in outputs:
        sink.add(output)
    sink.close()
    assert path.read_text(encoding="utf-8").splitlines() == [output_json(o) for o in outputs]
    assert [output_from_json(output_json(o)) for o in outputs] == outputs


def test_dead_letter_lines_are_the_local_dead_letter_sink_s(tmp_path: Path) -> None:
    letter = DeadLetter("pay", "pay.csv", 3, "1,pay,,x", "missing field 'orId'")
    path = tmp_path / "dead.jsonl"
    sink = DeadLetterSink(path)
    sink.add(letter)
    sink.close()
    assert path.read_text(encoding="utf-8").splitlines() == [dead_letter_json(letter)]
    assert dead_letter_from_json(dead_letter_json(letter)) == letter
