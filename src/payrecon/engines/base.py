"""The small interface every match engine implements.

Records go in as Arrow (``load``), the one match definition runs (``match``) and one
Parquet file of outcomes comes out. Reading the outcomes back (summary, reports, pool)
is engine-independent and lives in ``payrecon.service``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Literal, Self

import pyarrow as pa

from payrecon.config import EngineSettings
from payrecon.core.outcomes import OUTCOMES
from payrecon.engines.definition import MatchDefinition
from payrecon.errors import ConfigError

Relation = Literal["ledger", "channel", "pool"]
ENGINES = ("duckdb", "spark")
# Low-cardinality outcome columns; dictionary-encoding unique ids (order ids) only costs time.
OUTCOME_DICTIONARY_COLUMNS = [
    name
    for name in OUTCOMES.names
    if name.endswith(("status", "currency", "source", "merchant_id", "date", "from"))
    or name in ("channel", "kind", "outcome", "diff_fields", "side")
]


class Engine(ABC):
    """Runs the match definition over ``ledger``, ``channel`` and ``pool``."""

    name: ClassVar[str]

    @abstractmethod
    def load(self, relation: Relation, records: pa.RecordBatchReader) -> int:
        """Consume ``records`` (streamed, once) into ``relation``; return the row count.

        Called concurrently for different relations (channel and ledger load together).
        """

    @abstractmethod
    def match(self, definition: MatchDefinition, outcomes: Path) -> None:
        """Run the match and write every outcome row to ``outcomes`` as one Parquet file."""

    def close(self) -> None:  # noqa: B027 - engines without resources need not override
        """Release the engine's resources."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def create_engine(name: str, *, settings: EngineSettings, workdir: Path) -> Engine:
    """The engine called ``name``; heavy engines are imported only when asked for."""
    if name == "duckdb":
        from payrecon.engines.duckdb import DuckDBEngine

        return DuckDBEngine(settings, workdir)
    if name == "spark":
        from payrecon.engines.spark import SparkEngine

        return SparkEngine(settings, workdir)
    raise ConfigError(f"unknown engine {name!r}; available: {', '.join(ENGINES)}")
