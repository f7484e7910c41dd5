"""The match, defined once as SQL and compiled for each engine with sqlglot.

Every engine registers three relations with the canonical columns, ``ledger``, ``channel``
and ``pool`` (the suspense pool: canonical columns plus ``side`` and ``carried_from``),
and runs :meth:`MatchDefinition.sql` in its dialect. The result has the columns of
:data:`payrecon.core.outcomes.OUTCOMES`, one row per outcome.

The SQL is written in DuckDB's dialect using only constructs sqlglot translates to Spark
SQL (window functions, full outer join, CASE, CONCAT_WS, literal casts); the conformance
suite runs it on every engine and demands identical outcomes.

Each side's records are ranked within their key (the pool's copy first, then by time,
source and line); rank 1 takes part in the pairing and every later rank is a DUPLICATE
row. How the rank is computed is the one thing that differs by engine, for speed only:
DuckDB ranks just the records of duplicated keys, other engines rank every record in one
window, whose shuffle by key the join then reuses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import sqlglot

from payrecon.core.outcomes import OUTCOMES, ROW_KEY, SIDE_FIELDS, Outcome, Side
from payrecon.core.rules import AccountingDay, MatchRules
from payrecon.core.schema import CANONICAL_NAMES

_SIDE_COLUMNS = tuple(f.name for f in SIDE_FIELDS)


def _text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _instant(value: datetime) -> str:
    return f"CAST({_text(value.isoformat(sep=' '))} AS TIMESTAMPTZ)"


def _day(value: date) -> str:
    return f"CAST({_text(value.isoformat())} AS DATE)"


@dataclass(frozen=True)
class MatchDefinition:
    """The match for one accounting day under one set of rules."""

    rules: MatchRules
    day: date

    def sql(self, dialect: str = "duckdb") -> str:
        """The whole match as one query in ``dialect`` (any dialect sqlglot writes)."""
        if dialect == "duckdb":
            return self._query(rank_all=False)
        query = self._query(rank_all=True)
        return str(sqlglot.transpile(query, read="duckdb", write=dialect, pretty=True)[0])

    # -- the pieces ------------------------------------------------------------------

    def _query(self, *, rank_all: bool) -> str:
        return f"""
