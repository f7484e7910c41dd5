"""Pages: the case queue (filters, sorting, paging, bulk actions) and a case's detail."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from payrecon.core.money import parse_minor
from payrecon.core.outcomes import DISCREPANCIES
from payrecon.core.workflow import ActionKind, CaseState
from payrecon.errors import ConflictError, InputError, PayreconError
from payrecon.web import runs as run_views
from payrecon.web.commands import CaseCommand, CommandInput, give
from payrecon.web.deps import Context, Operator, Viewer
from payrecon.web.queue import QueueQuery
from payrecon.web.render import is_htmx, page
from payrecon.web.views import offers, side_by_side

router = APIRouter(include_in_schema=False)
BULK_COMMANDS = (CaseCommand.ASSIGN, CaseCommand.START, CaseCommand.APPROVE, CaseCommand.COMMENT)


def _yuan(text: str | None, field: str) -> int | None:
    if not text or not text.strip():
        return None
    try:
        return parse_minor(text.strip())
    except PayreconError as exc:
        raise InputError(f"{field}: {text!r} is not an amount like 12.34") from exc


@router.get("/cases", response_class=HTMLResponse)
def queue(
    request: Request,
    web: Context,
    who: Viewer,
    query: Annotated[QueueQuery, Query()],
    min_amount: str | None = None,
    max_amount: str | None = None,
) -> HTMLResponse:
    """The queue; an HTMX request gets the table alone (filters swap it in place)."""
    query = query.model_copy(
        update={
            "min_stake": _yuan(min_amount, "min_amount") or query.min_stake,
            "max_stake": _yuan(max_amount, "max_amount") or query.max_stake,
        }
    )
    found = web.office.queue(
        query.filter(),
        sort=query.sort,
        descending=query.desc,
        limit=query.per_page,
        offset=query.offset,
    )
    params = _params(request)
    data: dict[str, Any] = {
        "page_of": found,
        "query": query,
        "min_amount": min_amount or "",
        "max_amount": max_amount or "",
        "params": params,
        "link": lambda **change: "/cases?" + urlencode({**params, **change}, doseq=True),
        "outcomes": [o.value for o in DISCREPANCIES],
        "states": [s.value for s in CaseState],
        "channels": sorted({r["channel"] for r in web.runs.runs()}),
        "bulk_commands": BULK_COMMANDS,
    }
    template = "_queue.html" if is_htmx(request) else "cases.html"
    return page(request, who, template, **data)


def _params(request: Request) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for key, value in request.query_params.multi_items():
        if value != "" and key != "page":
            merged.setdefault(key, []).append(value)
    return merged


@router.post("/cases/bulk", response_class=HTMLResponse)
def bulk(
    request: Request,
    web: Context,
    who: Operator,
    command: Annotated[CaseCommand, Form()],
    case_ids: Annotated[list[int], Form(alias="case_id")],
    body: Annotated[str, Form(max_length=4000)] = "",
) -> HTMLResponse:
    """One command on every selected case; each succeeds or fails on its own."""
    if command not in BULK_COMMANDS:
        raise InputError(f"{command} cannot be given in bulk")
    results = []
    for case_id in case_ids[:500]:
        try:
            message = give(web.service, case_id, who.actor, command, CommandInput(body=body))
            results.append((case_id, True, message))
        except PayreconError as exc:
            results.append((case_id, False, str(exc)))
    return page(request, who, "_bulk.html", results=results)


@router.get("/cases/{case_id}", response_class=HTMLResponse)
def case_detail(request: Request, web: Context, who: Viewer, case_id: int) -> HTMLResponse:
    detail = web.service.get(case_id)
    run_id = detail["last_run"] or detail["opened_by_run"]
    side, candidates = "", list[dict[str, Any]]()
    if not (detail["ledger_record"] and detail["channel_record"]):
        side, candidates = run_views.near_misses(detail, _out_dir(web, run_id))
    return page(
        request,
        who,
        "case.html",
        case=detail,
        fields=side_by_side(detail),
        offers=offers(detail, who.actor, web.service.policy),
        near_side=side,
        near=candidates,
        operators=[u["name"] for u in web.service.users() if u["role"] != "viewer"],
        flash=request.query_params.get("done"),
        conflict=request.query_params.get("conflict"),
    )


def _out_dir(web: Context, run_id: str | None) -> Any:
    from pathlib import Path

    if not run_id:
        return None
    try:
        out = run_views.run(web.runs, run_id).get("out_dir")
    except PayreconError:
        return None
    return Path(out) if out else None


@router.post("/cases/{case_id}/{command}")
def case_command(
    web: Context,
    who: Operator,
    case_id: int,
    command: CaseCommand,
    body: Annotated[str, Form(max_length=4000)] = "",
    assignee: Annotated[str, Form(max_length=64)] = "",
    action: Annotated[ActionKind | None, Form()] = None,
    amount: Annotated[str, Form(max_length=32)] = "",
    version: Annotated[int | None, Form(ge=1, le=2**31)] = None,
) -> Response:
    """A workflow command from the case page; back to the page with what happened.

    The page sends the version it showed: when the case changed since, nothing is done
    and the fresh page says so, instead of acting on a state the user never saw.
    """
    given = CommandInput(
        assignee=assignee or None,
        body=body,
        action=action,
        amount=_yuan(amount, "amount"),
        version=version,
    )
    try:
        outcome = {"done": give(web.service, case_id, who.actor, command, given)}
    except ConflictError as exc:
        outcome = {"conflict": f"{exc} (this page now shows the current state)"}
    return RedirectResponse(f"/cases/{case_id}?{urlencode(outcome)}", status_code=303)
