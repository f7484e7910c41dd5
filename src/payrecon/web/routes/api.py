"""The JSON API under ``/api`` (OpenAPI at ``/api/openapi.json``). Amounts are minor units.

Machine clients authenticate with ``Authorization: Bearer <token>`` (``POST /api/tokens``
issues one); browsers use their session. Errors are ``{"error", "detail"}`` with the
status from :mod:`payrecon.web.errors`.

Optimistic locking: ``GET /api/cases/{id}`` returns the case's ``version`` (and an
``ETag: "<version>"``); a command may send it back as ``"version"`` in its body or as
``If-Match``, and is refused with 409 ``ConflictError`` when the case changed since.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from payrecon.core.workflow import ActionKind, Role
from payrecon.errors import InputError
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


class Versioned(BaseModel):
    version: int | None = Field(
        None, ge=1, le=2**31, description="the case version you saw; refused (409) if it changed"
    )


def _if_match(
    if_match: Annotated[
        str | None, Header(description='the case\'s ETag ("7"); refused (409) if it changed')
    ] = None,
) -> int | None:
    if if_match is None:
        return None
    tag = if_match.strip().removeprefix("W/").strip('"')
    if not tag.isdigit():
        raise InputError(f'If-Match: {if_match!r} is not a case version (its ETag, e.g. "7")')
    return int(tag)


IfMatch = Annotated[int | None, Depends(_if_match)]


def _seen(body: Versioned | None, header: int | None) -> int | None:
    given = None if body is None else body.version
    if given is not None and header is not None and given != header:
        raise InputError(f"version {given} in the body and If-Match {header} disagree")
    return given if given is not None else header


class Proposal(Versioned):
    kind: ActionKind
    reason: str = Field(min_length=1, max_length=4000)
    amount: int | None = Field(None, ge=-(10**15), le=10**15, description="minor units")


class Note(Versioned):
    note: str = Field("", max_length=4000)


class Reason(Versioned):
    reason: str = Field(min_length=1, max_length=4000)


class Assignment(Versioned):
    assignee: str = Field(min_length=1, max_length=64)


class CommentIn(Versioned):
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


@router.get("/cases", responses=ERRORS, response_model=CasePage)
def api_cases(web: Context, who: Viewer, query: Annotated[QueueQuery, Query()]) -> Response:
    """The case queue: filters, ordering and one page."""
    found = web.office.queue(
        query.filter(),
        sort=query.sort,
        descending=query.desc,
        limit=query.per_page,
        offset=query.offset,
    )
    page = {"total": found.total, "more": found.more, "page": query.page}
    checked = CasePage.model_validate({**page, "per_page": query.per_page, "cases": found.cases})
    # Validated once here and written by pydantic-core (no second pass by FastAPI).
    return Response(checked.model_dump_json(), media_type="application/json")


@router.get("/cases/{case_id}", responses=ERRORS)
def api_case(web: Context, who: Viewer, case_id: CaseId, response: Response) -> dict[str, Any]:
    """A case with both records, actions, comments and its audit trail (ETag: its version)."""
    detail = web.service.get(case_id)
    response.headers["ETag"] = f'"{detail["version"]}"'
    return detail


def _command(
    web: Context, who: Operator, case_id: int, command: CaseCommand, given: CommandInput
) -> CommandOut:
    message = give(web.service, case_id, who.actor, command, given)
    return CommandOut(case=web.service.get(case_id), message=message)


@router.post("/cases/{case_id}/assign", responses=ERRORS)
def api_assign(
    web: Context, who: Operator, case_id: CaseId, body: Assignment, seen: IfMatch
) -> CommandOut:
    given = CommandInput(assignee=body.assignee, version=_seen(body, seen))
    return _command(web, who, case_id, CaseCommand.ASSIGN, given)


@router.post("/cases/{case_id}/start", responses=ERRORS)
def api_start(
    web: Context, who: Operator, case_id: CaseId, seen: IfMatch, body: Versioned | None = None
) -> CommandOut:
    given = CommandInput(version=_seen(body, seen))
    return _command(web, who, case_id, CaseCommand.START, given)


@router.post("/cases/{case_id}/comments", responses=ERRORS)
def api_comment(
    web: Context, who: Operator, case_id: CaseId, body: CommentIn, seen: IfMatch
) -> CommandOut:
    given = CommandInput(body=body.body, version=_seen(body, seen))
    return _command(web, who, case_id, CaseCommand.COMMENT, given)


@router.post("/cases/{case_id}/actions", responses=ERRORS)
def api_propose(
    web: Context, who: Operator, case_id: CaseId, body: Proposal, seen: IfMatch
) -> CommandOut:
    """Propose an action; one needing no approval is carried out at once."""
    given = CommandInput(
        body=body.reason, action=body.kind, amount=body.amount, version=_seen(body, seen)
    )
    return _command(web, who, case_id, CaseCommand.PROPOSE, given)


@router.post("/cases/{case_id}/actions/approve", responses=ERRORS)
def api_approve(
    web: Context, who: Operator, case_id: CaseId, body: Note, seen: IfMatch
) -> CommandOut:
    """Approve the pending action (a different user with the approver role)."""
    given = CommandInput(body=body.note, version=_seen(body, seen))
    return _command(web, who, case_id, CaseCommand.APPROVE, given)


@router.post("/cases/{case_id}/actions/reject", responses=ERRORS)
def api_reject(
    web: Context, who: Operator, case_id: CaseId, body: Reason, seen: IfMatch
) -> CommandOut:
    given = CommandInput(body=body.reason, version=_seen(body, seen))
    return _command(web, who, case_id, CaseCommand.REJECT, given)


@router.post("/cases/{case_id}/actions/withdraw", responses=ERRORS)
def api_withdraw(
    web: Context, who: Operator, case_id: CaseId, seen: IfMatch, body: Versioned | None = None
) -> CommandOut:
    given = CommandInput(version=_seen(body, seen))
    return _command(web, who, case_id, CaseCommand.WITHDRAW, given)


@router.post("/cases/{case_id}/reopen", responses=ERRORS)
def api_reopen(
    web: Context, who: Operator, case_id: CaseId, body: Reason, seen: IfMatch
) -> CommandOut:
    given = CommandInput(body=body.reason, version=_seen(body, seen))
    return _command(web, who, case_id, CaseCommand.REOPEN, given)


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
