"""``payrecon cases list|bulk-assign|bulk-propose|export|import``: many cases at once.

Every command here selects cases with the same filters (those of ``cases list``). Bulk
commands act on each case in its own transaction with the version seen when selecting,
report every case (done, or refused and why) and exit 1 when any was refused; a dry run
says what would happen and changes nothing. ``import`` applies a filled-in export all or
nothing: see :mod:`payrecon.cases.spreadsheet`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from payrecon.cli import ConfigOption, Exit, _day, stderr, stdout
from payrecon.cli_cases import AsOption, JsonOption, _amount, _print_json, _service, cases_app
from payrecon.core.money import format_minor
from payrecon.core.workflow import ActionKind

if TYPE_CHECKING:
    from payrecon.cases.bulk import BulkReport, CaseResult
    from payrecon.cases.service import CaseFilter

_PANEL = "Which cases"
Channel = Annotated[str | None, typer.Option(help="channel", rich_help_panel=_PANEL)]
States = Annotated[
    list[str] | None,
    typer.Option("--state", "--status", help="state (repeatable)", rich_help_panel=_PANEL),
]
OutcomeOption = Annotated[
    str | None, typer.Option(help="e.g. missing_in_ledger", rich_help_panel=_PANEL)
]
Assignee = Annotated[str | None, typer.Option(help="assigned to", rich_help_panel=_PANEL)]
Since = Annotated[
    str | None, typer.Option("--from", "--since", help="run day from", rich_help_panel=_PANEL)
]
Until = Annotated[
    str | None, typer.Option("--to", "--until", help="run day to", rich_help_panel=_PANEL)
]
# bulk-assign's --to names the assignee, as in `cases assign`.
UntilOnly = Annotated[
    str | None, typer.Option("--until", help="run day to", rich_help_panel=_PANEL)
]
Overdue = Annotated[bool, typer.Option("--overdue", help="past due", rich_help_panel=_PANEL)]
OpenOnly = Annotated[
    bool, typer.Option("--open", help="only cases someone must handle", rich_help_panel=_PANEL)
]
MinStake = Annotated[
    str | None, typer.Option(help="at least this much at stake (yuan)", rich_help_panel=_PANEL)
]
MaxStake = Annotated[
    str | None, typer.Option(help="at most this much at stake (yuan)", rich_help_panel=_PANEL)
]
DryRun = Annotated[bool, typer.Option("--dry-run", help="say what would happen, change nothing")]
BulkLimit = Annotated[int, typer.Option(min=1, max=10_000, help="act on at most this many")]


def _filters(
    *,
    channel: str | None = None,
    states: list[str] | None = None,
    outcome: str | None = None,
    assignee: str | None = None,
    since: str | None = None,
    until: str | None = None,
    overdue: bool = False,
    open_only: bool = False,
    min_stake: str | None = None,
    max_stake: str | None = None,
) -> CaseFilter:
    from payrecon.cases.service import CaseFilter

    return CaseFilter(
        channel=channel,
        states=tuple(s.upper() for s in states or ()),
        outcome=outcome.upper() if outcome else None,
        assignee=assignee,
        run_day_from=_day(since) if since else None,
        run_day_to=_day(until) if until else None,
        min_stake=_amount(min_stake),
        max_stake=_amount(max_stake),
        overdue=overdue,
        open_only=open_only,
    )


def _some(filters: CaseFilter) -> CaseFilter:
    from payrecon.cases.service import CaseFilter

    if filters == CaseFilter():
        raise typer.BadParameter("name the cases: give at least one filter (e.g. --open)")
    return filters


@cases_app.command("list")
def cases_list(
    channel: Channel = None,
    state: States = None,
    outcome: OutcomeOption = None,
    assignee: Assignee = None,
    since: Since = None,
    until: Until = None,
    overdue: Overdue = False,
    open_only: OpenOnly = False,
    min_stake: MinStake = None,
    max_stake: MaxStake = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 100,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> int:
    """The case queue, most urgent first; --json: {"total": all matching, "cases": [...]}."""
    filters = _filters(
        channel=channel,
        states=state,
        outcome=outcome,
        assignee=assignee,
        since=since,
        until=until,
        overdue=overdue,
        open_only=open_only,
        min_stake=min_stake,
        max_stake=max_stake,
    )
    with _service(config) as service:
        total, rows = service.query(filters, limit=limit, offset=offset)
    if as_json:
        _print_json({"total": total, "cases": rows})
        return Exit.OK
    table = Table(
        *("id", "day", "channel", "order", "outcome", "stake", "severity", "state"),
        *("assignee", "due", "v"),
        title=f"{total} cases" + (f", {len(rows)} shown" if len(rows) < total else ""),
    )
    for row in rows:
        table.add_row(
            str(row["id"]),
            row["run_day"],
            row["channel"],
            row["order_id"],
            row["outcome"],
            format_minor(row["stake"]),
            row["severity"],
            row["state"],
            row["assignee"] or "",
            row["due_at"][:16],
            str(row["version"]),
        )
    stdout.print(table)
    return Exit.OK


@cases_app.command("bulk-assign")
def cases_bulk_assign(
    to: Annotated[str, typer.Option(help="the assignee")],
    actor: AsOption,
    channel: Channel = None,
    state: States = None,
    outcome: OutcomeOption = None,
    assignee: Assignee = None,
    since: Since = None,
    until: UntilOnly = None,
    overdue: Overdue = False,
    open_only: OpenOnly = False,
    min_stake: MinStake = None,
    max_stake: MaxStake = None,
    limit: BulkLimit = 1000,
    dry_run: DryRun = False,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> int:
    """Assign every case the filters select; each case on its own, refusals reported."""
    from payrecon.cases.bulk import bulk_assign

    filters = _some(
        _filters(
            channel=channel,
            states=state,
            outcome=outcome,
            assignee=assignee,
            since=since,
            until=until,
            overdue=overdue,
            open_only=open_only,
            min_stake=min_stake,
            max_stake=max_stake,
        )
    )
    with _service(config) as service:
        report = bulk_assign(
            service, filters, service.actor(actor), to, limit=limit, dry_run=dry_run
        )
    return _report(report, as_json)


@cases_app.command("bulk-propose")
def cases_bulk_propose(
    action: Annotated[ActionKind, typer.Option(help="the action")],
    reason: Annotated[str, typer.Option(help="why")],
    actor: AsOption,
    amount: Annotated[
        str | None, typer.Option(help="yuan, the same for every case [default: each suggested]")
    ] = None,
    park_days: Annotated[int | None, typer.Option(min=1, help="days to park (挂账)")] = None,
    channel: Channel = None,
    state: States = None,
    outcome: OutcomeOption = None,
    assignee: Assignee = None,
    since: Since = None,
    until: Until = None,
    overdue: Overdue = False,
    open_only: OpenOnly = False,
    min_stake: MinStake = None,
    max_stake: MaxStake = None,
    limit: BulkLimit = 1000,
    dry_run: DryRun = False,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> int:
    """Propose one action on every case the filters select; refusals reported per case."""
    from payrecon.cases.bulk import bulk_propose

    filters = _some(
        _filters(
            channel=channel,
            states=state,
            outcome=outcome,
            assignee=assignee,
            since=since,
            until=until,
            overdue=overdue,
            open_only=open_only,
            min_stake=min_stake,
            max_stake=max_stake,
        )
    )
    with _service(config) as service:
        report = bulk_propose(
            service,
            filters,
            service.actor(actor),
            action,
            reason=reason,
            amount=_amount(amount),
            park_days=park_days,
            limit=limit,
            dry_run=dry_run,
        )
    return _report(report, as_json)


def _report(report: BulkReport, as_json: bool) -> int:
    if as_json:
        _print_json(report.as_json())
    else:
        _results_table(report.results)
    done = "would be done" if report.dry_run else "done"
    stderr.print(
        f"{report.matched} cases match, {len(report.results)} taken:"
        f" {len(report.results) - len(report.refused)} {done}, {len(report.refused)} refused"
        + (" (dry run: nothing changed)" if report.dry_run else "")
    )
    return Exit.DIFFERENCES if report.refused else Exit.OK


def _results_table(results: list[CaseResult]) -> None:
    rows = any(r.row is not None for r in results)
    table = Table(*(("row",) if rows else ()), "case", "result", "detail")
    for r in results:
        verdict = Text("ok", style="green") if r.ok else Text("refused", style="red")
        cells = (str(r.row),) if rows else ()
        table.add_row(*cells, str(r.case_id), verdict, Text(r.detail))
    stdout.print(table)


@cases_app.command("export")
def cases_export(
    out: Annotated[Path, typer.Option(help="the .xlsx file to write")],
    channel: Channel = None,
    state: States = None,
    outcome: OutcomeOption = None,
    assignee: Assignee = None,
    since: Since = None,
    until: Until = None,
    overdue: Overdue = False,
    open_only: OpenOnly = False,
    min_stake: MinStake = None,
    max_stake: MaxStake = None,
    config: ConfigOption = None,
) -> int:
    """Write the selected cases to a spreadsheet to decide on (fill action, note, ...)."""
    from payrecon.cases.spreadsheet import export_cases

    if out.suffix.lower() != ".xlsx":
        raise typer.BadParameter(f"{out}: the export is an .xlsx file")
    filters = _filters(
        channel=channel,
        states=state,
        outcome=outcome,
        assignee=assignee,
        since=since,
        until=until,
        overdue=overdue,
        open_only=open_only,
        min_stake=min_stake,
        max_stake=max_stake,
    )
    with _service(config) as service:
        count = export_cases(service, filters, out)
    stderr.print(f"{count} cases written to {out}")
    return Exit.OK


@cases_app.command("import")
def cases_import(
    source: Annotated[Path, typer.Argument(help="a filled-in `cases export` spreadsheet")],
    actor: AsOption,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> int:
    """Apply the actions filled into an export: every row is checked first, then all or none."""
    from payrecon.cases.spreadsheet import SheetError, import_decisions

    with _service(config) as service:
        try:
            results = import_decisions(service, source, service.actor(actor))
        except SheetError as refused:
            return _sheet_errors(refused, as_json)
    refused_rows = [r for r in results if not r.ok]
    if as_json:
        _print_json({"applied": True, "results": [_result_json(r) for r in results]})
    else:
        _results_table(results)
    stderr.print(f"{len(results)} rows applied: {len(refused_rows)} refused on the way")
    return Exit.DIFFERENCES if refused_rows else Exit.OK


def _sheet_errors(refused: Any, as_json: bool) -> int:
    if as_json:
        errors = [{"row": e.row, "column": e.column, "reason": e.reason} for e in refused.errors]
        _print_json({"applied": False, "errors": errors})
    for error in refused.errors:
        stderr.print(f"row {error.row}, column {error.column}: {error.reason}", soft_wrap=True)
    stderr.print(f"{len(refused.errors)} row errors: nothing was applied")
    return Exit.USAGE


def _result_json(result: CaseResult) -> dict[str, Any]:
    return {"row": result.row, "case": result.case_id, "ok": result.ok, "detail": result.detail}
