"""Realistic days of payment data with a known truth, for tests, demos and benchmarks.

:func:`generate_day` writes one channel's bill in the channel's real format, the
platform's ledger for the same day, and ``truth.parquet``: the outcome rows the match
engine must produce with default rules. Output streams chunk by chunk (see
:mod:`payrecon.generator.plan`), so 100M keys need no more memory than one chunk.

Consecutive days (not implemented yet; ``carried_in`` is reserved for it): day D would
also write the records it left inside a cross-day window (``CARRIED_OVER`` rows, with
their side and full record) to a ``carried.parquet``. Day D+1, given that file as
``carried_in``, writes each ledger-only late record's channel counterpart early in its
bill (and vice versa), and its truth expects those keys matched against the suspense
pool instead of missing. Order ids already embed the date, so days never collide, and a
refund's ``origin_order_id`` points into an earlier day's id space with the same seed.
"""

from __future__ import annotations

import os
import random
import re
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Literal, TypeVar

import pyarrow as pa

from payrecon.errors import ConfigError
from payrecon.generator.adyen import AdyenBill
from payrecon.generator.alipay import AlipayBill
from payrecon.generator.ledger import LedgerWriter
from payrecon.generator.output import BillChunk, TruthWriter
from payrecon.generator.paypal import PaypalBill
from payrecon.generator.plan import MAX_KEYS, DaySpec, chunks, plan_chunk, truth
from payrecon.generator.stripe import StripeBill
from payrecon.generator.unionpay import UnionpayBill
from payrecon.generator.wechat import WechatBill

__all__ = ["GeneratedDay", "generate_day"]

Channel = Literal["wechat", "alipay", "unionpay", "stripe", "paypal", "adyen"]
Bill = WechatBill | AlipayBill | UnionpayBill | StripeBill | PaypalBill | AdyenBill
_T = TypeVar("_T")
_R = TypeVar("_R")
# Arrow kernels release the GIL, so chunks render in parallel; a few are kept in flight.
WORKERS = min(4, os.cpu_count() or 1)
_MERCHANT_ID = {
    "wechat": re.compile(r"[0-9]{8,12}"),
    "alipay": re.compile(r"2088[0-9]{12}"),
    "unionpay": re.compile(r"[0-9]{15}"),  # merId
    "stripe": re.compile(r"acct_[0-9A-Za-z]{16}"),
    "paypal": re.compile(r"[0-9A-Z]{13}"),  # the account id of RH/SH
    "adyen": re.compile(r"[0-9A-Za-z_]{3,80}"),  # the merchant account name
}
_BILLS: dict[str, type[Bill]] = {
    "wechat": WechatBill,
    "alipay": AlipayBill,
    "unionpay": UnionpayBill,
    "stripe": StripeBill,
    "paypal": PaypalBill,
    "adyen": AdyenBill,
}


@dataclass(frozen=True)
class GeneratedDay:
    """What :func:`generate_day` wrote. ``rows`` counts the bill's detail rows."""

    bills: list[Path]
    ledger: Path
    truth: Path
    rows: int


def generate_day(
    channel: Channel,
    day: date,
    rows: int,
    out_dir: Path,
    *,
    seed: int = 0,
    discrepancy_rate: float = 0.01,
    merchant_id: str | None = None,
    carried_in: Path | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> GeneratedDay:
    """Write one day of ``channel`` bill, ledger and truth into ``out_dir``.

    ``rows`` is the number of match keys (paid orders and refunds); about
    ``discrepancy_rate`` of them get an injected discrepancy, and from 200 keys on every
    outcome kind appears. The same arguments always give the same bytes.
    ``on_progress`` is called after each chunk with the number of keys it planned.
    """
    if carried_in is not None:
        raise NotImplementedError("carried_in: multi-day generation is not implemented yet")
    spec = _spec(channel, day, rows, seed, discrepancy_rate, merchant_id)
    out_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack:
        bill = _bill(out_dir, spec)
        stack.enter_context(bill)
        ledger = stack.enter_context(LedgerWriter(out_dir, spec))
        truths = stack.enter_context(TruthWriter(out_dir))
        pool = stack.enter_context(ThreadPoolExecutor(WORKERS, "payrecon-generator"))

        def render(chunk: tuple[int, int, int]) -> _Rendered:
            plan = plan_chunk(spec, *chunk)
            bill_chunk, txn_ids = bill.render(plan)
            return _Rendered(plan.size, bill_chunk, ledger.render(plan, txn_ids), truth(plan))

        for done in _in_order(pool, render, chunks(spec), ahead=WORKERS + 1):
            bill.append(done.bill)
            ledger.append(*done.ledger)
            truths.append(done.truth)
            if on_progress is not None:
                on_progress(done.keys)
        return GeneratedDay(bill.finish(), ledger.finish(), truths.finish(), bill.rows)


@dataclass(frozen=True)
class _Rendered:
    keys: int
    bill: BillChunk
    ledger: tuple[pa.Buffer, int]
    truth: pa.Table


def _in_order(
    pool: ThreadPoolExecutor, work: Callable[[_T], _R], items: Iterable[_T], ahead: int
) -> Iterator[_R]:
    """``map`` over a pool with at most ``ahead`` results pending, yielded in input order.

    Bounded, unlike ``Executor.map``, which would submit a 100M-row day all at once.
    """
    pending: deque[Future[_R]] = deque()
    try:
        for item in items:
            pending.append(pool.submit(work, item))
            if len(pending) >= ahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:
            future.cancel()


def _bill(out_dir: Path, spec: DaySpec) -> Bill:
    return _BILLS[spec.channel](out_dir, spec)


def _spec(
    channel: str, day: date, keys: int, seed: int, rate: float, merchant_id: str | None
) -> DaySpec:
    if channel not in _MERCHANT_ID:
        raise ConfigError(f"unknown channel {channel!r}; expected one of {sorted(_MERCHANT_ID)}")
    if not 0 <= keys <= MAX_KEYS:
        raise ConfigError(f"rows must be between 0 and {MAX_KEYS}, got {keys}")
    if not 0.0 <= rate <= 1.0:
        raise ConfigError(f"discrepancy_rate must be between 0 and 1, got {rate}")
    if isinstance(day, datetime):  # a datetime is a date too; keep only the day
        day = day.date()
    merchant = merchant_id or _default_merchant(channel, seed)
    if not _MERCHANT_ID[channel].fullmatch(merchant):
        pattern = _MERCHANT_ID[channel].pattern
        raise ConfigError(f"{channel} merchant_id must match {pattern}, got {merchant!r}")
    return DaySpec(channel, day, keys, seed, rate, merchant)


def _default_merchant(channel: str, seed: int) -> str:
    # Stable per seed, shaped like the real thing: WeChat mch_id, Alipay PID (2088…).
    number = random.Random(f"payrecon.generator:merchant:{seed}:{channel}").randrange(10**12)
    if channel == "wechat":
        return f"16{number % 10**8:08d}"
    if channel == "unionpay":
        return f"777290{number % 10**9:09d}"
    if channel == "stripe":
        return f"acct_1Payrecon{number % 10**7:07d}"
    if channel == "paypal":
        return f"PAYRECON{number % 10**5:05d}"
    if channel == "adyen":
        return f"PayreconShop{number % 10**4:04d}_ECOM"
    return f"2088{number:012d}"
