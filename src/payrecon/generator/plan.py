"""The pure part of the generator: which keys exist, what is injected, and the truth.

A day is ``keys`` match keys (a paid order or a refund), planned in chunks of
:data:`CHUNK_KEYS`. A chunk's plan depends only on (seed, channel, day, chunk number), so
chunks are planned one after another and a 100M-key day needs no more memory than one
chunk. No I/O here: the channel and ledger writers turn a :class:`ChunkPlan` into text.

The truth follows the engine's classification with default :class:`MatchRules`:
both sides present -> status, then amount, then fee decide; one side only -> inside the
cross-day window it is CARRIED_OVER, otherwise MISSING_*; an extra ledger copy of a key is
one DUPLICATE row while the first copy matches normally.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, timedelta
from enum import IntEnum
from functools import cache

import pyarrow as pa
import pyarrow.compute as pc

from payrecon.core.outcomes import Outcome
from payrecon.core.rules import MatchRules
from payrecon.core.schema import Kind, Status
from payrecon.generator.columns import (
    arange,
    below,
    bits,
    bits_below,
    bits_chance,
    column,
    concat,
    fixed_digits,
    lit,
    modulo,
    pool,
    random_u32,
    span,
)

CHUNK_KEYS = 100_000
MAX_KEYS = 899_999_999  # order ids carry a 9-digit permutation of the key number
MIN_KEYS_FOR_ALL_KINDS = 200

REFUND_SHARE = 0.05
COUPON_SHARE = 0.03
LEDGER_FEE_EMPTY_SHARE = 0.10  # platforms that do not book the fee per order
LEDGER_REFUNDED_SHARE = 0.02  # paid orders refunded after the day: still a match
LOW_RATE_SHARE = 0.20
ORIGIN_DAYS = 30  # refunds refund orders paid 1..30 days earlier

DAY_SECONDS = 86_400
_WINDOW = int(MatchRules().cross_day_window.total_seconds())
# One second of margin at every edge, so neither `<` nor `<=` at a boundary changes the truth.
NORMAL_SECONDS = (_WINDOW + 1, DAY_SECONDS - _WINDOW - 1)
EARLY_SECONDS = (1, _WINDOW - 1)
LATE_SECONDS = (DAY_SECONDS - _WINDOW + 1, DAY_SECONDS - 1)

# Magnitudes for amounts in fen: a few cents up to 5,000 yuan, weighted to everyday prices.
_AMOUNT_CEILINGS = pa.array([100, 1_000, 10_000, 10_000, 50_000, 100_000, 500_000], pa.int64())
_ORDER_MULTIPLIER = 282_475_249  # 7**10: coprime with 2, 3, 5 (see fixed_digits)
_CHANNEL_DIGIT = {
    "wechat": "1",
    "alipay": "2",
    "unionpay": "3",
    "stripe": "4",
    "paypal": "5",
    "adyen": "6",
}


class Variant(IntEnum):
    """What happens to one key. The codes are stored in the plan's ``variant`` column."""

    NORMAL = 0
    MISSING_IN_CHANNEL = 1
    MISSING_IN_LEDGER = 2
    AMOUNT_SHORT = 3  # 短款: the ledger expects more than the channel settled
    AMOUNT_OVER = 4  # 长款: the channel settled more than the ledger expects
    STATUS = 5  # ledger PROCESSING / CLOSED while the channel says SUCCESS
    FEE = 6
    DUPLICATE = 7  # the ledger row is written twice
    CARRIED_LEDGER = 8  # ledger only, inside a cross-day window
    CARRIED_CHANNEL = 9  # channel only, inside a cross-day window


OUTCOME_OF: dict[Variant, Outcome] = {
    Variant.NORMAL: Outcome.MATCHED,
    Variant.MISSING_IN_CHANNEL: Outcome.MISSING_IN_CHANNEL,
    Variant.MISSING_IN_LEDGER: Outcome.MISSING_IN_LEDGER,
    Variant.AMOUNT_SHORT: Outcome.AMOUNT_MISMATCH,
    Variant.AMOUNT_OVER: Outcome.AMOUNT_MISMATCH,
    Variant.STATUS: Outcome.STATUS_MISMATCH,
    Variant.FEE: Outcome.FEE_MISMATCH,
    Variant.DUPLICATE: Outcome.MATCHED,  # plus one DUPLICATE row for the copy
    Variant.CARRIED_LEDGER: Outcome.CARRIED_OVER,
    Variant.CARRIED_CHANNEL: Outcome.CARRIED_OVER,
}
INJECTED: tuple[Variant, ...] = tuple(v for v in Variant if v is not Variant.NORMAL)
# Relative frequency after the guaranteed first round; two-sided kinds share their weight.
_WEIGHTS = (2, 2, 1, 1, 2, 2, 2, 1, 1)
_OUTCOME_TEXT = pa.array([OUTCOME_OF[v].value for v in Variant], pa.string())

