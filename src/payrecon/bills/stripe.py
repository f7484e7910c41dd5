"""Stripe itemized balance and payout reconciliation reports (CSV).

Reads the itemized reports of the Reporting API and the Dashboard,
``balance_change_from_activity.itemized.1|2|3`` and ``payout_reconciliation.itemized.*``
(FORMATS.md section 4): one header row, one balance transaction per row, columns found
by name because the ``columns`` run parameter chooses and orders them. UTF-8, comma
separated, a value quoted only when it needs it.

Units and signs: amounts are **decimal major units** of the row's (lower-case)
``currency`` — ``10.00`` USD, ``1000`` JPY — converted exactly with the currency's ISO
4217 digits; the canonical amount is in minor units, the fee in thousandths of one.
``gross`` is positive for money charged to a customer and negative for money sent back.

Decisions (not fixed by the format):

* ``reporting_category`` ``charge`` is a PAY, ``refund`` a REFUND. Every other category
  (``payout``, ``fee``, ``dispute``, ``refund_failure``, ``partial_capture_reversal``,
  ``transfer``, adjustments…) is a balance movement the ledger does not book per order:
  it is left out of the records and counted, per category, in the footer check's
  ``counted`` (``skipped:<category>``), so it is visible in ``summary.json``.
* ``amount`` is ``|gross|``; a charge with a negative gross or a refund with a positive
  one is an error naming the line. ``fee`` is ``fee`` as written (positive: Stripe kept
  it; negative on a refund: returned), null without the column.
* The order key is the merchant's own id from metadata: ``payment_metadata[order_id]``
  on charges, ``refund_metadata[refund_id]`` on refunds (whose ``origin_order_id`` is
  the refunded payment's ``payment_metadata[order_id]``). Where the column is absent or
  the value empty the row is keyed by Stripe's object id (``source_id``: ``ch_``/``py_``
  /``re_``, else ``balance_transaction_id``), so it surfaces as MISSING_IN_LEDGER unless
  the ledger books Stripe ids. ``channel_txn_id`` is that Stripe id.
* Times: ``created_utc`` (UTC, ``YYYY-MM-DD HH:MM:SS``); the accounting day is its date
  in the run's time zone. The report's local ``created`` is not used, because the file
  does not say which zone it was run with.
* ``merchant_id`` is null: the report carries no account id (Connect reports name
  connected accounts, not the platform). Status is SUCCESS: every row moved money.
* No totals: the report has no footer, so the footer check is ``none`` (rows counted).
"""

from __future__ import annotations

import gzip
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from payrecon.bills.base import BillParser, FooterCheck, open_binary, read_blocks
from payrecon.bills.csv_generic import (
    Rows,
    Sections,
    canonical_batch,
    currencies,
    in_currency,
    local_dates,
    parse_header,
    read_rows,
    strict_strptime,
)
from payrecon.core.schema import TIMESTAMP, Kind, Status
from payrecon.errors import BillTruncatedError, Location, MoneyError

TXN_ID, CREATED, CATEGORY = "balance_transaction_id", "created_utc", "reporting_category"
CURRENCY, GROSS, FEE, SOURCE = "currency", "gross", "fee", "source_id"
PAYMENT_ORDER = "payment_metadata[order_id]"
REFUND_ORDER = "refund_metadata[refund_id]"
REQUIRED = (TXN_ID, CREATED, CATEGORY, CURRENCY, GROSS)
OPTIONAL = (FEE, SOURCE, PAYMENT_ORDER, REFUND_ORDER)
KINDS = {"charge": Kind.PAY.value, "refund": Kind.REFUND.value}
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass
class _Tally:
    """Rows seen, by what became of them."""

    rows: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)

    def skip(self, categories: pa.Array) -> None:
        for entry in pc.value_counts(categories).to_pylist():
            self.skipped[entry["values"]] += entry["counts"]

    def counted(self) -> dict[str, int]:
        skipped = {f"skipped:{name}": count for name, count in sorted(self.skipped.items())}
        return {"rows": self.rows, **dict(sorted(self.kinds.items())), **skipped}


