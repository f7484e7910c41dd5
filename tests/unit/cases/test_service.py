"""The case service on a real database (SQLite; PostgreSQL under the integration marker):
cases from runs, the workflow with maker-checker, execution through a real HTTP platform,
and the audit chain."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import delete, text, update
from sqlalchemy.exc import DBAPIError

from payrecon.cases import audit
from payrecon.cases.executor import WebhookExecutor
from payrecon.cases.ingest import open_cases
from payrecon.cases.models import AuditEntry
from payrecon.cases.policy import CasePolicy
from payrecon.cases.service import CaseFilter, CaseService
from payrecon.core.audit import Head
from payrecon.core.cases import AutoRule
from payrecon.core.outcomes import Outcome
from payrecon.core.workflow import ActionKind, ActionState, Actor, ApprovalPolicy, Role
from payrecon.errors import NotFoundError, PermissionDeniedError, TransitionError
from tests.conftest import DAY, record
from tests.support.fake_platform import DEFAULT_SECRET, FakePlatform
from tests.unit.cases.conftest import Clock, Outcomes, standard_day

RUN = "wechat-20261120-aaaa"


@pytest.fixture
def platform() -> Iterator[FakePlatform]:
    with FakePlatform() as running:
        yield running


def with_executor(service: CaseService, platform: FakePlatform, **kw: Any) -> CaseService:
    executor = WebhookExecutor(platform.url, DEFAULT_SECRET, sleep=lambda _s: None, **kw)
    return CaseService(service.store, service.policy, executor, service.clock)


def opened(service: CaseService, outcomes: Outcomes) -> dict[str, dict[str, Any]]:
    ledger, channel = standard_day()
    open_cases(service, outcomes(ledger, channel), run_id=RUN, channel="wechat", day=DAY)
    _, rows = service.query(limit=100)
    return {row["order_id"]: row for row in rows}


def user(name: str, service: CaseService) -> Actor:
    return service.actor(name)


def test_a_run_opens_one_case_per_discrepancy_with_both_records(
    service: CaseService, outcomes: Outcomes, clock: Clock
) -> None:
    cases = opened(service, outcomes)
    assert {k: v["outcome"] for k, v in cases.items()} == {
        "o2": Outcome.AMOUNT_MISMATCH,
        "o3": Outcome.MISSING_IN_LEDGER,
        "o4": Outcome.MISSING_IN_CHANNEL,
        "o5": Outcome.STATUS_MISMATCH,
    }
    o2 = cases["o2"]
    assert (o2["ledger_amount"], o2["channel_amount"], o2["amount_diff"]) == (10_000, 9_000, -1_000)
    assert (o2["stake"], o2["severity"], o2["state"]) == (1_000, "low", "OPEN")
    assert cases["o5"]["severity"] == "high"  # 2,000.00 at stake
    assert cases["o5"]["due_at"] == (clock.now + timedelta(hours=24)).isoformat()
    detail = service.get(o2["id"])
    assert detail["ledger_record"]["amount"] == 10_000
    assert detail["channel_record"]["amount"] == 9_000
    assert detail["ledger_record"]["txn_time"].startswith("2026-11-20T04:00:00")
    assert [e["event"] for e in detail["audit"]] == ["created"]
    assert service.get(cases["o3"]["id"])["ledger_record"] is None


def test_rerunning_the_same_day_opens_nothing_twice(
    service: CaseService, outcomes: Outcomes
) -> None:
    ledger, channel = standard_day()
    first = open_cases(service, outcomes(ledger, channel), run_id=RUN, channel="wechat", day=DAY)
    again = open_cases(service, outcomes(ledger, channel), run_id="r2", channel="wechat", day=DAY)
    assert (first.opened, again.opened, again.unchanged, again.closed) == (4, 0, 4, 0)
    assert service.query()[0] == 4


def test_a_corrected_bill_closes_the_gone_case_and_keeps_the_others_history(
    service: CaseService, outcomes: Outcomes
) -> None:
    cases = opened(service, outcomes)
    alice = user("alice", service)
    service.assign(cases["o3"]["id"], alice, "alice")
    service.comment(cases["o3"]["id"], alice, "asked the channel")
    ledger, channel = standard_day()
    channel = [record("o2", 10_000) if r["order_id"] == "o2" else r for r in channel]
    report = open_cases(service, outcomes(ledger, channel), run_id="r2", channel="wechat", day=DAY)
    assert (report.closed, report.unchanged, report.opened) == (1, 3, 0)
    o2 = service.get(cases["o2"]["id"])
    assert (o2["state"], o2["closed_reason"]) == ("CLOSED", "no longer found by run r2")
    o3 = service.get(cases["o3"]["id"])
    assert (o3["state"], o3["assignee"]) == ("ASSIGNED", "alice")
    assert [c["body"] for c in o3["comments"]] == ["asked the channel"]
    # ...and when the discrepancy comes back, the closed case reopens (no new case).
    ledger, channel = standard_day()
    back = open_cases(service, outcomes(ledger, channel), run_id="r3", channel="wechat", day=DAY)
    assert (back.reopened, back.opened) == (1, 0)
    assert service.get(cases["o2"]["id"])["state"] == "REOPENED"


def test_supplement_order_needs_a_second_person_and_moves_money_once(
    service: CaseService, outcomes: Outcomes, platform: FakePlatform
) -> None:
    service = with_executor(service, platform)
    case_id = opened(service, outcomes)["o3"]["id"]
    alice, carol, bob = (user(n, service) for n in ("alice", "carol", "bob"))
    service.assign(case_id, alice, "alice")
    service.start(case_id, alice)
    proposed = service.propose(case_id, alice, ActionKind.SUPPLEMENT_ORDER, reason="paid, lost")
    assert proposed.state is ActionState.PROPOSED
    assert service.get(case_id)["state"] == "PENDING_APPROVAL"
    assert platform.moves == []
    with pytest.raises(PermissionDeniedError, match="second person"):
        service.approve(case_id, alice)
    with pytest.raises(PermissionDeniedError, match="approver"):
        service.approve(case_id, carol)
    done = service.approve(case_id, bob, "checked the channel receipt")
    assert done.state is ActionState.EXECUTED
    assert done.result is not None and done.result.ok
    assert len(platform.moves) == 1
    move = platform.moves[0]
    assert (move["kind"], move["amount_minor"], move["order_id"]) == ("supplement_order", 500, "o3")
    assert (move["proposed_by"], move["approved_by"]) == ("alice", "bob")
    detail = service.get(case_id)
    assert detail["state"] == "RESOLVED"
    assert detail["actions"][0]["reviewed_by"] == "bob"
    events = [e["event"] for e in detail["audit"]]
    assert events == [
        "created",
        "assign",
        "start",
        "propose",
        "approve",
        "execution_started",
        "executed",
    ]
    with pytest.raises(TransitionError):
        service.execute(done.action_id)
    assert len(platform.moves) == 1
    assert audit_ok(service)


def test_an_outage_defers_execution_and_a_lost_answer_is_not_paid_twice(
    service: CaseService, outcomes: Outcomes, platform: FakePlatform
) -> None:
    service = with_executor(service, platform, max_attempts=2)
    case_id = opened(service, outcomes)["o3"]["id"]
    alice, bob = user("alice", service), user("bob", service)
    service.assign(case_id, alice, "alice")
    service.propose(case_id, alice, ActionKind.REFUND, reason="no such order")
    platform.fail_next(1, status=503)
    platform.drop_next(1, after_move=True)  # moved, but the answer never arrives
    deferred = service.approve(case_id, bob)
    assert deferred.state is ActionState.APPROVED
    assert deferred.result is not None and deferred.result.retryable
    assert len(platform.moves) == 1
    assert service.get(case_id)["state"] == "PENDING_APPROVAL"
    (retried,) = service.execute_due()
    assert retried.state is ActionState.EXECUTED
    assert len(platform.moves) == 1  # the platform recognised the idempotency key
    keys = {r.idempotency_key for r in platform.requests}
    assert len(keys) == 1
    assert service.get(case_id)["state"] == "RESOLVED"


def test_a_refusal_fails_the_action_and_hands_the_case_back(
    service: CaseService, outcomes: Outcomes, platform: FakePlatform
) -> None:
    service = with_executor(service, platform)
    case_id = opened(service, outcomes)["o2"]["id"]
    alice, bob = user("alice", service), user("bob", service)
    service.assign(case_id, alice, "alice")
    service.propose(case_id, alice, ActionKind.ADJUST, reason="ledger wrong")
    platform.reject_next(400, '{"error": "order locked"}')
    failed = service.approve(case_id, bob)
    assert failed.state is ActionState.FAILED
    detail = service.get(case_id)
    assert detail["state"] == "IN_PROGRESS"
    assert "order locked" in detail["actions"][0]["response"]
    assert platform.moves == []


def test_without_an_executor_approved_money_waits(
    service: CaseService, outcomes: Outcomes, platform: FakePlatform
) -> None:
    case_id = opened(service, outcomes)["o3"]["id"]
    alice, bob = user("alice", service), user("bob", service)
    service.assign(case_id, alice, "alice")
    service.propose(case_id, alice, ActionKind.REFUND, reason="r")
    waiting = service.approve(case_id, bob)
    assert (waiting.state, waiting.result) == (ActionState.APPROVED, None)
    (done,) = with_executor(service, platform).execute_due()
    assert done.state is ActionState.EXECUTED
    assert len(platform.moves) == 1


def test_decisions_that_move_no_money_apply_at_once(
    service: CaseService, outcomes: Outcomes
) -> None:
    cases = opened(service, outcomes)
    alice = user("alice", service)
    case_id = cases["o4"]["id"]
    service.assign(case_id, alice, "alice")
    done = service.propose(case_id, alice, ActionKind.ACCEPT_PLATFORM, reason="bank lag")
    assert done.state is ActionState.EXECUTED
    assert service.get(case_id)["state"] == "RESOLVED"


def test_refusals_name_the_reason(service: CaseService, outcomes: Outcomes) -> None:
    cases = opened(service, outcomes)
    alice, carol, victor = (user(n, service) for n in ("alice", "carol", "victor"))
    o3 = cases["o3"]["id"]
    with pytest.raises(PermissionDeniedError):
        service.comment(o3, victor, "hi")
    with pytest.raises(PermissionDeniedError, match="themselves"):
        service.assign(o3, alice, "carol")
    service.assign(o3, alice, "alice")
    with pytest.raises(PermissionDeniedError, match="assigned to alice"):
        service.assign(o3, carol, "carol")
    with pytest.raises(PermissionDeniedError, match="assignee"):
        service.propose(o3, carol, ActionKind.REFUND, reason="r")
    with pytest.raises(TransitionError, match="does not apply"):
        service.propose(o3, alice, ActionKind.ACCEPT_PLATFORM, reason="r")
    with pytest.raises(TransitionError, match="exceeds"):
        service.propose(o3, alice, ActionKind.REFUND, reason="r", amount=501)
    with pytest.raises(NotFoundError):
        service.comment(999, alice, "x")
    with pytest.raises(NotFoundError):
        service.actor("nobody")
    # An approver may hand the case over.
    service.assign(o3, user("bob", service), "carol")
    assert service.get(o3)["assignee"] == "carol"


def test_a_parked_case_closes_when_a_later_run_matches_it_or_reopens_when_due(
    service: CaseService, outcomes: Outcomes, clock: Clock
) -> None:
    cases = opened(service, outcomes)
    alice = user("alice", service)
    for order in ("o4", "o2"):
        service.assign(cases[order]["id"], alice, "alice")
        service.propose(cases[order]["id"], alice, ActionKind.PARK, reason="wait", park_days=2)
    parked = service.get(cases["o4"]["id"])
    assert (parked["state"], parked["parked_until"]) == ("PARKED", "2026-11-23")
    next_day = DAY + timedelta(days=1)
    late = [record("o4", 300, day=next_day)]
    report = open_cases(
        service, outcomes(late, late, day=next_day), run_id="r2", channel="wechat", day=next_day
    )
    assert (report.parked_closed, report.parked_reopened) == (1, 0)
    assert service.get(cases["o4"]["id"])["state"] == "CLOSED"
    assert service.get(cases["o2"]["id"])["state"] == "PARKED"
    due = DAY + timedelta(days=3)
    report = open_cases(service, outcomes([], [], day=due), run_id="r3", channel="wechat", day=due)
    assert report.parked_reopened == 1
    assert service.get(cases["o2"]["id"])["state"] == "REOPENED"


def test_rules_propose_and_small_write_offs_need_no_approval(
    service: CaseService, outcomes: Outcomes, platform: FakePlatform
) -> None:
    policy = CasePolicy(
        approval=ApprovalPolicy(write_off_limit=1_000),
        rules=(
            AutoRule(
                "paid-but-processing",
                ActionKind.SUPPLEMENT_ORDER,
                outcomes=frozenset({Outcome.STATUS_MISMATCH}),
                channel_statuses=frozenset({"SUCCESS"}),
                ledger_statuses=frozenset({"PROCESSING"}),
                reason="channel paid",
            ),
            AutoRule(
                "tiny",
                ActionKind.WRITE_OFF,
                outcomes=frozenset({Outcome.AMOUNT_MISMATCH}),
                max_amount=1_000,
                reason="below tolerance",
            ),
        ),
    )
    service = with_executor(replace_policy(service, policy), platform)
    ledger, channel = standard_day()
    report = open_cases(service, outcomes(ledger, channel), run_id=RUN, channel="wechat", day=DAY)
    assert dict(report.proposed) == {"paid-but-processing": 1, "tiny": 1}
    by_order = {row["order_id"]: row for row in service.query(limit=10)[1]}
    o5 = service.get(by_order["o5"]["id"])
    assert o5["state"] == "PENDING_APPROVAL"
    assert o5["actions"][0]["proposed_by"] == "rule:paid-but-processing"
    o2 = service.get(by_order["o2"]["id"])
    assert (o2["state"], o2["actions"][0]["state"]) == ("RESOLVED", "EXECUTED")
    assert [m["kind"] for m in platform.moves] == ["write_off"]
    assert o2["audit"][1]["actor"] == "rule:tiny"
    # A rule is never the second person.
    with pytest.raises(PermissionDeniedError):
        service.approve(by_order["o5"]["id"], Actor.rule("paid-but-processing"))


def replace_policy(service: CaseService, policy: CasePolicy) -> CaseService:
    return CaseService(service.store, policy, service.executor, service.clock)


def test_the_run_cannot_close_a_case_whose_approved_action_is_in_flight(
    service: CaseService, outcomes: Outcomes
) -> None:
    cases = opened(service, outcomes)
    alice, bob = user("alice", service), user("bob", service)
    o3 = cases["o3"]["id"]
    service.assign(o3, alice, "alice")
    service.propose(o3, alice, ActionKind.REFUND, reason="r")
    service.approve(o3, bob)  # no executor: approved, waiting
    report = open_cases(service, outcomes([], []), run_id="r2", channel="wechat", day=DAY)
    assert report.close_deferred == 1
    assert service.get(o3)["state"] == "PENDING_APPROVAL"


def test_queue_filters(service: CaseService, outcomes: Outcomes, clock: Clock) -> None:
    opened(service, outcomes)
    assert service.query(CaseFilter(outcome="MISSING_IN_LEDGER"))[0] == 1
    assert service.query(CaseFilter(min_stake=1_000, max_stake=1_000))[0] == 1
    assert service.query(CaseFilter(overdue=True))[0] == 0
    clock.advance(hours=25)
    assert service.query(CaseFilter(overdue=True))[0] == 1  # the high-severity one (24 h)


def audit_ok(service: CaseService) -> bool:
    with service.store.session() as session:
        return audit.check(session).ok


def test_the_database_refuses_to_rewrite_the_audit_log(
    service: CaseService, outcomes: Outcomes
) -> None:
    opened(service, outcomes)
    with pytest.raises(DBAPIError, match="append-only"), service.store.session() as session:
        session.execute(update(AuditEntry).where(AuditEntry.seq == 2).values(actor="mallory"))
    with pytest.raises(DBAPIError, match="append-only"), service.store.session() as session:
        session.execute(delete(AuditEntry).where(AuditEntry.seq == 2))
    assert audit_ok(service)


def _drop_guard(service: CaseService) -> None:
    """What someone with the rights to drop the trigger could do first."""
    with service.store.session() as session:
        if session.bind.dialect.name == "sqlite":  # type: ignore[union-attr]
            session.execute(text("DROP TRIGGER audit_log_no_update"))
            session.execute(text("DROP TRIGGER audit_log_no_delete"))
        else:
            session.execute(text("DROP TRIGGER audit_log_append_only ON audit_log"))


@pytest.mark.parametrize("tamper", ["edit", "delete_middle", "delete_last"])
def test_verify_names_the_first_broken_entry(
    service: CaseService, outcomes: Outcomes, tamper: str
) -> None:
    opened(service, outcomes)  # users (6) + cases (4) = entries 1..10
    with service.store.session() as session:
        before = audit.check(session)
    assert before.ok and before.head.seq == 10
    _drop_guard(service)
    with service.store.session() as session:
        if tamper == "edit":
            session.execute(update(AuditEntry).where(AuditEntry.seq == 8).values(actor="mallory"))
        elif tamper == "delete_middle":
            session.execute(delete(AuditEntry).where(AuditEntry.seq == 5))
        else:
            session.execute(delete(AuditEntry).where(AuditEntry.seq == 10))
    with service.store.session() as session:
        verdict = audit.check(session)
    assert not verdict.ok
    assert verdict.broken_at == {"edit": 8, "delete_middle": 5, "delete_last": 10}[tamper]
    if tamper == "delete_last":
        assert "stored head" in (verdict.reason or "")


def test_an_exported_head_catches_a_rolled_back_tail(
    service: CaseService, outcomes: Outcomes
) -> None:
    opened(service, outcomes)
    with service.store.session() as session:
        exported = audit.head(session)
    alice = user("alice", service)
    assert audit_ok(service)
    service.comment(service.query()[1][0]["id"], alice, "later")
    with service.store.session() as session:
        assert audit.check(session, expect_head=exported).ok
        wrong = replace(exported, hash="f" * 64)
        assert audit.check(session, expect_head=wrong).broken_at == exported.seq
        ahead = Head(exported.seq + 5, exported.hash)
        assert audit.check(session, expect_head=ahead).broken_at == exported.seq + 2


def test_only_admins_add_users(service: CaseService) -> None:
    with pytest.raises(Exception, match="admin"):
        service.add_user("eve", Role.ADMIN, by=user("bob", service))
    service.add_user("eve", Role.OPERATOR, by=user("root", service))
    assert service.actor("eve").role is Role.OPERATOR
    service.set_role("eve", Role.OPERATOR, active=False, by=user("root", service))
    with pytest.raises(NotFoundError, match="deactivated"):
        service.actor("eve")
