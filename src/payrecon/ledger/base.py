"""What every ledger reader shares: the batch it yields and the reader interface.

A reader streams the platform's own records (本端) for one channel and accounting day.
Each raw chunk it reads goes through :func:`payrecon.ledger.normalize.normalize` once, so
every row read lands in exactly one of :attr:`LedgerBatch.records` (canonical) or
:attr:`LedgerBatch.quarantined` (with the reason).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date

import pyarrow as pa
import pyarrow.compute as pc

from payrecon.config import LedgerSettings
from payrecon.core.rules import check_timezone

DEFAULT_CHANNEL_TIMEZONE = "Asia/Shanghai"

ProgressCallback = Callable[[int], None]
"""Called with the number of ledger rows read (records + quarantined) since the last call."""


@dataclass(frozen=True)
class LedgerBatch:
    """One chunk of the ledger: canonical records and the rows set aside."""

    records: pa.RecordBatch  # payrecon.core.schema.CANONICAL
    quarantined: pa.RecordBatch  # payrecon.core.schema.QUARANTINE

    @property
    def rows_read(self) -> int:
        return int(self.records.num_rows + self.quarantined.num_rows)


@dataclass(frozen=True)
class RawBatch:
    """Rows as read, columns named canonically, with their line numbers (or ordinals).

    ``rejected`` holds rows the reader could not even split into columns (a CSV line
    with the wrong number of fields); they join the quarantine.
    """

    rows: pa.RecordBatch
    line_no: pa.Array
    rejected: tuple[Rejected, ...] = ()


@dataclass(frozen=True)
class Rejected:
    """A row set aside before normalisation: where it is and why."""

    line_no: int | None
    value: str | None
    reason: str
    order_id: str | None = None
    field: str | None = None


class LedgerReader(ABC):
    """Streams one channel's ledger records for one accounting day as :class:`LedgerBatch`."""

    def __init__(
        self,
        settings: LedgerSettings,
        *,
        channel: str,
        day: date,
        channel_timezone: str = DEFAULT_CHANNEL_TIMEZONE,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        check_timezone(settings.timezone, "ledger.timezone")
        check_timezone(channel_timezone, "channel timezone")
        self.settings = settings
        self.channel = channel
        self.day = day
        self.channel_timezone = channel_timezone
        self.on_progress = on_progress
        self.rows_read = 0

    @property
    @abstractmethod
    def source(self) -> str:
        """Where the rows come from, for audit (a path, or a URL without the password)."""

    @abstractmethod
    def raw_batches(self) -> Iterator[RawBatch]:
        """Yield the rows as read, canonically named, with their line numbers."""

    def batches(self) -> Iterator[LedgerBatch]:
        """Yield normalised batches; :attr:`rows_read` counts every row they hold."""
        from payrecon.ledger.normalize import Normalizer  # normalize imports this module

        normalizer = Normalizer(
            source=self.source,
            channel=self.channel,
            settings=self.settings,
            channel_timezone=self.channel_timezone,
        )
        for raw in self.raw_batches():
            batch = normalizer.normalize(raw)
            self.rows_read += batch.rows_read
            if self.on_progress is not None:
                self.on_progress(batch.rows_read)
            yield batch


def ordinals(first: int, count: int) -> pa.Array:
    """``first, first + 1, ...`` as int64, ``count`` of them (row numbers without a loop)."""
    ones = pa.repeat(pa.scalar(1, pa.int64()), count)
    return pc.add(pc.cumulative_sum(ones), first - 1)
