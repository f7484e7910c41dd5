"""Bulk assign and bulk propose on a filter (SQLite; PostgreSQL under the integration
marker): each case on its own, a mix of allowed and refused, dry runs change nothing."""

from __future__ import annotations

from typing import Any

import pytest

from payrecon.cases import audit
from payrecon.cases.bulk import bulk_assign, bulk_propose, select_cases
from payrecon.cases.ingest import open_cases
from payrecon.cases.service import CaseFilter, CaseService
from payrecon.core.workflow import ActionKind, Actor, CaseState
from tests.conftest import DAY
from tests.unit.cases.conftest import Outcomes, standard_day

OPEN = CaseFilter(open_only=True)


@pytest.fixture
def cases(service: CaseService, outcomes: Outcomes) -> dict[str, int]:
    ledger, channel = standard_day()
    open_cases(service, outcomes(ledger, channel), run_id="r1", channel="wechat", day=DAY)
    return {row["order_id"]: row["id"] for row in service.query(limit=100)[1]}


def snapshot(service: CaseService) -> list[tuple[Any, ...]]:
    rows = service.query(limit=100)[1]
    trail = [len(service.get(r["id"])["audit"]) for r in rows]
    return [(r["id"], r["state"], r["assignee"], r["version"]) for r in rows] + [tuple(trail)]


def by_case(report: Any) -> dict[int, tuple[bool, str]]:
    return {r.case_id: (r.ok, r.detail) for r in report.results}


def test_bulk_assign_claims_the_free_cases_and_refuses_anothers(
    service: CaseService, cases: dict[str, int]
) -> None:
    service.assign(cases["o2"], service.actor("bob"), "carol")
    alice = service.actor("alice")
    before = snapshot(service)

    dry = bulk_assign(service, OPEN, alice, "alice", dry_run=True)
    assert snapshot(service) == before  # nothing changed
    assert dry.dry_run and dry.matched == 4 and len(dry.refused) == 1
    assert by_case(dry)[cases["o3"]] == (True, "would assign to alice (ASSIGNED)")

    report = bulk_assign(service, OPEN, alice, "alice")
    results = by_case(report)
    assert report.matched == 4 and len(report.results) == 4
    assert results[cases["o2"]][0] is False
    assert "assigned to carol; ask an approver" in results[cases["o2"]][1]
    assert {r.case_id for r in report.results if r.ok} == {cases[o] for o in ("o3", "o4", "o5")}
    assignees = {r["order_id"]: r["assignee"] for r in service.query(limit=100)[1]}
    assert assignees == {"o2": "carol", "o3": "alice", "o4": "alice", "o5": "alice"}
    # The dry run foresaw exactly what happened.
    assert [r.ok for r in dry.results] == [r.ok for r in report.results]
    with service.store.session() as session:
        assert audit.check(session).ok


def test_bulk_propose_applies_where_the_action_fits_and_reports_the_rest(
    service: CaseService, cases: dict[str, int]
) -> None:
    bob, alice = service.actor("bob"), service.actor("alice")
    for case_id in cases.values():
        service.assign(case_id, bob, "alice")
        service.start(case_id, alice)
    mine = CaseFilter(assignee="alice", states=(CaseState.IN_PROGRESS.value,))
    report = bulk_propose(service, mine, alice, ActionKind.SUPPLEMENT_ORDER, reason="补单")
    results = by_case(report)
    assert {o: results[cases[o]][0] for o in cases} == {
        "o2": False,  # an amount mismatch is not fixed by 补单
        "o3": True,
        "o4": False,  # the channel never took the money
        "o5": True,
    }
    assert "does not apply to AMOUNT_MISMATCH" in results[cases["o2"]][1]
    states = {r["order_id"]: r["state"] for r in service.query(limit=100)[1]}
    assert states == {
        "o2": "IN_PROGRESS",
        "o3": "PENDING_APPROVAL",
        "o4": "IN_PROGRESS",
        "o5": "PENDING_APPROVAL",
    }
    # Each proposal carries its own case's suggested amount.
    amounts = {o: service.get(cases[o])["actions"][-1]["amount"] for o in ("o3", "o5")}
    assert amounts == {"o3": 500, "o5": 200_000}


def test_a_case_changed_after_selection_is_refused_not_acted_on(
    service: CaseService, cases: dict[str, int]
) -> None:
    dora = service.actor("dora")

    class Racing(CaseService):
        """Someone else claims o4 for carol right before the bulk command reaches it."""

        def assign(self, case_id: int, actor: Actor, assignee: str, **kw: Any) -> CaseState:
            if case_id == cases["o4"]:
                super().assign(case_id, dora, "carol")
            return super().assign(case_id, actor, assignee, **kw)

    racing = Racing(service.store, service.policy, clock=service.clock)
    report = bulk_assign(racing, OPEN, service.actor("bob"), "alice")
    results = by_case(report)
    assert results[cases["o4"]][0] is False and "changed meanwhile" in results[cases["o4"]][1]
    assert service.get(cases["o4"])["assignee"] == "carol"  # not overwritten
    assert sum(ok for ok, _ in results.values()) == 3


def test_selection_counts_everything_but_takes_at_most_the_limit(
    service: CaseService, cases: dict[str, int]
) -> None:
    total, taken = select_cases(service, OPEN, 2)
    assert total == 4 and [i for i, _ in taken] == sorted(cases.values())[:2]
    report = bulk_assign(service, OPEN, service.actor("bob"), "alice", limit=2)
    assert report.matched == 4 and len(report.results) == 2
    assert report.as_json()["taken"] == 2 and report.as_json()["refused"] == 0
