"""Optimistic locking: two people acting on one case at once, each in their own session
(own engine, own connection, own thread), on SQLite and on PostgreSQL. One succeeds, the
other gets a ConflictError; no update is lost and the audit chain stays intact."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy import text

from payrecon.cases import audit
from payrecon.cases import service as service_module
from payrecon.cases.ingest import open_cases
from payrecon.cases.models import Case
from payrecon.cases.service import CaseService
from payrecon.cases.store import CaseStore
from payrecon.core.workflow import ActionKind
from payrecon.errors import ConflictError
from tests.conftest import DAY
from tests.unit.cases.conftest import Clock, Outcomes, standard_day


@pytest.fixture
def cases(service: CaseService, outcomes: Outcomes) -> dict[str, dict[str, Any]]:
    ledger, channel = standard_day()
    open_cases(service, outcomes(ledger, channel), run_id="r1", channel="wechat", day=DAY)
    return {row["order_id"]: row for row in service.query(limit=100)[1]}


@pytest.fixture
def sessions(store_url: str, service: CaseService, clock: Clock) -> Iterator[list[CaseService]]:
    """Two services over their own engines: two operators' separate connections."""
    stores = [CaseStore(store_url), CaseStore(store_url)]
    yield [CaseService(s, service.policy, clock=clock) for s in stores]
    for opened in stores:
        opened.close()


