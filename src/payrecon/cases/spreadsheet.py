"""Cases out to a spreadsheet and operators' decisions back in (``cases export`` / ``import``).

The export is one sheet, one row per case. Ids, versions and money are numbers: amounts
as integers of minor units (``stake``), and once more in yuan for reading (``stake_yuan``,
a number formatted ``#,##0.00``). Every text cell that a spreadsheet would run as a
formula (starting with ``=``, ``+``, ``-``, ``@``, TAB or CR) gets a leading ``'`` and is
stored as text. The operator fills the last columns:

=============  ==========================================================================
``action``     an action's value (``supplement_order``) or its label (``补单``); empty: skip
``amount_yuan`` yuan, exact (``12.34``); empty: the suggestion for the case
``note``       why (required with an action)
``days``       how long to park (``park`` / 挂账 only); empty: the configured default
=============  ==========================================================================

``cases import`` checks *every* row first (the cells, then each case: it exists, its
``version`` is the one exported, the workflow would accept the proposal) and applies
nothing when any row is wrong, naming row, column and reason. Only a clean file is
applied, one case per transaction, with the exported version as the expected one. A
case nobody has taken yet (OPEN, REOPENED) is first assigned to the importer, as
``cases assign ID --to ME`` would.

Parsing and checking are pure (:func:`export_row`, :func:`parse_rows`,
:func:`check_rows`); reading and writing files is in :func:`write_workbook` and
:func:`read_workbook`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from payrecon.cases.bulk import CaseResult
from payrecon.cases.service import CaseFilter, CaseService
from payrecon.core.cases import CaseFigures
from payrecon.core.money import MINOR_SCALE, parse_minor
from payrecon.core.sheet import FORMULA_STARTS, safe_text
from payrecon.core.workflow import (
    ACTIONS_FOR,
    ActionKind,
    Actor,
    ApprovalPolicy,
    CaseFacts,
    CaseState,
    Command,
    Request,
    decide,
)
from payrecon.errors import InputError, PayreconError, require

SHEET = "cases"
XLSX_MAX_ROWS = 1_048_576
YUAN_FORMAT = "#,##0.00"
TEXT_FIELDS = (
    "channel",
    "merchant_id",
    "run_day",
    "order_id",
    "kind",
    "outcome",
    "side",
    "diff_fields",
    "state",
    "assignee",
    "severity",
    "due_at",
    "currency",
)
MONEY_FIELDS = ("ledger_amount", "channel_amount", "amount_diff", "stake")
INPUT_COLUMNS = ("action", "amount_yuan", "note", "days")
HEADER = (
    "id",
    "version",
    *TEXT_FIELDS,
    *MONEY_FIELDS,
    *(f"{name}_yuan" for name in MONEY_FIELDS),
    *INPUT_COLUMNS,
)
REQUIRED = ("id", "version", *INPUT_COLUMNS)
_BY_LABEL = {kind.label: kind for kind in ActionKind}
_CLAIMABLE = frozenset({CaseState.OPEN, CaseState.REOPENED})


# -- export (pure) -----------------------------------------------------------------------


def yuan(minor: int | None) -> Decimal | None:
    """Minor units as an exact yuan number for the sheet (shown with ``YUAN_FORMAT``)."""
    return None if minor is None else Decimal(minor).scaleb(-MINOR_SCALE)


def export_row(case: Mapping[str, Any]) -> list[int | Decimal | str | None]:
    """One case as the cells of its row (``HEADER`` order), the input columns empty."""
    texts = [None if case[f] is None else safe_text(str(case[f])) for f in TEXT_FIELDS]
    money = [case[f] for f in MONEY_FIELDS]
    return [
        int(case["id"]),
        int(case["version"]),
        *texts,
        *money,
        *(yuan(m) for m in money),
        *(None for _ in INPUT_COLUMNS),
    ]


# -- import (pure) -----------------------------------------------------------------------


@dataclass(frozen=True)
class Formula:
    """A cell holding a formula: refused as input (only values are decisions)."""

    text: str


@dataclass(frozen=True)
class RowError:
    """Why one row (1-based, the header is row 1) cannot be applied."""

    row: int
    column: str
    reason: str

    def __str__(self) -> str:
        return f"row {self.row}, column {self.column}: {self.reason}"


@dataclass(frozen=True)
class Instruction:
    """One filled-in row: propose ``action`` on a case seen at ``version``."""

    row: int
    case_id: int
    version: int
    action: ActionKind
    amount: int | None  # minor units; None: the case's suggestion
    note: str
    days: int | None


class _Bad(Exception):
    def __init__(self, column: str, reason: str) -> None:
        super().__init__(reason)
        self.column, self.reason = column, reason


def parse_rows(
    header: Sequence[object], rows: Iterable[tuple[int, Sequence[object]]]
) -> tuple[list[Instruction], list[RowError]]:
    """The rows with an action, and every cell error; rows without an action are skipped."""
    names = [str(h).strip() if h is not None else "" for h in header]
    missing = [name for name in REQUIRED if name not in names]
    if missing:
        return [], [RowError(1, name, "missing column (export again)") for name in missing]
    where = {name: names.index(name) for name in REQUIRED}
    found: list[Instruction] = []
    errors: list[RowError] = []
    seen: dict[int, int] = {}
    for number, cells in rows:
        row = {name: cells[i] if i < len(cells) else None for name, i in where.items()}
        try:
            parsed = _instruction(number, row)
        except _Bad as bad:
            errors.append(RowError(number, bad.column, bad.reason))
            continue
        if parsed is None:
            continue
        if parsed.case_id in seen:
            reason = f"case {parsed.case_id} is already decided in row {seen[parsed.case_id]}"
            errors.append(RowError(number, "id", reason))
            continue
        seen[parsed.case_id] = number
        found.append(parsed)
    return found, errors


def _instruction(number: int, row: Mapping[str, object]) -> Instruction | None:
    for name, value in row.items():
        if isinstance(value, Formula):
            raise _Bad(name, f"a formula ({value.text}), not a value")
    action = _text(row["action"])
    if not action:
        filled = [n for n in ("amount_yuan", "note", "days") if _text(row[n])]
        if filled:
            raise _Bad(filled[0], "filled in, but the row has no action")
        return None
    kind = _action(action)
    note = _text(row["note"])
    if not note:
        raise _Bad("note", f"{kind.value} ({kind.label}) needs a note saying why")
    days = _whole(row["days"], "days") if _text(row["days"]) else None
    if days is not None and kind is not ActionKind.PARK:
        raise _Bad("days", f"only park (挂账) takes days, not {kind.value}")
    return Instruction(
        row=number,
        case_id=_whole(row["id"], "id"),
        version=_whole(row["version"], "version"),
        action=kind,
        amount=_amount(row["amount_yuan"]),
        note=note,
        days=days,
    )


def _text(value: object) -> str:
    if value is None:
        return ""
    text = str(value).strip()
    # Our own export's formula guard; a person typing '=x in a cell stores =x.
    return text[1:] if text.startswith("'") and text[1:].startswith(FORMULA_STARTS) else text


def _action(text: str) -> ActionKind:
    kind = _BY_LABEL.get(text)
    if kind is not None:
        return kind
    try:
        return ActionKind(text.lower())
    except ValueError:
        choices = ", ".join(f"{k.value} ({k.label})" for k in ActionKind)
        raise _Bad("action", f"{text!r} is not an action; one of {choices}") from None


def _whole(value: object, column: str) -> int:
    if isinstance(value, bool) or value is None or value == "":
        raise _Bad(column, "needs a whole number" + (" (export again)" if value is None else ""))
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if not isinstance(value, int) or value < 1:
        raise _Bad(column, f"{value!r} is not a whole number of at least 1")
    return value


def _amount(value: object) -> int | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    # A float cell is the shortest decimal that round-trips (12.34, not 12.339999…).
    text = repr(value) if isinstance(value, float) else str(value)
    try:
        return parse_minor(text)
    except PayreconError as exc:
        raise _Bad("amount_yuan", f"{text!r} is not an amount in yuan like 12.34") from exc


Snapshot = tuple[int, CaseFacts, CaseFigures]  # version, workflow facts, money
Lookup = Callable[[int], Snapshot | None]


@dataclass(frozen=True)
class Planned:
    instruction: Instruction
    claim: bool  # assign the case to the importer before proposing
    amount: int | None  # the amount the proposal will carry (the suggestion if none given)


def check_rows(
    instructions: Iterable[Instruction], actor: Actor, approval: ApprovalPolicy, lookup: Lookup
) -> tuple[list[Planned], list[RowError]]:
    """Each row against its case as it is now: version, workflow, money."""
    planned: list[Planned] = []
    errors: list[RowError] = []
    for ins in instructions:
        try:
            planned.append(_plan(ins, actor, approval, lookup(ins.case_id)))
        except _Bad as bad:
            errors.append(RowError(ins.row, bad.column, bad.reason))
    return planned, errors


def _plan(
    ins: Instruction, actor: Actor, approval: ApprovalPolicy, snapshot: Snapshot | None
) -> Planned:
    if snapshot is None:
        raise _Bad("id", f"no case {ins.case_id}")
    version, facts, figures = snapshot
    if version != ins.version:
        raise _Bad(
            "version",
            f"case {ins.case_id} changed since the export (version {ins.version}, now"
            f" {version}): export again and decide on its current state",
        )
    claimed = _claim(facts, actor)
    if ins.action not in ACTIONS_FOR.get(facts.outcome, frozenset()):
        # Said first: an amount is beside the point for an action that does not fit.
        reason = f"{ins.action.value} ({ins.action.label}) does not apply to {facts.outcome}"
        raise _Bad("action", f"case {ins.case_id}: {reason}")
    try:
        amount = figures.check(ins.action, ins.amount)
    except PayreconError as exc:
        raise _Bad("amount_yuan", f"case {ins.case_id}: {exc}") from exc
    try:
        request = Request(Command.PROPOSE, action=ins.action, amount=amount)
        decide(claimed or facts, actor, request, approval)
    except PayreconError as exc:
        raise _Bad("action", f"case {ins.case_id}: {exc}") from exc
    return Planned(ins, claimed is not None, amount)


def _claim(facts: CaseFacts, actor: Actor) -> CaseFacts | None:
    """The facts after ``actor`` takes an unowned case; ``None`` when it is owned already."""
    if facts.state not in _CLAIMABLE or facts.assignee is not None:
        return None
    request = Request(Command.ASSIGN, assignee=actor.name, assignee_role=actor.role)
    try:
        decision = decide(facts, actor, request)
    except PayreconError as exc:
        raise _Bad("action", f"cannot take the case first: {exc}") from exc
    return replace(facts, state=decision.state, assignee=decision.assignee)


# -- files and the store -----------------------------------------------------------------


class SheetError(InputError):
    """A spreadsheet with rows that cannot be applied; ``errors`` names each one."""

    def __init__(self, path: Path, errors: Sequence[RowError]) -> None:
        self.errors = list(errors)
        shown = "; ".join(str(e) for e in self.errors[:20])
        more = f" (and {len(self.errors) - 20} more)" if len(self.errors) > 20 else ""
        super().__init__(
            f"{path}: {len(self.errors)} row errors, nothing was applied: {shown}{more}"
        )


def export_cases(service: CaseService, filters: CaseFilter, target: Path) -> int:
    """Write every case ``filters`` selects to ``target``; returns how many."""
    total, _ = service.query(filters, limit=1)
    if total + 1 > XLSX_MAX_ROWS:
        raise InputError(f"{total} cases do not fit one sheet; narrow the filter")
    write_workbook(target, (export_row(c) for c in _all(service, filters)))
    return total


def _all(service: CaseService, filters: CaseFilter, page: int = 1000) -> Iterator[dict[str, Any]]:
    offset = 0
    while True:
        _, rows = service.query(filters, limit=page, offset=offset)
        yield from rows
        if len(rows) < page:
            return
        offset += page


def write_workbook(target: Path, rows: Iterable[Sequence[object]]) -> None:
    """The header and ``rows``: strings always as text, yuan as formatted numbers."""
    require("openpyxl", "xlsx")
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell

    book = Workbook(write_only=True)
    sheet = book.create_sheet(SHEET)
    sheet.freeze_panes = "C2"

    def cell(value: object, column: str) -> WriteOnlyCell:
        made = WriteOnlyCell(sheet, value=value)
        if isinstance(value, str):
            made.data_type = "s"  # never a formula, whatever the text
        elif column.endswith("_yuan"):
            made.number_format = YUAN_FORMAT
        return made

    sheet.append(list(HEADER))
    for row in rows:
        sheet.append([cell(v, c) for v, c in zip(row, HEADER, strict=True)])
    target.parent.mkdir(parents=True, exist_ok=True)
    book.save(target)


def read_workbook(source: Path) -> tuple[list[object], Iterator[tuple[int, list[object]]]]:
    """The first sheet's header and its rows (numbered from 2); formulas as :class:`Formula`."""
    require("openpyxl", "xlsx")
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = load_workbook(source, read_only=True, data_only=False)
    except (OSError, InvalidFileException, KeyError, ValueError) as exc:
        raise InputError(f"{source}: not a readable .xlsx file ({exc})") from exc
    sheet = book[SHEET] if SHEET in book.sheetnames else book.worksheets[0]
    rows = sheet.iter_rows()
    header = [c.value for c in next(rows, ())]

    def values() -> Iterator[tuple[int, list[object]]]:
        for number, cells in enumerate(rows, start=2):
            row = [Formula(str(c.value)) if c.data_type == "f" else c.value for c in cells]
            if any(v not in (None, "") for v in row):
                yield number, row
        book.close()

    return header, values()


