"""The discrepancy-case workflow (差错处理) as one pure state machine.

Every command on a case (assign, start, comment, propose an action, approve, reject,
record an execution, close, reopen) goes through :func:`decide`, which either returns
the case's next state or raises. Nothing here reads a database or a clock: the case
service loads the facts, asks :func:`decide`, then writes the result and its audit entry
in one transaction. So who may do what, and when, is written down exactly once.

States::

    OPEN ──assign──▶ ASSIGNED ──start──▶ IN_PROGRESS ──propose──▶ PENDING_APPROVAL
      ▲                                   ▲   │  (no approval needed)     │ approve ─▶ execute
      │                                   │   ▼                           │ reject / withdraw
    REOPENED ◀──reopen── RESOLVED ◀───────┴───┴──── executed ◀────────────┘
                         PARKED (挂账: waits; a later run closes or reopens it)
                         CLOSED (the discrepancy disappeared; closed by the system)

Separation of duties: an action that moves money (补单, 退款, 调账, and 核销 above a
configured amount) waits in PENDING_APPROVAL until a *different* user with the approver
role approves it. Automatic rules may propose but never approve.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from payrecon.core.outcomes import Outcome
from payrecon.errors import ConfigError, PermissionDeniedError, TransitionError


class CaseState(StrEnum):
    OPEN = "OPEN"
    ASSIGNED = "ASSIGNED"
    IN_PROGRESS = "IN_PROGRESS"
    PENDING_APPROVAL = "PENDING_APPROVAL"
    RESOLVED = "RESOLVED"
    PARKED = "PARKED"  # 挂账: waiting for a later run to confirm or reopen
    CLOSED = "CLOSED"  # closed by the system: the discrepancy no longer appears
    REOPENED = "REOPENED"

    @property
    def is_done(self) -> bool:
        """Nobody has to do anything (a PARKED case waits for a later run, not a person)."""
        return self in (CaseState.RESOLVED, CaseState.CLOSED, CaseState.PARKED)


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    APPROVER = "approver"
    ADMIN = "admin"

    def at_least(self, other: Role) -> bool:
        return _RANK[self] >= _RANK[other]


_RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.APPROVER: 2, Role.ADMIN: 3}


class ActionKind(StrEnum):
    ACCEPT_PLATFORM = "accept_platform"
    ACCEPT_CHANNEL = "accept_channel"
    SUPPLEMENT_ORDER = "supplement_order"
    REFUND = "refund"
    ADJUST = "adjust"
    PARK = "park"
    WRITE_OFF = "write_off"

    @property
    def label(self) -> str:
        return _LABELS[self]

    @property
    def executes(self) -> bool:
        """True when carrying it out calls the platform (the executor)."""
        return self in _EXECUTED_BY_PLATFORM


_LABELS = {
    ActionKind.ACCEPT_PLATFORM: "以平台为准",
    ActionKind.ACCEPT_CHANNEL: "以渠道为准",
    ActionKind.SUPPLEMENT_ORDER: "补单",
    ActionKind.REFUND: "退款",
    ActionKind.ADJUST: "调账",
    ActionKind.PARK: "挂账",
    ActionKind.WRITE_OFF: "核销",
}
_EXECUTED_BY_PLATFORM = frozenset(
    {ActionKind.SUPPLEMENT_ORDER, ActionKind.REFUND, ActionKind.ADJUST, ActionKind.WRITE_OFF}
)

_A = ActionKind
# Which actions make sense for which discrepancy. 补单 needs money the channel holds and
# a platform order to mark; 退款 gives back money the channel took.
ACTIONS_FOR: Mapping[Outcome, frozenset[ActionKind]] = {
    Outcome.MISSING_IN_LEDGER: frozenset(
        {_A.SUPPLEMENT_ORDER, _A.REFUND, _A.ACCEPT_CHANNEL, _A.PARK, _A.WRITE_OFF}
    ),
    Outcome.MISSING_IN_CHANNEL: frozenset(
        {_A.ACCEPT_PLATFORM, _A.ACCEPT_CHANNEL, _A.ADJUST, _A.PARK, _A.WRITE_OFF}
    ),
    Outcome.AMOUNT_MISMATCH: frozenset(
        {_A.ACCEPT_PLATFORM, _A.ACCEPT_CHANNEL, _A.ADJUST, _A.REFUND, _A.PARK, _A.WRITE_OFF}
    ),
    Outcome.STATUS_MISMATCH: frozenset(
        {_A.ACCEPT_PLATFORM, _A.ACCEPT_CHANNEL, _A.SUPPLEMENT_ORDER, _A.REFUND, _A.PARK}
    ),
    Outcome.FEE_MISMATCH: frozenset(
        {_A.ACCEPT_PLATFORM, _A.ACCEPT_CHANNEL, _A.ADJUST, _A.PARK, _A.WRITE_OFF}
    ),
    Outcome.DUPLICATE: frozenset(
        {_A.ACCEPT_PLATFORM, _A.ACCEPT_CHANNEL, _A.REFUND, _A.ADJUST, _A.PARK, _A.WRITE_OFF}
    ),
}


class ActionState(StrEnum):
    PROPOSED = "PROPOSED"
    APPROVED = "APPROVED"  # approved (or needing no approval), not yet carried out
    EXECUTED = "EXECUTED"
    REJECTED = "REJECTED"
    WITHDRAWN = "WITHDRAWN"
    FAILED = "FAILED"  # the platform refused it for good
    CANCELLED = "CANCELLED"  # the case closed before anyone approved it


class Command(StrEnum):
    ASSIGN = "assign"
    START = "start"
    COMMENT = "comment"
    ATTACH = "attach"
    PROPOSE = "propose"
    WITHDRAW = "withdraw"
    APPROVE = "approve"
    REJECT = "reject"
    EXECUTED = "executed"
    EXECUTION_FAILED = "execution_failed"
    CLOSE = "close"
    REOPEN = "reopen"


ActorKind = Literal["user", "rule", "system"]


@dataclass(frozen=True)
class Actor:
    """Who does something: a user with a role, an automatic rule, or payrecon itself."""

    name: str
    role: Role
    kind: ActorKind = "user"

    @classmethod
    def system(cls) -> Actor:
        return cls("system", Role.ADMIN, "system")

    @classmethod
    def rule(cls, name: str) -> Actor:
        return cls(f"rule:{name}", Role.OPERATOR, "rule")

    @property
    def is_user(self) -> bool:
        return self.kind == "user"


@dataclass(frozen=True)
class ApprovalPolicy:
    """Which actions need a second person's approval."""

    require_approval: frozenset[ActionKind] = frozenset(
        {ActionKind.SUPPLEMENT_ORDER, ActionKind.REFUND, ActionKind.ADJUST}
    )
    # A write-off of more than this (minor units, absolute) needs approval.
    write_off_limit: int = 0

    def needs_approval(self, kind: ActionKind, amount: int | None) -> bool:
        if kind in self.require_approval:
            return True
        if kind is ActionKind.WRITE_OFF:
            return amount is None or abs(amount) > self.write_off_limit
        return False


