"""The bounded local runtime: round-robin reading, decoding, matching and the sinks."""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from datetime import UTC, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from payrecon.core.stream import MatcherConfig, StreamOutput
from payrecon.stream.events import DeadLetter, EventFormat
from payrecon.stream.runtime import RunStats, _round_robin, run_bounded
from payrecon.stream.sinks import Sink, StdoutSink, format_output, format_ts

PAY_513 = '{"userId": 1, "action": "pay", "orId": "order01", "timestamp": 1606549513}'
RECEIPT_536 = '{"orId": "order01", "payChannel": "wechat", "timestamp": 1606549536}'


class ListSink:
    """Keeps what it is given, and whether it was flushed and closed."""

    def __init__(self) -> None:
        self.items: list[object] = []
        self.flushed = 0

    def add(self, item: object) -> None:
        self.items.append(item)

    def flush(self) -> None:
        self.flushed += 1

    def close(self) -> None:
        self.flush()


def run(
    pay: Iterable[str],
    receipt: Iterable[str],
    *,
    sinks: Sequence[Sink[StreamOutput]] = (),
    dead_letters: Sink[DeadLetter] | None = None,
    config: MatcherConfig | None = None,
    fmt: EventFormat | None = None,
) -> RunStats:
    return run_bounded(
        pay,
        receipt,
        fmt=fmt or EventFormat(),
        config=config or MatcherConfig(),
        sinks=sinks,
        dead_letters=dead_letters,
        pay_source="orders",
        receipt_source="receipts",
        clock=lambda: 0,
    )


def outputs(pay: Iterable[str], receipt: Iterable[str]) -> list[StreamOutput]:
    sink = ListSink()
    run(pay, receipt, sinks=[sink])
    return [item for item in sink.items if isinstance(item, StreamOutput)]


def kinds(items: Sequence[StreamOutput]) -> list[tuple[str, str]]:
    return [(output.type, output.order_id) for output in items]


def pay(order_id: str, ts: int) -> str:
    return f"1,pay,{order_id},{ts}"


def receipt(order_id: str, ts: int) -> str:
    return f"{order_id},wechat,{ts}"


# --- the article's scenario ------------------------------------------------------------


def test_pay_and_receipt_23_s_apart_are_both_unmatched() -> None:
    result = outputs([PAY_513], [RECEIPT_536])
    assert kinds(result) == [("unmatched_pay", "order01"), ("unmatched_receipt", "order01")]
    assert result[0].pay_ts_ms == 1606549513000 and result[0].receipt_ts_ms is None
    assert result[1].receipt_ts_ms == 1606549536000 and result[1].pay_ts_ms is None


def test_receipt_within_the_timeout_matches() -> None:
    result = outputs([PAY_513], [receipt("order01", 1606549517)])
    assert kinds(result) == [("matched", "order01")]
    assert (result[0].pay_ts_ms, result[0].receipt_ts_ms) == (1606549513000, 1606549517000)


def test_receipt_exactly_at_the_timeout_does_not_match() -> None:
    result = outputs([PAY_513], [receipt("order01", 1606549518)])
    assert kinds(result) == [("unmatched_pay", "order01"), ("unmatched_receipt", "order01")]


def test_a_longer_receipt_timeout_matches_the_article_pair() -> None:
    sink = ListSink()
    run([PAY_513], [RECEIPT_536], sinks=[sink], config=MatcherConfig(receipt_timeout_ms=30_000))
    assert [item.type for item in sink.items if isinstance(item, StreamOutput)] == ["matched"]


def test_create_action_is_ignored() -> None:
    stats = run(["1,create,order01,1606549510", pay("order01", 1606549513)], [])
    assert stats.ignored == 1
    assert stats.events == {"pay": 1}
    assert stats.outputs == {"unmatched_pay": 1}


def test_bad_line_goes_to_dead_letters_with_its_position() -> None:
    dead = ListSink()
    stats = run([pay("order01", 1), "not,a,pay"], [receipt("order01", 2), ""], dead_letters=dead)
    assert stats.dead_letters == 2
    letters = [item for item in dead.items if isinstance(item, DeadLetter)]
    assert [(d.side, d.source, d.position, d.raw) for d in letters] == [
        ("pay", "orders", 2, "not,a,pay"),
        ("receipt", "receipts", 2, ""),
    ]
    assert dead.flushed == 1
    assert not stats.clean


def test_dead_letters_are_counted_without_a_sink() -> None:
    stats = run(["garbage"], [])
    assert stats.dead_letters == 1 and stats.events == {}


def test_every_output_reaches_every_sink_and_sinks_are_flushed() -> None:
    first, second = ListSink(), ListSink()
    stats = run(
        [PAY_513, pay("order02", 1606549520)],
        [RECEIPT_536, receipt("order02", 1606549522)],
        sinks=[first, second],
    )
    assert first.items == second.items
    assert len(first.items) == 3  # matched included
    assert {item.type for item in first.items if isinstance(item, StreamOutput)} == {
        "matched",
        "unmatched_pay",
        "unmatched_receipt",
    }
    assert first.flushed == second.flushed == 1
    assert stats.outputs == {"matched": 1, "unmatched_pay": 1, "unmatched_receipt": 1}
    assert stats.alerts == 2


def test_all_matched_is_clean() -> None:
    stats = run([pay("a", 10), pay("b", 11)], [receipt("b", 12), receipt("a", 11)])
    assert stats.outputs == {"matched": 2}
    assert stats.clean and stats.alerts == 0
    assert stats.events == {"pay": 2, "receipt": 2}