class StripeBillParser(BillParser):
    """A Stripe itemized balance-change or payout-reconciliation report."""

    channel = "stripe"

    def batches(self) -> Iterator[pa.RecordBatch]:
        try:
            yield from self._batches()
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:  # a damaged .gz, mid-stream
            raise self.error(f"the compressed file is damaged: {exc}") from None

    def _batches(self) -> Iterator[pa.RecordBatch]:
        sections = Sections(self.error, is_header=lambda _i, text: bool(text.strip()))
        tally = _Tally()
        header: list[str] | None = None
        with open_binary(self.path) as stream:
            blocks = read_blocks(stream, self.source, on_progress=self.on_progress)
            for block in sections.rows(blocks):
                header = header or self._header(sections)
                wanted = [name for name in (*REQUIRED, *OPTIONAL) if name in header]
                rows = read_rows(block, header, wanted, fail=self.error)
                batch = self._convert(rows, tally)
                if batch.num_rows:
                    yield batch
        if header is None:
            self._header(sections)  # a report without rows still needs its header
        self.footer = FooterCheck("none", counted=tally.counted())

    def _header(self, sections: Sections) -> list[str]:
        if sections.header is None:
            raise BillTruncatedError("the file has no header row", Location(self.source))
        names = parse_header(sections.header.text)
        for name in REQUIRED:
            if name not in names:
                message = f"the header has no {name} column; is this a Stripe itemized report?"
                raise self.error(message, sections.header.number, name)
        return names

    def _money_error(self, message: str, line: int | None, name: str | None) -> Exception:
        return MoneyError(message, Location(self.source, line, name))

    def _convert(self, all_rows: Rows, tally: _Tally) -> pa.RecordBatch:
        category = all_rows.required(CATEGORY)
        known = pc.is_in(category, value_set=pa.array(list(KINDS)))
        tally.rows += all_rows.count
        tally.skip(category.filter(pc.invert(known)))
        rows = all_rows.filter(known)
        kind = rows.lookup(CATEGORY, KINDS, "not charge or refund")
        refund = pc.equal(kind, Kind.REFUND.value)
        tally.kinds.update({"charges": rows.count - _count(refund), "refunds": _count(refund)})
        codes, digits = currencies(rows, CURRENCY)
        utc = self._times(rows)
        order_id, origin, txn = _keys(rows, refund)
        values = {
            "channel": self.channel_name,
            "kind": kind,
            "order_id": order_id,
            "origin_order_id": origin,
            "channel_txn_id": txn,
            "status": Status.SUCCESS.value,
            "amount": self._amount(rows, digits, refund),
            "fee": self._fee(rows, digits),
            "currency": codes,
            "txn_time": utc,
            "bill_date": local_dates(utc, self.timezone),
            "source": self.source,
            "line_no": rows.lines,
        }
        return canonical_batch(values, rows.count)

    def _amount(self, rows: Rows, digits: pa.Array, refund: pa.Array) -> pa.Array:
        gross = in_currency(rows, GROSS, digits, self._money_error)
        rows.reject(pc.is_null(gross), GROSS, "missing amount")
        rows.reject(pc.and_(pc.invert(refund), pc.less(gross, 0)), GROSS, "a negative charge")
        rows.reject(pc.and_(refund, pc.greater(gross, 0)), GROSS, "a positive refund")
        return pc.abs(gross)

    def _fee(self, rows: Rows, digits: pa.Array) -> pa.Array | None:
        if FEE not in rows.columns:
            return None
        return in_currency(rows, FEE, digits, self._money_error, fee=True)

    def _times(self, rows: Rows) -> pa.Array:
        text = rows.required(CREATED)
        parsed = strict_strptime(text, TIME_FORMAT)
        rows.reject(pc.is_null(parsed), CREATED, "not a UTC time like 2024-03-05 10:00:00")
        return pc.assume_timezone(parsed, "UTC").cast(TIMESTAMP)


def _keys(rows: Rows, refund: pa.Array) -> tuple[pa.Array, pa.Array, pa.Array]:
    """(order_id, origin_order_id, channel_txn_id) of each row."""
    none = pa.nulls(rows.count, pa.string())
    stripe_id = pc.coalesce(_optional(rows, SOURCE, none), rows.required(TXN_ID))
    paid_for = _optional(rows, PAYMENT_ORDER, none)
    merchant = pc.if_else(refund, _optional(rows, REFUND_ORDER, none), paid_for)
    return pc.coalesce(merchant, stripe_id), pc.if_else(refund, paid_for, none), stripe_id


def _optional(rows: Rows, name: str, missing: pa.Array) -> pa.Array:
    return rows.text(name) if name in rows.columns else missing


def _count(mask: pa.Array) -> int:
    return int(pc.sum(pc.cast(mask, pa.int64())).as_py() or 0)
