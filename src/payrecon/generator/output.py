"""Output plumbing: files that appear only when complete, bill totals, the truth writer.

Rendering a chunk (plan -> bytes) is pure and runs in worker threads; appending the
bytes and adding up totals happens in one thread, in chunk order.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from payrecon.generator.plan import TRUTH

TRUTH_NAME = "truth.parquet"


class PartFile:
    """Writes ``<name>.part`` and renames it to ``<name>`` on :meth:`commit`.

    An interrupted 100M-row run then leaves no file that looks like a finished bill.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.part = path.with_name(path.name + ".part")
        self._file: BinaryIO | None = self.part.open("wb")

    @property
    def stream(self) -> BinaryIO:
        if self._file is None:
            raise ValueError(f"{self.path} is already closed")
        return self._file

    def write(self, data: bytes | pa.Buffer) -> None:
        self.stream.write(data)

    def commit(self) -> Path:
        self.stream.close()
        self._file = None
        os.replace(self.part, self.path)
        return self.path

    def discard(self) -> None:
        """Close and delete the partial file unless it was committed (safe to repeat)."""
        if self._file is not None:
            self._file.close()
            self._file = None
            self.part.unlink(missing_ok=True)


@dataclass
class BillTotals:
    """Integer totals of bill rows, kept while streaming for the bill's own summary.

    Money in fen, fees in thousandths of a fen (refund fees are negative). ``stores``
    holds the same totals per store for bills that break them down (Alipay).
    """

    pays: int = 0
    refunds: int = 0
    pay_amount: int = 0
    refund_amount: int = 0
    coupon: int = 0
    fee: int = 0
    stores: dict[int, BillTotals] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        return self.pays + self.refunds

    @staticmethod
    def of(pays: pa.Table, refunds: pa.Table) -> BillTotals:
        """Totals of a chunk's payment rows and refund rows (columns amount, coupon, fee)."""
        return BillTotals(
            pays=pays.num_rows,
            refunds=refunds.num_rows,
            pay_amount=_sum(pays, "amount"),
            refund_amount=_sum(refunds, "amount"),
            coupon=_sum(pays, "coupon"),
            fee=_sum(pays, "fee") + _sum(refunds, "fee"),
        )

    def add(self, other: BillTotals) -> None:
        for name in (f.name for f in fields(self) if f.name != "stores"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for store, totals in other.stores.items():
            self.stores.setdefault(store, BillTotals()).add(totals)


def _sum(rows: pa.Table, name: str) -> int:
    return int(pc.sum(rows.column(name)).as_py() or 0)


@dataclass(frozen=True)
class BillChunk:
    """One chunk of rendered bill rows and their totals."""

    data: pa.Buffer
    totals: BillTotals


class TruthWriter:
    """Streams ``truth.parquet``: one row per expected outcome row."""

    def __init__(self, out_dir: Path) -> None:
        self._file = PartFile(out_dir / TRUTH_NAME)
        self._writer = pq.ParquetWriter(self._file.stream, TRUTH)

    def __enter__(self) -> TruthWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # After an abort the writer still holds the part file: close it before deleting.
        if self._writer.is_open:
            with contextlib.suppress(Exception):
                self._writer.close()
        self._file.discard()

    def append(self, rows: pa.Table) -> None:
        self._writer.write_table(rows)

    def finish(self) -> Path:
        self._writer.close()
        return self._file.commit()
