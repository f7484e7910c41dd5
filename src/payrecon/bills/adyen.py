"""Adyen Settlement details report (``settlement_detail_report_batch_<N>.csv``).

One file per payout batch (FORMATS.md section 6): a header row and one row per
settlement line. Adyen lets users add and reorder columns, so every column is found by
its header name; the header is the first line naming ``Merchant Account`` and ``Type``
(the aggregate variant puts a two-line summary before it). Comma separated, a value
quoted when it holds a comma, plain ASCII/UTF-8.

Units: amounts are **decimal major units** in separate Debit/Credit columns, empty when
not applicable; gross amounts in the ``Gross Currency``, net amounts and the fee
columns — ``Commission``, ``Markup``, ``Scheme Fees``, ``Interchange``, all ``(NC)`` —
in the ``Net Currency``. Each is converted exactly with its currency's ISO 4217 digits.

Decisions (not fixed by the format):

* ``Type`` ``Settled`` is a PAY keyed by ``Merchant Reference``, with ``Psp Reference``
  as ``channel_txn_id``. ``Refunded`` is a REFUND keyed by ``Modification Merchant
  Reference`` (the merchant's refund reference; Adyen's ``Modification Reference``, the
  refund's PSP reference, when that is empty or the column absent), with the payment's
  ``Merchant Reference`` as ``origin_order_id`` and ``Modification Reference`` as
  ``channel_txn_id``. Every other type (Fee, MerchantPayout, Balancetransfer,
  Chargeback, …) is not an order record: it is left out and counted per type in the
  footer check (``skipped:<Type>``).
* ``amount`` is ``Gross Credit (GC)`` of a Settled row and ``Gross Debit (GC)`` of a
  Refunded row; the other side's column must be empty. ``fee`` is the sum of the fee
  columns present (thousandths of a minor unit, positive: Adyen charged it), null when
  all are empty or when the net currency differs from the gross currency (the fee
  cannot then be stated in the record's currency).
* Times: ``Creation Date`` is wall-clock time in the row's ``TimeZone`` (an IANA name
  such as ``CET``; ``CEST``/``EEST``/``WEST`` are read as the same region); without a
  ``TimeZone`` column, the run's zone. A repeated hour at a DST change takes the earlier.
* The check: a batch is paid out, so its net amounts — ``Net Credit (NC)`` minus
  ``Net Debit (NC)`` over every row, the payout or balance transfer included — add up to
  zero per net currency. A file with a ``MerchantPayout`` or ``Balancetransfer`` row is
  checked (a difference raises :class:`BillFooterMismatch`); one without is ``none``.
"""

from __future__ import annotations

import gzip
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

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
from payrecon.core.money import format_minor
from payrecon.core.schema import TIMESTAMP, Kind, Status
from payrecon.errors import BillFooterMismatch, BillTruncatedError, Location, MoneyError

MERCHANT, PSP, REFERENCE = "Merchant Account", "Psp Reference", "Merchant Reference"
CREATED, ZONE, TYPE = "Creation Date", "TimeZone", "Type"
MODIFICATION, MODIFICATION_REF = "Modification Reference", "Modification Merchant Reference"
GROSS_CURRENCY, GROSS_DEBIT, GROSS_CREDIT = (
    "Gross Currency",
    "Gross Debit (GC)",
    "Gross Credit (GC)",
)
NET_CURRENCY, NET_DEBIT, NET_CREDIT = "Net Currency", "Net Debit (NC)", "Net Credit (NC)"
FEES = ("Commission (NC)", "Markup (NC)", "Scheme Fees (NC)", "Interchange (NC)")
REQUIRED: tuple[str, ...] = (MERCHANT, PSP, REFERENCE, CREATED, TYPE, MODIFICATION)
REQUIRED += (GROSS_CURRENCY, GROSS_DEBIT, GROSS_CREDIT, NET_CURRENCY, NET_DEBIT, NET_CREDIT)
OPTIONAL = (ZONE, MODIFICATION_REF, *FEES)
KINDS = {"Settled": Kind.PAY.value, "Refunded": Kind.REFUND.value}
CLOSING = ("MerchantPayout", "Balancetransfer")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
# Summer abbreviations Adyen may print; the IANA zones of the same name follow DST.
ZONE_ALIASES = {"CEST": "CET", "EEST": "EET", "WEST": "WET", "BST": "Europe/London"}


