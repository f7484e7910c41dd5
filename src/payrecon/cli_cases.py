"""``payrecon db``, ``users``, ``cases`` and ``audit``: the case store from the command line.

Registered on the main app by :mod:`payrecon.cli`, whose exit-code mapping applies:
refusals by the workflow (wrong role, the proposer approving, a state that does not
allow the command) exit 2 with the reason; ``audit verify`` exits 1 on a broken chain.
Who acts is ``--as NAME`` (or ``PAYRECON_USER``), a user in the store.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from payrecon.cli import ConfigOption, Exit, _settings, stderr, stdout
from payrecon.core.money import parse_minor
from payrecon.core.workflow import ActionKind, Actor, Role

db_app = typer.Typer(help="The case store's database.", no_args_is_help=True)
users_app = typer.Typer(help="Users of the case store and their roles.", no_args_is_help=True)
cases_app = typer.Typer(
    help="Discrepancy cases (差错): queue, workflow, actions.", no_args_is_help=True
)
audit_app = typer.Typer(help="The hash-chained audit log.", no_args_is_help=True)

AsOption = Annotated[str, typer.Option("--as", envvar="PAYRECON_USER", help="who acts")]
JsonOption = Annotated[bool, typer.Option("--json", help="print JSON")]
ExpectVersion = Annotated[
    int | None,
    typer.Option(
        "--expect-version",
        min=1,
        help="the case's version you looked at (cases show): refused if it changed since",
    ),
]


def register(app: typer.Typer) -> None:
    app.add_typer(db_app, name="db")
    app.add_typer(users_app, name="users")
    app.add_typer(cases_app, name="cases")
    app.add_typer(audit_app, name="audit")
    # Commands on many cases at once (list, bulk-*, export, import) live in their own module.
    import payrecon.cli_cases_bulk  # noqa: F401


@contextmanager
def _service(config: Path | None) -> Iterator[Any]:
    from payrecon.service.cases import case_service

    service = case_service(_settings(config))
    try:
        yield service
    finally:
        service.store.close()


def _print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, ensure_ascii=False, default=str) + "\n")


# -- db ------------------------------------------------------------------------------------


@db_app.command("upgrade")
def db_upgrade(config: ConfigOption = None) -> int:
    """Apply pending migrations to the configured case store."""
    from payrecon.cases.store import CaseStore

    settings = _settings(config)
    with CaseStore(settings.cases_url) as store:
        before, after = store.upgrade()
        stderr.print(f"{store!r}: migration {before or 'none'} -> {after}")
    return Exit.OK


@db_app.command("current")
def db_current(config: ConfigOption = None) -> int:
    """Show the store's migration and the newest this payrecon knows."""
    from payrecon.cases.store import CaseStore

    settings = _settings(config)
    with CaseStore(settings.cases_url) as store:
        current, head = store.revision(), store.head()
    stdout.print(f"at {current or 'none'}, newest {head}")
    return Exit.OK if current == head else Exit.DIFFERENCES


# -- users ---------------------------------------------------------------------------------


@users_app.command("create")
def users_create(
    name: Annotated[str, typer.Argument()],
    role: Annotated[Role, typer.Option(help="viewer, operator, approver or admin")],
    display_name: Annotated[str | None, typer.Option(help="full name")] = None,
    by: Annotated[
        str | None,
        typer.Option("--as", envvar="PAYRECON_USER", help="admin adding the user (none: setup)"),
    ] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read a back-office password from stdin")
    ] = False,
    config: ConfigOption = None,
) -> int:
    """Add a user. Without --as only while the store has no admin yet (first set-up)."""
    password = _read_password(name, stdin=True) if password_stdin else None
    with _service(config) as service:
        if by:
            actor = service.actor(by)
        elif any(u["role"] == Role.ADMIN for u in service.users()):
            raise typer.BadParameter("the store has an admin: create users --as an admin")
        else:
            actor = Actor.system()
        service.add_user(name, role, display_name=display_name, by=actor)
        if password is not None:
            from payrecon.cases.service import BackOffice

            BackOffice(service).set_password(name, password, by=actor)
    stderr.print(f"added {name} ({role.value})")
    return Exit.OK


# The first name this command had; kept working for scripts, hidden from help.
users_app.command("add", hidden=True)(users_create)


@users_app.command("passwd")
def users_passwd(
    name: Annotated[str, typer.Argument()],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="read the password from stdin")
    ] = False,
    by: Annotated[
        str | None,
        typer.Option("--as", envvar="PAYRECON_USER", help="admin setting it (none: local setup)"),
    ] = None,
    config: ConfigOption = None,
) -> int:
    """Set NAME's back-office password (stored as an argon2 hash)."""
    from payrecon.cases.service import BackOffice

    password = _read_password(name, stdin=password_stdin)
    with _service(config) as service:
        actor = service.actor(by) if by else Actor.system()
        BackOffice(service).set_password(name, password, by=actor)
    stderr.print(f"password set for {name}")
    return Exit.OK


