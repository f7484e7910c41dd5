"""Workflow commands from pages and the API, given to the case service in one way."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from payrecon.cases.service import CaseService, Executed
from payrecon.core.workflow import ActionKind, Actor
from payrecon.errors import TransitionError


class CaseCommand(StrEnum):
    ASSIGN = "assign"
    START = "start"
    COMMENT = "comment"
    PROPOSE = "propose"
    WITHDRAW = "withdraw"
    APPROVE = "approve"
    REJECT = "reject"
    REOPEN = "reopen"


@dataclass(frozen=True)
class CommandInput:
    """Arguments of a command; which ones a command needs is checked by the service."""

    assignee: str | None = None
    body: str | None = None  # a comment, reason or review note
    action: ActionKind | None = None
    amount: int | None = None  # minor units; None: the suggested amount
    version: int | None = None  # the case version the caller saw; None: do not check


def give(
    service: CaseService, case_id: int, actor: Actor, command: CaseCommand, given: CommandInput
) -> str:
    """Carry out ``command`` on a case as ``actor``; returns what happened, for people."""
    text, seen = given.body or "", given.version
    if command is CaseCommand.ASSIGN:
        state = service.assign(case_id, actor, given.assignee or actor.name, expected_version=seen)
        return f"assigned to {given.assignee or actor.name} ({state})"
    if command is CaseCommand.START:
        return f"started ({service.start(case_id, actor, expected_version=seen)})"
    if command is CaseCommand.COMMENT:
        service.comment(case_id, actor, text, expected_version=seen)
        return "comment added"
    if command is CaseCommand.PROPOSE:
        if given.action is None:
            raise TransitionError("propose needs an action")
        done = service.propose(
            case_id, actor, given.action, reason=text, amount=given.amount, expected_version=seen
        )
        return f"{given.action.label} proposed: {_outcome(done)}"
    if command is CaseCommand.WITHDRAW:
        service.withdraw(case_id, actor, expected_version=seen)
        return "proposal withdrawn"
    if command is CaseCommand.APPROVE:
        done = service.approve(case_id, actor, text or None, expected_version=seen)
        return f"approved: {_outcome(done)}"
    if command is CaseCommand.REJECT:
        service.reject(case_id, actor, text, expected_version=seen)
        return "proposal rejected"
    service.reopen(case_id, actor, text, expected_version=seen)
    return "case reopened"


def _outcome(done: Executed) -> str:
    if done.result is None:
        return f"action {done.action_id} {done.state}"
    verdict = "executed" if done.result.ok else f"not executed ({done.result.error})"
    return f"action {done.action_id} {verdict}"
