"""Ledger sources: the platform's own records (databases, Parquet, CSV) as canonical batches."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

from payrecon.config import LedgerSettings
from payrecon.errors import LedgerSourceError, Location
from payrecon.ledger.base import (
    DEFAULT_CHANNEL_TIMEZONE,
    LedgerBatch,
    LedgerReader,
    ProgressCallback,
)
from payrecon.ledger.files import CsvLedgerReader, ParquetLedgerReader
from payrecon.ledger.sql import (
    SQLITE_PREFIX,
    MysqlLedgerReader,
    PostgresLedgerReader,
    SqliteLedgerReader,
    SqlLedgerReader,
    mask_url,
)

__all__ = [
    "CsvLedgerReader",
    "LedgerBatch",
    "LedgerReader",
    "MysqlLedgerReader",
    "ParquetLedgerReader",
    "PostgresLedgerReader",
    "SqliteLedgerReader",
    "open_ledger",
]

_DATABASES: dict[str, type[SqlLedgerReader]] = {
    "postgresql": PostgresLedgerReader,
    "postgres": PostgresLedgerReader,
    "mysql": MysqlLedgerReader,
    "mariadb": MysqlLedgerReader,
    "sqlite": SqliteLedgerReader,
}
_FILES: dict[str, type[CsvLedgerReader | ParquetLedgerReader]] = {
    ".csv": CsvLedgerReader,
    ".parquet": ParquetLedgerReader,
}


def open_ledger(
    location: str,
    settings: LedgerSettings,
    *,
    channel: str,
    day: date,
    channel_timezone: str = DEFAULT_CHANNEL_TIMEZONE,
    on_progress: ProgressCallback | None = None,
) -> LedgerReader:
    """The reader for ``location``: a ``.csv`` / ``.parquet`` path or a database URL.

    URLs: ``postgresql://`` (or ``postgres://``), ``mysql://`` (or ``mariadb://``) and
    ``sqlite:///path``; their query or table comes from ``settings``.
    """
    reader = _reader_for(location)
    return reader(
        location,
        settings,
        channel=channel,
        day=day,
        channel_timezone=channel_timezone,
        on_progress=on_progress,
    )


def _reader_for(location: str) -> Callable[..., LedgerReader]:
    scheme, separator, _ = location.partition("://")
    if not separator:
        file_reader = _FILES.get(Path(location).suffix.lower())
        if file_reader is None:
            raise LedgerSourceError(
                "unsupported ledger file; use a .csv or .parquet file, or a database URL",
                Location(location),
            )
        return file_reader
    reader = _DATABASES.get(scheme.lower())
    if reader is None or (reader is SqliteLedgerReader and not location.startswith(SQLITE_PREFIX)):
        raise LedgerSourceError(
            "unsupported ledger URL; use postgresql://, mysql://, mariadb:// or sqlite:///",
            Location(mask_url(location)),
        )
    return reader