BILL_COLUMNS = (
    "key",
    "refund",
    "seconds",
    "amount",
    "coupon",
    "rate_bp",
    "fee",
    "origin_back",
    "origin_seconds",
    "pick",
    "order_id",
    "origin_order_id",
)
TRUTH = pa.schema(
    [
        pa.field("channel", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("order_id", pa.string(), nullable=False),
        pa.field("outcome", pa.string(), nullable=False),
    ]
)


@dataclass(frozen=True)
class DaySpec:
    """Everything that determines one generated day."""

    channel: str
    day: date
    keys: int
    seed: int
    discrepancy_rate: float
    merchant_id: str

    @property
    def injected(self) -> int:
        """Keys that get a discrepancy: the rate, but one of each variant from 200 keys on."""
        count = round(self.discrepancy_rate * self.keys)
        if self.discrepancy_rate > 0 and self.keys >= MIN_KEYS_FOR_ALL_KINDS:
            count = max(count, len(INJECTED))
        return min(count, self.keys)

    def injected_before(self, key: int) -> int:
        """Injected keys among the first ``key`` keys: spreads them evenly over chunks."""
        return self.injected * key // self.keys if self.keys else 0

    def rng(self, *labels: object) -> random.Random:
        """A generator seeded by the day and ``labels``; string seeds hash stably (SHA-512)."""
        parts = ("payrecon.generator", self.seed, self.channel, self.day.isoformat(), *labels)
        return random.Random(":".join(str(part) for part in parts))

    def date_text(self, back: int = 0, separator: str = "") -> str:
        """The day ``back`` days before this one, ``yyyymmdd`` or ``yyyy-mm-dd``."""
        return (self.day - timedelta(days=back)).strftime(f"%Y{separator}%m{separator}%d")

    def origin_dates(self, separator: str = "") -> tuple[str, ...]:
        """Date texts indexed by days back (0..ORIGIN_DAYS), for refunds' original orders."""
        return tuple(self.date_text(back, separator) for back in range(ORIGIN_DAYS + 1))


@dataclass(frozen=True)
class ChunkPlan:
    """The planned keys ``start .. start + size`` of a day; one row per key in ``keys``.

    Columns: key, refund, variant, seconds (local second of the day), amount (channel,
    fen), ledger_amount, coupon, rate_bp, fee (channel, thousandths of a fen, negative on
    refunds), ledger_fee (null = not booked), ledger_status, origin_back, origin_key,
    origin_seconds, pick (31 random bits for cosmetic fields), order_id, origin_order_id
    (null on PAY), in_channel, in_ledger, duplicate.
    """

    spec: DaySpec
    number: int
    start: int
    keys: pa.Table

    @property
    def size(self) -> int:
        return int(self.keys.num_rows)

    def column(self, name: str) -> pa.Array:
        return column(self.keys, name)

    def channel_rows(self, extra: dict[str, pa.Array]) -> tuple[pa.Table, pa.Table]:
        """(payments, refunds) the channel reports, with the columns bills need + ``extra``."""
        keys = self.keys.select(BILL_COLUMNS)
        for name, values in extra.items():
            keys = keys.append_column(name, values)
        shown, refund = self.column("in_channel"), self.column("refund")
        pays = pc.and_(shown, pc.invert(refund))
        return keys.filter(pays), keys.filter(pc.and_(shown, refund))


def chunks(spec: DaySpec) -> Iterator[tuple[int, int, int]]:
    """(number, first key, size) of each chunk of the day, for :func:`plan_chunk`."""
    step = CHUNK_KEYS
    for number, start in enumerate(range(0, spec.keys, step)):
        yield number, start, min(step, spec.keys - start)


def plan_chunk(spec: DaySpec, number: int, start: int, size: int) -> ChunkPlan:
    """Decide everything about keys ``start .. start + size`` of the day."""
    rng = spec.rng("plan", number)
    variant = _variants(spec, rng, start, size)
    # Drawing random bytes dominates planning, so small draws share 32-bit words:
    # flags: refund 0-11, coupon 12-23, origin day 24-31; shares: rate 0-11, empty
    # ledger fee 12-23, refunded 24-31; odds: pending 0, lower fee 1, early 2, fee delta
    # 3-9, amount delta 10-22, amount magnitude 23-31; extra: coupon amount 0-15.
    draws = {name: random_u32(rng, size) for name in ("flags", "shares", "odds", "extra")}
    not_fee = pc.invert(_is(variant, Variant.FEE))
    refund = pc.and_(bits_chance(draws["flags"], 0, 12, REFUND_SHARE), not_fee)
    columns = {
        "key": pc.add(arange(size), lit(start)) if start else arange(size),
        "refund": refund,
        "variant": variant,
        "seconds": _seconds(span(rng, size, NORMAL_SECONDS), draws["odds"], variant),
        **_money(rng, draws, variant, refund),
        "origin_back": pc.add(bits_below(draws["flags"], 24, 8, ORIGIN_DAYS), lit(1)),
        "origin_key": below(rng, size, max(spec.keys, 1)),
        "origin_seconds": span(rng, size, NORMAL_SECONDS),
        "pick": below(rng, size, 1 << 31),
    }
    columns |= _presence(variant)
    columns |= _order_ids(spec, columns)
    return ChunkPlan(spec, number, start, pa.table(columns))


def _variants(spec: DaySpec, rng: random.Random, start: int, size: int) -> pa.Array:
    first = spec.injected_before(start)
    count = spec.injected_before(start + size) - first
    codes = bytearray(size)
    for offset, position in enumerate(sorted(rng.sample(range(size), count))):
        codes[position] = _variant_for(first + offset, rng)
    return pa.Array.from_buffers(pa.int8(), size, [None, pa.py_buffer(bytes(codes))])


def _variant_for(injected_number: int, rng: random.Random) -> Variant:
    # The first injected keys of the day take every variant once, so small days show all.
    if injected_number < len(INJECTED):
        return INJECTED[injected_number]
    return rng.choices(INJECTED, weights=_WEIGHTS)[0]


def _is(variant: pa.Array, *kinds: Variant) -> pa.Array:
    return pc.take(_membership(kinds), variant)


@cache
def _membership(kinds: tuple[Variant, ...]) -> pa.Array:
    # Indexed by variant code: a gather is cheaper than a hash-set membership test.
    return pa.array([variant in kinds for variant in Variant], pa.bool_())


def _seconds(normal: pa.Array, odds: pa.Array, variant: pa.Array) -> pa.Array:
    # A carried record sits in the early or the late window; its offset there reuses the
    # normal draw (the two never both apply to one key).
    early = pc.equal(bits(odds, 2, 1), lit(1))
    offset = modulo(normal, EARLY_SECONDS[1] - EARLY_SECONDS[0])
    edge = pc.add(offset, pc.if_else(early, lit(EARLY_SECONDS[0]), lit(LATE_SECONDS[0])))
    carried = _is(variant, Variant.CARRIED_LEDGER, Variant.CARRIED_CHANNEL)
    return pc.if_else(carried, edge, normal)


def _money(
    rng: random.Random, draws: dict[str, pa.Array], variant: pa.Array, refund: pa.Array
) -> dict[str, pa.Array]:
    odds = draws["odds"]
    ceiling = pc.take(_AMOUNT_CEILINGS, bits_below(odds, 23, 9, len(_AMOUNT_CEILINGS)))
    base = pc.add(below(rng, len(variant), ceiling), lit(1))
    delta = pc.add(bits(odds, 10, 13), lit(1))
    amount = pc.if_else(_is(variant, Variant.AMOUNT_OVER), pc.add(base, delta), base)
    ledger_amount = pc.if_else(_is(variant, Variant.AMOUNT_SHORT), pc.add(base, delta), base)
    with_coupon = pc.and_(bits_chance(draws["flags"], 12, 12, COUPON_SHARE), pc.invert(refund))
    coupon_amount = pc.add(bits_below(draws["extra"], 0, 16, 1_900), lit(100))
    coupon = pc.if_else(with_coupon, coupon_amount, lit(0))
    low_rate = bits_chance(draws["shares"], 0, 12, LOW_RATE_SHARE)
    rate_bp = pc.if_else(low_rate, lit(38), lit(60))
    fee = _fee(amount, rate_bp, refund)
    return {
        "amount": amount,
        "ledger_amount": ledger_amount,
        "coupon": coupon,
        "rate_bp": rate_bp,
        "fee": fee,
        "ledger_fee": _ledger_fee(draws, variant, refund, fee),
        "ledger_status": _ledger_status(draws, variant, refund),
    }


def _fee(amount: pa.Array, rate_bp: pa.Array, refund: pa.Array) -> pa.Array:
    # Channels round the fee half-up to the fen and write it with trailing zeros
    # (WeChat `0.74000`); a refund returns the fee on its amount, written negative.
    fen = pc.divide(pc.add(pc.multiply(amount, rate_bp), lit(5_000)), lit(10_000))
    thousandths = pc.multiply(fen, lit(1_000))
    return pc.if_else(refund, pc.negate(thousandths), thousandths)


def _ledger_fee(
    draws: dict[str, pa.Array], variant: pa.Array, refund: pa.Array, fee: pa.Array
) -> pa.Array:
    odds = draws["odds"]
    delta = pc.multiply(pc.add(bits(odds, 3, 7), lit(1)), lit(1_000))
    lower = pc.and_(pc.equal(bits(odds, 1, 1), lit(1)), pc.greater_equal(fee, delta))
    wrong = pc.if_else(lower, pc.subtract(fee, delta), pc.add(fee, delta))
    # Refund fees stay unbooked: whether a parser keeps their sign is its own business.
    unbooked = bits_chance(draws["shares"], 12, 12, LEDGER_FEE_EMPTY_SHARE)
    booked = pc.if_else(pc.or_(refund, unbooked), lit(None, pa.int64()), fee)
    return pc.if_else(_is(variant, Variant.FEE), wrong, booked)


def _ledger_status(draws: dict[str, pa.Array], variant: pa.Array, refund: pa.Array) -> pa.Array:
    processing = pc.equal(bits(draws["odds"], 0, 1), lit(1))
    pending = pc.if_else(processing, lit(Status.PROCESSING.value), lit(Status.CLOSED.value))
    later = bits_chance(draws["shares"], 24, 8, LEDGER_REFUNDED_SHARE)
    refunded = pc.and_(later, pc.invert(refund))
    settled = pc.if_else(refunded, lit(Status.REFUNDED.value), lit(Status.SUCCESS.value))
    return pc.if_else(_is(variant, Variant.STATUS), pending, settled)


def _presence(variant: pa.Array) -> dict[str, pa.Array]:
    ledger_only = _is(variant, Variant.MISSING_IN_CHANNEL, Variant.CARRIED_LEDGER)
    channel_only = _is(variant, Variant.MISSING_IN_LEDGER, Variant.CARRIED_CHANNEL)
    return {
        "in_channel": pc.invert(ledger_only),
        "in_ledger": pc.invert(channel_only),
        "duplicate": _is(variant, Variant.DUPLICATE),
    }


def _order_ids(spec: DaySpec, columns: dict[str, pa.Array]) -> dict[str, pa.Array]:
    # Platform order numbers: S/R + date + channel digit + 9-digit permutation of the key.
    # The date makes them unique across days, so consecutive days can be reconciled.
    offset = spec.rng("order-ids").randrange(10**9)
    digit = _CHANNEL_DIGIT.get(spec.channel, "9")
    refund = columns["refund"]
    kinds = (f"S{spec.date_text()}{digit}", f"R{spec.date_text()}{digit}")
    own = fixed_digits(columns["key"], _ORDER_MULTIPLIER, offset, 9)
    days = tuple(f"S{day}{digit}" for day in spec.origin_dates())
    # Only refunds have an original order: build those few ids and scatter them.
    origin = fixed_digits(columns["origin_key"].filter(refund), _ORDER_MULTIPLIER, offset, 9)
    origin_id = concat([pool(days, columns["origin_back"].filter(refund)), origin])
    nulls = pa.nulls(len(refund), pa.string())
    return {
        "order_id": concat([pool(kinds, pc.cast(refund, pa.int64())), own]),
        "origin_order_id": pc.replace_with_mask(nulls, refund, origin_id),
    }


def kind_text(refund: pa.Array) -> pa.Array:
    """``PAY`` / ``REFUND`` for the plan's ``refund`` flags."""
    return pool((Kind.PAY.value, Kind.REFUND.value), pc.cast(refund, pa.int64())).gather(None)


def truth(plan: ChunkPlan) -> pa.Table:
    """Expected outcome rows for a chunk: one per key, plus one per duplicate record."""
    size = plan.size
    rows = pa.table(
        {
            "channel": pa.repeat(lit(plan.spec.channel), size),
            "kind": kind_text(plan.column("refund")),
            "order_id": plan.column("order_id"),
            "outcome": pc.take(_OUTCOME_TEXT, plan.column("variant")),
        },
        schema=TRUTH,
    )
    copies = rows.filter(plan.column("duplicate"))
    duplicate = pa.repeat(lit(Outcome.DUPLICATE.value), copies.num_rows)
    copies = copies.set_column(3, TRUTH.field("outcome"), duplicate)
    return pa.concat_tables([rows, copies])
