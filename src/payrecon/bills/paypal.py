"""PayPal Settlement report (STL, ``STL-yyyymmdd.<seq>.<version>.CSV``).

A CSV file whose first field names the record type (FORMATS.md section 5): ``RH``
report header (generation time, reporting window, account id, version), ``FH`` file
header, ``SH`` section header (period, account id), ``CH`` the section's column names,
``SB`` one transaction, ``SF`` section footer (totals per currency), ``SC`` section
record count, ``RF`` report footer (totals per currency), ``RC`` report record count,
``FF`` file footer. UTF-8 (a BOM is allowed); varchar fields are double-quoted.

The ``SB`` lines are streamed in blocks through Arrow's CSV reader with the section's
``CH`` names (columns are found by name); only the few other records are read in Python.

Units: money fields are **unsigned integers in hundredths of the currency's major
unit** — the spec's example writes both 100.00 USD and 100 yen as ``10000`` — with the
direction in a separate ``CR``/``DR`` column. They are converted exactly to minor units
(÷100 for zero-decimal currencies, which must then be whole).

Decisions (not fixed by the format):

* ``Transaction Event Code`` ``T00xx`` credited (``CR``) to the merchant is a PAY;
  ``T1107`` (payment refund) debited (``DR``) is a REFUND. Every other event — fees,
  withdrawals (``T04xx``), holds, reversals, chargebacks, payments the merchant sent —
  is not an order record: it is left out and counted per code (``skipped:<code>``).
* Both kinds are keyed by ``Invoice ID``, the invoice id the merchant gave the payment
  or the refund; without one, by PayPal's ``Transaction ID`` (so the row shows up as
  MISSING_IN_LEDGER unless the ledger books PayPal ids). ``channel_txn_id`` is the
  ``Transaction ID``; ``origin_order_id`` stays null (the file links a refund to the
  original *PayPal* id only, in ``PayPal Reference ID``).
* ``fee`` is ``Fee Amount``, positive when debited (PayPal kept it), negative when
  credited (returned on a refund); null when empty or in another currency than the gross.
* ``txn_time`` is ``Transaction Completion Date`` (else the initiation date), written
  with its own UTC offset (``2024/08/20 00:01:17 -0700``); the accounting day is its
  date in the run's zone. ``merchant_id`` is the account id of ``SH`` (else ``RH``).
* Checked: every section's ``SB`` rows against its ``SF`` totals (gross credit, gross
  debit, fee credit, fee debit per currency, as the first four amounts after the
  currency) and its ``SC`` count; the whole file against ``RF``/``RC`` when present
  (the last file of a split report). Every ``SB`` row counts, skipped events included.
  A file that does not end with ``FF``, or a section without ``SF``/``SC``, is truncated.
"""

from __future__ import annotations

import csv
import gzip
import re
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc

from payrecon.bills.base import BillParser, FooterCheck, LineBlock, open_binary, read_blocks
from payrecon.bills.csv_generic import (
    Line,
    Rows,
    canonical_batch,
    currencies,
    local_dates,
    read_rows,
    strict_strptime,
)
from payrecon.core.schema import TIMESTAMP, Kind, Status
from payrecon.errors import BillFooterMismatch, BillTruncatedError, Location, MoneyError

TXN_ID, INVOICE, EVENT = "Transaction ID", "Invoice ID", "Transaction Event Code"
STARTED, COMPLETED = "Transaction Initiation Date", "Transaction Completion Date"
DIRECTION, GROSS, CURRENCY = (
    "Transaction Debit or Credit",
    "Gross Transaction Amount",
    "Gross Transaction Currency",
)
FEE_DIRECTION, FEE, FEE_CURRENCY = "Fee Debit or Credit", "Fee Amount", "Fee Currency"
COLUMNS: tuple[str, ...] = (TXN_ID, INVOICE, EVENT, STARTED, COMPLETED, DIRECTION, GROSS)
COLUMNS += (CURRENCY, FEE_DIRECTION, FEE, FEE_CURRENCY)
# Older files spell the names without spaces (TransactionID); the TRR has a double space.
_BY_SQUEEZED = {name.replace(" ", "").lower(): name for name in COLUMNS}
TIME_FORMAT = "%Y/%m/%d %H:%M:%S %z"
WALL = "%Y/%m/%d %H:%M:%S"
REFUND_CODE = "T1107"
FOOTER_FIELDS = ("gross_credit", "gross_debit", "fee_credit", "fee_debit")
_OTHER_LINE = re.compile(rb'^(?!"?SB"?,)[^\n]*', re.M)
_DIGITS = r"^[0-9]{1,17}$"
_DIGITS_TEXT = re.compile(r"[0-9]{1,17}")
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_DIRECTIONS = {"CR": "CR", "DR": "DR"}
_NO_INT = pa.scalar(None, pa.int64())