def import_decisions(service: CaseService, source: Path, actor: Actor) -> list[CaseResult]:
    """Check every row of ``source``; apply them all (per case) or none (:class:`SheetError`)."""
    header, rows = read_workbook(source)
    instructions, errors = parse_rows(header, rows)
    planned, refused = check_rows(
        instructions, actor, service.policy.approval, lambda case_id: _snapshot(service, case_id)
    )
    if errors or refused:
        raise SheetError(source, sorted([*errors, *refused], key=lambda e: e.row))
    return [_apply(service, actor, plan) for plan in planned]


def _snapshot(service: CaseService, case_id: int) -> Snapshot | None:
    from payrecon.errors import NotFoundError

    try:
        return service.facts(case_id)
    except NotFoundError:
        return None


def _apply(service: CaseService, actor: Actor, plan: Planned) -> CaseResult:
    ins = plan.instruction
    version = ins.version
    try:
        if plan.claim:
            service.assign(ins.case_id, actor, actor.name, expected_version=version)
            version += 1
        done = service.propose(
            ins.case_id,
            actor,
            ins.action,
            reason=ins.note,
            amount=plan.amount,
            park_days=ins.days,
            expected_version=version,
        )
    except PayreconError as exc:
        return CaseResult(ins.case_id, False, str(exc), ins.row)
    detail = f"{ins.action.value} ({ins.action.label}) {done.state}"
    return CaseResult(ins.case_id, True, detail, ins.row)