WITH
{self._side_ctes(Side.LEDGER, rank_all=rank_all)},
{self._side_ctes(Side.CHANNEL, rank_all=rank_all)},
pairs AS (
  SELECT {self._pair_columns()}
  FROM ledger_ranked l FULL OUTER JOIN channel_ranked c ON {self._join_condition()}
),
classified AS (
  SELECT pairs.*, {self._outcome()} AS outcome, {self._diff_fields()} AS diff_fields
  FROM pairs
)
SELECT {self._final_columns()} FROM classified
"""

    def _side_ctes(self, side: Side, *, rank_all: bool) -> str:
        """``{side}_ranked``: every record of the side with its rank ``rn`` within its key."""
        columns = ", ".join(CANONICAL_NAMES)
        records = f"""
{side}_all AS (
  SELECT {columns}, CAST(NULL AS DATE) AS carried_from FROM {side}
  UNION ALL
  SELECT {columns}, carried_from FROM pool WHERE side = {_text(side)}
)"""
        if rank_all:
            return f"""{records},
{side}_ranked AS (
  SELECT a.*, {self._rank()} AS rn FROM {side}_all a
)"""
        # Duplicates are rare: find their keys with a narrow aggregate and rank only those
        # records, instead of a window over every record (several times cheaper).
        key = ", ".join(self.rules.key)
        on = " AND ".join(f"a.{column} = d.{column}" for column in self.rules.key)
        return f"""{records},
{side}_dupkeys AS (
  SELECT {key} FROM {side}_all GROUP BY {key} HAVING COUNT(*) > 1
),
{side}_ranked AS (
  SELECT a.*, CAST(1 AS BIGINT) AS rn
  FROM {side}_all a LEFT JOIN {side}_dupkeys d ON {on} WHERE d.order_id IS NULL
  UNION ALL
  SELECT a.*, {self._rank()} AS rn FROM {side}_all a JOIN {side}_dupkeys d ON {on}
)"""

    def _rank(self) -> str:
        """A record's place among its key's records on one side; 1 is the one paired."""
        # Pool records rank first: they were seen before today's copy of the same key.
        return f"""ROW_NUMBER() OVER (
    PARTITION BY {", ".join(f"a.{column}" for column in self.rules.key)}
    ORDER BY a.carried_from NULLS LAST, a.txn_time, a.source, a.line_no
  )"""

    def _pair_columns(self) -> str:
        present = (
            "CASE WHEN l.order_id IS NULL THEN 'channel' WHEN c.order_id IS NULL THEN 'ledger' END"
        )
        columns = [
            *(f"COALESCE(l.{name}, c.{name}) AS {name}" for name in ROW_KEY),
            f"{present} AS side",
            "COALESCE(l.carried_from, c.carried_from) AS carried_from",
            "COALESCE(l.merchant_id, c.merchant_id) AS merchant_id",
            "COALESCE(c.bill_date, l.bill_date) AS bill_date",
            "COALESCE(l.rn, c.rn) AS rn",
        ]
        for alias, side in (("l", Side.LEDGER), ("c", Side.CHANNEL)):
            columns += [f"{alias}.{name} AS {side}_{name}" for name in _SIDE_COLUMNS]
            columns.append(f"{alias}.carried_from AS {side}_carried_from")
        return ",\n    ".join(columns)

    def _join_condition(self) -> str:
        """Same key, and only each side's first record: later ones stay unpaired."""
        same_key = [f"l.{column} = c.{column}" for column in self.rules.key]
        return " AND ".join([*same_key, "l.rn = 1", "c.rn = 1"])

    def _success(self, side: Side) -> str:
        branches = " ".join(
            f"WHEN kind = {_text(kind)} THEN {side}_status IN "
            f"({', '.join(_text(s) for s in sorted(statuses))})"
            for kind, statuses in sorted(self.rules.success_statuses.items())
        )
        return f"(CASE {branches} ELSE FALSE END)"

    def _compared_channel_amount(self) -> str:
        if self.rules.compare_amount == "order_amount":
            return "COALESCE(channel_order_amount, channel_amount)"
        return "channel_amount"

    def _differs(self) -> dict[str, str]:
        tolerance = self.rules.amount_tolerance
        fee_tolerance = self.rules.fee_tolerance
        return {
            "status": f"{self._success(Side.LEDGER)} <> {self._success(Side.CHANNEL)}",
            "amount": f"ABS(ledger_amount - {self._compared_channel_amount()}) > {tolerance}",
            "currency": "ledger_currency <> channel_currency",
            "fee": (
                "ledger_fee IS NOT NULL AND channel_fee IS NOT NULL"
                f" AND ABS(ledger_fee - channel_fee) > {fee_tolerance}"
            ),
        }

    def _carried(self, side: Side) -> str:
        """A one-sided record waits in the pool near a day boundary, until it ages out."""
        day = AccountingDay(self.day, self.rules.timezone)
        window = self.rules.cross_day_window
        near_boundary = (
            f"({side}_txn_time >= {_instant(day.end - window)}"
            f" OR {side}_txn_time < {_instant(day.start + window)})"
        )
        fresh = f"{side}_carried_from >= {_day(day.carry_cutoff(self.rules.carry_days))}"
        if not window:
            near_boundary = "FALSE"
        return f"(CASE WHEN {side}_carried_from IS NULL THEN {near_boundary} ELSE {fresh} END)"

    def _outcome(self) -> str:
        differs = self._differs()
        o = Outcome
        return f"""CASE
    WHEN rn > 1 THEN '{o.DUPLICATE}'
    WHEN side = 'channel' THEN CASE WHEN {self._carried(Side.CHANNEL)}
      THEN '{o.CARRIED_OVER}' ELSE '{o.MISSING_IN_LEDGER}' END
    WHEN side = 'ledger' THEN CASE WHEN {self._carried(Side.LEDGER)}
      THEN '{o.CARRIED_OVER}' ELSE '{o.MISSING_IN_CHANNEL}' END
    WHEN {differs["status"]} THEN '{o.STATUS_MISMATCH}'
    WHEN {differs["amount"]} OR {differs["currency"]} THEN '{o.AMOUNT_MISMATCH}'
    WHEN {differs["fee"]} THEN '{o.FEE_MISMATCH}'
    ELSE '{o.MATCHED}'
  END"""

    def _diff_fields(self) -> str:
        flags = ", ".join(
            f"CASE WHEN {condition} THEN {_text(name)} END"
            for name, condition in self._differs().items()
        )
        return f"CASE WHEN side IS NULL THEN CONCAT_WS(',', {flags}) ELSE '' END"

    def _final_columns(self) -> str:
        amount_diff = f"{self._compared_channel_amount()} - ledger_amount"
        values = {
            "outcome": "outcome",
            "diff_fields": "diff_fields",
            "amount_diff": f"CASE WHEN side IS NULL THEN {amount_diff} END",
        }
        return ", ".join(f"{values.get(name, name)} AS {name}" for name in OUTCOMES.names)
