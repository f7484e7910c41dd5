"""The case service: every change to a case, each in one transaction with its audit entry.

Each command loads the case (locked), asks the pure workflow (:func:`decide`) whether the
actor may do it and what follows, applies that, and appends the audit entry with the
state before and after.

Optimistic locking: every human command takes the ``expected_version`` the caller saw
(a page, a spreadsheet row, ``--expect-version``); a case that has moved on since is
refused with a :class:`ConflictError` instead of acting on a state nobody looked at. The
write itself is a compare-and-set on ``cases.version`` (the mapper's ``version_id_col``),
so even a writer that did not lock the row cannot lose another's update.

Executing an approved action happens *outside* any transaction: the action is first
leased (``executing_since``), then the executor is called with the action's stored
idempotency key, then the answer is recorded. A crash in between leaves the lease to
expire; the next ``execute`` sends the same key again, and the platform's deduplication
keeps the money from moving twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, bindparam, func, select
from sqlalchemy import case as sql_case
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from payrecon.cases.audit import AuditWriter
from payrecon.cases.executor import ActionRequest, ExecutionResult, Executor
from payrecon.cases.models import (
    DONE_STATES,
    Action,
    Attachment,
    AuditEntry,
    Case,
    Comment,
    User,
)
from payrecon.cases.policy import CasePolicy
from payrecon.cases.store import CaseStore
from payrecon.core.cases import CaseFigures
from payrecon.core.outcomes import Outcome
from payrecon.core.workflow import (
    ActionKind,
    ActionState,
    Actor,
    CaseFacts,
    CaseState,
    Command,
    Decision,
    PendingAction,
    Request,
    Role,
    decide,
)
from payrecon.errors import (
    ConfigError,
    ConflictError,
    NotFoundError,
    PermissionDeniedError,
    TransitionError,
)

Clock = Callable[[], datetime]
EXECUTION_LEASE = timedelta(minutes=10)
_OPEN_ACTION = (ActionState.PROPOSED.value, ActionState.APPROVED.value)


def utc_now() -> datetime:
    return datetime.now(UTC)


def aware(moment: datetime) -> datetime:
    """SQLite hands back naive UTC; make every moment aware."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Executed:
    """What became of an execution attempt."""

    action_id: int
    result: ExecutionResult | None  # None: no executor configured, the action waits
    state: ActionState


