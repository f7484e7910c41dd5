"""The pure case workflow: transitions, roles, separation of duties, severity, figures."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payrecon.core.audit import GENESIS, Head, chain_hash, verify
from payrecon.core.cases import AutoRule, CaseFigures, RuleFacts
from payrecon.core.outcomes import Outcome
from payrecon.core.workflow import (
    ActionKind,
    ActionState,
    Actor,
    ApprovalPolicy,
    CaseFacts,
    CaseState,
    Command,
    PendingAction,
    Request,
    Role,
    Severity,
    SeverityBands,
    decide,
)
from payrecon.errors import ConfigError, PermissionDeniedError, TransitionError

ALICE = Actor("alice", Role.OPERATOR)
CAROL = Actor("carol", Role.OPERATOR)
BOB = Actor("bob", Role.APPROVER)
VIC = Actor("vic", Role.VIEWER)
SYSTEM = Actor.system()
MISSING = Outcome.MISSING_IN_LEDGER


def facts(
    state: CaseState,
    assignee: str | None = "alice",
    pending: PendingAction | None = None,
    outcome: Outcome = MISSING,
) -> CaseFacts:
    return CaseFacts(state, outcome, assignee, pending)


def proposed(
    kind: ActionKind = ActionKind.REFUND,
    by: str = "alice",
    state: ActionState = ActionState.PROPOSED,
) -> PendingAction:
    return PendingAction(1, kind, state, by, 500)


def test_happy_path_through_every_state() -> None:
    d = decide(
        facts(CaseState.OPEN, None),
        ALICE,
        Request(Command.ASSIGN, assignee="alice", assignee_role=Role.OPERATOR),
    )
    assert (d.state, d.assignee) == (CaseState.ASSIGNED, "alice")
    assert decide(facts(CaseState.ASSIGNED), ALICE, Request(Command.START)).state is (
        CaseState.IN_PROGRESS
    )
    d = decide(
        facts(CaseState.IN_PROGRESS),
        ALICE,
        Request(Command.PROPOSE, action=ActionKind.REFUND, amount=500),
    )
    assert (d.state, d.action_state, d.execute) == (
        CaseState.PENDING_APPROVAL,
        ActionState.PROPOSED,
        False,
    )
    d = decide(facts(CaseState.PENDING_APPROVAL, pending=proposed()), BOB, Request(Command.APPROVE))
    assert (d.state, d.action_state, d.execute) == (
        CaseState.PENDING_APPROVAL,
        ActionState.APPROVED,
        True,
    )
    done = facts(CaseState.PENDING_APPROVAL, pending=proposed(state=ActionState.APPROVED))
    d = decide(done, SYSTEM, Request(Command.EXECUTED))
    assert (d.state, d.action_state) == (CaseState.RESOLVED, ActionState.EXECUTED)
    d = decide(facts(CaseState.RESOLVED), BOB, Request(Command.REOPEN))
    assert (d.state, d.assignee) == (CaseState.REOPENED, None)


def test_rejection_and_withdrawal_hand_the_case_back() -> None:
    pending = facts(CaseState.PENDING_APPROVAL, pending=proposed())
    assert decide(pending, BOB, Request(Command.REJECT)).state is CaseState.IN_PROGRESS
    assert decide(pending, ALICE, Request(Command.WITHDRAW)).action_state is ActionState.WITHDRAWN
    with pytest.raises(PermissionDeniedError):
        decide(pending, CAROL, Request(Command.WITHDRAW))


@pytest.mark.parametrize(
    ("actor", "message"),
    [
        (ALICE, "second person"),
        (Actor("bob", Role.APPROVER), "second person"),  # approver who proposed it
        (CAROL, "needs approver"),
        (Actor.rule("auto"), "only people"),
        (SYSTEM, "only people"),
    ],
)
def test_who_may_not_approve(actor: Actor, message: str) -> None:
    by = "bob" if actor.name == "bob" else "alice"
    case = facts(CaseState.PENDING_APPROVAL, pending=proposed(by=by))
    with pytest.raises(PermissionDeniedError, match=message):
        decide(case, actor, Request(Command.APPROVE))


def test_money_needs_approval_but_small_write_offs_and_decisions_do_not() -> None:
    policy = ApprovalPolicy(write_off_limit=100)
    case = facts(CaseState.IN_PROGRESS, outcome=Outcome.AMOUNT_MISMATCH)
    small = Request(Command.PROPOSE, action=ActionKind.WRITE_OFF, amount=-100)
    d = decide(case, ALICE, small, policy)
    assert (d.action_state, d.execute) == (ActionState.APPROVED, True)
    big = Request(Command.PROPOSE, action=ActionKind.WRITE_OFF, amount=101)
    assert decide(case, ALICE, big, policy).action_state is ActionState.PROPOSED
    for kind in (ActionKind.SUPPLEMENT_ORDER, ActionKind.REFUND, ActionKind.ADJUST):
        assert ApprovalPolicy().needs_approval(kind, 1)
    accept = Request(Command.PROPOSE, action=ActionKind.ACCEPT_CHANNEL)
    d = decide(case, ALICE, accept, policy)
    assert (d.state, d.action_state, d.execute) == (CaseState.RESOLVED, ActionState.EXECUTED, False)
    park = Request(Command.PROPOSE, action=ActionKind.PARK)
    assert decide(case, ALICE, park, policy).state is CaseState.PARKED


def test_state_and_role_refusals() -> None:
    with pytest.raises(TransitionError, match="state OPEN"):
        decide(
            facts(CaseState.OPEN),
            ALICE,
            Request(Command.PROPOSE, action=ActionKind.REFUND, amount=1),
        )
    with pytest.raises(PermissionDeniedError):
        decide(facts(CaseState.OPEN), VIC, Request(Command.COMMENT))
    with pytest.raises(PermissionDeniedError, match="only the assignee"):
        decide(facts(CaseState.ASSIGNED), CAROL, Request(Command.START))
    with pytest.raises(PermissionDeniedError, match="needs operator"):
        decide(
            facts(CaseState.OPEN, None),
            BOB,
            Request(Command.ASSIGN, assignee="vic", assignee_role=Role.VIEWER),
        )
    with pytest.raises(PermissionDeniedError, match="payrecon itself"):
        decide(facts(CaseState.OPEN), BOB, Request(Command.CLOSE))
    with pytest.raises(PermissionDeniedError):
        decide(facts(CaseState.CLOSED), ALICE, Request(Command.REOPEN))
    with pytest.raises(TransitionError, match="does not apply"):
        decide(
            facts(CaseState.IN_PROGRESS, outcome=Outcome.MISSING_IN_CHANNEL),
            ALICE,
            Request(Command.PROPOSE, action=ActionKind.SUPPLEMENT_ORDER, amount=1),
        )
    in_flight = facts(CaseState.PENDING_APPROVAL, pending=proposed(state=ActionState.APPROVED))
    with pytest.raises(TransitionError, match="being carried out"):
        decide(in_flight, SYSTEM, Request(Command.CLOSE))


def test_a_rule_may_propose_on_a_fresh_case_but_people_must_take_it_first() -> None:
    request = Request(Command.PROPOSE, action=ActionKind.SUPPLEMENT_ORDER, amount=5)
    d = decide(facts(CaseState.OPEN, None), Actor.rule("r"), request)
    assert d.state is CaseState.PENDING_APPROVAL
    with pytest.raises(TransitionError):
        decide(facts(CaseState.OPEN, None), BOB, request)


def test_closing_cancels_an_unapproved_proposal() -> None:
    d = decide(
        facts(CaseState.PENDING_APPROVAL, pending=proposed()), SYSTEM, Request(Command.CLOSE)
    )
    assert (d.state, d.action_state) == (CaseState.CLOSED, ActionState.CANCELLED)


ACTORS = [ALICE, CAROL, BOB, Actor("dora", Role.APPROVER), VIC, Actor.rule("r"), SYSTEM]
ROLES = {a.name: a.role for a in ACTORS}


# Commands weighted toward the ones that move money, so short random walks reach them.
COMMANDS = [*Command, Command.PROPOSE, Command.PROPOSE, Command.APPROVE, Command.APPROVE]


@settings(max_examples=500, deadline=None)
@given(
    st.sampled_from([CaseState.OPEN, CaseState.IN_PROGRESS]),
    st.lists(
        st.tuples(
            st.sampled_from(ACTORS),
            st.sampled_from(COMMANDS),
            st.sampled_from(list(ActionKind)),
            st.sampled_from(ACTORS),
        ),
        max_size=40,
    ),
)
def test_money_never_moves_without_a_second_approver(
    start: CaseState, steps: list[tuple[Actor, Command, ActionKind, Actor]]
) -> None:
    """Drive the machine with random commands: every action that reaches the executor and
    needed approval was approved by a person other than its proposer, holding the role."""
    policy = ApprovalPolicy()
    case = facts(start, None if start is CaseState.OPEN else "alice")
    approved_by: str | None = None
    for actor, command, kind, target in steps:
        request = Request(
            command, assignee=target.name, assignee_role=ROLES[target.name], action=kind, amount=500
        )
        try:
            d = decide(case, actor, request, policy)
        except (TransitionError, PermissionDeniedError):
            continue
        pending = case.pending
        if command is Command.PROPOSE and d.action_state is not None:
            pending = PendingAction(1, kind, d.action_state, actor.name, 500)
            approved_by = None
        elif pending is not None and d.action_state is not None:
            if command is Command.APPROVE:
                approved_by = actor.name
            pending = PendingAction(1, pending.kind, d.action_state, pending.proposed_by, 500)
        if d.execute:
            assert pending is not None
            if policy.needs_approval(pending.kind, 500):
                assert approved_by is not None and approved_by != pending.proposed_by
                assert ROLES[approved_by].at_least(Role.APPROVER)
        if pending is not None and pending.state not in (
            ActionState.PROPOSED,
            ActionState.APPROVED,
        ):
            pending = None
        case = CaseFacts(d.state, case.outcome, d.assignee, pending)


def test_severity_bands() -> None:
    bands = SeverityBands()
    assert [bands.of(a) for a in (0, 9_999, 10_000, -100_000, 1_000_000)] == [
        Severity.LOW,
        Severity.LOW,
        Severity.MEDIUM,
        Severity.HIGH,
        Severity.CRITICAL,
    ]
    with pytest.raises(ConfigError):
        SeverityBands(
            floors={Severity.LOW: 0, Severity.MEDIUM: 5, Severity.HIGH: 4, Severity.CRITICAL: 9}
        )


def test_figures_stake_and_suggested_amounts() -> None:
    mismatch = CaseFigures(Outcome.AMOUNT_MISMATCH, 10_000, 9_000, -1_000)
    assert mismatch.stake == 1_000
    assert mismatch.suggested(ActionKind.ADJUST) == -1_000
    assert mismatch.suggested(ActionKind.REFUND) is None  # the channel took less
    assert mismatch.check(ActionKind.ADJUST, None) == -1_000
    with pytest.raises(TransitionError, match="positive"):
        mismatch.check(ActionKind.WRITE_OFF, -5)
    with pytest.raises(TransitionError, match="exceeds"):
        mismatch.check(ActionKind.ADJUST, 10_001)
    missing = CaseFigures(Outcome.MISSING_IN_LEDGER, None, 500, None)
    assert (missing.stake, missing.suggested(ActionKind.SUPPLEMENT_ORDER)) == (500, 500)
    fee = CaseFigures(Outcome.FEE_MISMATCH, 100, 100, 0, ledger_fee=600, channel_fee=2_001)
    assert (fee.fee_diff, fee.stake) == (2, 2)  # 1.401 fen rounds away from zero


def test_auto_rule_conditions() -> None:
    rule = AutoRule(
        "r", ActionKind.WRITE_OFF, outcomes=frozenset({Outcome.AMOUNT_MISMATCH}), max_amount=1
    )
    hit = RuleFacts(Outcome.AMOUNT_MISMATCH, "wechat", "SUCCESS", "SUCCESS", 1)
    assert rule.applies(hit)
    assert not rule.applies(RuleFacts(Outcome.AMOUNT_MISMATCH, "wechat", None, None, 2))
    assert not rule.applies(RuleFacts(Outcome.DUPLICATE, "wechat", None, None, 1))


def _chain(n: int) -> list[dict[str, object]]:
    entries: list[dict[str, object]] = []
    previous = GENESIS
    for seq in range(1, n + 1):
        entry: dict[str, object] = {
            "seq": seq,
            "case_id": 1,
            "event": "comment",
            "actor": "a",
            "actor_kind": "user",
            "at": "2026-11-21T00:00:00.000000+00:00",
            "before": None,
            "after": {"comment": f"c{seq}"},
        }
        entry["prev_hash"] = previous
        entry["hash"] = previous = chain_hash(previous, entry)
        entries.append(entry)
    return entries


def test_audit_chain_detects_edits_gaps_and_a_lost_tail() -> None:
    entries = _chain(5)
    assert verify(entries).ok
    edited = [dict(e) for e in entries]
    edited[2]["after"] = {"comment": "rewritten"}
    assert verify(edited).broken_at == 3
    assert verify(entries[:2] + entries[3:]).broken_at == 3
    head = Head(5, str(entries[4]["hash"]))
    assert verify(entries, expect_head=head).ok
    assert verify(entries[:4], expect_head=head).broken_at == 5
    assert Head.parse(str(head)) == head
