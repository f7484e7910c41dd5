"""One command on every case a filter selects (``cases bulk-assign``, ``cases bulk-propose``).

Each case is its own transaction through :class:`CaseService`, with the version seen when
the cases were selected as the expected version: a case someone changed in between is
refused (it may no longer match the filter) rather than acted on blindly. One case's
refusal never stops the others; the report says, per case, what happened and why.

A dry run changes nothing; it asks the pure workflow what each command *would* do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import func, select

from payrecon.cases.models import Case
from payrecon.cases.service import CaseFilter, CaseService
from payrecon.core.workflow import (
    ActionKind,
    Actor,
    Command,
    Request,
    decide,
)
from payrecon.errors import PayreconError

MAX_BULK = 10_000


@dataclass(frozen=True)
class CaseResult:
    """What became of one case: done (``ok``) or refused, and why."""

    case_id: int
    ok: bool
    detail: str
    row: int | None = None  # the spreadsheet row it came from, if any


@dataclass(frozen=True)
class BulkReport:
    matched: int  # every case the filter selects
    results: list[CaseResult]  # the cases taken (at most the limit)
    dry_run: bool = False

    @property
    def refused(self) -> list[CaseResult]:
        return [r for r in self.results if not r.ok]

    def as_json(self) -> dict[str, object]:
        return {
            "matched": self.matched,
            "taken": len(self.results),
            "dry_run": self.dry_run,
            "ok": len(self.results) - len(self.refused),
            "refused": len(self.refused),
            "results": [
                {"case": r.case_id, "ok": r.ok, "detail": r.detail}
                | ({"row": r.row} if r.row is not None else {})
                for r in self.results
            ],
        }


def select_cases(
    service: CaseService, filters: CaseFilter, limit: int
) -> tuple[int, list[tuple[int, int]]]:
    """(how many match, the first ``limit`` as (id, version)), oldest id first."""
    where = filters.conditions(service.clock())
    with service.store.session() as session:
        total = session.execute(select(func.count()).select_from(Case).where(*where))
        rows = session.execute(
            select(Case.id, Case.version).where(*where).order_by(Case.id).limit(limit)
        )
        return total.scalar_one(), [(int(i), int(v)) for i, v in rows]


def bulk_assign(
    service: CaseService,
    filters: CaseFilter,
    actor: Actor,
    assignee: str,
    *,
    limit: int = 1000,
    dry_run: bool = False,
) -> BulkReport:
    """Assign every selected case to ``assignee``."""
    role = service.actor(assignee).role
    request = Request(Command.ASSIGN, assignee=assignee, assignee_role=role)

    def act(case_id: int, version: int) -> str:
        state = service.assign(case_id, actor, assignee, expected_version=version)
        return f"assigned to {assignee} ({state})"

    def foresee(case_id: int) -> str:
        _, facts, _ = service.facts(case_id)
        return f"would assign to {assignee} ({decide(facts, actor, request).state})"

    return _run(service, filters, limit, foresee if dry_run else None, act)


def bulk_propose(
    service: CaseService,
    filters: CaseFilter,
    actor: Actor,
    kind: ActionKind,
    *,
    reason: str,
    amount: int | None = None,
    park_days: int | None = None,
    limit: int = 1000,
    dry_run: bool = False,
) -> BulkReport:
    """Propose ``kind`` on every selected case (amount: the case's suggestion by default)."""

    def act(case_id: int, version: int) -> str:
        done = service.propose(
            case_id,
            actor,
            kind,
            reason=reason,
            amount=amount,
            park_days=park_days,
            expected_version=version,
        )
        return f"{kind.value} ({kind.label}) {done.state}"

    def foresee(case_id: int) -> str:
        _, facts, figures = service.facts(case_id)
        chosen = figures.check(kind, amount)
        request = Request(Command.PROPOSE, action=kind, amount=chosen)
        decision = decide(facts, actor, request, service.policy.approval)
        return f"would propose {kind.value} ({kind.label}): case {decision.state}"

    return _run(service, filters, limit, foresee if dry_run else None, act)


def _run(
    service: CaseService,
    filters: CaseFilter,
    limit: int,
    foresee: Callable[[int], str] | None,
    act: Callable[[int, int], str],
) -> BulkReport:
    matched, selected = select_cases(service, filters, min(limit, MAX_BULK))
    results = []
    for case_id, version in selected:
        try:
            detail = foresee(case_id) if foresee else act(case_id, version)
            results.append(CaseResult(case_id, True, detail))
        except PayreconError as exc:
            results.append(CaseResult(case_id, False, str(exc)))
    return BulkReport(matched, results, dry_run=foresee is not None)
