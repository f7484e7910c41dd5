"""Terminal presentation: Rich progress bars (stderr) and the outcome summary table."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from payrecon.core.money import format_minor
from payrecon.core.outcomes import Outcome
from payrecon.service.progress import Unit


class _AmountColumn(ProgressColumn):
    """Bytes as sizes, rows as counts, steps as nothing."""

    _bytes = DownloadColumn()

    def render(self, task: Task) -> Text:
        unit = task.fields.get("unit", "rows")
        if unit == "bytes":
            return self._bytes.render(task)
        if unit == "rows":
            total = f"/{int(task.total):,}" if task.total else ""
            return Text(f"{int(task.completed):,}{total} rows", style="progress.download")
        return Text("")


class RichObserver:
    """Shows each unit of work as a progress bar (bytes when the total is known)."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            _AmountColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        )
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> Self:
        self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._progress.stop()

    def task(
        self, key: str, description: str, total: int | None = None, unit: Unit = "rows"
    ) -> None:
        self._tasks[key] = self._progress.add_task(description, total=total, unit=unit)

    def advance(self, key: str, amount: int) -> None:
        if key in self._tasks:
            self._progress.advance(self._tasks[key], amount)

    def done(self, key: str) -> None:
        task = self._tasks.get(key)
        if task is None:
            return
        total = self._progress.tasks[task].total
        completed = self._progress.tasks[task].completed
        self._progress.update(
            task, total=total or completed or 1, completed=total or completed or 1
        )


def outcome_table(summary: dict[str, Any]) -> Table:
    """The run summary as an operator reads it: outcomes with both sides' amounts."""
    rows_in = summary["rows_in"]
    table = Table(
        title=f"{summary['channel']} {summary['date']}  (run {summary['run_id']})",
        caption=(
            f"rows in: ledger {rows_in['ledger']:,}, channel {rows_in['channel']:,},"
            f" pool {rows_in['pool']:,} · quarantined {summary['quarantined']:,}"
            f" · footer {summary['footer']} · carried out {summary['pool']['carried_out']:,}"
        ),
    )
    for name, justify in (
        ("outcome", "left"),
        ("count", "right"),
        ("ledger", "right"),
        ("channel", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for outcome in Outcome:
        figures = summary["outcomes"][outcome.value]
        style = "red" if outcome.is_discrepancy and figures["count"] else None
        table.add_row(
            outcome.value,
            f"{figures['count']:,}",
            _money(figures["ledger_amount"]),
            _money(figures["channel_amount"]),
            style=style,
        )
    return table


def _money(minor: int) -> str:
    """Minor units with thousands separators: 123456789 -> 1,234,567.89."""
    whole, _, fraction = format_minor(minor).partition(".")
    sign = "-" if whole.startswith("-") else ""
    return f"{sign}{int(whole.lstrip('-')):,}.{fraction}"
