"""Match rules: the data that parameterises the one match definition.

Pure values, no I/O. The engines compile :class:`MatchRules` into the match definition
(``payrecon.engines.definition``); nothing else decides what matches.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from types import MappingProxyType
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from payrecon.core.schema import Kind, Status
from payrecon.errors import ConfigError

DEFAULT_SUCCESS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        # A paid order that was refunded later was still paid: its PAY row matches.
        Kind.PAY.value: frozenset({Status.SUCCESS.value, Status.REFUNDED.value}),
        Kind.REFUND.value: frozenset({Status.SUCCESS.value}),
    }
)

KEY_COLUMNS = ("channel", "merchant_id", "kind", "order_id")


@dataclass(frozen=True)
class MatchRules:
    """What makes two records the same payment, and when they disagree.

    ``key``: columns that identify one record on each side (default channel, kind, order id).
    ``amount_tolerance``: largest |channel - ledger| in minor units still counted as equal.
    ``fee_tolerance``: the same for fees, in thousandths of a minor unit.
    ``compare_amount``: the channel amount compared with the ledger's ``amount``: the
    settled amount (``amount``, WeChat 应结订单金额) or the order total before coupons
    (``order_amount``, WeChat 订单金额) for platforms whose ledger records order totals.
    ``success_statuses``: per kind, the statuses that mean "the money moved"; a pair whose
    sides disagree on that is a STATUS_MISMATCH.
    ``cross_day_window``: a one-sided record this close to a day boundary is carried over.
    ``carry_days``: a carried-over record becomes a discrepancy when older than T+N.
    """

    key: tuple[str, ...] = ("channel", "kind", "order_id")
    amount_tolerance: int = 0
    fee_tolerance: int = 0
    compare_amount: Literal["amount", "order_amount"] = "amount"
    success_statuses: Mapping[str, frozenset[str]] = field(default_factory=lambda: DEFAULT_SUCCESS)
    cross_day_window: timedelta = timedelta(minutes=10)
    carry_days: int = 3
    timezone: str = "Asia/Shanghai"

    def __post_init__(self) -> None:
        unknown = [column for column in self.key if column not in KEY_COLUMNS]
        if unknown or "order_id" not in self.key:
            raise ValueError(
                f"match key must include order_id and use only {KEY_COLUMNS}, got {self.key}"
            )
        if self.amount_tolerance < 0 or self.fee_tolerance < 0:
            raise ValueError("tolerances must not be negative")
        if self.carry_days < 0:
            raise ValueError("carry_days must not be negative")
        if self.cross_day_window < timedelta(0) or self.cross_day_window >= timedelta(hours=12):
            raise ValueError("cross_day_window must be between 0 and 12 hours")


@dataclass(frozen=True)
class AccountingDay:
    """One accounting day (账期) in the channel's zone, as UTC instants."""

    day: date
    timezone: str

    @property
    def start(self) -> datetime:
        local = datetime.combine(self.day, time.min, tzinfo=ZoneInfo(self.timezone))
        return local.astimezone(UTC)

    @property
    def end(self) -> datetime:
        return AccountingDay(self.day + timedelta(days=1), self.timezone).start

    def carry_cutoff(self, carry_days: int) -> date:
        """Pool entries first seen before this day have aged past T+N."""
        return self.day - timedelta(days=carry_days)


def check_timezone(name: str, what: str = "time zone") -> str:
    """Return ``name`` if it is an IANA zone (``Asia/Shanghai``), else raise ConfigError."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{what}: unknown time zone {name!r}") from None
    return name