@dataclass(frozen=True)
class PendingAction:
    """The case's open action: proposed, or approved and waiting to be carried out."""

    id: int
    kind: ActionKind
    state: ActionState
    proposed_by: str
    amount: int | None = None


@dataclass(frozen=True)
class CaseFacts:
    """What a decision needs to know about a case."""

    state: CaseState
    outcome: Outcome
    assignee: str | None = None
    pending: PendingAction | None = None


@dataclass(frozen=True)
class Request:
    """A command with its arguments."""

    command: Command
    assignee: str | None = None  # ASSIGN: who gets the case
    assignee_role: Role | None = None  # ... and their role
    action: ActionKind | None = None  # PROPOSE
    amount: int | None = None  # PROPOSE: the money the action moves, minor units


@dataclass(frozen=True)
class Decision:
    """What follows from a command: the case's state afterwards and what to do next."""

    state: CaseState
    assignee: str | None
    # The pending action's state afterwards (None: the command does not touch one).
    action_state: ActionState | None = None
    # True: the service must now hand the action to the executor.
    execute: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)


_ACTIVE = frozenset({CaseState.ASSIGNED, CaseState.IN_PROGRESS})
_OPENABLE = frozenset({CaseState.OPEN, CaseState.REOPENED})


def decide(
    case: CaseFacts, actor: Actor, request: Request, policy: ApprovalPolicy | None = None
) -> Decision:
    """The outcome of ``request`` by ``actor`` on ``case``, or an exception saying why not.

    Raises :class:`PermissionDeniedError` for the wrong role or a broken separation of
    duties, :class:`TransitionError` for a command the case's state does not allow.
    """
    handler = _HANDLERS[request.command]
    return handler(case, actor, request, policy or ApprovalPolicy())


def _need_role(actor: Actor, role: Role, what: str) -> None:
    if not actor.role.at_least(role):
        raise PermissionDeniedError(f"{actor.name} ({actor.role}) may not {what}: needs {role}")


def _need_state(case: CaseFacts, allowed: frozenset[CaseState], what: str) -> None:
    if case.state not in allowed:
        names = ", ".join(sorted(allowed))
        raise TransitionError(f"cannot {what} a case in state {case.state} (only {names})")