@dataclass
class _Totals:
    """SB rows counted, and their amounts as written (hundredths) per field:currency."""

    count: int = 0
    amounts: Counter[str] = field(default_factory=Counter)

    def add(self, other: _Totals) -> None:
        self.count += other.count
        self.amounts.update(other.amounts)

    def flat(self) -> dict[str, int]:
        return {"count": self.count, **dict(sorted(self.amounts.items()))}


@dataclass
class _Section:
    line: int
    account: str | None
    header: list[str] | None = None
    totals: _Totals = field(default_factory=_Totals)
    declared: dict[str, tuple[int, tuple[int, ...]]] = field(default_factory=dict)


@dataclass
class _Report:
    """What the file declares and what its rows add up to."""

    account: str | None = None
    section: _Section | None = None
    totals: _Totals = field(default_factory=_Totals)
    declared: _Totals = field(default_factory=_Totals)
    footers: dict[str, tuple[int, tuple[int, ...]]] = field(default_factory=dict)
    count_line: tuple[int, int] | None = None  # (line, RC count)
    ended: bool = False
    skipped: Counter[str] = field(default_factory=Counter)


class PaypalBillParser(BillParser):
    """A PayPal STL settlement report."""

    channel = "paypal"

    def _setup(self) -> None:
        self._report = _Report()
        self._handlers: dict[str, Callable[[list[str], int], None]] = {
            "RH": self._on_report_header,
            "FH": lambda _fields, _line: None,
            "SH": self._on_section_header,
            "CH": self._on_columns,
            "SF": self._on_section_footer,
            "SC": self._on_section_count,
            "RF": self._on_report_footer,
            "RC": self._on_report_count,
            "FF": self._on_file_footer,
        }

    def batches(self) -> Iterator[pa.RecordBatch]:
        try:
            yield from self._batches()
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:  # a damaged .gz, mid-stream
            raise self.error(f"the compressed file is damaged: {exc}") from None

    def _batches(self) -> Iterator[pa.RecordBatch]:
        self._report = _Report()
        with open_binary(self.path) as probe:
            if probe.read(2) in _UTF16_BOMS:
                raise self.error("a UTF-16 file (an older STL version); convert it to UTF-8", 1)
        with open_binary(self.path) as stream:
            for block in read_blocks(stream, self.source, on_progress=self.on_progress):
                for piece in _pieces(block):
                    if isinstance(piece, Line):
                        self._record(piece)
                    else:
                        batch = self._body(piece)
                        if batch.num_rows:
                            yield batch
        self.footer = self._finish()

    # ------------------------------------------------------------------ records

    def _record(self, line: Line) -> None:
        fields = next(csv.reader([line.text]), [])
        kind = fields[0].strip() if fields else ""
        if not kind:
            return
        if self._report.ended:
            raise self.error("a record after the FF file footer", line.number)
        handler = self._handlers.get(kind)
        if handler is None:
            raise self.error(f"unknown record type {kind!r}", line.number)
        handler(fields, line.number)

    def _on_report_header(self, fields: list[str], _line: int) -> None:
        self._report.account = _field(fields, 3)

    def _on_section_header(self, fields: list[str], line: int) -> None:
        self._require_closed(line)
        self._report.section = _Section(line, _field(fields, 3) or self._report.account)

    def _on_columns(self, fields: list[str], line: int) -> None:
        self._section(line, "CH").header = _names(fields)

    def _on_section_footer(self, fields: list[str], line: int) -> None:
        currency, amounts = self._footer_amounts(fields, line)
        self._section(line, "SF").declared[currency] = (line, amounts)

    def _on_section_count(self, fields: list[str], line: int) -> None:
        self._check_section(self._section(line, "SC"), fields, line)
        self._report.section = None

    def _on_report_footer(self, fields: list[str], line: int) -> None:
        self._require_closed(line)
        currency, amounts = self._footer_amounts(fields, line)
        self._report.footers[currency] = (line, amounts)

    def _on_report_count(self, fields: list[str], line: int) -> None:
        self._require_closed(line)
        self._report.count_line = (line, self._count(fields, line))

    def _on_file_footer(self, _fields: list[str], line: int) -> None:
        self._require_closed(line)
        self._report.ended = True

    def _section(self, line: int, record: str) -> _Section:
        if self._report.section is None:
            raise self.error(f"a {record} record outside a section (no SH before it)", line)
        return self._report.section

    def _require_closed(self, line: int | None) -> None:
        section = self._report.section
        if section is not None:
            message = f"the section of line {section.line} ends without its SC record count"
            raise BillTruncatedError(message, Location(self.source, line))

    def _footer_amounts(self, fields: list[str], line: int) -> tuple[str, tuple[int, ...]]:
        if len(fields) < 6:
            raise self.error(f"a {fields[0]} record needs a currency and four totals", line)
        currency = fields[1].strip().upper()
        values = []
        for name, text in zip(FOOTER_FIELDS, fields[2:6], strict=True):
            if not _DIGITS_TEXT.fullmatch(text.strip()):
                raise MoneyError(f"{text!r} is not an amount", Location(self.source, line, name))
            values.append(int(text.strip()))
        return currency, tuple(values)

    def _count(self, fields: list[str], line: int) -> int:
        text = _field(fields, 1) or ""
        if not text.isdigit():
            raise self.error(f"{text!r} is not a record count", line, fields[0])
        return int(text)

    # ------------------------------------------------------------------ body rows

    def _body(self, block: LineBlock) -> pa.RecordBatch:
        section = self._report.section
        if section is None or section.header is None:
            where = "before any CH column header" if section else "outside a section"
            raise self.error(f"an SB record {where}", block.first_line)
        for name in COLUMNS:
            if name not in section.header:
                raise self.error(f"the CH header has no {name!r} column", section.line, name)
        rows = read_rows(block, section.header, COLUMNS, fail=self.error)
        gross_dir = rows.lookup(DIRECTION, _DIRECTIONS, "not CR or DR")
        codes, digits = currencies(rows, CURRENCY)
        gross = self._hundredths(rows, GROSS)
        rows.reject(pc.is_null(gross), GROSS, "missing amount")
        fee, fee_dir, fee_codes = self._fee_columns(rows)
        added = _totals(rows.count, (gross, gross_dir, codes), (fee, fee_dir, fee_codes))
        section.totals.add(added)
        self._report.totals.add(added)
        keep, refund = self._classify(rows, gross_dir)
        kept = rows.filter(keep)
        columns = (gross, codes, digits, fee, fee_dir, fee_codes, refund)
        gross, codes, digits, fee, fee_dir, fee_codes, refund = (c.filter(keep) for c in columns)
        money = self._money(kept, gross, codes, digits, (fee, fee_dir, fee_codes))
        return self._convert(kept, section.account, codes, refund, money)

    def _fee_columns(self, rows: Rows) -> tuple[pa.Array, pa.Array, pa.Array]:
        fee = self._hundredths(rows, FEE)
        has_fee = pc.is_valid(fee)
        direction = rows.text(FEE_DIRECTION)
        valid = pc.is_in(direction, value_set=pa.array(list(_DIRECTIONS)))
        rows.reject(pc.and_(has_fee, pc.invert(valid)), FEE_DIRECTION, "not CR or DR")
        fee_codes = pc.utf8_upper(rows.text(FEE_CURRENCY))
        rows.reject(pc.and_(has_fee, pc.is_null(fee_codes)), FEE_CURRENCY, "missing value")
        return fee, direction, fee_codes

    def _classify(self, rows: Rows, gross_dir: pa.Array) -> tuple[pa.Array, pa.Array]:
        """(kept, refund) masks; every other event code is counted as skipped."""
        code = rows.required(EVENT)
        credit = pc.equal(gross_dir, "CR")
        pay = pc.and_(pc.starts_with(code, "T00"), credit)
        refund = pc.and_(pc.equal(code, REFUND_CODE), pc.invert(credit))
        keep = pc.or_(pay, refund)
        for entry in pc.value_counts(code.filter(pc.invert(keep))).to_pylist():
            self._report.skipped[entry["values"]] += entry["counts"]
        return keep, refund

    def _money(
        self,
        rows: Rows,
        gross: pa.Array,
        codes: pa.Array,
        digits: pa.Array,
        fees: tuple[pa.Array, pa.Array, pa.Array],
    ) -> tuple[pa.Array, pa.Array]:
        """(amount, fee) in minor units and thousandths of one."""
        fee, fee_dir, fee_codes = fees
        signed = pc.if_else(pc.equal(fee_dir, "CR"), pc.negate(fee), fee)
        same = pc.equal(fee_codes, codes)
        fee_minor = self._minor(rows, FEE, pc.if_else(same, signed, _NO_INT), digits)
        return self._minor(rows, GROSS, gross, digits), pc.multiply(fee_minor, 1000)

    def _convert(
        self,
        rows: Rows,
        account: str | None,
        codes: pa.Array,
        refund: pa.Array,
        money: tuple[pa.Array, pa.Array],
    ) -> pa.RecordBatch:
        utc = self._times(rows)
        values = {
            "channel": self.channel_name,
            "merchant_id": account,
            "kind": pc.if_else(refund, Kind.REFUND.value, Kind.PAY.value),
            "order_id": pc.coalesce(rows.text(INVOICE), rows.required(TXN_ID)),
            "channel_txn_id": rows.text(TXN_ID),
            "status": Status.SUCCESS.value,
            "amount": money[0],
            "fee": money[1],
            "currency": codes,
            "txn_time": utc,
            "bill_date": local_dates(utc, self.timezone),
            "source": self.source,
            "line_no": rows.lines,
        }
        return canonical_batch(values, rows.count)

    def _hundredths(self, rows: Rows, name: str) -> pa.Array:
        """An unsigned integer money field as written; empty is null."""
        values = rows.text(name)
        shape = pc.match_substring_regex(values, _DIGITS)
        bad = pc.index(pc.fill_null(pc.invert(shape), False), True).as_py()
        if bad >= 0:
            reason = f"{values[bad].as_py()!r} is not an amount (unsigned hundredths, e.g. 3000)"
            raise MoneyError(reason, Location(self.source, rows.lines[bad].as_py(), name))
        return pc.cast(values, pa.int64())

    def _minor(self, rows: Rows, name: str, hundredths: pa.Array, digits: pa.Array) -> pa.Array:
        """Hundredths of the major unit to minor units of each row's currency, exactly."""
        scale = pc.power(pa.scalar(10, pa.int64()), pc.abs(pc.subtract(digits, 2)))
        up = pc.greater_equal(digits, 2)
        minor = pc.if_else(up, pc.multiply(hundredths, scale), pc.divide(hundredths, scale))
        inexact = pc.and_(pc.invert(up), pc.not_equal(pc.multiply(minor, scale), hundredths))
        bad = pc.index(pc.fill_null(inexact, False), True).as_py()
        if bad >= 0:
            reason = f"{hundredths[bad].as_py()} hundredths is not a whole amount in its currency"
            raise MoneyError(reason, Location(self.source, rows.lines[bad].as_py(), name))
        return minor

    def _times(self, rows: Rows) -> pa.Array:
        text = pc.coalesce(rows.text(COMPLETED), rows.text(STARTED))
        rows.reject(pc.is_null(text), COMPLETED, "missing value")
        parsed = pc.strptime(text, format=TIME_FORMAT, unit="us", error_is_null=True)
        wall = strict_strptime(pc.utf8_slice_codeunits(text, 0, len("2024/08/20 00:01:17")), WALL)
        wrong = pc.or_kleene(pc.is_null(parsed), pc.is_null(wall))
        rows.reject(wrong, COMPLETED, "not a time like 2024/08/20 00:01:17 -0700")
        return parsed.cast(TIMESTAMP)

    # ------------------------------------------------------------------ footers

    def _check_section(self, section: _Section, fields: list[str], line: int) -> None:
        count = self._count(fields, line)
        declared = _Totals(count)
        for currency, (_, amounts) in section.declared.items():
            declared.amounts.update(_keyed(currency, amounts))
        self._compare(section.totals, declared, section.declared, "SF")
        if count != section.totals.count:
            message = f"SC says {count} records but the section has {section.totals.count}"
            raise BillFooterMismatch(message, Location(self.source, line, "SC"))
        self._report.declared.add(declared)

    def _compare(
        self,
        counted: _Totals,
        declared: _Totals,
        lines: dict[str, tuple[int, tuple[int, ...]]],
        record: str,
    ) -> None:
        for key in sorted(set(counted.amounts) | set(declared.amounts)):
            name, currency = key.split(":")
            if counted.amounts[key] == declared.amounts[key]:
                continue
            if currency not in lines:
                message = f"{currency} rows but no {record} totals for {currency}"
                raise BillFooterMismatch(message, Location(self.source, None, record))
            said, added = declared.amounts[key], counted.amounts[key]
            message = f"{record} says {name} {said} {currency} hundredths, the rows add {added}"
            raise BillFooterMismatch(message, Location(self.source, lines[currency][0], name))

    def _finish(self) -> FooterCheck:
        report = self._report
        if not report.ended:
            self._require_closed(None)
            message = "the file ends without its FF file footer"
            raise BillTruncatedError(message, Location(self.source))
        if report.footers:
            declared = _Totals(report.totals.count)
            for currency, (_, amounts) in report.footers.items():
                declared.amounts.update(_keyed(currency, amounts))
            self._compare(report.totals, declared, report.footers, "RF")
        if report.count_line is not None:
            line, count = report.count_line
            if count != report.totals.count:
                message = f"RC says {count} records but the file has {report.totals.count}"
                raise BillFooterMismatch(message, Location(self.source, line, "RC"))
        skipped = {f"skipped:{code}": n for code, n in sorted(report.skipped.items())}
        counted = {**report.totals.flat(), **skipped}
        return FooterCheck("ok", declared=report.declared.flat(), counted=counted)


