"""Everything derived from ``outcomes.parquet``: summary, discrepancy CSV, XLSX, next pool.

These read the engine's one output file with DuckDB, whichever engine wrote it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from payrecon.config import EngineSettings
from payrecon.core.outcomes import DISCREPANCIES, POOL, Outcome, Side
from payrecon.core.sheet import safe_text
from payrecon.engines.duckdb import connect
from payrecon.errors import DependencyError, InputError

XLSX_MAX_ROWS = 1_048_576  # one sheet, header included

# Columns of discrepancies.csv / the XLSX report, in the order an operator reads them.
REPORT_COLUMNS = (
    "outcome",
    "channel",
    "kind",
    "order_id",
    "merchant_id",
    "bill_date",
    "diff_fields",
    "ledger_amount",
    "channel_amount",
    "amount_diff",
    "ledger_status",
    "channel_status",
    "ledger_fee",
    "channel_fee",
    "ledger_txn_time",
    "channel_txn_time",
    "channel_channel_txn_id",
    "channel_origin_order_id",
    "side",
    "carried_from",
    "ledger_source",
    "ledger_line_no",
    "channel_source",
    "channel_line_no",
)


def _quote(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


class OutcomeReader:
    """Queries over one run's ``outcomes.parquet``."""

    def __init__(self, outcomes: Path, settings: EngineSettings) -> None:
        self.outcomes = outcomes
        self._con = connect(settings)
        self._source = f"read_parquet({_quote(outcomes)})"

    def close(self) -> None:
        self._con.close()

    def _rows(self, sql: str) -> list[tuple[Any, ...]]:
        return self._con.execute(sql).fetchall()

    def by_outcome(self) -> dict[str, dict[str, int]]:
        """Count and each side's amount per outcome; every outcome kind is present."""
        totals = {o.value: {"count": 0, "ledger_amount": 0, "channel_amount": 0} for o in Outcome}
        rows = self._rows(
            "SELECT outcome, count(*), coalesce(sum(ledger_amount), 0),"
            f" coalesce(sum(channel_amount), 0) FROM {self._source} GROUP BY outcome"
        )
        for outcome, count, ledger, channel in rows:
            totals[outcome] = {
                "count": int(count),
                "ledger_amount": int(ledger),
                "channel_amount": int(channel),
            }
        return totals

    def records_per_side(self) -> dict[str, int]:
        """How many input records each side's outcome rows account for."""
        ((ledger, channel),) = self._rows(
            "SELECT count(*) FILTER (WHERE side IS NULL OR side = 'ledger'),"
            " count(*) FILTER (WHERE side IS NULL OR side = 'channel')"
            f" FROM {self._source}"
        )
        return {"ledger": int(ledger), "channel": int(channel)}

    def write_discrepancies_csv(self, target: Path) -> None:
        self._con.execute(
            f"COPY ({self._discrepancy_query()}) TO {_quote(target)} (HEADER, DELIMITER ',')"
        )

    def _discrepancy_query(self) -> str:
        kinds = ", ".join(f"'{o.value}'" for o in DISCREPANCIES)
        return (
            f"SELECT {', '.join(REPORT_COLUMNS)} FROM {self._source}"
            f" WHERE outcome IN ({kinds}) ORDER BY outcome, order_id"
        )

    def write_pool(self, target: Path) -> int:
        """Write the carried-over records as the next pool snapshot; return how many."""
        columns = []
        for field in POOL:
            if field.name in ("channel", "kind", "order_id"):
                columns.append(field.name)
            elif field.name == "side":
                columns.append("side")
            elif field.name == "carried_from":
                columns.append(
                    f"coalesce(carried_from, {Side.LEDGER}_bill_date,"
                    f" {Side.CHANNEL}_bill_date) AS carried_from"
                )
            else:
                columns.append(
                    f"CASE side WHEN 'ledger' THEN ledger_{field.name}"
                    f" ELSE channel_{field.name} END AS {field.name}"
                )
        self._con.execute(
            f"COPY (SELECT {', '.join(columns)} FROM {self._source}"
            f" WHERE outcome = '{Outcome.CARRIED_OVER}') TO {_quote(target)} (FORMAT parquet)"
        )
        ((count,),) = self._rows(f"SELECT count(*) FROM read_parquet({_quote(target)})")
        return int(count)

    def write_xlsx(self, target: Path) -> None:
        """The discrepancies as one sheet; refuses more rows than a sheet holds."""
        ((count,),) = self._rows(f"SELECT count(*) FROM ({self._discrepancy_query()})")
        if count + 1 > XLSX_MAX_ROWS:
            raise InputError(
                f"{count} discrepancies do not fit one XLSX sheet ({XLSX_MAX_ROWS - 1} rows);"
                " use discrepancies.csv or outcomes.parquet instead"
            )
        try:
            from openpyxl import Workbook
        except ImportError as exc:
            raise DependencyError(
                "openpyxl is not installed; install it with: pip install 'payrecon[xlsx]'"
            ) from exc
        book = Workbook(write_only=True)
        sheet = book.create_sheet("discrepancies")
        sheet.append(list(REPORT_COLUMNS))
        # Through Arrow: DuckDB's own Python conversion of TIMESTAMPTZ needs pytz.
        for batch in self._con.sql(self._discrepancy_query()).to_arrow_reader(10_000):
            for row in zip(*(column.to_pylist() for column in batch.columns), strict=True):
                sheet.append([_cell(value) for value in row])
        book.save(target)


def _cell(value: object) -> object:
    # Excel has no time zones; write instants as ISO text so nothing shifts silently.
    if hasattr(value, "tzinfo") and getattr(value, "tzinfo", None) is not None:
        return value.isoformat()  # type: ignore[attr-defined]
    # Text from a bill or the ledger is shown, never run as a formula.
    return safe_text(value) if isinstance(value, str) else value
