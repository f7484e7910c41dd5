"""PayPal Settlement report (STL), as PayPal's SFTP server delivers it.

``STL-<yyyymmdd>.01.009.CSV`` (FORMATS.md §5): UTF-8, CRLF; ``RH``/``FH``/``SH``,
the ``CH`` column header (the 22 columns of a current file), one ``SB`` row per
transaction, then ``SF``/``SC`` section and ``RF``/``RC`` report totals and ``FF``.
Amounts are unsigned hundredths with a ``CR``/``DR`` column; varchar fields are
double-quoted. Payments are ``T0006`` (express checkout) or ``T0007``/``T0005`` credits
with the order number as Invoice ID; refunds ``T1107`` debits with the refund number as
Invoice ID and the original PayPal id as ``PayPal Reference ID``. Times carry +0800 (the
``H`` reporting window ends in Hong Kong). The day ends with a ``T0400`` withdrawal of
the day's net to the bank, which is not an order but counts in the totals.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta
from pathlib import Path
from types import TracebackType

import pyarrow as pa
import pyarrow.compute as pc

from payrecon.generator.columns import Part, bits, clock, column, concat, lit, payload, pool
from payrecon.generator.ids import BASE36, random_id
from payrecon.generator.output import BillChunk, BillTotals, PartFile
from payrecon.generator.plan import ChunkPlan, DaySpec

CURRENCY = "USD"
NEWLINE = "\r\n"
OFFSET = "+0800"
VERSION = "009"
COLUMNS = (
    "Transaction ID", "Invoice ID", "PayPal Reference ID", "PayPal Reference ID Type",
    "Transaction Event Code", "Transaction Initiation Date", "Transaction Completion Date",
    "Transaction Debit or Credit", "Gross Transaction Amount", "Gross Transaction Currency",
    "Fee Debit or Credit", "Fee Amount", "Fee Currency", "Custom Field", "Consumer ID",
    "Payment Tracking ID", "Store ID", "Bank Reference ID", "Credit Transactional Fee",
    "Credit Promotional Fee", "Credit Term",
)  # fmt: skip
PAY_CODES = ("T0006",) * 6 + ("T0007", "T0005")
_ID_KEY = 10**9
_EMPTY_TAIL = ',"","","","","",""'  # Payment Tracking ID … Credit Term


def bill_name(spec: DaySpec) -> str:
    return f"STL-{spec.date_text()}.01.{VERSION}.CSV"


@dataclass(frozen=True)
class SettlementChunk(BillChunk):
    """A chunk and the fees it credits back (refunds): the footer needs both sides."""

    fee_credit: int = 0


class PaypalBill:
    """Streams one STL file: :meth:`render` chunks (thread-safe), :meth:`append` them."""

    def __init__(self, out_dir: Path, spec: DaySpec) -> None:
        self.spec = spec
        self.totals = BillTotals()
        self.fee_credit = 0
        self._salt = spec.rng("paypal-ids").randrange(10**12)
        self._day = spec.date_text(separator="/") + " "
        self._file = PartFile(out_dir / bill_name(spec))
        self._file.write(self._text(self._head()))

    @property
    def rows(self) -> int:
        return self.totals.rows

    def __enter__(self) -> PaypalBill:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._file.discard()

    def render(self, plan: ChunkPlan) -> tuple[BillChunk, pa.Array]:
        """The chunk's SB rows and totals, plus every key's PayPal Transaction ID."""
        txn = self._id(plan.column("key"))
        origin = pc.add(
            plan.column("origin_key"), pc.multiply(plan.column("origin_back"), lit(_ID_KEY))
        )
        pays, refunds = plan.channel_rows({"txn": txn, "origin_txn": self._id(origin)})
        lines = pa.concat_arrays([self._pay_lines(pays), self._refund_lines(refunds)])
        order = pc.sort_indices(pa.concat_arrays([column(pays, "key"), column(refunds, "key")]))
        returned = -int(pc.sum(column(refunds, "fee")).as_py() or 0) // 1_000
        totals = BillTotals.of(pays, refunds)
        return SettlementChunk(payload(pc.take(lines, order)), totals, returned), txn

    def append(self, chunk: BillChunk) -> None:
        self._file.write(chunk.data)
        self.totals.add(chunk.totals)
        if isinstance(chunk, SettlementChunk):
            self.fee_credit += chunk.fee_credit

    def finish(self) -> list[Path]:
        """The withdrawal, the section and report totals, the file footer."""
        totals = self.totals
        fee_debit = (totals.fee // 1_000) + self.fee_credit  # fees of payments, in cents
        gross_credit = totals.pay_amount
        withdrawn = max(gross_credit - totals.refund_amount - fee_debit + self.fee_credit, 0)
        records = totals.rows + (1 if withdrawn else 0)
        lines = [self._withdrawal(withdrawn)] if withdrawn else []
        amounts = (
            f'"{CURRENCY}",{gross_credit},{totals.refund_amount + withdrawn},'
            f"{self.fee_credit},{fee_debit}"
        )
        lines += [f'"SF",{amounts}', f'"SC",{records}', f'"RF",{amounts}', f'"RC",{records}']
        lines.append(f'"FF",{records}')
        self._file.write(self._text(lines))
        return [self._file.commit()]

    def _text(self, lines: list[str]) -> bytes:
        return "".join(line + NEWLINE for line in lines).encode()

    def _head(self) -> list[str]:
        account = self.spec.merchant_id
        made = datetime.combine(self.spec.day + timedelta(days=1), time(6, 12, 33))
        day = self._day
        return [
            f'"RH",{made:%Y/%m/%d %H:%M:%S} {OFFSET},"H","{account}",{VERSION}',
            '"FH",01',
            f'"SH",{day}00:00:00 {OFFSET},{day}23:59:59 {OFFSET},"{account}",""',
            '"CH",' + ",".join(f'"{name}"' for name in COLUMNS),
        ]

    def _withdrawal(self, cents: int) -> str:
        stamp = f"{self._day}23:30:00 {OFFSET}"
        txn = f"WD{self.spec.date_text()}0000001"
        return (
            f'"SB","{txn}","","","","T0400",{stamp},{stamp},"DR",{cents},"{CURRENCY}",'
            f'"DR",0,"{CURRENCY}","",""' + _EMPTY_TAIL
        )

    def _id(self, keys: pa.Array) -> pa.Array:
        return random_id(keys, self._salt, BASE36, 17)

    def _common(self, keys: pa.Table) -> dict[str, Part]:
        seconds = column(keys, "seconds")
        lag = pc.add(bits(column(keys, "pick"), 8, 3), lit(1))
        started = pc.max_element_wise(pc.subtract(seconds, lag), lit(0))
        fee = pc.divide(pc.abs(column(keys, "fee")), lit(1_000))
        return {
            "started": clock(started).around(self._day, f" {OFFSET}"),
            "done": clock(seconds).around(self._day, f" {OFFSET}"),
            "amount": pc.cast(column(keys, "amount"), pa.string()),
            "fee": pc.cast(fee, pa.string()),
        }

    def _pay_lines(self, pays: pa.Table) -> pa.Array:
        c = self._common(pays)
        code = pool(PAY_CODES, bits(column(pays, "pick"), 0, 3))
        return concat(
            [
                '"SB","', column(pays, "txn"), '","', column(pays, "order_id"), '","","","',
                code, '",', c["started"], ",", c["done"], ',"CR",', c["amount"],
                f',"{CURRENCY}","DR",', c["fee"], f',"{CURRENCY}","",""' + _EMPTY_TAIL + NEWLINE,
            ]
        )  # fmt: skip

    def _refund_lines(self, refunds: pa.Table) -> pa.Array:
        c = self._common(refunds)
        return concat(
            [
                '"SB","', column(refunds, "txn"), '","', column(refunds, "order_id"), '","',
                column(refunds, "origin_txn"), '","TXN","T1107",', c["started"], ",",
                c["done"], ',"DR",', c["amount"], f',"{CURRENCY}","CR",', c["fee"],
                f',"{CURRENCY}","",""' + _EMPTY_TAIL + NEWLINE,
            ]
        )  # fmt: skip