def _need_system(actor: Actor, what: str) -> None:
    if actor.kind != "system":
        raise PermissionDeniedError(f"only payrecon itself may {what}, not {actor.name}")


def _assign(case: CaseFacts, actor: Actor, request: Request, _: ApprovalPolicy) -> Decision:
    _need_role(actor, Role.OPERATOR, "assign cases")
    target = request.assignee
    if not target:
        raise TransitionError("assign needs an assignee")
    if request.assignee_role is None or not request.assignee_role.at_least(Role.OPERATOR):
        raise PermissionDeniedError(f"{target} cannot be assigned cases: needs operator")
    _need_state(case, _OPENABLE | _ACTIVE | {CaseState.PENDING_APPROVAL}, "assign")
    if not actor.role.at_least(Role.APPROVER):
        # An operator claims unowned cases for themselves, nothing more.
        if target != actor.name:
            raise PermissionDeniedError(f"{actor.name} may only assign cases to themselves")
        if case.assignee not in (None, actor.name):
            raise PermissionDeniedError(f"case is assigned to {case.assignee}; ask an approver")
    state = CaseState.ASSIGNED if case.state in _OPENABLE else case.state
    return Decision(state, target)


def _start(case: CaseFacts, actor: Actor, _r: Request, _p: ApprovalPolicy) -> Decision:
    _need_state(case, frozenset({CaseState.ASSIGNED}), "start work on")
    if actor.name != case.assignee:
        raise PermissionDeniedError(f"only the assignee ({case.assignee}) may start work")
    return Decision(CaseState.IN_PROGRESS, case.assignee)


def _comment(case: CaseFacts, actor: Actor, _r: Request, _p: ApprovalPolicy) -> Decision:
    _need_role(actor, Role.OPERATOR, "comment")
    return Decision(case.state, case.assignee)


def _propose(case: CaseFacts, actor: Actor, request: Request, policy: ApprovalPolicy) -> Decision:
    _need_role(actor, Role.OPERATOR, "propose actions")
    kind = request.action
    if kind is None:
        raise TransitionError("propose needs an action")
    allowed = _ACTIVE | (_OPENABLE if actor.kind == "rule" else frozenset())
    _need_state(case, allowed, f"propose {kind.value} on")
    if actor.is_user and not actor.role.at_least(Role.APPROVER) and actor.name != case.assignee:
        raise PermissionDeniedError(f"only the assignee ({case.assignee}) may propose actions")
    if kind not in ACTIONS_FOR.get(case.outcome, frozenset()):
        raise TransitionError(f"{kind.value} ({kind.label}) does not apply to {case.outcome}")
    if kind.executes and request.amount is None:
        raise TransitionError(f"{kind.value} ({kind.label}) needs an amount")
    if request.amount is not None and request.amount == 0 and kind.executes:
        raise TransitionError(f"{kind.value} of zero moves nothing")
    if policy.needs_approval(kind, request.amount):
        return Decision(CaseState.PENDING_APPROVAL, case.assignee, ActionState.PROPOSED)
    return _carry_out(case, kind)


def _carry_out(case: CaseFacts, kind: ActionKind) -> Decision:
    """An action that is approved (or needs no approval): execute it or apply it now."""
    if kind.executes:
        return Decision(CaseState.PENDING_APPROVAL, case.assignee, ActionState.APPROVED, True)
    state = CaseState.PARKED if kind is ActionKind.PARK else CaseState.RESOLVED
    return Decision(state, case.assignee, ActionState.EXECUTED)


def _pending(case: CaseFacts, state: ActionState, what: str) -> PendingAction:
    pending = case.pending
    if case.state is not CaseState.PENDING_APPROVAL or pending is None:
        raise TransitionError(f"cannot {what}: the case has no action awaiting it")
    if pending.state is not state:
        raise TransitionError(f"cannot {what}: the action is {pending.state}")
    return pending


def _withdraw(case: CaseFacts, actor: Actor, _r: Request, _p: ApprovalPolicy) -> Decision:
    pending = _pending(case, ActionState.PROPOSED, "withdraw")
    if actor.name != pending.proposed_by and not actor.role.at_least(Role.APPROVER):
        raise PermissionDeniedError(f"only {pending.proposed_by} may withdraw their proposal")
    return Decision(CaseState.IN_PROGRESS, case.assignee, ActionState.WITHDRAWN)


