"""Stripe itemized balance-change report, as the Dashboard downloads it.

``Itemized_balance_change_from_activity_USD_<day>_to_<day>_Asia-Shanghai.csv``
(FORMATS.md §4): UTF-8, LF, one header row of report columns, one balance transaction
per row. Amounts are decimal major units of a lower-case currency; a refund's ``gross``
and ``net`` are negative, its ``fee`` the part of the fee returned (negative or zero).
Charges carry the platform order number in ``payment_metadata[order_id]``; refunds the
refund number in ``refund_metadata[refund_id]`` and the order's in the payment metadata.
The day ends with one ``fee`` category row (a Stripe billing fee) that is not an order.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from types import TracebackType

import pyarrow as pa
import pyarrow.compute as pc

from payrecon.core.money import format_minor
from payrecon.generator.columns import (
    Part,
    bits,
    clock,
    column,
    concat,
    lit,
    payload,
    pool,
    yuan,
)
from payrecon.generator.ids import BASE62, random_id, utc_text, zoned_text
from payrecon.generator.output import BillChunk, BillTotals, PartFile
from payrecon.generator.plan import ChunkPlan, DaySpec

HEADER = (
    "balance_transaction_id,created_utc,created,available_on_utc,currency,gross,fee,net,"
    "reporting_category,source_id,description,customer_facing_amount,customer_facing_currency,"
    "charge_id,payment_intent_id,payment_metadata[order_id],refund_metadata[refund_id]"
)
CURRENCY = "usd"
NEWLINE = "\n"
UTC_FORMAT = "%Y-%m-%d %H:%M:%S"
BILLING_FEE = 200  # cents: the day's Stripe billing fee row
PRODUCTS = (
    "Monthly membership", "Coffee delivery", "Cinema ticket", "Online course",
    "Parking", "Groceries", "Phone top-up", "Hotel booking",
)  # fmt: skip
_ID_KEY = 10**9  # id seed of a key paid ``back`` days ago: key + back * _ID_KEY


def bill_name(spec: DaySpec) -> str:
    day = spec.date_text(separator="-")
    return f"Itemized_balance_change_from_activity_USD_{day}_to_{day}_Asia-Shanghai.csv"


class StripeBill:
    """Streams one itemized report: :meth:`render` chunks (thread-safe), :meth:`append`."""

    def __init__(self, out_dir: Path, spec: DaySpec) -> None:
        self.spec = spec
        self.totals = BillTotals()
        rng = spec.rng("stripe-ids")
        self._salts = {name: rng.randrange(10**12) for name in ("txn", "ch", "re", "pi")}
        self._day = spec.date_text(separator="-") + " "
        self._available = f"{spec.day + timedelta(days=2):%Y-%m-%d} 00:00:00"
        self._file = PartFile(out_dir / bill_name(spec))
        self._file.write((HEADER + NEWLINE).encode())

    @property
    def rows(self) -> int:
        return self.totals.rows

    def __enter__(self) -> StripeBill:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._file.discard()

    def render(self, plan: ChunkPlan) -> tuple[BillChunk, pa.Array]:
        """The chunk's rows and totals, plus every key's Stripe object id (ch_/re_)."""
        refund = plan.column("refund")
        today = plan.column("key")
        # Ids are built only where a row shows them: refunds are a few per cent of keys.
        refund_ids = self._id("re", today.filter(refund))
        source = pc.replace_with_mask(self._id("ch", today), refund, refund_ids)
        origin = pc.add(
            plan.column("origin_key"), pc.multiply(plan.column("origin_back"), lit(_ID_KEY))
        )
        extra = {"source": source, "origin_seed": origin}
        pays, refunds = plan.channel_rows(extra)
        lines = pa.concat_arrays([self._pay_lines(pays), self._refund_lines(refunds)])
        order = pc.sort_indices(pa.concat_arrays([column(pays, "key"), column(refunds, "key")]))
        return BillChunk(payload(pc.take(lines, order)), BillTotals.of(pays, refunds)), source

    def append(self, chunk: BillChunk) -> None:
        self._file.write(chunk.data)
        self.totals.add(chunk.totals)

    def finish(self) -> list[Path]:
        """One billing-fee row (not an order) ends the day; then the file is put in place."""
        fee = format_minor(BILLING_FEE)
        row = (
            f"txn_billingfee{self.spec.date_text()},{self._utc_of(86_399)},{self._day}23:59:59,"
            f"{self._available},{CURRENCY},-{fee},0.00,-{fee},fee,,Billing - Usage Fee,,,,,,"
        )
        self._file.write((row + NEWLINE).encode())
        return [self._file.commit()]

    def _id(self, prefix: str, keys: pa.Array) -> pa.Array:
        return concat([f"{prefix}_", random_id(keys, self._salts[prefix], BASE62, 24)])

    def _utc_of(self, second: int) -> str:
        text = zoned_text(self.spec, pa.array([second], pa.int64()), "UTC", UTC_FORMAT)
        return str(text[0].as_py())

    def _common(self, keys: pa.Table) -> dict[str, Part]:
        seconds = column(keys, "seconds")
        fee = pc.divide(pc.abs(column(keys, "fee")), lit(1_000))
        return {
            "utc": utc_text(self.spec, seconds),
            "local": clock(seconds),
            "fee": yuan(fee),
            "net": yuan(pc.subtract(column(keys, "amount"), fee)),
            "gross": yuan(column(keys, "amount")),
        }

    def _head(self, keys: pa.Table, c: dict[str, Part]) -> list[Part]:
        """balance_transaction_id … currency."""
        return [
            self._id("txn", column(keys, "key")), ",", c["utc"], "," + self._day, c["local"],
            f",{self._available},{CURRENCY},",
        ]  # fmt: skip

    def _pay_lines(self, pays: pa.Table) -> pa.Array:
        c = self._common(pays)
        product = pool(PRODUCTS, bits(column(pays, "pick"), 0, 3))
        return concat(
            [
                *self._head(pays, c), c["gross"], ",", c["fee"], ",", c["net"], ",charge,",
                column(pays, "source"), ",", product, ",", c["gross"], f",{CURRENCY},",
                column(pays, "source"), ",", self._id("pi", column(pays, "key")), ",",
                column(pays, "order_id"), "," + NEWLINE,
            ]
        )  # fmt: skip

    def _refund_lines(self, refunds: pa.Table) -> pa.Array:
        c = self._common(refunds)
        origin = column(refunds, "origin_seed")  # the refunded charge's id seed
        # The returned part of the fee is negative, unless it rounded to nothing.
        returned = pc.cast(pc.less(column(refunds, "fee"), lit(0)), pa.int64())
        return concat(
            [
                *self._head(refunds, c), "-", c["gross"], ",", pool(("", "-"), returned),
                c["fee"], ",-", c["net"], ",refund,", column(refunds, "source"),
                ",REFUND FOR CHARGE,,,", self._id("ch", origin), ",", self._id("pi", origin),
                ",", column(refunds, "origin_order_id"), ",", column(refunds, "order_id"),
                NEWLINE,
            ]
        )  # fmt: skip