@dataclass
class _Tally:
    rows: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    net: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    digits: dict[str, int] = field(default_factory=dict)
    closed: bool = False

    def counted(self) -> dict[str, int]:
        skipped = {f"skipped:{name}": count for name, count in sorted(self.skipped.items())}
        nets = {f"net:{currency}": value for currency, value in sorted(self.net.items())}
        return {"rows": self.rows, **dict(sorted(self.kinds.items())), **skipped, **nets}


class AdyenBillParser(BillParser):
    """An Adyen settlement details report: one payout batch."""

    channel = "adyen"

    def batches(self) -> Iterator[pa.RecordBatch]:
        try:
            yield from self._batches()
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:  # a damaged .gz, mid-stream
            raise self.error(f"the compressed file is damaged: {exc}") from None

    def _batches(self) -> Iterator[pa.RecordBatch]:
        sections = Sections(self.error, is_header=_is_header, head_limit=8)
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
            self._header(sections)
        self.footer = self._check(tally)

    def _header(self, sections: Sections) -> list[str]:
        if sections.header is None:
            message = "no header row naming Merchant Account and Type"
            raise BillTruncatedError(message, Location(self.source))
        names = parse_header(sections.header.text)
        for name in REQUIRED:
            if name not in names:
                message = f"the header has no {name!r} column"
                raise self.error(message, sections.header.number, name)
        return names

    def _money_error(self, message: str, line: int | None, name: str | None) -> Exception:
        return MoneyError(message, Location(self.source, line, name))

    # ------------------------------------------------------------------ rows

    def _convert(self, all_rows: Rows, tally: _Tally) -> pa.RecordBatch:
        kinds = all_rows.required(TYPE)
        known = pc.is_in(kinds, value_set=pa.array(list(KINDS)))
        self._tally(all_rows, kinds, known, tally)
        rows = all_rows.filter(known)
        kind = rows.lookup(TYPE, KINDS, "not Settled or Refunded")
        refund = pc.equal(kind, Kind.REFUND.value)
        codes, digits = currencies(rows, GROSS_CURRENCY)
        utc = self._times(rows)
        order_id, origin, txn = self._keys(rows, refund)
        values = {
            "channel": self.channel_name,
            "merchant_id": rows.required(MERCHANT),
            "kind": kind,
            "order_id": order_id,
            "origin_order_id": origin,
            "channel_txn_id": txn,
            "status": Status.SUCCESS.value,
            "amount": self._amount(rows, digits, refund),
            "fee": self._fee(rows, codes),
            "currency": codes,
            "txn_time": utc,
            "bill_date": local_dates(utc, self.timezone),
            "source": self.source,
            "line_no": rows.lines,
        }
        return canonical_batch(values, rows.count)

    def _tally(self, rows: Rows, kinds: pa.Array, known: pa.Array, tally: _Tally) -> None:
        tally.rows += rows.count
        for entry in pc.value_counts(kinds).to_pylist():
            name, count = entry["values"], entry["counts"]
            target = tally.kinds if name in KINDS else tally.skipped
            target[name] += count
        tally.closed = tally.closed or bool(pc.any(pc.is_in(kinds, pa.array(CLOSING))).as_py())
        self._add_net(rows, tally)

    def _add_net(self, rows: Rows, tally: _Tally) -> None:
        moving = rows.filter(
            pc.or_(pc.is_valid(rows.text(NET_CREDIT)), pc.is_valid(rows.text(NET_DEBIT)))
        )
        if not moving.count:
            return
        codes, digits = currencies(moving, NET_CURRENCY)
        credit = in_currency(moving, NET_CREDIT, digits, self._money_error)
        debit = in_currency(moving, NET_DEBIT, digits, self._money_error)
        delta = pc.subtract(pc.fill_null(credit, 0), pc.fill_null(debit, 0))
        table = pa.table({"currency": codes, "digits": digits, "delta": delta})
        sums = table.group_by(["currency", "digits"]).aggregate([("delta", "sum")])
        for entry in sums.to_pylist():
            tally.net[entry["currency"]] += entry["delta_sum"]
            tally.digits[entry["currency"]] = entry["digits"]

    def _keys(self, rows: Rows, refund: pa.Array) -> tuple[pa.Array, pa.Array, pa.Array]:
        """(order_id, origin_order_id, channel_txn_id) of each row."""
        reference = rows.required(REFERENCE)
        modification = rows.text(MODIFICATION)
        refund_ref = rows.text(MODIFICATION_REF) if MODIFICATION_REF in rows.columns else None
        refund_key = modification if refund_ref is None else pc.coalesce(refund_ref, modification)
        rows.reject(pc.and_(refund, pc.is_null(refund_key)), MODIFICATION, "a refund without it")
        none = pa.nulls(rows.count, pa.string())
        order_id = pc.if_else(refund, refund_key, reference)
        txn = pc.if_else(refund, modification, rows.text(PSP))
        return order_id, pc.if_else(refund, reference, none), txn

    def _amount(self, rows: Rows, digits: pa.Array, refund: pa.Array) -> pa.Array:
        credit = in_currency(rows, GROSS_CREDIT, digits, self._money_error)
        debit = in_currency(rows, GROSS_DEBIT, digits, self._money_error)
        pay = pc.invert(refund)
        rows.reject(pc.and_(pay, pc.is_null(credit)), GROSS_CREDIT, "a Settled row without it")
        rows.reject(pc.and_(refund, pc.is_null(debit)), GROSS_DEBIT, "a Refunded row without it")
        both = pc.and_(pc.is_valid(credit), pc.is_valid(debit))
        rows.reject(both, GROSS_DEBIT, "both gross debit and gross credit are set")
        return pc.if_else(refund, debit, credit)

    def _fee(self, rows: Rows, gross_codes: pa.Array) -> pa.Array | None:
        present = [name for name in FEES if name in rows.columns]
        if not present:
            return None
        codes, digits = currencies(rows, NET_CURRENCY)
        parts = [in_currency(rows, name, digits, self._money_error, fee=True) for name in present]
        total = parts[0]
        for part in parts[1:]:
            total = pc.if_else(
                pc.and_(pc.is_null(total), pc.is_null(part)),
                pa.scalar(None, pa.int64()),
                pc.add(pc.fill_null(total, 0), pc.fill_null(part, 0)),
            )
        same = pc.equal(codes, gross_codes)
        return pc.if_else(same, total, pa.scalar(None, pa.int64()))

    def _times(self, rows: Rows) -> pa.Array:
        text = rows.required(CREATED)
        local = strict_strptime(text, TIME_FORMAT)
        rows.reject(pc.is_null(local), CREATED, "not a time like 2024-03-05 10:00:00")
        zones = rows.required(ZONE) if ZONE in rows.columns else None
        if zones is None:
            return self._place(rows, local, self.timezone, CREATED)
        utc = pa.nulls(rows.count, TIMESTAMP)
        for name in pc.unique(zones).to_pylist():
            mine = pc.equal(zones, name)
            placed = self._place(rows, local, self._zone(rows, zones, name), ZONE)
            utc = pc.if_else(mine, placed, utc)
        return utc

    def _zone(self, rows: Rows, zones: pa.Array, name: str) -> str:
        zone = ZONE_ALIASES.get(name, name)
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            rows.reject(pc.equal(zones, name), ZONE, "not a time zone name")
        return zone

    def _place(self, rows: Rows, local: pa.Array, zone: str, name: str) -> pa.Array:
        try:
            return pc.assume_timezone(local, zone, ambiguous="earliest").cast(TIMESTAMP)
        except pa.ArrowInvalid as exc:  # a wall time skipped by a DST change
            raise self.error(f"time cannot be placed in {zone}: {exc}", None, name) from None

    # ------------------------------------------------------------------ the check

    def _check(self, tally: _Tally) -> FooterCheck:
        counted = tally.counted()
        if not tally.closed:
            return FooterCheck("none", counted=counted)
        declared = {f"net:{currency}": 0 for currency in tally.net}
        for currency, value in sorted(tally.net.items()):
            if value:
                message = (
                    f"the batch's net amounts (Net Credit - Net Debit, payout included) add up"
                    f" to {format_minor(value, scale=tally.digits[currency])} {currency}, not 0:"
                    " rows are missing or altered"
                )
                raise BillFooterMismatch(message, Location(self.source, None, NET_CREDIT))
        return FooterCheck("ok", declared=declared, counted=counted)


def _is_header(_index: int, text: str) -> bool:
    names = parse_header(text)
    return MERCHANT in names and TYPE in names
