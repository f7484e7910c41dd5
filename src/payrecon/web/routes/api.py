"""The JSON API under ``/api`` (OpenAPI at ``/api/openapi.json``). Amounts are minor units.

Machine clients authenticate with ``Authorization: Bearer <token>`` (``POST /api/tokens``
issues one); browsers use their session. Errors are ``{"error", "detail"}`` with the
status from :mod:`payrecon.web.errors`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from payrecon.core.workflow import ActionKind, Role
from payrecon.web import runs as run_views
from payrecon.web.commands import CaseCommand, CommandInput, give
from payrecon.web.deps import Admin, Context, Operator, Viewer
from payrecon.web.queue import QueueQuery

router = APIRouter(tags=["api"])
CaseId = Annotated[int, Path(ge=1, le=2**62)]


class ErrorOut(BaseModel):
    error: str
    detail: str


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 403, 404, 409, 422)
}


class CaseOut(BaseModel):
    id: int
    channel: str
    merchant_id: str | None
    run_day: str
    kind: str
    order_id: str
    outcome: str
    side: str | None
    diff_fields: str | None
    amount_diff: int | None
    ledger_amount: int | None
    channel_amount: int | None
    stake: int
    currency: str
    severity: str
    state: str
    assignee: str | None
    due_at: str
    version: int


class CasePage(BaseModel):
    total: int = Field(description="matching cases; a lower bound when `more` is true")
    more: bool
    page: int
    per_page: int
    cases: list[CaseOut]


class CommandOut(BaseModel):
    case: dict[str, Any]
    message: str


class Proposal(BaseModel):
    kind: ActionKind
    reason: str = Field(min_length=1, max_length=4000)
    amount: int | None = Field(None, ge=-(10**15), le=10**15, description="minor units")


class Note(BaseModel):
    note: str = Field("", max_length=4000)


class Reason(BaseModel):
    reason: str = Field(min_length=1, max_length=4000)


class Assignment(BaseModel):
    assignee: str = Field(min_length=1, max_length=64)


class CommentIn(BaseModel):
    body: str = Field(min_length=1, max_length=4000)


class UserIn(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    role: Role
    display_name: str | None = Field(None, max_length=200)
    password: str | None = Field(None, min_length=8, max_length=1024)


class TokenIn(BaseModel):
    label: str = Field("api", max_length=200)
    user: str | None = Field(None, max_length=64, description="admins only: for another user")


class TokenOut(BaseModel):
    id: int
    token: str = Field(description="shown once; keep it secret")


# -- the schema -------------------------------------------------------------------------


@router.get("/openapi.json", include_in_schema=False)
def api_schema(request: Request, who: Viewer) -> dict[str, Any]:
    schema: dict[str, Any] = request.app.openapi()
    return schema


@router.get("/docs", include_in_schema=False)
def api_docs(who: Viewer) -> HTMLResponse:
    return get_swagger_ui_html(openapi_url="/api/openapi.json", title="payrecon API")


# -- runs --------------------------------------------------------------------------------


@router.get("/runs", responses=ERRORS)
def api_runs(web: Context, who: Viewer, channel: str | None = None) -> list[dict[str, Any]]:
    """Every recorded run, newest first, with its summary."""
    return run_views.runs(web.runs, channel or None)


@router.get("/runs/{run_id}", responses=ERRORS)
def api_run(web: Context, who: Viewer, run_id: str) -> dict[str, Any]:
    view = run_views.run(web.runs, run_id)
    return view | {"reports": run_views.reports(view)}


# -- cases -------------------------------------------------------------------------------


@router.get("/cases", responses=ERRORS)
def api_cases(web: Context, who: Viewer, query: Annotated[QueueQuery, Query()]) -> CasePage:
    """The case queue: filters, ordering and one page."""
    found = web.office.queue(
        query.filter(),
        sort=query.sort,
        descending=query.desc,
        limit=query.per_page,
        offset=query.offset,
    )
    return CasePage(
        total=found.total,
        more=found.more,
        page=query.page,
        per_page=query.per_page,
        cases=[CaseOut.model_validate(c) for c in found.cases],
    )


@router.get("/cases/{case_id}", responses=ERRORS)
def api_case(web: Context, who: Viewer, case_id: CaseId) -> dict[str, Any]:
    """A case with both records, actions, comments and its audit trail."""
    return web.service.get(case_id)


def _command(
    web: Context, who: Operator, case_id: int, command: CaseCommand, given: CommandInput
) -> CommandOut:
    message = give(web.service, case_id, who.actor, command, given)
    return CommandOut(case=web.service.get(case_id), message=message)


@router.post("/cases/{case_id}/assign", responses=ERRORS)
def api_assign(web: Context, who: Operator, case_id: CaseId, body: Assignment) -> CommandOut:
    return _command(web, who, case_id, CaseCommand.ASSIGN, CommandInput(assignee=body.assignee))


@router.post("/cases/{case_id}/start", responses=ERRORS)
def api_start(web: Context, who: Operator, case_id: CaseId) -> CommandOut:
    return _command(web, who, case_id, CaseCommand.START, CommandInput())


@router.post("/cases/{case_id}/comments", responses=ERRORS)
def api_comment(web: Context, who: Operator, case_id: CaseId, body: CommentIn) -> CommandOut:
    return _command(web, who, case_id, CaseCommand.COMMENT, CommandInput(body=body.body))


@router.post("/cases/{case_id}/actions", responses=ERRORS)
def api_propose(web: Context, who: Operator, case_id: CaseId, body: Proposal) -> CommandOut:
    """Propose an action; one needing no approval is carried out at once."""
    given = CommandInput(body=body.reason, action=body.kind, amount=body.amount)
    return _command(web, who, case_id, CaseCommand.PROPOSE, given)


@router.post("/cases/{case_id}/actions/approve", responses=ERRORS)
def api_approve(web: Context, who: Operator, case_id: CaseId, body: Note) -> CommandOut:
    """Approve the pending action (a different user with the approver role)."""
    return _command(web, who, case_id, CaseCommand.APPROVE, CommandInput(body=body.note))


@router.post("/cases/{case_id}/actions/reject", responses=ERRORS)
def api_reject(web: Context, who: Operator, case_id: CaseId, body: Reason) -> CommandOut:
    return _command(web, who, case_id, CaseCommand.REJECT, CommandInput(body=body.reason))


@router.post("/cases/{case_id}/actions/withdraw", responses=ERRORS)
def api_withdraw(web: Context, who: Operator, case_id: CaseId) -> CommandOut:
    return _command(web, who, case_id, CaseCommand.WITHDRAW, CommandInput())


@router.post("/cases/{case_id}/reopen", responses=ERRORS)
def api_reopen(web: Context, who: Operator, case_id: CaseId, body: Reason) -> CommandOut:
    return _command(web, who, case_id, CaseCommand.REOPEN, CommandInput(body=body.reason))


# -- users and tokens --------------------------------------------------------------------


@router.get("/users", responses=ERRORS)
def api_users(web: Context, who: Viewer) -> list[dict[str, Any]]:
    return web.service.users()


@router.post("/users", status_code=201, responses=ERRORS)
def api_add_user(web: Context, who: Admin, body: UserIn) -> dict[str, Any]:
    web.service.add_user(body.name, body.role, display_name=body.display_name, by=who.actor)
    if body.password:
        web.office.set_password(body.name, body.password, by=who.actor)
    return {"name": body.name, "role": body.role.value}


@router.get("/tokens", responses=ERRORS)
def api_tokens(web: Context, who: Viewer) -> list[dict[str, Any]]:
    return web.tokens.listing(who.actor)


@router.post("/tokens", status_code=201, responses=ERRORS)
def api_issue_token(web: Context, who: Viewer, body: TokenIn) -> TokenOut:
    token_id, token = web.tokens.issue(body.user or who.actor.name, body.label, by=who.actor)
    return TokenOut(id=token_id, token=token)


@router.delete("/tokens/{token_id}", status_code=204, responses=ERRORS)
def api_revoke_token(
    web: Context, who: Viewer, token_id: Annotated[int, Path(ge=1, le=2**62)]
) -> None:
    web.tokens.revoke(token_id, by=who.actor)
