import json
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payrecon.core.stream import (
    END_OF_TIME,
    NO_WATERMARK,
    KeyMatcher,
    MatcherConfig,
    StreamEvent,
    StreamMatcher,
    StreamOutput,
    Watermarks,
    alert_id,
)
from payrecon.errors import ConfigError, InputError


def pay(order_id: str, ts_ms: int, amount: int | None = None) -> StreamEvent:
    return StreamEvent("pay", order_id, ts_ms, amount)


def receipt(order_id: str, ts_ms: int, amount: int | None = None) -> StreamEvent:
    return StreamEvent("receipt", order_id, ts_ms, amount)


def feed(matcher: StreamMatcher, events: list[StreamEvent]) -> list[StreamOutput]:
    """Process events with processing time = position, and return all outputs."""
    outputs: list[StreamOutput] = []
    for now_ms, event in enumerate(events):
        outputs += matcher.process(event, now_ms)
    return outputs


def run(events: list[StreamEvent], config: MatcherConfig | None = None) -> list[StreamOutput]:
    matcher = StreamMatcher(config)
    return feed(matcher, events) + matcher.finish()


def kinds(outputs: list[StreamOutput]) -> list[tuple[str, str]]:
    return [(output.type, output.order_id) for output in outputs]


# --- matching ---------------------------------------------------------------------------


def test_matched_in_order_carries_both_sides() -> None:
    matcher = StreamMatcher()
    outputs = feed(matcher, [pay("A", 0, 100), receipt("A", 1200, 100)])
    assert kinds(outputs) == [("matched", "A")]
    matched = outputs[0]
    assert (matched.pay_ts_ms, matched.receipt_ts_ms) == (0, 1200)
    assert (matched.pay_amount, matched.receipt_amount) == (100, 100)
    assert matcher.pending_keys == 0
    assert matcher.finish() == []


def test_matched_out_of_order_receipt_first() -> None:
    outputs = run([receipt("A", 2000, 100), pay("A", 1000, 100)])
    assert kinds(outputs) == [("matched", "A")]
    assert (outputs[0].pay_ts_ms, outputs[0].receipt_ts_ms) == (1000, 2000)


def test_amount_mismatch_follows_matched() -> None:
    outputs = run([pay("A", 0, 100), receipt("A", 10, 90)])
    assert kinds(outputs) == [("matched", "A"), ("amount_mismatch", "A")]
    assert (outputs[1].pay_amount, outputs[1].receipt_amount) == (100, 90)


@pytest.mark.parametrize(("pay_amount", "receipt_amount"), [(100, 100), (None, 90), (100, None)])
def test_no_amount_mismatch_when_equal_or_unknown(
    pay_amount: int | None, receipt_amount: int | None
) -> None:
    outputs = run([pay("A", 0, pay_amount), receipt("A", 10, receipt_amount)])
    assert kinds(outputs) == [("matched", "A")]


# --- timeouts ---------------------------------------------------------------------------


@pytest.mark.parametrize("out_of_orderness_ms", [0, 700])
def test_unmatched_pay_fires_exactly_at_boundary(out_of_orderness_ms: int) -> None:
    matcher = StreamMatcher(MatcherConfig(out_of_orderness_ms=out_of_orderness_ms))
    matcher.end("receipt", now_ms=0)
    assert matcher.process(pay("A", 0, 100), 0) == []
    assert matcher.process(pay("B", 4999 + out_of_orderness_ms), 1) == []
    assert matcher.watermarks.emitted == 4999
    fired = matcher.process(pay("C", 5000 + out_of_orderness_ms), 2)
    assert kinds(fired) == [("unmatched_pay", "A")]
    assert (fired[0].pay_ts_ms, fired[0].receipt_ts_ms, fired[0].pay_amount) == (0, None, 100)


