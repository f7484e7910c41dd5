"""Adyen Settlement details report for one payout batch, as Adyen publishes it.

``settlement_detail_report_batch_<N>.csv`` (FORMATS.md §6): ASCII, LF, the 30 columns
of OCA's real batch 238 file in that order, times in the account's zone (``CET``).
Payments are ``Settled`` rows (gross credit, net credit after the Markup, Scheme Fees
and Interchange of IC++ pricing); refunds ``Refunded`` rows (gross and net debit, the
payment's PSP and merchant reference, the refund's in the Modification columns). The
batch closes like a real one: a ``Fee`` row, then a ``MerchantPayout`` of the batch's
net (or, when refunds outweigh sales, a ``Balancetransfer`` of the debt to the next
batch), so the net amounts of the file add up to zero.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from types import TracebackType

import pyarrow as pa
import pyarrow.compute as pc

from payrecon.core.money import format_minor
from payrecon.generator.columns import (
    Part,
    bits,
    column,
    concat,
    lit,
    payload,
    pool,
    yuan,
)
from payrecon.generator.ids import random_digits, zoned_text
from payrecon.generator.output import BillChunk, BillTotals, PartFile
from payrecon.generator.plan import ChunkPlan, DaySpec

HEADER = (
    "Company Account,Merchant Account,Psp Reference,Merchant Reference,Payment Method,"
    "Creation Date,TimeZone,Type,Modification Reference,Gross Currency,Gross Debit (GC),"
    "Gross Credit (GC),Exchange Rate,Net Currency,Net Debit (NC),Net Credit (NC),"
    "Commission (NC),Markup (NC),Scheme Fees (NC),Interchange (NC),Payment Method Variant,"
    "Modification Merchant Reference,Batch Number,Reserved4,Reserved5,Reserved6,Reserved7,"
    "Reserved8,Reserved9,Reserved10"
)
COMPANY = "PayreconCompany"
CURRENCY = "EUR"
ZONE = "CET"
NEWLINE = "\n"
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
BATCH_FEE = 9  # cents: the batch's transaction-fee row
METHODS = (
    ("visa", "visaclassic"), ("visa", "visadebit"), ("mc", "mccredit"), ("mc", "maestro"),
    ("amex", "amex"), ("ideal", "ideal"), ("sepadirectdebit", "sepadirectdebit"),
    ("visa", "visagold"),
)  # fmt: skip
_FIRST_BATCH_DAY = date(2020, 1, 1)
_ID_KEY = 10**9
_RESERVED = ",,,,,,,"  # Reserved4 … Reserved10


def batch_number(spec: DaySpec) -> int:
    return (spec.day - _FIRST_BATCH_DAY).days + 1


def bill_name(spec: DaySpec) -> str:
    return f"settlement_detail_report_batch_{batch_number(spec)}.csv"


class AdyenBill:
    """Streams one batch report: :meth:`render` chunks (thread-safe), :meth:`append`."""

    def __init__(self, out_dir: Path, spec: DaySpec) -> None:
        self.spec = spec
        self.totals = BillTotals()
        self._offset = spec.rng("adyen-ids").randrange(10**15)
        self._batch = batch_number(spec)
        self._file = PartFile(out_dir / bill_name(spec))
        self._file.write((HEADER + NEWLINE).encode())

    @property
    def rows(self) -> int:
        return self.totals.rows

    def __enter__(self) -> AdyenBill:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._file.discard()

    def render(self, plan: ChunkPlan) -> tuple[BillChunk, pa.Array]:
        """The chunk's rows and totals, plus every key's PSP reference (a refund's own)."""
        psp = self._psp(plan.column("key"), 1)
        origin = pc.add(
            plan.column("origin_key"), pc.multiply(plan.column("origin_back"), lit(_ID_KEY))
        )
        extra = {"psp": self._psp(origin, 1), "capture": self._psp(plan.column("key"), 2)}
        extra["own"] = psp
        pays, refunds = plan.channel_rows(extra)
        lines = pa.concat_arrays([self._pay_lines(pays), self._refund_lines(refunds)])
        order = pc.sort_indices(pa.concat_arrays([column(pays, "key"), column(refunds, "key")]))
        # Adyen returns no fee on a refund: only payments' fees are in the totals.
        index = refunds.schema.get_field_index("fee")
        no_fee = refunds.set_column(index, "fee", pa.repeat(lit(0), refunds.num_rows))
        return BillChunk(payload(pc.take(lines, order)), BillTotals.of(pays, no_fee)), psp

    def append(self, chunk: BillChunk) -> None:
        self._file.write(chunk.data)
        self.totals.add(chunk.totals)

    def finish(self) -> list[Path]:
        """The fee row and the payout (or transfer) that closes the batch."""
        totals = self.totals
        net = totals.pay_amount - totals.fee // 1_000 - totals.refund_amount - BATCH_FEE
        fee = {
            "Type": "Fee",
            "Modification Reference": f"Transaction Fees {self.spec.day:%B %d %Y}",
            "Net Debit (NC)": format_minor(BATCH_FEE),
        }
        if net >= 0:
            reference = f"TX{self._batch:09d}XT batch {self._batch}, {self.spec.merchant_id}"
            close = {
                "Type": "MerchantPayout",
                "Modification Reference": f'"{reference}"',  # quoted: it holds a comma
                "Net Debit (NC)": format_minor(net),
            }
        else:  # refunds outweigh sales: the debt moves to the next batch
            close = {
                "Type": "Balancetransfer",
                "Modification Reference": "Balancetransfer",
                "Net Credit (NC)": format_minor(-net),
                "Modification Merchant Reference": f"Balancetransfer to batch {self._batch + 1}",
            }
        lines = [self._batch_row(fee), self._batch_row(close)]
        self._file.write("".join(line + NEWLINE for line in lines).encode())
        return [self._file.commit()]

    def _batch_row(self, values: dict[str, str]) -> str:
        """A batch-level row: no PSP or merchant reference, net currency only."""
        when = zoned_text(self.spec, pa.array([86_399], pa.int64()), ZONE, TIME_FORMAT)[0]
        common = {
            "Company Account": COMPANY,
            "Merchant Account": self.spec.merchant_id,
            "Creation Date": str(when),
            "TimeZone": ZONE,
            "Net Currency": CURRENCY,
            "Batch Number": str(self._batch),
        }
        row = common | values
        return ",".join(row.get(name, "") for name in HEADER.split(","))

    def _psp(self, keys: pa.Array, kind: int) -> pa.Array:
        # 16 digits, like Adyen's PSP references; ``kind`` keeps payments and captures apart.
        return random_digits(keys, self._offset + kind, 16)

    def _common(self, keys: pa.Table) -> dict[str, Part]:
        method = bits(column(keys, "pick"), 0, 3)
        return {
            "head": f"{COMPANY},{self.spec.merchant_id},",
            "created": zoned_text(self.spec, column(keys, "seconds"), ZONE, TIME_FORMAT),
            "method": pool(tuple(m for m, _ in METHODS), method),
            "variant": pool(tuple(v for _, v in METHODS), method),
            "gross": yuan(column(keys, "amount")),
        }

    def _pay_lines(self, pays: pa.Table) -> pa.Array:
        c = self._common(pays)
        fee = pc.divide(column(pays, "fee"), lit(1_000))
        interchange = pc.divide(fee, lit(2))
        scheme = pc.divide(fee, lit(5))
        markup = pc.subtract(pc.subtract(fee, interchange), scheme)
        net = yuan(pc.subtract(column(pays, "amount"), fee))
        return concat(
            [
                c["head"], column(pays, "own"), ",", column(pays, "order_id"), ",", c["method"],
                ",", c["created"], f",{ZONE},Settled,", column(pays, "capture"),
                f",{CURRENCY},,", c["gross"], f",1,{CURRENCY},,", net, ",,", yuan(markup), ",",
                yuan(scheme), ",", yuan(interchange), ",", c["variant"],
                f",,{self._batch}{_RESERVED}{NEWLINE}",
            ]
        )  # fmt: skip

    def _refund_lines(self, refunds: pa.Table) -> pa.Array:
        c = self._common(refunds)
        return concat(
            [
                c["head"], column(refunds, "psp"), ",", column(refunds, "origin_order_id"), ",",
                c["method"], ",", c["created"], f",{ZONE},Refunded,", column(refunds, "own"),
                f",{CURRENCY},", c["gross"], f",,1,{CURRENCY},", c["gross"], ",,,,,,",
                c["variant"], ",", column(refunds, "order_id"),
                f",{self._batch}{_RESERVED}{NEWLINE}",
            ]
        )  # fmt: skip
