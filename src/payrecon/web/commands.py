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


def give(
    service: CaseService, case_id: int, actor: Actor, command: CaseCommand, given: CommandInput
) -> str:
    """Carry out ``command`` on a case as ``actor``; returns what happened, for people."""
    text = given.body or ""
    if command is CaseCommand.ASSIGN:
        state = service.assign(case_id, actor, given.assignee or actor.name)
        return f"assigned to {given.assignee or actor.name} ({state})"
    if command is CaseCommand.START:
        return f"started ({service.start(case_id, actor)})"
    if command is CaseCommand.COMMENT:
        service.comment(case_id, actor, text)
        return "comment added"
    if command is CaseCommand.PROPOSE:
        if given.action is None:
            raise TransitionError("propose needs an action")
        done = service.propose(case_id, actor, given.action, reason=text, amount=given.amount)
        return f"{given.action.label} proposed: {_outcome(done)}"
    if command is CaseCommand.WITHDRAW:
        service.withdraw(case_id, actor)
        return "proposal withdrawn"
    if command is CaseCommand.APPROVE:
        return f"approved: {_outcome(service.approve(case_id, actor, text or None))}"
    if command is CaseCommand.REJECT:
        service.reject(case_id, actor, text)
        return "proposal rejected"
    service.reopen(case_id, actor, text)
    return "case reopened"


def _outcome(done: Executed) -> str:
    if done.result is None:
        return f"action {done.action_id} {done.state}"
    verdict = "executed" if done.result.ok else f"not executed ({done.result.error})"
    return f"action {done.action_id} {verdict}"