def test_unmatched_receipt_fires_exactly_at_boundary() -> None:
    matcher = StreamMatcher()
    matcher.end("pay", now_ms=0)
    assert matcher.process(receipt("A", 0), 0) == []
    assert matcher.process(receipt("B", 2999), 1) == []
    fired = matcher.process(receipt("C", 3000), 2)
    assert kinds(fired) == [("unmatched_receipt", "A")]
    assert (fired[0].pay_ts_ms, fired[0].receipt_ts_ms) == (None, 0)


def test_key_timer_fires_at_its_timestamp_not_before() -> None:
    key = KeyMatcher("A", MatcherConfig())
    key.on_event(pay("A", 100))
    assert key.notify_at() == 5100
    assert key.on_timer(5099) == []
    assert kinds(key.on_timer(5100)) == [("unmatched_pay", "A")]
    assert key.is_empty
    assert key.notify_at() is None


@pytest.mark.parametrize(
    ("first", "second", "matched"),
    [
        (pay("A", 0), receipt("A", 4999), True),
        (pay("A", 0), receipt("A", 5000), False),
        (receipt("A", 0), pay("A", 2999), True),
        (receipt("A", 0), pay("A", 3000), False),
    ],
)
def test_counterpart_matches_only_strictly_before_the_timer(
    first: StreamEvent, second: StreamEvent, matched: bool
) -> None:
    """Even with no watermark to fire the timer, an event at the timer expires it first."""
    outputs = run([first, second])
    expected = {"matched"} if matched else {"unmatched_pay", "unmatched_receipt"}
    assert {output.type for output in outputs} == expected


def test_early_counterpart_out_of_order_is_unmatched_at_once() -> None:
    """A pay 6 s before the pending receipt timed out (5 s) before the receipt existed."""
    matcher = StreamMatcher(MatcherConfig(out_of_orderness_ms=10_000))
    assert matcher.process(receipt("A", 6000), 0) == []
    assert kinds(matcher.process(pay("A", 0), 1)) == [("unmatched_pay", "A")]
    assert kinds(matcher.finish()) == [("unmatched_receipt", "A")]
    assert matcher.late_events == 0


def test_receipt_after_fired_pay_timer_starts_new_pending_receipt() -> None:
    matcher = StreamMatcher()
    fired = feed(matcher, [pay("A", 0), pay("Z", 10_000), receipt("Y", 10_000)])
    assert kinds(fired) == [("unmatched_pay", "A")]
    # Late, and the pay's state is gone: a new pending receipt, whose own timer (4000) is
    # already behind the watermark, so it fires at once (as a Flink timer would).
    late = matcher.process(receipt("A", 1000), 3)
    assert kinds(late) == [("unmatched_receipt", "A")]
    assert (late[0].pay_ts_ms, late[0].receipt_ts_ms) == (None, 1000)
    assert matcher.late_events == 1


# --- duplicates -------------------------------------------------------------------------


def test_duplicate_alerts_and_keeps_the_pending_side() -> None:
    matcher = StreamMatcher()
    assert matcher.process(pay("A", 0, 100), 0) == []
    duplicate = matcher.process(pay("A", 1000, 100), 1)
    assert kinds(duplicate) == [("duplicate", "A")]
    assert (duplicate[0].pay_ts_ms, duplicate[0].receipt_ts_ms) == (1000, None)
    matched = matcher.process(receipt("A", 2000, 100), 2)
    assert kinds(matched) == [("matched", "A")]
    assert matched[0].pay_ts_ms == 0


def test_duplicate_does_not_reset_the_timer() -> None:
    key = KeyMatcher("A", MatcherConfig())
    key.on_event(receipt("A", 0))
    key.on_event(receipt("A", 2000))
    assert key.notify_at() == 3000
    fired = key.on_timer(3000)
    assert kinds(fired) == [("unmatched_receipt", "A")]
    assert fired[0].receipt_ts_ms == 0


def test_repeated_duplicates_have_distinct_ids() -> None:
    outputs = run([pay("A", 0), pay("A", 10), pay("A", 10)])
    duplicates = [output for output in outputs if output.type == "duplicate"]
    assert len(duplicates) == 2
    assert duplicates[0].alert_id != duplicates[1].alert_id


