"""What the pages show, computed in Python: formatted money, both sides of a case with
the differing fields, and which commands the workflow would let this user give.

Offering a command is a convenience; the case service decides again when it is given.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from payrecon.cases.policy import CasePolicy
from payrecon.core.cases import CaseFigures
from payrecon.core.money import FEE_SCALE, MINOR_SCALE
from payrecon.core.outcomes import Outcome
from payrecon.core.workflow import (
    ACTIONS_FOR,
    ActionKind,
    ActionState,
    Actor,
    CaseFacts,
    CaseState,
    Command,
    PendingAction,
    Request,
    Role,
    decide,
)
from payrecon.errors import WorkflowError

# Fields compared side by side; the provenance fields differ by nature and are not flagged.
RECORD_FIELDS = (
    "merchant_id",
    "channel_txn_id",
    "origin_order_id",
    "status",
    "amount",
    "fee",
    "currency",
    "txn_time",
    "bill_date",
)
PROVENANCE = ("source", "line_no")


def money(minor: int | None, currency: str | None = None) -> str:
    """``123456`` -> ``1,234.56`` (templates only; everything else keeps minor units)."""
    if minor is None:
        return "—"
    text = f"{Decimal(minor).scaleb(-MINOR_SCALE):,.{MINOR_SCALE}f}"
    return f"{text} {currency}" if currency else text


def fee(thousandths: int | None) -> str:
    if thousandths is None:
        return "—"
    return f"{Decimal(thousandths).scaleb(-FEE_SCALE):,.{FEE_SCALE}f}"


@dataclass(frozen=True)
class FieldRow:
    name: str
    ledger: str
    channel: str
    differs: bool


def side_by_side(detail: dict[str, Any]) -> list[FieldRow]:
    """Both records field by field; ``differs`` when both sides have it and disagree."""
    ledger = detail.get("ledger_record") or {}
    channel = detail.get("channel_record") or {}
    flagged = set(filter(None, (detail.get("diff_fields") or "").split(",")))
    rows = []
    for name in (*RECORD_FIELDS, *PROVENANCE):
        left, right = ledger.get(name), channel.get(name)
        both = bool(ledger) and bool(channel)
        differs = name not in PROVENANCE and both and (left != right or name in flagged)
        rows.append(FieldRow(name, _shown(name, left), _shown(name, right), differs))
    return rows


def _shown(name: str, value: Any) -> str:
    if value is None:
        return "—"
    if name == "amount":
        return money(int(value))
    if name == "fee":
        return fee(int(value))
    return str(value)


@dataclass(frozen=True)
class Offer:
    """A command this user could give now, as the workflow sees it."""

    command: str
    label: str
    action: str | None = None
    amount: int | None = None


def pending_of(detail: dict[str, Any]) -> PendingAction | None:
    open_states = (ActionState.PROPOSED.value, ActionState.APPROVED.value)
    for action in reversed(detail.get("actions", [])):
        if action["state"] in open_states:
            return PendingAction(
                action["id"],
                ActionKind(action["kind"]),
                ActionState(action["state"]),
                action["proposed_by"],
                action["amount"],
            )
    return None


def offers(detail: dict[str, Any], actor: Actor, policy: CasePolicy) -> list[Offer]:
    """Every command (and, for proposals, every action) the workflow would allow."""
    outcome = Outcome(detail["outcome"])
    facts = CaseFacts(CaseState(detail["state"]), outcome, detail["assignee"], pending_of(detail))
    figures = _figures(detail)
    candidates = [
        (Request(Command.ASSIGN, assignee=actor.name, assignee_role=actor.role), "认领 claim"),
        (Request(Command.START), "开始处理 start"),
        (Request(Command.WITHDRAW), "撤回 withdraw"),
        (Request(Command.APPROVE), "批准 approve"),
        (Request(Command.REJECT), "驳回 reject"),
        (Request(Command.REOPEN), "重开 reopen"),
        (Request(Command.COMMENT), "评论 comment"),
    ]
    found = [
        Offer(request.command.value, label)
        for request, label in candidates
        if _allowed(facts, actor, request, policy)
    ]
    for kind in sorted(ACTIONS_FOR.get(outcome, frozenset())):
        amount = figures.suggested(kind)
        request = Request(Command.PROPOSE, action=kind, amount=amount)
        if _allowed(facts, actor, request, policy):
            found.append(Offer("propose", kind.label, kind.value, amount))
    return found


def _allowed(facts: CaseFacts, actor: Actor, request: Request, policy: CasePolicy) -> bool:
    try:
        decide(facts, actor, request, policy.approval)
    except WorkflowError:
        return False
    return True


def _figures(detail: dict[str, Any]) -> CaseFigures:
    ledger, channel = detail.get("ledger_record") or {}, detail.get("channel_record") or {}
    return CaseFigures(
        outcome=Outcome(detail["outcome"]),
        ledger_amount=detail["ledger_amount"],
        channel_amount=detail["channel_amount"],
        amount_diff=detail["amount_diff"],
        ledger_fee=ledger.get("fee"),
        channel_fee=channel.get("fee"),
    )


def roles_at_least(role: Role) -> list[str]:
    return [r.value for r in Role if r.at_least(role)]
