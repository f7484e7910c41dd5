"""Every engine, the same inputs, the same answers.

``engine`` runs each test once per engine in :data:`ENGINES`. Spark runs as ``local[2]``
in one application for the whole test session (starting a JVM takes seconds); every
engine created meanwhile reuses it, as a process with several runs would.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from payrecon.config import EngineSettings
from payrecon.core.outcomes import POOL
from payrecon.core.schema import CANONICAL
from payrecon.engines.base import create_engine
from payrecon.engines.definition import MatchDefinition
from tests.conformance.cases import Scenario

ENGINES = ("duckdb", "spark")
REFERENCE = "duckdb"
# Few shuffle partitions: the inputs are tiny, and 200 empty tasks per stage cost seconds.
SPARK_TEST_CONF = {
    "spark.sql.shuffle.partitions": "2",
    "spark.default.parallelism": "2",
    "spark.ui.enabled": "false",
    "spark.driver.memory": "1g",
}
# A total order of outcome rows, so tables from different engines compare row by row.
ROW_ORDER = [
    "channel",
    "kind",
    "order_id",
    "outcome",
    "side",
    "ledger_source",
    "ledger_line_no",
    "channel_source",
    "channel_line_no",
]


@pytest.fixture(scope="session")
def spark_application(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Start Spark local[2] once; engines find it running and use sessions of their own."""
    from payrecon.engines.spark import open_session

    settings = EngineSettings(spark_master="local[2]", spark_conf=SPARK_TEST_CONF)
    session = open_session(settings, tmp_path_factory.mktemp("spark"))
    yield
    session.stop()


@pytest.fixture(params=[pytest.param(name, marks=[getattr(pytest.mark, name)]) for name in ENGINES])
def engine(request: pytest.FixtureRequest) -> str:
    """The engine under test; ``-m spark`` or ``-m duckdb`` picks one."""
    name = str(request.param)
    if name == "spark":
        request.getfixturevalue("spark_application")
    return name


def sorted_outcomes(path: Path) -> pa.Table:
    """``outcomes.parquet`` in :data:`ROW_ORDER`, schema as written."""
    return pq.read_table(path).sort_by([(column, "ascending") for column in ROW_ORDER])


def run_scenario(engine: str, scenario: Scenario, folder: Path) -> pa.Table:
    """Load the scenario into ``engine``, run the one match definition, read the rows back."""
    folder.mkdir(parents=True)
    target = folder / "outcomes.parquet"
    with create_engine(engine, settings=EngineSettings(), workdir=folder / "work") as running:
        running.load("ledger", pa.Table.from_pylist(list(scenario.ledger), CANONICAL).to_reader())
        running.load("channel", pa.Table.from_pylist(list(scenario.channel), CANONICAL).to_reader())
        running.load("pool", pa.Table.from_pylist(list(scenario.pool), POOL).to_reader())
        running.match(MatchDefinition(scenario.rules, scenario.day), target)
    return sorted_outcomes(target)