# --- watermarks -------------------------------------------------------------------------


def test_watermark_is_min_of_both_inputs_minus_out_of_orderness() -> None:
    marks = Watermarks(out_of_orderness_ms=100)
    assert marks.current(0) == NO_WATERMARK
    marks.observe("pay", 1000, 0)
    assert marks.current(0) == NO_WATERMARK  # no receipt seen yet
    marks.observe("receipt", 400, 0)
    assert marks.current(0) == 300
    marks.observe("receipt", 2000, 0)
    assert marks.current(0) == 900
    assert marks.is_late(899)
    assert not marks.is_late(900)


def test_matcher_waits_for_the_slower_input() -> None:
    matcher = StreamMatcher()
    assert feed(matcher, [pay("A", 0), receipt("B", 10_000)]) == []
    assert matcher.watermarks.emitted == 0
    assert kinds(matcher.process(pay("C", 6000), 2)) == [("unmatched_pay", "A")]


def test_idle_input_is_excluded_after_the_idleness_timeout() -> None:
    marks = Watermarks(idle_timeout_ms=1000)
    marks.observe("receipt", 100, 0)
    marks.observe("pay", 5000, 1000)
    assert marks.current(1000) == 100  # silent for exactly the timeout: not yet idle
    marks.observe("pay", 5000, 1001)
    assert marks.current(1001) == 5000
    marks.observe("receipt", 200, 1002)  # the idle input resumes, behind the watermark
    assert marks.current(1002) == 5000  # the watermark never goes back
    assert marks.is_late(200)


def test_never_seen_input_becomes_idle_and_all_idle_takes_the_max() -> None:
    marks = Watermarks(idle_timeout_ms=1000)
    marks.observe("pay", 5000, 0)
    assert marks.current(1000) == NO_WATERMARK
    assert marks.current(1001) == 5000  # both idle: the highest input watermark
    assert Watermarks().current(10**9) == NO_WATERMARK  # no idleness timeout: wait forever


def test_matcher_fires_past_a_silent_input() -> None:
    matcher = StreamMatcher(MatcherConfig(idle_timeout_ms=1000))
    assert matcher.process(pay("A", 0), 0) == []
    assert matcher.process(pay("B", 6000), 500) == []
    assert kinds(matcher.process(pay("C", 6000), 1001)) == [("unmatched_pay", "A")]


def test_end_of_input_watermark_is_end_of_time() -> None:
    marks = Watermarks()
    marks.observe("pay", 10, 0)
    marks.end("receipt")
    assert marks.current(0) == 10
    marks.end("pay")
    assert marks.current(0) == END_OF_TIME


def test_finish_fires_everything_in_timestamp_order() -> None:
    matcher = StreamMatcher()
    events = [pay("Z", 0), pay("Y", 100), pay("X", 100), receipt("W", 2500), receipt("V", 0)]
    assert feed(matcher, events) == []
    assert kinds(matcher.finish()) == [
        ("unmatched_receipt", "V"),  # 3000
        ("unmatched_pay", "Z"),  # 5000
        ("unmatched_pay", "X"),  # 5100, order id breaks the tie
        ("unmatched_pay", "Y"),  # 5100
        ("unmatched_receipt", "W"),  # 5500
    ]
    assert matcher.pending_keys == 0


def test_advance_fires_due_timers_in_timestamp_order_across_keys() -> None:
    matcher = StreamMatcher(MatcherConfig(idle_timeout_ms=10))
    feed(matcher, [pay("B", 200), pay("A", 300), receipt("C", 2150), pay("D", 10_000)])
    assert matcher.advance(now_ms=4) == []  # watermark min(10000, 2150)
    fired = matcher.advance(now_ms=100)  # both idle: the highest input watermark, 10000
    assert kinds(fired) == [
        ("unmatched_receipt", "C"),  # 5150
        ("unmatched_pay", "B"),  # 5200
        ("unmatched_pay", "A"),  # 5300
    ]
    assert kinds(matcher.finish()) == [("unmatched_pay", "D")]