def race(*attempts: Callable[[], object]) -> list[object]:
    """Run each attempt in its own thread, released together; their results or errors."""
    barrier = threading.Barrier(len(attempts))
    results: list[object] = [None] * len(attempts)

    def run(index: int, attempt: Callable[[], object]) -> None:
        barrier.wait()
        try:
            results[index] = attempt()
        except Exception as exc:  # collected and asserted on by the test
            results[index] = exc

    threads = [threading.Thread(target=run, args=pair) for pair in enumerate(attempts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def events(service: CaseService, case_id: int, event: str) -> list[dict[str, Any]]:
    return [e for e in service.get(case_id)["audit"] if e["event"] == event]


def chain_intact(service: CaseService) -> bool:
    with service.store.session() as session:
        return audit.check(session).ok


def test_two_approvers_assigning_at_once_one_wins_one_conflicts(
    service: CaseService, cases: dict[str, dict[str, Any]], sessions: list[CaseService]
) -> None:
    case = cases["o2"]
    first, second = sessions
    bob, dora = first.actor("bob"), second.actor("dora")
    seen = case["version"]
    results = race(
        lambda: first.assign(case["id"], bob, "alice", expected_version=seen),
        lambda: second.assign(case["id"], dora, "carol", expected_version=seen),
    )
    won = [r for r in results if not isinstance(r, Exception)]
    lost = [r for r in results if isinstance(r, Exception)]
    assert len(won) == 1 and len(lost) == 1, results
    assert isinstance(lost[0], ConflictError)
    assert f"case {case['id']} changed meanwhile" in str(lost[0])
    assert f"you saw version {seen}, it is now at version {seen + 1}" in str(lost[0])
    assert "reload" in str(lost[0])
    winner = "alice" if results[0] is won[0] else "carol"
    after = service.get(case["id"])
    assert (after["assignee"], after["version"]) == (winner, seen + 1)
    assigned = events(service, case["id"], "assign")
    assert len(assigned) == 1 and assigned[0]["after"]["assignee"] == winner
    assert chain_intact(service)


def test_two_proposals_at_once_leave_exactly_one_action(
    service: CaseService, cases: dict[str, dict[str, Any]], sessions: list[CaseService]
) -> None:
    case_id = cases["o3"]["id"]
    bob = service.actor("bob")
    service.assign(case_id, bob, "alice")
    alice = service.actor("alice")
    service.start(case_id, alice)
    seen = service.get(case_id)["version"]
    first, second = sessions
    results = race(
        lambda: first.propose(
            case_id, alice, ActionKind.SUPPLEMENT_ORDER, reason="补单", expected_version=seen
        ),
        lambda: second.propose(
            case_id, bob, ActionKind.REFUND, reason="退款", expected_version=seen
        ),
    )
    assert sorted(type(r).__name__ for r in results) == ["ConflictError", "Executed"]
    detail = service.get(case_id)
    assert len(detail["actions"]) == 1 and len(events(service, case_id, "propose")) == 1
    assert detail["state"] == "PENDING_APPROVAL"
    assert chain_intact(service)


def test_without_an_expected_version_the_second_acts_on_the_newer_state(
    service: CaseService, cases: dict[str, dict[str, Any]], sessions: list[CaseService]
) -> None:
    """Locked rows still serialise callers that do not say what they saw: no lost update,
    both entries audited in order."""
    case_id = cases["o4"]["id"]
    first, second = sessions
    bob, dora = first.actor("bob"), second.actor("dora")
    results = race(
        lambda: first.assign(case_id, bob, "alice"),
        lambda: second.assign(case_id, dora, "carol"),
    )
    assert not any(isinstance(r, Exception) for r in results)
    trail = events(service, case_id, "assign")
    assert len(trail) == 2 and trail[1]["before"]["assignee"] == trail[0]["after"]["assignee"]
    assert service.get(case_id)["version"] == cases["o4"]["version"] + 2
    assert chain_intact(service)


def test_the_write_is_a_compare_and_set_even_without_a_row_lock(
    service: CaseService, cases: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Take the row lock away and let another writer commit between read and write: the
    UPDATE matches no row (``WHERE version = ?``), so nothing is written and the caller
    gets a ConflictError instead of overwriting the other's change."""
    case_id = cases["o2"]["id"]
    before = len(service.get(case_id)["audit"])

    def unlocked_then_overtaken(session: Any, wanted: int) -> Case:
        case = session.get(Case, wanted)
        session.execute(
            text("UPDATE cases SET version = version + 1, assignee = 'carol' WHERE id = :id"),
            {"id": wanted},
        )
        return case  # type: ignore[no-any-return]

    monkeypatch.setattr(service_module, "_locked_case", unlocked_then_overtaken)
    with pytest.raises(ConflictError, match=rf"case {case_id} was changed by someone else"):
        service.assign(case_id, service.actor("bob"), "alice")
    monkeypatch.undo()
    after = service.get(case_id)
    # Everything rolled back: the other writer's simulated change (same transaction) and ours.
    assert (after["assignee"], after["version"]) == (None, cases["o2"]["version"])
    assert len(after["audit"]) == before
    assert chain_intact(service)


@pytest.mark.parametrize(
    "command",
    ["assign", "start", "comment", "attach", "propose", "withdraw", "approve", "reject", "reopen"],
)
def test_every_human_command_refuses_a_stale_version(
    service: CaseService, cases: dict[str, dict[str, Any]], command: str
) -> None:
    case_id = cases["o3"]["id"]
    bob, alice = service.actor("bob"), service.actor("alice")
    stale = cases["o3"]["version"]
    service.comment(case_id, bob, "moves the version on")
    calls: dict[str, Callable[[], object]] = {
        "assign": lambda: service.assign(case_id, bob, "alice", expected_version=stale),
        "start": lambda: service.start(case_id, alice, expected_version=stale),
        "comment": lambda: service.comment(case_id, alice, "x", expected_version=stale),
        "attach": lambda: service.attach(case_id, alice, "s3://x", expected_version=stale),
        "propose": lambda: service.propose(
            case_id, bob, ActionKind.PARK, reason="wait", expected_version=stale
        ),
        "withdraw": lambda: service.withdraw(case_id, alice, expected_version=stale),
        "approve": lambda: service.approve(case_id, bob, expected_version=stale),
        "reject": lambda: service.reject(case_id, bob, "no", expected_version=stale),
        "reopen": lambda: service.reopen(case_id, bob, "again", expected_version=stale),
    }
    if command in ("withdraw", "approve", "reject", "reopen"):
        service.assign(case_id, bob, "alice")
        service.start(case_id, alice)
        kind = ActionKind.ACCEPT_CHANNEL if command == "reopen" else ActionKind.REFUND
        service.propose(case_id, alice, kind, reason="refund or channel is right")
    before = service.get(case_id)
    with pytest.raises(ConflictError, match=f"you saw version {stale}, it is now at version"):
        calls[command]()
    after = service.get(case_id)
    assert after["version"] == before["version"] and after["audit"] == before["audit"]
    # The current version is accepted.
    service.comment(case_id, bob, "fresh", expected_version=after["version"])