def _read_password(name: str, *, stdin: bool) -> str:
    if stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = typer.prompt(f"password for {name}", hide_input=True)
    if first != typer.prompt("again", hide_input=True):
        raise typer.BadParameter("the passwords differ")
    return str(first)


@users_app.command("list")
def users_list(as_json: JsonOption = False, config: ConfigOption = None) -> int:
    """List users."""
    with _service(config) as service:
        users = service.users()
    if as_json:
        _print_json(users)
        return Exit.OK
    table = Table("name", "role", "active", "display name")
    for u in users:
        table.add_row(u["name"], u["role"], "yes" if u["active"] else "no", u["display_name"] or "")
    stdout.print(table)
    return Exit.OK


@users_app.command("set")
def users_set(
    name: Annotated[str, typer.Argument()],
    actor: AsOption,
    role: Annotated[Role, typer.Option(help="the new role")],
    active: Annotated[bool, typer.Option("--active/--inactive")] = True,
    config: ConfigOption = None,
) -> int:
    """Change a user's role or deactivate them (admins only)."""
    with _service(config) as service:
        service.set_role(name, role, active=active, by=service.actor(actor))
    return Exit.OK


# -- cases ---------------------------------------------------------------------------------


@cases_app.command("show")
def cases_show(
    case_id: Annotated[int, typer.Argument()],
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> int:
    """One case: both records, actions, comments and its audit trail."""
    with _service(config) as service:
        detail = service.get(case_id)
    if as_json:
        _print_json(detail)
    else:
        stdout.print_json(data=detail, default=str)
    return Exit.OK


def _amount(text: str | None) -> int | None:
    """``--amount 12.34`` (major units, exact) -> 1234."""
    return None if text is None else parse_minor(text)


@cases_app.command("assign")
def cases_assign(
    case_id: Annotated[int, typer.Argument()],
    to: Annotated[str, typer.Option(help="the assignee")],
    actor: AsOption,
    expect_version: ExpectVersion = None,
    config: ConfigOption = None,
) -> int:
    """Assign a case (operators may only take cases for themselves)."""
    with _service(config) as service:
        state = service.assign(case_id, service.actor(actor), to, expected_version=expect_version)
    stderr.print(f"case {case_id}: {state} ({to})")
    return Exit.OK


@cases_app.command("start")
def cases_start(
    case_id: Annotated[int, typer.Argument()],
    actor: AsOption,
    expect_version: ExpectVersion = None,
    config: ConfigOption = None,
) -> int:
    """Start working on an assigned case."""
    with _service(config) as service:
        state = service.start(case_id, service.actor(actor), expected_version=expect_version)
    stderr.print(f"case {case_id}: {state}")
    return Exit.OK


@cases_app.command("comment")
def cases_comment(
    case_id: Annotated[int, typer.Argument()],
    text: Annotated[str, typer.Argument()],
    actor: AsOption,
    expect_version: ExpectVersion = None,
    config: ConfigOption = None,
) -> int:
    """Add a comment."""
    with _service(config) as service:
        service.comment(case_id, service.actor(actor), text, expected_version=expect_version)
    return Exit.OK


@cases_app.command("attach")
def cases_attach(
    case_id: Annotated[int, typer.Argument()],
    uri: Annotated[str, typer.Argument(help="where the document lives")],
    actor: AsOption,
    name: Annotated[str | None, typer.Option()] = None,
    sha256: Annotated[str | None, typer.Option()] = None,
    expect_version: ExpectVersion = None,
    config: ConfigOption = None,
) -> int:
    """Attach a document by reference."""
    with _service(config) as service:
        service.attach(
            case_id,
            service.actor(actor),
            uri,
            name=name,
            sha256=sha256,
            expected_version=expect_version,
        )
    return Exit.OK


@cases_app.command("propose")
def cases_propose(
    case_id: Annotated[int, typer.Argument()],
    action: Annotated[ActionKind, typer.Argument(help="the action")],
    reason: Annotated[str, typer.Option(help="why")],
    actor: AsOption,
    amount: Annotated[
        str | None, typer.Option(help="amount in major units, e.g. 12.34 [default: suggested]")
    ] = None,
    park_days: Annotated[int | None, typer.Option(min=1, help="days to park (挂账)")] = None,
    expect_version: ExpectVersion = None,
    config: ConfigOption = None,
) -> int:
    """Propose an action; money-moving ones wait for a second person's approval."""
    with _service(config) as service:
        done = service.propose(
            case_id,
            service.actor(actor),
            action,
            reason=reason,
            amount=_amount(amount),
            park_days=park_days,
            expected_version=expect_version,
        )
    stderr.print(f"case {case_id}: {action.value} ({action.label}) is {done.state}")
    return Exit.OK


@cases_app.command("approve")
def cases_approve(
    case_id: Annotated[int, typer.Argument()],
    actor: AsOption,
    note: Annotated[str | None, typer.Option()] = None,
    expect_version: ExpectVersion = None,
    config: ConfigOption = None,
) -> int:
    """Approve the pending action (not your own); then it is executed."""
    with _service(config) as service:
        done = service.approve(case_id, service.actor(actor), note, expected_version=expect_version)
    _executed(case_id, done)
    return Exit.OK


def _executed(case_id: int, done: Any) -> None:
    result = done.result
    if result is None:
        stderr.print(
            f"case {case_id}: action {done.action_id} is {done.state}"
            + (" (no executor configured: it waits)" if done.state == "APPROVED" else "")
        )
        return
    style = "green" if result.ok else "red"
    detail = "" if result.ok else f": {result.error}"
    stderr.print(
        Text(f"case {case_id}: action {done.action_id} is {done.state}{detail}", style=style),
        soft_wrap=True,
    )


@cases_app.command("reject")
def cases_reject(
    case_id: Annotated[int, typer.Argument()],
    actor: AsOption,
    note: Annotated[str, typer.Option(help="why")],
    expect_version: ExpectVersion = None,
    config: ConfigOption = None,
) -> int:
    """Reject the pending action; the case goes back to its assignee."""
    with _service(config) as service:
        service.reject(case_id, service.actor(actor), note, expected_version=expect_version)
    return Exit.OK


@cases_app.command("withdraw")
def cases_withdraw(
    case_id: Annotated[int, typer.Argument()],
    actor: AsOption,
    expect_version: ExpectVersion = None,
    config: ConfigOption = None,
) -> int:
    """Withdraw your proposal before anyone approves it."""
    with _service(config) as service:
        service.withdraw(case_id, service.actor(actor), expected_version=expect_version)
    return Exit.OK


@cases_app.command("reopen")
def cases_reopen(
    case_id: Annotated[int, typer.Argument()],
    actor: AsOption,
    reason: Annotated[str, typer.Option()],
    expect_version: ExpectVersion = None,
    config: ConfigOption = None,
) -> int:
    """Reopen a resolved, closed or parked case (approvers)."""
    with _service(config) as service:
        service.reopen(case_id, service.actor(actor), reason, expected_version=expect_version)
    return Exit.OK


@cases_app.command("execute")
def cases_execute(config: ConfigOption = None) -> int:
    """Execute every approved action still waiting (after an outage, or a new executor)."""
    with _service(config) as service:
        results = service.execute_due()
    for done in results:
        _executed(0, done)
    failed = [d for d in results if d.result is not None and not d.result.ok]
    stderr.print(f"{len(results)} actions tried, {len(failed)} not done")
    return Exit.DIFFERENCES if failed else Exit.OK


@cases_app.command("sync")
def cases_sync(
    run: Annotated[Path, typer.Option(help="a run's output folder (with summary.json)")],
    config: ConfigOption = None,
) -> int:
    """Open/close cases from a finished run's outputs (as ``reconcile`` does itself)."""
    from payrecon.service.cases import sync_run_cases
    from payrecon.service.progress import SilentObserver

    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    report = sync_run_cases(
        _settings(config),
        run / "outcomes.parquet",
        run_id=summary["run_id"],
        channel=summary["channel"],
        day=date.fromisoformat(summary["date"]),
        observer=SilentObserver(),
    )
    _print_json(report)
    return Exit.OK


# -- audit ---------------------------------------------------------------------------------


@audit_app.command("verify")
def audit_verify(
    expect_head: Annotated[
        str | None, typer.Option(help="a head exported earlier (SEQ:SHA256) that must remain")
    ] = None,
    config: ConfigOption = None,
) -> int:
    """Check the whole chain; exit 1 naming the first broken entry."""
    from payrecon.cases import audit
    from payrecon.core.audit import Head

    expected = None
    if expect_head:
        try:
            expected = Head.parse(expect_head)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from exc
    with _service(config) as service, service.store.session() as session:
        verdict = audit.check(session, expected)
    if verdict.ok:
        stdout.print(f"audit log intact: {verdict.checked} entries, head {verdict.head}")
        return Exit.OK
    stderr.print(
        Text.assemble(
            ("audit log broken", "red"), f" at entry {verdict.broken_at}: {verdict.reason}"
        ),
        soft_wrap=True,
    )
    return Exit.DIFFERENCES


@audit_app.command("head")
def audit_head(config: ConfigOption = None) -> int:
    """Print the newest entry as SEQ:SHA256, to keep somewhere else (see verify)."""
    from payrecon.cases import audit

    with _service(config) as service, service.store.session() as session:
        sys.stdout.write(f"{audit.head(session)}\n")
    return Exit.OK


@audit_app.command("log")
def audit_log(
    case: Annotated[int | None, typer.Option(help="one case's entries")] = None,
    config: ConfigOption = None,
) -> int:
    """The entries as JSON lines, oldest first."""
    from payrecon.cases import audit

    with _service(config) as service, service.store.session() as session:
        for entry in audit.entries(session, case):
            _print_json(
                {
                    "seq": entry.seq,
                    "case_id": entry.case_id,
                    "event": entry.event,
                    "actor": entry.actor,
                    "at": entry.at,
                    "before": entry.before,
                    "after": entry.after,
                    "hash": entry.hash,
                }
            )
    return Exit.OK