def test_late_events_are_counted_and_still_processed() -> None:
    matcher = StreamMatcher()
    feed(matcher, [pay("A", 1000), receipt("B", 1000)])
    assert matcher.process(pay("C", 500), 2) == []
    assert matcher.late_events == 1
    assert kinds(matcher.process(receipt("C", 600), 3)) == [("matched", "C")]
    assert matcher.late_events == 2


# --- alert ids --------------------------------------------------------------------------

MIXED = [
    pay("A", 0, 100),
    receipt("A", 10, 90),
    pay("B", 0),
    pay("B", 5),
    receipt("C", 0),
    pay("D", 0),
    receipt("D", 9000),
]


def test_alert_ids_are_deterministic_and_distinct() -> None:
    first, second = run(MIXED), run(MIXED)
    assert [output.alert_id for output in first] == [output.alert_id for output in second]
    assert len({output.alert_id for output in first}) == len(first) == 7
    matched = first[0]
    assert matched.alert_id == alert_id("matched", "A", 0, 10)


# --- snapshot / restore -----------------------------------------------------------------


def restored_run(events: list[StreamEvent], cut: int, config: MatcherConfig) -> list[StreamOutput]:
    """Run to ``cut``, checkpoint through JSON, restore and run the rest."""
    matcher = StreamMatcher(config)
    outputs = feed(matcher, events[:cut])
    state = json.loads(json.dumps(matcher.snapshot()))
    resumed = StreamMatcher.restore(state, config)
    for now_ms, event in enumerate(events[cut:], start=cut):
        outputs += resumed.process(event, now_ms)
    return outputs + resumed.finish()


@pytest.mark.parametrize("cut", range(len(MIXED) + 1))
def test_snapshot_json_restore_gives_the_same_outputs(cut: int) -> None:
    config = MatcherConfig(out_of_orderness_ms=50)
    assert restored_run(MIXED, cut, config) == run(MIXED, config)


def test_key_snapshot_round_trip() -> None:
    key = KeyMatcher("A", MatcherConfig())
    key.on_event(pay("A", 7, 300))
    key.on_event(pay("A", 8))
    restored = KeyMatcher.restore(json.loads(json.dumps(key.snapshot())), MatcherConfig())
    assert restored.snapshot() == key.snapshot()
    assert restored.on_event(receipt("A", 9, 300)) == key.on_event(receipt("A", 9, 300))


def test_restore_rejects_an_unknown_version() -> None:
    with pytest.raises(InputError, match="version"):
        StreamMatcher.restore({"version": 99})


# --- validation -------------------------------------------------------------------------


def test_invalid_config_and_events_are_rejected() -> None:
    with pytest.raises(ConfigError):
        MatcherConfig(pay_timeout_ms=-1)
    with pytest.raises(ConfigError):
        MatcherConfig(idle_timeout_ms=-1)
    with pytest.raises(InputError):
        StreamEvent("refund", "A", 0)  # type: ignore[arg-type]
    with pytest.raises(InputError):
        KeyMatcher("A", MatcherConfig()).on_event(pay("B", 0))


# --- property: the outputs follow event time, whatever the arrival order --------------


@dataclass(frozen=True)
class Order:
    pay_ts: int | None
    receipt_ts: int | None
    pay_amount: int
    receipt_amount: int


def reference(orders: dict[str, Order], config: MatcherConfig) -> set[tuple[object, ...]]:
    """Sort by ts, pair per order id, compare the gap with the first side's timeout."""
    expected: set[tuple[object, ...]] = set()
    for order_id, order in orders.items():
        amounts = (order.pay_amount, order.receipt_amount)
        if order.pay_ts is not None and order.receipt_ts is not None:
            gap = order.receipt_ts - order.pay_ts
            timeout = config.receipt_timeout_ms if gap >= 0 else config.pay_timeout_ms
            if abs(gap) < timeout:
                pair = (order_id, order.pay_ts, order.receipt_ts, *amounts)
                expected.add(("matched", *pair))
                if amounts[0] != amounts[1]:
                    expected.add(("amount_mismatch", *pair))
                continue
        if order.pay_ts is not None:
            expected.add(("unmatched_pay", order_id, order.pay_ts, None, amounts[0], None))
        if order.receipt_ts is not None:
            expected.add(("unmatched_receipt", order_id, None, order.receipt_ts, None, amounts[1]))
    return expected