def _review(case: CaseFacts, actor: Actor, verb: str) -> PendingAction:
    pending = _pending(case, ActionState.PROPOSED, verb)
    if not actor.is_user:
        raise PermissionDeniedError(f"{actor.name} may not {verb}: only people review actions")
    if actor.name == pending.proposed_by:
        raise PermissionDeniedError(
            f"{actor.name} proposed this action and may not {verb} it: a second person must"
        )
    _need_role(actor, Role.APPROVER, f"{verb} actions")
    return pending


def _approve(case: CaseFacts, actor: Actor, _r: Request, _p: ApprovalPolicy) -> Decision:
    pending = _review(case, actor, "approve")
    return _carry_out(case, pending.kind)


def _reject(case: CaseFacts, actor: Actor, _r: Request, _p: ApprovalPolicy) -> Decision:
    _review(case, actor, "reject")
    return Decision(CaseState.IN_PROGRESS, case.assignee, ActionState.REJECTED)


def _executed(case: CaseFacts, actor: Actor, _r: Request, _p: ApprovalPolicy) -> Decision:
    _need_system(actor, "record an execution")
    _pending(case, ActionState.APPROVED, "record an execution")
    return Decision(CaseState.RESOLVED, case.assignee, ActionState.EXECUTED)


def _failed(case: CaseFacts, actor: Actor, _r: Request, _p: ApprovalPolicy) -> Decision:
    _need_system(actor, "record a failed execution")
    _pending(case, ActionState.APPROVED, "record a failed execution")
    return Decision(CaseState.IN_PROGRESS, case.assignee, ActionState.FAILED)


def _close(case: CaseFacts, actor: Actor, _r: Request, _p: ApprovalPolicy) -> Decision:
    _need_system(actor, "close a case (it closes when its discrepancy disappears)")
    if case.state in (CaseState.RESOLVED, CaseState.CLOSED):
        raise TransitionError(f"case is already {case.state}")
    pending = case.pending
    if pending is not None and pending.state is ActionState.APPROVED:
        # Money may be on its way: a person decides, not the system.
        raise TransitionError("an approved action is still being carried out")
    cancelled = ActionState.CANCELLED if pending is not None else None
    return Decision(CaseState.CLOSED, case.assignee, cancelled)


def _reopen(case: CaseFacts, actor: Actor, _r: Request, _p: ApprovalPolicy) -> Decision:
    if actor.kind != "system":
        _need_role(actor, Role.APPROVER, "reopen cases")
    _need_state(case, frozenset({CaseState.RESOLVED, CaseState.CLOSED, CaseState.PARKED}), "reopen")
    return Decision(CaseState.REOPENED, None)


_HANDLERS = {
    Command.ASSIGN: _assign,
    Command.START: _start,
    Command.COMMENT: _comment,
    Command.ATTACH: _comment,
    Command.PROPOSE: _propose,
    Command.WITHDRAW: _withdraw,
    Command.APPROVE: _approve,
    Command.REJECT: _reject,
    Command.EXECUTED: _executed,
    Command.EXECUTION_FAILED: _failed,
    Command.CLOSE: _close,
    Command.REOPEN: _reopen,
}


# -- severity and due dates ------------------------------------------------------------


class Severity(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


@dataclass(frozen=True)
class SeverityBands:
    """Severity from the amount at stake, and the hours each severity may stay open.

    ``floors`` are minor units: an amount of at least ``floors[s]`` is at least ``s``.
    """

    floors: Mapping[Severity, int] = field(
        default_factory=lambda: {
            Severity.LOW: 0,
            Severity.MEDIUM: 10_000,  # 100.00
            Severity.HIGH: 100_000,  # 1,000.00
            Severity.CRITICAL: 1_000_000,  # 10,000.00
        }
    )
    sla_hours: Mapping[Severity, int] = field(
        default_factory=lambda: {
            Severity.LOW: 72,
            Severity.MEDIUM: 48,
            Severity.HIGH: 24,
            Severity.CRITICAL: 4,
        }
    )

    def __post_init__(self) -> None:
        missing = set(Severity) - set(self.floors) | set(Severity) - set(self.sla_hours)
        if missing:
            raise ConfigError(f"severity bands must name every severity: {sorted(missing)}")
        order = [self.floors[s] for s in Severity]
        if order != sorted(order) or self.floors[Severity.LOW] != 0:
            raise ConfigError(f"severity floors must start at 0 and not decrease: {order}")
        if any(hours <= 0 for hours in self.sla_hours.values()):
            raise ConfigError("SLA hours must be positive")

    def of(self, amount: int) -> Severity:
        """The severity of a discrepancy putting ``amount`` (minor units) at stake."""
        stake = abs(amount)
        chosen = Severity.LOW
        for severity in Severity:
            if stake >= self.floors[severity]:
                chosen = severity
        return chosen
