"""The platform's own records of the day (``ledger.csv``), in canonical column names.

Amounts are integer fen, fees integer thousandths of a fen (empty when the platform did
not book one), times ISO 8601 with the +08:00 offset. A DUPLICATE key's copy is written
after the chunk's other rows, so the first copy is the one that matches.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

import pyarrow as pa
import pyarrow.compute as pc

from payrecon.generator.columns import clock, column, concat, lit, payload, pool
from payrecon.generator.output import PartFile
from payrecon.generator.plan import ChunkPlan, DaySpec

LEDGER_NAME = "ledger.csv"
COLUMNS = (
    "channel",
    "merchant_id",
    "kind",
    "order_id",
    "origin_order_id",
    "channel_txn_id",
    "status",
    "amount",
    "fee",
    "currency",
    "txn_time",
)
CURRENCY = "CNY"
CURRENCIES = {"stripe": "USD", "paypal": "USD", "adyen": "EUR"}  # others CNY
OFFSET = "+08:00"  # Asia/Shanghai has had no daylight saving since 1991
_KINDS = ("PAY", "REFUND")
_NEEDED = ("refund", "order_id", "origin_order_id", "ledger_status", "ledger_amount")


class LedgerWriter:
    """Streams ``ledger.csv``: :meth:`render` chunks (thread-safe), :meth:`append` them."""

    def __init__(self, out_dir: Path, spec: DaySpec) -> None:
        self.spec = spec
        self.rows = 0
        self._file = PartFile(out_dir / LEDGER_NAME)
        self._file.write((",".join(COLUMNS) + "\n").encode())

    def __enter__(self) -> LedgerWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._file.discard()

    def render(self, plan: ChunkPlan, txn_ids: pa.Array) -> tuple[pa.Buffer, int]:
        """The chunk's ledger rows as bytes and their count; ``txn_ids`` is per key."""
        keys = plan.keys.select([*_NEEDED, "ledger_fee", "seconds"])
        keys = keys.append_column("channel_txn_id", txn_ids)
        booked = keys.filter(plan.column("in_ledger"))
        copies = keys.filter(plan.column("duplicate"))
        rows = pa.concat_tables([booked, copies])
        return payload(self._lines(rows)), rows.num_rows

    def append(self, data: pa.Buffer, rows: int) -> None:
        self._file.write(data)
        self.rows += rows

    def finish(self) -> Path:
        return self._file.commit()

    def _lines(self, rows: pa.Table) -> pa.Array:
        def col(name: str) -> pa.Array:
            return column(rows, name)

        kind = pool(_KINDS, pc.cast(col("refund"), pa.int64()))
        fee = pc.fill_null(pc.cast(col("ledger_fee"), pa.string()), lit(""))
        return concat(
            [
                f"{self.spec.channel},{self.spec.merchant_id},", kind, ",",
                col("order_id"), ",", pc.fill_null(col("origin_order_id"), lit("")), ",",
                col("channel_txn_id"), ",", col("ledger_status"), ",",
                pc.cast(col("ledger_amount"), pa.string()), ",", fee,
                f",{CURRENCIES.get(self.spec.channel, CURRENCY)},",
                f"{self.spec.date_text(separator='-')}T", clock(col("seconds")),
                f"{OFFSET}\n",
            ]
        )  # fmt: skip
