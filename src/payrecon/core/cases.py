"""What a discrepancy case is worth, what an action on it should move, and automatic rules.

Pure functions over a case's figures (minor units; fees in thousandths of a minor unit as
in :mod:`payrecon.core.schema`). The case service and the back-office both use them, so
the amount an operator is offered, and the limits checked, are defined once.
"""

from __future__ import annotations

from dataclasses import dataclass

from payrecon.core.money import FEE_SCALE
from payrecon.core.outcomes import Outcome
from payrecon.core.workflow import ActionKind
from payrecon.errors import TransitionError

_FEE_PER_MINOR = int(10 ** (FEE_SCALE - 2))  # fee units in one minor unit (分)


@dataclass(frozen=True)
class CaseFigures:
    """The money on both sides of a discrepancy."""

    outcome: Outcome
    ledger_amount: int | None
    channel_amount: int | None
    amount_diff: int | None  # channel - ledger
    ledger_fee: int | None = None
    channel_fee: int | None = None

    @property
    def fee_diff(self) -> int | None:
        """channel fee - ledger fee, in minor units rounded away from zero."""
        if self.ledger_fee is None or self.channel_fee is None:
            return None
        diff = self.channel_fee - self.ledger_fee
        whole = -(-abs(diff) // _FEE_PER_MINOR)
        return whole if diff >= 0 else -whole

    @property
    def stake(self) -> int:
        """The money at stake (minor units, never negative): what severity is judged on."""
        if self.outcome is Outcome.FEE_MISMATCH and self.fee_diff is not None:
            return abs(self.fee_diff)
        if self.outcome is Outcome.AMOUNT_MISMATCH and self.amount_diff is not None:
            return abs(self.amount_diff)
        present = [a for a in (self.channel_amount, self.ledger_amount) if a is not None]
        return max((abs(a) for a in present), default=0)

    def suggested(self, kind: ActionKind) -> int | None:
        """The amount an action would move by default, or ``None`` when it moves none."""
        channel, ledger, diff = self.channel_amount, self.ledger_amount, self.amount_diff
        if kind is ActionKind.SUPPLEMENT_ORDER:
            return channel
        if kind is ActionKind.REFUND:
            if self.outcome is Outcome.AMOUNT_MISMATCH:
                return diff if diff is not None and diff > 0 else None
            return channel
        if kind is ActionKind.ADJUST:
            if self.outcome is Outcome.FEE_MISMATCH:
                return self.fee_diff
            if diff is not None:
                return diff
            if channel is not None:
                return channel
            return -ledger if ledger is not None else None
        if kind is ActionKind.WRITE_OFF:
            return self.stake
        return None

    def check(self, kind: ActionKind, amount: int | None) -> int | None:
        """``amount`` (or the suggestion when ``None``), checked against the case's money."""
        chosen = self.suggested(kind) if amount is None else amount
        if not kind.executes:
            return chosen
        if chosen is None:
            raise TransitionError(f"{kind.value} ({kind.label}) needs an amount for this case")
        if chosen == 0:
            raise TransitionError(f"{kind.value} ({kind.label}) of zero moves nothing")
        if chosen < 0 and kind is not ActionKind.ADJUST:
            raise TransitionError(f"{kind.value} ({kind.label}) amount must be positive")
        ceiling = max(
            abs(v)
            for v in (self.ledger_amount, self.channel_amount, self.amount_diff, self.stake, 0)
            if v is not None
        )
        if abs(chosen) > ceiling:
            raise TransitionError(
                f"{kind.value} ({kind.label}) of {chosen} exceeds the money in this case"
                f" ({ceiling})"
            )
        return chosen


@dataclass(frozen=True)
class RuleFacts:
    """What an automatic rule looks at."""

    outcome: Outcome
    channel: str
    ledger_status: str | None
    channel_status: str | None
    stake: int


@dataclass(frozen=True)
class AutoRule:
    """When a new case matches every condition given, propose ``propose`` as ``rule:name``."""

    name: str
    propose: ActionKind
    outcomes: frozenset[Outcome] = frozenset()
    channels: frozenset[str] = frozenset()
    ledger_statuses: frozenset[str] = frozenset()
    channel_statuses: frozenset[str] = frozenset()
    max_amount: int | None = None
    reason: str = ""

    def applies(self, facts: RuleFacts) -> bool:
        return (
            _allows(self.outcomes, facts.outcome)
            and _allows(self.channels, facts.channel)
            and _allows(self.ledger_statuses, facts.ledger_status)
            and _allows(self.channel_statuses, facts.channel_status)
            and (self.max_amount is None or facts.stake <= self.max_amount)
        )


def _allows(allowed: frozenset[str] | frozenset[Outcome], value: str | None) -> bool:
    return not allowed or (value is not None and value in allowed)