def test_amount_mismatch_is_an_alert() -> None:
    fmt = EventFormat(amount_field="amount", encoding="json")
    stats = run(
        ['{"action": "pay", "orId": "a", "timestamp": 10, "amount": 100}'],
        ['{"orId": "a", "timestamp": 11, "amount": 90}'],
        fmt=fmt,
    )
    assert stats.outputs == {"matched": 1, "amount_mismatch": 1}
    assert not stats.clean


def test_late_events_are_counted() -> None:
    stats = run(
        [pay("a", 100), pay("b", 101), pay("c", 50)],
        [receipt("a", 101), receipt("b", 102)],
    )
    assert stats.late_events == 1


def test_pending_timers_fire_at_the_end() -> None:
    assert kinds(outputs([pay("a", 1)], [])) == [("unmatched_pay", "a")]
    assert kinds(outputs([], [receipt("a", 1)])) == [("unmatched_receipt", "a")]
    assert outputs([], []) == []


def test_the_clock_is_read_for_processing_time() -> None:
    calls: list[int] = []

    def clock() -> int:
        calls.append(1)
        return len(calls)

    run_bounded(
        [pay("a", 1)],
        [receipt("a", 2)],
        fmt=EventFormat(),
        config=MatcherConfig(),
        sinks=[],
        dead_letters=None,
        pay_source="p",
        receipt_source="r",
        clock=clock,
    )
    assert len(calls) == 4  # two events, two ends


def test_round_robin_numbers_each_source_from_one() -> None:
    read = list(_round_robin({"pay": ["p1", "p2", "p3"], "receipt": ["r1"]}))
    assert read == [
        ("pay", "p1", 1),
        ("receipt", "r1", 1),
        ("pay", "p2", 2),
        ("receipt", None, 1),
        ("pay", "p3", 3),
        ("pay", None, 3),
    ]


# --- outputs do not depend on the interleaving -------------------------------------------

IGNORED = "9,create,padding,1"
ORDERS = [
    ("o1", 100, 102),  # matched
    ("o2", 103, 120),  # too late: unmatched pay and receipt
    ("o3", 110, None),  # no receipt
    ("o4", None, 111),  # no pay
    ("o5", 130, 128),  # receipt first, pay within 3 s
    ("o6", 140, 136),  # receipt first, pay too late
]


def article_files(pad: Sequence[int]) -> tuple[list[str], list[str]]:
    """Pay and receipt lines sorted by time; ``pad[i]`` ignored lines before pay i."""
    pays = sorted((ts, order) for order, ts, _ in ORDERS if ts is not None)
    receipts = sorted((ts, order) for order, _, ts in ORDERS if ts is not None)
    pay_lines: list[str] = []
    for (ts, order), padding in zip(pays, list(pad) + [0] * len(pays), strict=False):
        pay_lines += [IGNORED] * padding + [pay(order, ts)]
    return pay_lines, [receipt(order, ts) for ts, order in receipts]


EXPECTED = sorted(
    [
        ("matched", "o1"),
        ("matched", "o5"),
        ("unmatched_pay", "o2"),
        ("unmatched_receipt", "o2"),
        ("unmatched_pay", "o3"),
        ("unmatched_receipt", "o4"),
        ("unmatched_pay", "o6"),
        ("unmatched_receipt", "o6"),
    ]
)


@given(st.lists(st.integers(min_value=0, max_value=6), max_size=6))
def test_outputs_are_the_same_whatever_the_interleaving(pad: list[int]) -> None:
    pay_lines, receipt_lines = article_files(pad)
    baseline = outputs(*article_files([]))
    result = outputs(pay_lines, receipt_lines)
    assert sorted(kinds(result)) == EXPECTED
    assert sorted(result, key=lambda o: o.alert_id) == sorted(baseline, key=lambda o: o.alert_id)


@pytest.mark.parametrize("swap", [False, True])
def test_outputs_are_the_same_when_one_file_arrives_first(swap: bool) -> None:
    pay_lines, receipt_lines = article_files([])
    padding = [IGNORED] * 20
    if swap:
        result = outputs(padding + pay_lines, receipt_lines)
    else:
        result = outputs(pay_lines + padding, receipt_lines)
    assert sorted(kinds(result)) == EXPECTED


# --- human-readable lines ----------------------------------------------------------------


def test_stdout_sink_writes_one_line_per_output() -> None:
    stream = io.StringIO()
    sink = StdoutSink(stream)
    run(
        [PAY_513, pay("order02", 1606549520)],
        [RECEIPT_536, receipt("order02", 1606549522)],
        sinks=[sink],
    )
    assert stream.getvalue().splitlines() == [
        "unmatched_pay> order01 pay 2020-11-28 07:45:13",
        "matched> order02 pay 2020-11-28 07:45:20 receipt 2020-11-28 07:45:22",
        "unmatched_receipt> order01 receipt 2020-11-28 07:45:36",
    ]


def test_format_shows_amounts_milliseconds_and_zone() -> None:
    output = StreamOutput("amount_mismatch", "x", 1606549513250, 1606549514000, 100, 90, "id")
    assert format_output(output) == (
        "amount_mismatch> x pay 2020-11-28 07:45:13.250 amount 100"
        " receipt 2020-11-28 07:45:14 amount 90"
    )
    shanghai = timezone(timedelta(hours=8))
    assert format_ts(1606549513000, shanghai) == "2020-11-28 15:45:13"
    assert format_ts(0, UTC) == "1970-01-01 00:00:00"
