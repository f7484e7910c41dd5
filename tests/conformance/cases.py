"""Backend-neutral inputs for the match, each with the outcomes every engine must give.

A scenario is plain canonical records (built with :func:`tests.conftest.record`) and the
rules to match them under. ``expected`` pins the outcome kinds per key, so a mistake
shared by every engine still fails; the row-by-row comparison between engines covers
every other column.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from payrecon.core.rules import MatchRules
from tests.conftest import DAY, pooled, record

YESTERDAY = DAY - timedelta(days=1)
Record = dict[str, Any]
Key = tuple[str, str]  # (kind, order_id)


@dataclass(frozen=True)
class Scenario:
    name: str
    ledger: tuple[Record, ...]
    channel: tuple[Record, ...]
    expected: dict[Key, list[str]]
    pool: tuple[Record, ...] = ()
    rules: MatchRules = field(default_factory=MatchRules)
    day: date = DAY


def pay(outcomes: dict[str, list[str]]) -> dict[Key, list[str]]:
    return {("PAY", order_id): sorted(kinds) for order_id, kinds in outcomes.items()}


def refund(order_id: str, amount: int = 30, **fields: Any) -> Record:
    return {**record(order_id, amount, kind="REFUND", **fields), "origin_order_id": "o1"}


BIG = 2**53 + 1  # not representable as a float: money must stay integer end to end

EVERY_OUTCOME = Scenario(
    "every_outcome_kind",
    ledger=(
        record("matched", 1000, fee=600),
        record("short", 1000),
        record("long", 1000),
        record("status", status="PROCESSING"),
        record("fee", fee=600),
        record("dup", line_no=1),
        record("dup", line_no=2),
        record("late", local_time="23:55:00"),
        record("lost"),
        record("big", BIG),
        record("big-diff", BIG),
        record("订单-1'quote", 1000),
    ),
    channel=(
        record("matched", 1000, fee=600),
        record("short", 990),
        record("long", 1010),
        record("status"),
        record("fee", fee=601),
        record("dup"),
        record("extra"),
        record("early", local_time="00:05:00"),
        record("big", BIG),
        record("big-diff", BIG + 1),
        record("订单-1'quote", 1000),
    ),
    expected=pay(
        {
            "matched": ["MATCHED"],
            "short": ["AMOUNT_MISMATCH"],
            "long": ["AMOUNT_MISMATCH"],
            "status": ["STATUS_MISMATCH"],
            "fee": ["FEE_MISMATCH"],
            "dup": ["DUPLICATE", "MATCHED"],
            "late": ["CARRIED_OVER"],
            "lost": ["MISSING_IN_CHANNEL"],
            "extra": ["MISSING_IN_LEDGER"],
            "early": ["CARRIED_OVER"],
            "big": ["MATCHED"],
            "big-diff": ["AMOUNT_MISMATCH"],
            "订单-1'quote": ["MATCHED"],
        }
    ),
)

DUPLICATES = Scenario(
    "duplicates_on_both_sides",
    ledger=(
        record("d1", line_no=1),
        record("d1", line_no=2),
        record("d2", line_no=3, local_time="12:00:02"),
        record("d2", line_no=4, local_time="12:00:01"),
        record("d2", line_no=5, local_time="12:00:00"),
        # The first copy by time (11:00, 90) is the one matched; the other is the duplicate.
        record("d5", 100, line_no=6, local_time="12:00:00"),
        record("d5", 90, line_no=7, local_time="11:00:00"),
        # Today's copy of a key already waiting in the pool: the pool's copy ranks first.
        record("d4", line_no=8, local_time="00:01:00"),
        # Same time and line: the source breaks the tie.
        record("d6", line_no=9, source="b.csv"),
        record("d6", line_no=9, source="a.csv"),
    ),
    channel=(
        record("d1", line_no=1),
        record("d1", line_no=2),
        record("d1", line_no=3),
        record("d2", line_no=4),
        record("d3", line_no=5),
        record("d3", line_no=6),
        record("d5", 90, line_no=7),
        record("d4", line_no=8, local_time="00:02:00"),
        record("d6", line_no=9),
    ),
    pool=(
        pooled(record("d4", line_no=99, local_time="23:58:00", day=YESTERDAY), "ledger", YESTERDAY),
    ),
    expected=pay(
        {
            "d1": ["DUPLICATE", "DUPLICATE", "DUPLICATE", "MATCHED"],
            "d2": ["DUPLICATE", "DUPLICATE", "MATCHED"],
            "d3": ["DUPLICATE", "MISSING_IN_LEDGER"],
            "d4": ["DUPLICATE", "MATCHED"],
            "d5": ["DUPLICATE", "MATCHED"],
            "d6": ["DUPLICATE", "MATCHED"],
        }
    ),
)

TOLERANCES = Scenario(
    "amount_and_fee_tolerances",
    ledger=(
        record("a-in", 1000),
        record("a-out", 1000),
        record("a-neg-in", 1000),
        record("a-neg-out", 1000),
        record("f-in", fee=600),
        record("f-out", fee=600),
        record("f-null", fee=None),
        record("both", 1000, fee=600),
    ),
    channel=(
        record("a-in", 1005),
        record("a-out", 1006),
        record("a-neg-in", 995),
        record("a-neg-out", 994),
        record("f-in", fee=610),
        record("f-out", fee=611),
        record("f-null", fee=500),
        record("both", 1006, fee=700),
    ),
    rules=MatchRules(amount_tolerance=5, fee_tolerance=10),
    expected=pay(
        {
            "a-in": ["MATCHED"],
            "a-out": ["AMOUNT_MISMATCH"],
            "a-neg-in": ["MATCHED"],
            "a-neg-out": ["AMOUNT_MISMATCH"],
            "f-in": ["MATCHED"],
            "f-out": ["FEE_MISMATCH"],
            "f-null": ["MATCHED"],
            "both": ["AMOUNT_MISMATCH"],
        }
    ),
)

ORDER_AMOUNT = Scenario(
    "order_amount_rule",
    ledger=(record("coupon", 1000), record("plain", 1000), record("more", 1000)),
    channel=(
        record("coupon", 800, order_amount=1000),
        record("plain", 1000),
        record("more", 1000, order_amount=1100),
    ),
    rules=MatchRules(compare_amount="order_amount"),
    expected=pay({"coupon": ["MATCHED"], "plain": ["MATCHED"], "more": ["AMOUNT_MISMATCH"]}),
)

_EDGES = {
    "23:49:59": False,
    "23:50:00": True,
    "23:59:59": True,
    "00:00:00": True,
    "00:09:59": True,
    "00:10:00": False,
}

CROSS_DAY_EDGES = Scenario(
    "cross_day_window_edges",
    ledger=tuple(record(f"l-{at}", local_time=at) for at in _EDGES),
    channel=tuple(record(f"c-{at}", local_time=at) for at in _EDGES),
    expected={
        **pay(
            {
                f"l-{at}": ["CARRIED_OVER" if near else "MISSING_IN_CHANNEL"]
                for at, near in _EDGES.items()
            }
        ),
        **pay(
            {
                f"c-{at}": ["CARRIED_OVER" if near else "MISSING_IN_LEDGER"]
                for at, near in _EDGES.items()
            }
        ),
    },
)

WINDOW_ZERO = Scenario(
    "window_zero_disables_carry_over",
    ledger=(record("late", local_time="23:59:59"),),
    channel=(record("early", local_time="00:00:00"),),
    rules=MatchRules(cross_day_window=timedelta(0)),
    expected=pay({"late": ["MISSING_IN_CHANNEL"], "early": ["MISSING_IN_LEDGER"]}),
)


def _pooled(order_id: str, side: str, first_seen: date, amount: int = 100) -> Record:
    rec = record(order_id, amount, local_time="23:58:00", day=first_seen, line_no=50)
    return pooled(rec, side, first_seen)


POOL_AGING = Scenario(
    "pool_matches_then_ages_past_t_plus_n",
    ledger=(record("waited-c", local_time="00:03:00"), record("short", local_time="00:04:00")),
    channel=(record("waited-l", local_time="00:01:00"),),
    pool=(
        _pooled("waited-l", "ledger", YESTERDAY),
        _pooled("waited-c", "channel", YESTERDAY),
        _pooled("still", "channel", YESTERDAY),
        _pooled("edge", "ledger", DAY - timedelta(days=3)),
        _pooled("old", "ledger", DAY - timedelta(days=4)),
        _pooled("old-c", "channel", DAY - timedelta(days=4)),
        _pooled("both", "ledger", DAY - timedelta(days=2)),
        _pooled("both", "channel", YESTERDAY),
        _pooled("short", "channel", YESTERDAY, amount=90),
    ),
    rules=MatchRules(carry_days=3),
    expected=pay(
        {
            "waited-l": ["MATCHED"],
            "waited-c": ["MATCHED"],
            "still": ["CARRIED_OVER"],
            "edge": ["CARRIED_OVER"],
            "old": ["MISSING_IN_CHANNEL"],
            "old-c": ["MISSING_IN_LEDGER"],
            "both": ["MATCHED"],
            "short": ["AMOUNT_MISMATCH"],
        }
    ),
)

POOL_NO_GRACE = Scenario(
    "carry_days_zero_ages_the_pool_at_once",
    ledger=(),
    channel=(record("fresh", local_time="23:59:00"),),
    pool=(_pooled("waited", "ledger", YESTERDAY),),
    rules=MatchRules(carry_days=0),
    expected=pay({"waited": ["MISSING_IN_CHANNEL"], "fresh": ["CARRIED_OVER"]}),
)

REFUNDS = Scenario(
    "refunds",
    ledger=(
        record("o1", status="REFUNDED"),
        refund("r1"),
        refund("r2", status="FAILED"),
        refund("r3", 30),
        record("x"),
        refund("r4", status="PROCESSING"),
    ),
    channel=(
        record("o1"),
        refund("r1"),
        refund("r2"),
        refund("r3", 25),
        refund("x"),
        refund("r4", status="PROCESSING"),
        refund("r5", local_time="23:58:00"),
    ),
    expected={
        ("PAY", "o1"): ["MATCHED"],
        ("REFUND", "r1"): ["MATCHED"],
        ("REFUND", "r2"): ["STATUS_MISMATCH"],
        ("REFUND", "r3"): ["AMOUNT_MISMATCH"],
        ("PAY", "x"): ["MISSING_IN_CHANNEL"],
        ("REFUND", "x"): ["MISSING_IN_LEDGER"],
        # Neither side's refund went through: they agree, nothing moved.
        ("REFUND", "r4"): ["MATCHED"],
        ("REFUND", "r5"): ["CARRIED_OVER"],
    },
)

STATUSES_AND_CURRENCY = Scenario(
    "statuses_and_currency",
    ledger=(
        record("closed", status="CLOSED"),
        record("both-closed", status="CLOSED"),
        record("revoked", status="REVOKED"),
        record("usd", currency="USD"),
        record("usd-both", currency="USD"),
    ),
    channel=(
        record("closed"),
        record("both-closed", status="CLOSED"),
        record("revoked", status="CLOSED"),
        record("usd"),
        record("usd-both", currency="USD"),
    ),
    expected=pay(
        {
            "closed": ["STATUS_MISMATCH"],
            "both-closed": ["MATCHED"],
            "revoked": ["MATCHED"],
            "usd": ["AMOUNT_MISMATCH"],
            "usd-both": ["MATCHED"],
        }
    ),
)

CUSTOM_SUCCESS = Scenario(
    "custom_success_statuses",
    ledger=(record("refunded", status="REFUNDED"), record("processing", status="PROCESSING")),
    channel=(record("refunded"), record("processing")),
    rules=MatchRules(success_statuses={"PAY": frozenset({"SUCCESS", "PROCESSING"})}),
    expected=pay({"refunded": ["STATUS_MISMATCH"], "processing": ["MATCHED"]}),
)


def _merchant(rec: Record, merchant_id: str) -> Record:
    return {**rec, "merchant_id": merchant_id}


KEYS = Scenario(
    "merchant_and_channel_in_the_key",
    ledger=(
        _merchant(record("m"), "A"),
        record("c", channel="alipay"),
    ),
    channel=(
        _merchant(record("m"), "B"),
        record("c", channel="wechat"),
    ),
    rules=MatchRules(key=("channel", "merchant_id", "kind", "order_id")),
    expected=pay(
        {
            "m": ["MISSING_IN_CHANNEL", "MISSING_IN_LEDGER"],
            "c": ["MISSING_IN_CHANNEL", "MISSING_IN_LEDGER"],
        }
    ),
)

UTC_DAY = Scenario(
    "accounting_day_in_another_zone",
    # Shanghai wall-clock times; the channel's day runs 00:00-24:00 UTC (08:00 Shanghai).
    ledger=(record("utc-late", local_time="07:55:00"), record("utc-noon", local_time="12:00:00")),
    channel=(record("utc-early", local_time="08:05:00"),),
    rules=MatchRules(timezone="UTC"),
    expected=pay(
        {
            "utc-late": ["CARRIED_OVER"],
            "utc-noon": ["MISSING_IN_CHANNEL"],
            "utc-early": ["CARRIED_OVER"],
        }
    ),
)

EMPTY = Scenario("nothing_in", ledger=(), channel=(), expected={})

SCENARIOS = (
    EVERY_OUTCOME,
    DUPLICATES,
    TOLERANCES,
    ORDER_AMOUNT,
    CROSS_DAY_EDGES,
    WINDOW_ZERO,
    POOL_AGING,
    POOL_NO_GRACE,
    REFUNDS,
    STATUSES_AND_CURRENCY,
    CUSTOM_SUCCESS,
    KEYS,
    UTC_DAY,
    EMPTY,
)