GAPS = st.one_of(
    st.integers(-9000, 9000), st.sampled_from([0, -3001, -3000, -2999, 4999, 5000, 5001])
)
ORDERS = st.builds(
    Order,
    pay_ts=st.none() | st.integers(0, 30_000),
    receipt_ts=st.none() | GAPS,
    pay_amount=st.sampled_from([100, 200]),
    receipt_amount=st.sampled_from([100, 200]),
)


def order_events(order_id: str, order: Order) -> list[StreamEvent]:
    events = []
    if order.pay_ts is not None:
        events.append(pay(order_id, order.pay_ts, order.pay_amount))
    if order.receipt_ts is not None:
        events.append(receipt(order_id, order.receipt_ts, order.receipt_amount))
    return events


@st.composite
def streams(draw: st.DrawFn) -> tuple[dict[str, Order], list[StreamEvent], MatcherConfig]:
    """Orders, their events delivered out of order within the allowance, and the config."""
    drawn = draw(st.dictionaries(st.sampled_from("ABCDEFGHIJ"), ORDERS, max_size=10))
    orders = {}
    for order_id, order in drawn.items():  # receipt_ts was drawn as a gap from the pay
        base = order.pay_ts if order.pay_ts is not None else 12_000
        receipt_ts = None if order.receipt_ts is None else base + order.receipt_ts
        orders[order_id] = Order(order.pay_ts, receipt_ts, order.pay_amount, order.receipt_amount)
    events = [
        event for order_id, order in orders.items() for event in order_events(order_id, order)
    ]
    out_of_orderness = draw(st.sampled_from([0, 10_000]) | st.integers(0, 10_000))
    # Extremes reorder the most: an event delayed by the whole allowance behind one that is not.
    jitters = st.sampled_from([0, out_of_orderness]) | st.integers(0, out_of_orderness)
    jitter = draw(st.lists(jitters, min_size=len(events), max_size=len(events)))
    # Delivering by ts + jitter keeps every event within the allowance of the max before it.
    delivery = sorted(range(len(events)), key=lambda i: (events[i].ts_ms + jitter[i], i))
    return (
        orders,
        [events[i] for i in delivery],
        MatcherConfig(out_of_orderness_ms=out_of_orderness),
    )


def as_tuple(output: StreamOutput) -> tuple[object, ...]:
    return (
        output.type,
        output.order_id,
        output.pay_ts_ms,
        output.receipt_ts_ms,
        output.pay_amount,
        output.receipt_amount,
    )


@settings(max_examples=300, deadline=None)
@given(streams())
def test_outputs_equal_the_event_time_reference(
    stream: tuple[dict[str, Order], list[StreamEvent], MatcherConfig],
) -> None:
    orders, events, config = stream
    matcher = StreamMatcher(config)
    outputs = feed(matcher, events) + matcher.finish()
    assert matcher.late_events == 0
    assert len(outputs) == len({as_tuple(output) for output in outputs})
    assert {as_tuple(output) for output in outputs} == reference(orders, config)
    assert len({output.alert_id for output in outputs}) == len(outputs)


@settings(max_examples=150, deadline=None)
@given(streams(), st.data())
def test_checkpoint_anywhere_gives_the_uninterrupted_outputs(
    stream: tuple[dict[str, Order], list[StreamEvent], MatcherConfig], data: st.DataObject
) -> None:
    _, events, config = stream
    cut = data.draw(st.integers(0, len(events)))
    assert restored_run(events, cut, config) == run(events, config)