class CaseService:
    """Commands and reads on the case store."""

    def __init__(
        self,
        store: CaseStore,
        policy: CasePolicy | None = None,
        executor: Executor | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.store = store
        self.policy = policy or CasePolicy()
        self.executor = executor
        self.clock = clock

    # -- users ---------------------------------------------------------------------------

    def add_user(
        self, name: str, role: Role, *, display_name: str | None = None, by: Actor | None = None
    ) -> None:
        """Create a user (by an admin, or by payrecon itself when setting up)."""
        by = by or Actor.system()
        if by.kind != "system" and by.role is not Role.ADMIN:
            raise ConfigError(f"{by.name} may not add users: needs admin")
        if not name or not name.isprintable() or name.startswith(("rule:", "system")):
            raise ConfigError(f"not a usable user name: {name!r}")
        now = self.clock()
        with self.store.session() as session:
            if session.execute(select(User.id).where(User.name == name)).first():
                raise ConfigError(f"user {name!r} already exists")
            session.add(
                User(
                    name=name,
                    display_name=display_name,
                    role=role.value,
                    active=True,
                    created_at=now,
                )
            )
            audit = AuditWriter(session)
            audit.add("user_added", by, now, after={"user": name, "role": role.value})
            audit.close()

    def set_role(self, name: str, role: Role, *, active: bool, by: Actor) -> None:
        if by.kind != "system" and by.role is not Role.ADMIN:
            raise ConfigError(f"{by.name} may not change users: needs admin")
        now = self.clock()
        with self.store.session() as session:
            user = _user(session, name)
            before = {"user": name, "role": user.role, "active": user.active}
            user.role, user.active = role.value, active
            audit = AuditWriter(session)
            after = {"user": name, "role": role.value, "active": active}
            audit.add("user_changed", by, now, before=before, after=after)
            audit.close()

    def actor(self, name: str) -> Actor:
        """The active user called ``name`` as an actor."""
        with self.store.session() as session:
            user = _user(session, name)
            if not user.active:
                raise NotFoundError(f"user {name!r} is deactivated")
            return Actor(user.name, Role(user.role))

    def users(self) -> list[dict[str, Any]]:
        with self.store.session() as session:
            rows = session.execute(select(User).order_by(User.name)).scalars()
            return [
                {"name": u.name, "display_name": u.display_name, "role": u.role, "active": u.active}
                for u in rows
            ]

    # -- commands ------------------------------------------------------------------------

    def assign(
        self, case_id: int, actor: Actor, assignee: str, *, expected_version: int | None = None
    ) -> CaseState:
        role = self.actor(assignee).role
        request = Request(Command.ASSIGN, assignee=assignee, assignee_role=role)
        return self._command(case_id, actor, request, expected_version=expected_version).state

    def start(
        self, case_id: int, actor: Actor, *, expected_version: int | None = None
    ) -> CaseState:
        request = Request(Command.START)
        return self._command(case_id, actor, request, expected_version=expected_version).state

    def comment(
        self, case_id: int, actor: Actor, body: str, *, expected_version: int | None = None
    ) -> None:
        text = body.strip()
        if not text:
            raise TransitionError("a comment needs text")

        def add(session: Session, case: Case, _: Decision, now: datetime) -> dict[str, Any]:
            session.add(Comment(case_id=case.id, author=actor.name, body=text, created_at=now))
            return {"comment": text}

        self._command(case_id, actor, Request(Command.COMMENT), add, expected_version)

    def attach(
        self,
        case_id: int,
        actor: Actor,
        uri: str,
        *,
        name: str | None = None,
        sha256: str | None = None,
        expected_version: int | None = None,
    ) -> None:
        """Attach a document by reference (a URI into the operator's document store)."""
        if not uri.strip():
            raise TransitionError("an attachment needs a URI")

        def add(session: Session, case: Case, _: Decision, now: datetime) -> dict[str, Any]:
            session.add(
                Attachment(
                    case_id=case.id,
                    author=actor.name,
                    uri=uri,
                    name=name,
                    sha256=sha256,
                    created_at=now,
                )
            )
            return {"attachment": {"uri": uri, "name": name, "sha256": sha256}}

        self._command(case_id, actor, Request(Command.ATTACH), add, expected_version)

    def propose(
        self,
        case_id: int,
        actor: Actor,
        kind: ActionKind,
        *,
        reason: str,
        amount: int | None = None,
        park_days: int | None = None,
        expected_version: int | None = None,
    ) -> Executed:
        """Propose an action; one that needs no approval is carried out at once."""
        if not reason.strip():
            raise TransitionError("an action needs a reason")
        days = park_days or self.policy.park_days
        created: list[int] = []

        # The amount is checked against the case's money before the workflow sees it.
        chosen = self._figures(case_id).check(kind, amount)

        def add(session: Session, case: Case, decision: Decision, now: datetime) -> dict[str, Any]:
            state = decision.action_state or ActionState.PROPOSED
            action = Action(
                case_id=case.id,
                kind=kind.value,
                state=state.value,
                amount=chosen,
                currency=case.currency,
                reason=reason.strip(),
                park_days=days if kind is ActionKind.PARK else None,
                proposed_by=actor.name,
                proposed_at=now,
                idempotency_key=f"payrecon-{uuid.uuid4().hex}",
                attempts=0,
            )
            if state is ActionState.EXECUTED:
                action.executed_at = now
            session.add(action)
            session.flush()
            created.append(action.id)
            if kind is ActionKind.PARK and decision.state is CaseState.PARKED:
                case.parked_until = now.date() + timedelta(days=days)
            return {"action": _action_view(action)}

        request = Request(Command.PROPOSE, action=kind, amount=chosen)
        decision = self._command(case_id, actor, request, add, expected_version)
        return self._follow(created[0], decision)

    def withdraw(self, case_id: int, actor: Actor, *, expected_version: int | None = None) -> None:
        review = self._review_note(actor, None)
        self._command(case_id, actor, Request(Command.WITHDRAW), review, expected_version)

    def approve(
        self,
        case_id: int,
        actor: Actor,
        note: str | None = None,
        *,
        expected_version: int | None = None,
    ) -> Executed:
        """Approve the pending action (a different approver); money actions then execute."""
        pending = self._pending_id(case_id)
        review = self._review_note(actor, note)
        decision = self._command(case_id, actor, Request(Command.APPROVE), review, expected_version)
        return self._follow(pending, decision)

    def reject(
        self, case_id: int, actor: Actor, note: str, *, expected_version: int | None = None
    ) -> None:
        if not note.strip():
            raise TransitionError("a rejection needs a reason")
        review = self._review_note(actor, note)
        self._command(case_id, actor, Request(Command.REJECT), review, expected_version)

    def reopen(
        self, case_id: int, actor: Actor, reason: str, *, expected_version: int | None = None
    ) -> None:
        if not reason.strip():
            raise TransitionError("reopening needs a reason")

        def note(_s: Session, case: Case, _d: Decision, _n: datetime) -> dict[str, Any]:
            case.closed_reason = None
            case.parked_until = None
            return {"reason": reason}

        self._command(case_id, actor, Request(Command.REOPEN), note, expected_version)

    def system_close(self, session: Session, audit: AuditWriter, case: Case, reason: str) -> bool:
        """Close a case whose discrepancy went away; ``False`` if an action is in flight."""
        return (
            self._apply(
                session, audit, case, Actor.system(), Request(Command.CLOSE), _closing(reason)
            )
            is not None
        )

    def system_reopen(self, session: Session, audit: AuditWriter, case: Case, reason: str) -> None:
        def note(_s: Session, case: Case, _d: Decision, _n: datetime) -> dict[str, Any]:
            case.closed_reason = None
            case.parked_until = None
            return {"reason": reason}

        self._apply(session, audit, case, Actor.system(), Request(Command.REOPEN), note)

    # -- execution -----------------------------------------------------------------------

    def execute(self, action_id: int) -> Executed:
        """Carry out an approved action through the executor (at most once in effect)."""
        if self.executor is None:
            return Executed(action_id, None, ActionState.APPROVED)
        now = self.clock()
        with self.store.session() as session:
            action = _locked_action(session, action_id)
            if action.state != ActionState.APPROVED:
                raise TransitionError(f"action {action_id} is {action.state}, not APPROVED")
            if action.executing_since and now - aware(action.executing_since) < EXECUTION_LEASE:
                raise ConflictError(f"action {action_id} is being carried out right now")
            action.executing_since = now
            action.attempts += 1
            case = _locked_case(session, action.case_id)
            request = _action_request(case, action)
            audit = AuditWriter(session)
            audit.add(
                "execution_started",
                Actor.system(),
                now,
                case_id=case.id,
                after={
                    "action": action.id,
                    "attempt": action.attempts,
                    "idempotency_key": action.idempotency_key,
                },
            )
            audit.close()
        result = self.executor.execute(request)
        return Executed(action_id, result, self._record(action_id, result))

    def execute_due(self) -> list[Executed]:
        """Execute every approved action that is not being executed (after an outage)."""
        cutoff = self.clock() - EXECUTION_LEASE
        with self.store.session() as session:
            ids = (
                session.execute(
                    select(Action.id)
                    .where(Action.state == ActionState.APPROVED.value)
                    .where((Action.executing_since.is_(None)) | (Action.executing_since < cutoff))
                    .order_by(Action.id)
                )
                .scalars()
                .all()
            )
        return [self.execute(action_id) for action_id in ids]

    def _record(self, action_id: int, result: ExecutionResult) -> ActionState:
        now = self.clock()
        with self.store.session() as session:
            action = _locked_action(session, action_id)
            case = _locked_case(session, action.case_id)
            audit = AuditWriter(session)
            action.response = result.response
            action.error = result.error
            action.executing_since = None
            answer = {
                "action": action.id,
                "ok": result.ok,
                "status_code": result.status_code,
                "attempts": result.attempts,
                "response": result.response,
                "error": result.error,
            }
            if result.ok or not result.retryable:
                command = Command.EXECUTED if result.ok else Command.EXECUTION_FAILED

                def mark(_s: Session, _c: Case, _d: Decision, when: datetime) -> dict[str, Any]:
                    if result.ok:
                        action.executed_at = when
                    return {"execution": answer}

                self._apply(session, audit, case, Actor.system(), Request(command), mark)
            else:
                audit.add(
                    "execution_deferred",
                    Actor.system(),
                    now,
                    case_id=case.id,
                    after={"execution": answer},
                )
            audit.close()
            return ActionState(action.state)

    def _follow(self, action_id: int, decision: Decision) -> Executed:
        if decision.execute:
            return self.execute(action_id)
        state = decision.action_state or ActionState.PROPOSED
        return Executed(action_id, None, state)

    # -- the one path every command takes ------------------------------------------------

    def _command(
        self,
        case_id: int,
        actor: Actor,
        request: Request,
        mutate: Mutation | None = None,
        expected_version: int | None = None,
    ) -> Decision:
        try:
            with self.store.session() as session:
                case = _locked_case(session, case_id)
                _check_version(case, expected_version)
                audit = AuditWriter(session)
                decision = self._apply(session, audit, case, actor, request, mutate)
                audit.close()
        except StaleDataError as exc:
            # The compare-and-set matched no row: someone else wrote the case first.
            raise ConflictError(
                f"case {case_id} was changed by someone else while {actor.name} acted on it;"
                " nothing was done: reload it and try again"
            ) from exc
        assert decision is not None
        return decision

    def _apply(
        self,
        session: Session,
        audit: AuditWriter,
        case: Case,
        actor: Actor,
        request: Request,
        mutate: Mutation | None = None,
    ) -> Decision | None:
        """Decide, apply and audit one command inside the caller's transaction.

        Returns ``None`` only for a system close that the workflow refuses (an approved
        action is in flight): that is noted in the log instead of failing the run.
        """
        now = self.clock()
        facts, pending = _facts(session, case)
        before = _case_view(case, pending)
        try:
            decision = decide(facts, actor, request, self.policy.approval)
        except TransitionError as exc:
            if request.command is Command.CLOSE:
                audit.add(
                    "close_deferred",
                    actor,
                    now,
                    case_id=case.id,
                    before=before,
                    after={"reason": str(exc)},
                )
                return None
            raise
        if pending is not None and decision.action_state is not None:
            pending.state = decision.action_state.value
        details = mutate(session, case, decision, now) if mutate else {}
        case.state = decision.state.value
        case.assignee = decision.assignee
        case.updated_at = now
        case.version += 1
        session.flush()
        after = {**_case_view(case, pending or _pending(session, case.id)), **details}
        audit.add(request.command.value, actor, now, case_id=case.id, before=before, after=after)
        return decision

    def _review_note(self, actor: Actor, note: str | None) -> Mutation:
        def review(session: Session, case: Case, _d: Decision, now: datetime) -> dict[str, Any]:
            action = _latest_action(session, case.id)
            if action is not None:
                action.reviewed_by, action.reviewed_at, action.review_note = actor.name, now, note
            return {"note": note} if note else {}

        return review

    def _pending_id(self, case_id: int) -> int:
        with self.store.session() as session:
            pending = _pending(session, case_id)
            if pending is None:
                raise TransitionError(f"case {case_id} has no action awaiting approval")
            return pending.id

    def _figures(self, case_id: int) -> CaseFigures:
        with self.store.session() as session:
            return _figures(_case(session, case_id))

    def facts(self, case_id: int) -> tuple[int, CaseFacts, CaseFigures]:
        """A case's version, what the workflow decides on, and its money (for checks ahead)."""
        with self.store.session() as session:
            case = _case(session, case_id)
            return case.version, _facts(session, case)[0], _figures(case)

    # -- reads ---------------------------------------------------------------------------

    def get(self, case_id: int) -> dict[str, Any]:
        """A case with its actions, comments, attachments and audit trail."""
        with self.store.session() as session:
            case = _case(session, case_id)
            actions = (
                session.execute(select(Action).where(Action.case_id == case_id).order_by(Action.id))
                .scalars()
                .all()
            )
            comments = (
                session.execute(
                    select(Comment).where(Comment.case_id == case_id).order_by(Comment.id)
                )
                .scalars()
                .all()
            )
            attachments = (
                session.execute(
                    select(Attachment).where(Attachment.case_id == case_id).order_by(Attachment.id)
                )
                .scalars()
                .all()
            )
            trail = (
                session.execute(
                    select(AuditEntry).where(AuditEntry.case_id == case_id).order_by(AuditEntry.seq)
                )
                .scalars()
                .all()
            )
            return {
                **case_row(case),
                "ledger_record": case.ledger_record,
                "channel_record": case.channel_record,
                "actions": [_action_view(a) | _action_detail(a) for a in actions],
                "comments": [
                    {"author": c.author, "body": c.body, "at": aware(c.created_at).isoformat()}
                    for c in comments
                ],
                "attachments": [
                    {
                        "author": a.author,
                        "uri": a.uri,
                        "name": a.name,
                        "sha256": a.sha256,
                        "at": aware(a.created_at).isoformat(),
                    }
                    for a in attachments
                ],
                "audit": [
                    {
                        "seq": e.seq,
                        "event": e.event,
                        "actor": e.actor,
                        "at": e.at,
                        "before": e.before,
                        "after": e.after,
                        "hash": e.hash,
                    }
                    for e in trail
                ],
            }

    def query(
        self, filters: CaseFilter | None = None, *, limit: int = 50, offset: int = 0
    ) -> tuple[int, list[dict[str, Any]]]:
        """(total, one page of cases), newest due first among open ones."""
        where = (filters or CaseFilter()).conditions(self.clock())
        with self.store.session() as session:
            total = session.execute(select(func.count()).select_from(Case).where(*where))
            rows = (
                session.execute(
                    select(Case)
                    .where(*where)
                    .order_by(Case.due_at, Case.id)
                    .limit(limit)
                    .offset(offset)
                )
                .scalars()
                .all()
            )
            return total.scalar_one(), [case_row(c) for c in rows]


Mutation = Callable[[Session, Case, Decision, datetime], dict[str, Any]]
# A case as lists show it (case_row): every column but both sides' records and bookkeeping.
ROW_COLUMNS = tuple(
    column
    for column in Case.__table__.columns
    if column.name
    not in {"fingerprint", "ledger_record", "channel_record", "created_at", "updated_at"}
)
ROW_NAMES = tuple(column.name for column in ROW_COLUMNS)


@dataclass(frozen=True)
class CaseFilter:
    channel: str | None = None
    states: tuple[str, ...] = ()
    outcome: str | None = None
    assignee: str | None = None
    run_day_from: date | None = None
    run_day_to: date | None = None
    min_stake: int | None = None
    max_stake: int | None = None
    overdue: bool = False
    open_only: bool = False

    def conditions(self, now: datetime) -> list[Any]:
        where: list[Any] = []
        if self.channel:
            where.append(Case.channel == self.channel)
        if self.states:
            where.append(Case.state.in_(self.states))
        if self.open_only or self.overdue:
            where.append(still_open())
        if self.outcome:
            where.append(Case.outcome == self.outcome)
        if self.assignee:
            where.append(Case.assignee == self.assignee)
        if self.run_day_from:
            where.append(Case.run_day >= self.run_day_from)
        if self.run_day_to:
            where.append(Case.run_day <= self.run_day_to)
        if self.min_stake is not None:
            where.append(Case.stake >= self.min_stake)
        if self.max_stake is not None:
            where.append(Case.stake <= self.max_stake)
        if self.overdue:
            where.append(Case.due_at < now)
        return where


def still_open() -> ColumnElement[bool]:
    """Cases someone still has to work: ``state NOT IN ('RESOLVED', 'CLOSED', 'PARKED')``.

    Rendered with the states as literals (not bound parameters), exactly as the partial
    indexes ``ix_cases_open_*`` (migration 0003) are defined, so the planner can prove
    the query matches their predicate, in prepared statements and generic plans too.
    """
    done: Any = bindparam("done_states", list(DONE_STATES), expanding=True, literal_execute=True)
    return Case.state.not_in(done)


# -- helpers -------------------------------------------------------------------------------


def _closing(reason: str) -> Mutation:
    def close(_s: Session, case: Case, _d: Decision, _n: datetime) -> dict[str, Any]:
        case.closed_reason = reason
        return {"reason": reason}

    return close


def _user(session: Session, name: str) -> User:
    user = session.execute(select(User).where(User.name == name)).scalar_one_or_none()
    if user is None:
        raise NotFoundError(f"no user {name!r} (create one with `payrecon users create`)")
    return user


def _case(session: Session, case_id: int) -> Case:
    case = session.get(Case, case_id)
    if case is None:
        raise NotFoundError(f"no case {case_id}")
    return case


def _locked_case(session: Session, case_id: int) -> Case:
    case = session.get(Case, case_id, with_for_update=True)
    if case is None:
        raise NotFoundError(f"no case {case_id}")
    return case


def _check_version(case: Case, expected: int | None) -> None:
    if expected is not None and expected != case.version:
        raise ConflictError(
            f"case {case.id} changed meanwhile: you saw version {expected}, it is now at"
            f" version {case.version} ({case.state}, assignee {case.assignee or 'none'});"
            " nothing was done: reload it and try again"
        )


def _facts(session: Session, case: Case) -> tuple[CaseFacts, Action | None]:
    pending = _pending(session, case.id)
    facts = CaseFacts(
        CaseState(case.state),
        Outcome(case.outcome),
        case.assignee,
        None
        if pending is None
        else PendingAction(
            pending.id,
            ActionKind(pending.kind),
            ActionState(pending.state),
            pending.proposed_by,
            pending.amount,
        ),
    )
    return facts, pending


def _locked_action(session: Session, action_id: int) -> Action:
    action = session.get(Action, action_id, with_for_update=True)
    if action is None:
        raise NotFoundError(f"no action {action_id}")
    return action


def _pending(session: Session, case_id: int) -> Action | None:
    return session.execute(
        select(Action)
        .where(Action.case_id == case_id, Action.state.in_(_OPEN_ACTION))
        .order_by(Action.id.desc())
        .limit(1)
    ).scalar_one_or_none()


def _latest_action(session: Session, case_id: int) -> Action | None:
    return session.execute(
        select(Action).where(Action.case_id == case_id).order_by(Action.id.desc()).limit(1)
    ).scalar_one_or_none()


def _figures(case: Case) -> CaseFigures:
    ledger, channel = case.ledger_record or {}, case.channel_record or {}
    return CaseFigures(
        outcome=Outcome(case.outcome),
        ledger_amount=case.ledger_amount,
        channel_amount=case.channel_amount,
        amount_diff=case.amount_diff,
        ledger_fee=ledger.get("fee"),
        channel_fee=channel.get("fee"),
    )


def _action_view(action: Action) -> dict[str, Any]:
    return {
        "id": action.id,
        "kind": action.kind,
        "state": action.state,
        "amount": action.amount,
        "proposed_by": action.proposed_by,
    }


def _action_detail(action: Action) -> dict[str, Any]:
    return {
        "label": ActionKind(action.kind).label,
        "currency": action.currency,
        "reason": action.reason,
        "park_days": action.park_days,
        "proposed_at": aware(action.proposed_at).isoformat(),
        "reviewed_by": action.reviewed_by,
        "review_note": action.review_note,
        "idempotency_key": action.idempotency_key,
        "attempts": action.attempts,
        "executed_at": aware(action.executed_at).isoformat() if action.executed_at else None,
        "response": action.response,
        "error": action.error,
    }


def _case_view(case: Case, action: Action | None) -> dict[str, Any]:
    return {
        "state": case.state,
        "assignee": case.assignee,
        "action": None if action is None else _action_view(action),
    }


def case_row(case: Case) -> dict[str, Any]:
    """A case's own fields as JSON-friendly values (no records, no history)."""
    return _listed([getattr(case, name) for name in ROW_NAMES])


def _listed(values: Sequence[Any]) -> dict[str, Any]:
    """:func:`case_row` from the values of :data:`ROW_COLUMNS`, in their order."""
    row = dict(zip(ROW_NAMES, values, strict=False))
    row["run_day"] = row["run_day"].isoformat()
    row["due_at"] = aware(row["due_at"]).isoformat()
    for name in ("bill_date", "parked_until"):
        if row[name] is not None:
            row[name] = row[name].isoformat()
    return row


def _action_request(case: Case, action: Action) -> ActionRequest:
    payload: Mapping[str, Any] = {
        "outcome": case.outcome,
        "kind": case.kind,
        "run_day": case.run_day.isoformat(),
        "amount_diff": case.amount_diff,
        "ledger_record": case.ledger_record,
        "channel_record": case.channel_record,
    }
    return ActionRequest(
        action_id=action.id,
        idempotency_key=action.idempotency_key,
        case_id=case.id,
        kind=action.kind,
        amount_minor=action.amount,
        currency=action.currency,
        channel=case.channel,
        merchant_id=case.merchant_id,
        order_id=case.order_id,
        reason=action.reason,
        proposed_by=action.proposed_by,
        approved_by=action.reviewed_by,
        payload=payload,
    )


# -- the back-office's reads and passwords (used by payrecon.web and `users passwd`) --------

QUEUE_SORTS: Mapping[str, Any] = {
    "due": Case.due_at,
    "stake": Case.stake,
    "run_day": Case.run_day,
    "opened": Case.created_at,
    "id": Case.id,
}
QUEUE_COUNT_CAP = 1_000
AGE_BUCKETS = ("<1d", "1-3d", "3-7d", "7d+")
MIN_PASSWORD = 8


@dataclass(frozen=True)
class QueuePage:
    """One page of the case queue; ``total`` is exact unless ``more`` (counted up to a cap)."""

    total: int
    more: bool
    cases: list[dict[str, Any]]


class BackOffice:
    """Reads the back-office needs beyond :meth:`CaseService.query`, and user passwords.

    Passwords are argon2 hashes in ``users.password_hash``; only the hash is stored and
    the audit log records that a password was set, never the hash.
    """

    def __init__(self, service: CaseService) -> None:
        self.service = service
        self.store = service.store

    def queue(
        self,
        filters: CaseFilter | None = None,
        *,
        sort: str = "due",
        descending: bool = False,
        limit: int = 50,
        offset: int = 0,
        count_cap: int = QUEUE_COUNT_CAP,
    ) -> QueuePage:
        """A page of cases in the chosen order; counting stops at ``count_cap``.

        The page's ids come first, from an index alone where one fits (the open queue's
        partial indexes carry the filtered columns), then only those rows are read, and
        only the columns a list shows (:data:`ROW_COLUMNS`, never the records). The count
        is skipped when the page itself shows where the list ends.
        """
        column = QUEUE_SORTS.get(sort)
        if column is None:
            raise TransitionError(f"cannot sort cases by {sort!r} (one of {sorted(QUEUE_SORTS)})")
        where = (filters or CaseFilter()).conditions(self.service.clock())
        order = [column.desc(), Case.id.desc()] if descending else [column, Case.id]
        chosen = select(Case.id).where(*where).order_by(*order).limit(limit).offset(offset)
        capped = select(Case.id).where(*where).limit(count_cap + 1).subquery()
        count = select(func.count()).select_from(capped)
        ids = chosen.subquery()
        # One statement: the page's rows, each carrying the (capped) count.
        page = (
            select(*ROW_COLUMNS, count.scalar_subquery())
            .join(ids, Case.id == ids.c.id)
            .order_by(*order)
        )
        with self._reading() as connection:
            rows = connection.execute(page).all()
            if rows:
                total = int(rows[0][-1])
            else:  # past the end, or nothing matches
                total = connection.execute(count).scalar_one() if offset else 0
        cases = [_listed(row) for row in rows]
        return QueuePage(min(total, count_cap), total > count_cap, cases)

    @contextmanager
    def _reading(self) -> Iterator[Connection]:
        """A connection for reads; on PostgreSQL in autocommit (no BEGIN/COMMIT trips)."""
        engine = self.store.engine
        with engine.connect() as connection:
            if engine.dialect.name == "postgresql":
                connection.execution_options(isolation_level="AUTOCOMMIT")
            yield connection

    def open_by_age_and_severity(self) -> dict[str, dict[str, int]]:
        """Open cases counted by severity, then by age since opened (``AGE_BUCKETS``)."""
        now = self.service.clock()
        done = [s.value for s in CaseState if s.is_done]
        bucket = sql_case(
            (Case.created_at >= now - timedelta(days=1), AGE_BUCKETS[0]),
            (Case.created_at >= now - timedelta(days=3), AGE_BUCKETS[1]),
            (Case.created_at >= now - timedelta(days=7), AGE_BUCKETS[2]),
            else_=AGE_BUCKETS[3],
        )
        query = (
            select(Case.severity, bucket, func.count())
            .where(Case.state.not_in(done))
            .group_by(Case.severity, bucket)
        )
        counts: dict[str, dict[str, int]] = {}
        with self.store.session() as session:
            for severity, age, count in session.execute(query):
                counts.setdefault(severity, dict.fromkeys(AGE_BUCKETS, 0))[age] = count
        return counts

    def set_password(self, name: str, password: str, *, by: Actor) -> None:
        """Store an argon2 hash of ``password`` for ``name`` (by the user or an admin)."""
        if by.is_user and by.name != name and by.role is not Role.ADMIN:
            raise PermissionDeniedError(f"{by.name} may not set {name}'s password: needs admin")
        if len(password) < MIN_PASSWORD:
            raise ConfigError(f"a password needs at least {MIN_PASSWORD} characters")
        digest = _hasher().hash(password)
        now = self.service.clock()
        with self.store.session() as session:
            _user(session, name).password_hash = digest
            audit = AuditWriter(session)
            audit.add("password_set", by, now, after={"user": name})
            audit.close()

    def authenticate(self, name: str, password: str) -> Actor:
        """The active user ``name`` when ``password`` is theirs; refuses otherwise."""
        from argon2.exceptions import InvalidHashError, VerificationError

        with self.store.session() as session:
            user = session.execute(select(User).where(User.name == name)).scalar_one_or_none()
            found = None if user is None else (user.password_hash, user.active, user.role)
        hasher = _hasher()
        try:
            # A missing user costs one verification too, so timing does not reveal names.
            hasher.verify((found and found[0]) or _dummy_hash(), password)
        except (VerificationError, InvalidHashError):
            found = None
        if found is None or not found[0] or not found[1]:
            raise PermissionDeniedError("wrong user name or password")
        return Actor(name, Role(found[2]))


_DUMMY: list[str] = []


def _hasher() -> Any:
    from payrecon.errors import require

    require("argon2", "web")
    from argon2 import PasswordHasher

    return PasswordHasher()


def _dummy_hash() -> str:
    if not _DUMMY:
        _DUMMY.append(_hasher().hash(uuid.uuid4().hex))
    return _DUMMY[0]