def _pieces(block: LineBlock) -> Iterator[LineBlock | Line]:
    """Runs of SB lines as blocks, every other non-blank line on its own."""
    data, position = block.data, 0
    for match in _OTHER_LINE.finditer(data):
        if not match.group().strip():
            continue
        if match.start() > position:
            yield LineBlock(data[position : match.start()], block.line_of(position))
        yield Line(block.line_of(match.start()), match.group().decode())
        position = match.end() + 1
    if position < len(data):
        yield LineBlock(data[position:], block.line_of(position))


def _totals(
    count: int,
    gross: tuple[pa.Array, pa.Array, pa.Array],
    fee: tuple[pa.Array, pa.Array, pa.Array],
) -> _Totals:
    totals = _Totals(count)
    for prefix, (amounts, directions, codes) in (("gross", gross), ("fee", fee)):
        table = pa.table({"amount": amounts, "direction": directions, "currency": codes})
        table = table.filter(pc.is_valid(table.column("amount")))
        sums = table.group_by(["direction", "currency"]).aggregate([("amount", "sum")])
        for entry in sums.to_pylist():
            side = "credit" if entry["direction"] == "CR" else "debit"
            totals.amounts[f"{prefix}_{side}:{entry['currency']}"] += entry["amount_sum"]
    return totals


def _keyed(currency: str, amounts: tuple[int, ...]) -> dict[str, int]:
    pairs = zip(FOOTER_FIELDS, amounts, strict=True)
    return {f"{name}:{currency}": value for name, value in pairs}


def _names(fields: list[str]) -> list[str]:
    names = [" ".join(name.split()) for name in fields]
    return [_BY_SQUEEZED.get(name.replace(" ", "").lower(), name) for name in names]


def _field(fields: list[str], index: int) -> str | None:
    value = fields[index].strip() if len(fields) > index else ""
    return value or None
