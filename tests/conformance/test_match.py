"""The match definition on every engine: the same outcome rows, column for column."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow as pa
import pytest

from payrecon.core.outcomes import OUTCOMES
from tests.conformance.cases import SCENARIOS, Key, Scenario
from tests.conformance.conftest import REFERENCE, run_scenario


def outcomes_by_key(table: pa.Table) -> dict[Key, list[str]]:
    found: dict[Key, list[str]] = {}
    for row in table.select(["kind", "order_id", "outcome"]).to_pylist():
        found.setdefault((row["kind"], row["order_id"]), []).append(row["outcome"])
    return {key: sorted(kinds) for key, kinds in found.items()}


def records_out(table: pa.Table, side: str) -> int:
    return table.num_rows - table.column(f"{side}_line_no").null_count


def assert_same_rows(actual: pa.Table, expected: pa.Table) -> None:
    assert actual.schema == expected.schema
    assert actual.to_pylist() == expected.to_pylist()
    assert actual.equals(expected)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_every_engine_gives_the_same_outcomes(
    engine: str, scenario: Scenario, tmp_path: Path
) -> None:
    table = run_scenario(engine, scenario, tmp_path / engine)
    assert table.schema == OUTCOMES
    assert outcomes_by_key(table) == scenario.expected
    pool_sides = Counter(record["side"] for record in scenario.pool)
    assert records_out(table, "ledger") == len(scenario.ledger) + pool_sides["ledger"]
    assert records_out(table, "channel") == len(scenario.channel) + pool_sides["channel"]
    if engine != REFERENCE:
        assert_same_rows(table, run_scenario(REFERENCE, scenario, tmp_path / REFERENCE))
