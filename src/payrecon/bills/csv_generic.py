"""Bills in plain CSV, described by configuration, plus the columnar pieces CSV bills share.

:class:`CsvBillParser` reads a channel configured as ``[channels.<name>]`` in
``payrecon.toml`` (:class:`~payrecon.config.CsvChannelSettings`): a header row, one record
per line, columns mapped by header name to canonical ones.

The helpers below are shared with the channel parsers whose bills are CSV underneath
(Alipay, Stripe, PayPal, Adyen): :class:`Sections` cuts a bill into preamble, rows and
footer while streaming; :func:`read_rows` parses one block of rows with Arrow's CSV reader
into :class:`Rows`, whose converters work on whole columns and raise errors naming file,
line and field. :func:`currencies`/:func:`in_currency` convert amounts with each row's
ISO 4217 digits, :func:`strict_strptime` parses times without rolling dates over.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import zlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from payrecon.bills.base import (
    BillParser,
    FooterCheck,
    LineBlock,
    ProgressCallback,
    open_binary,
    read_blocks,
)
from payrecon.config import CsvChannelSettings
from payrecon.core.money import FEE_SCALE, MINOR_SCALE, MoneyRowError, arrow_to_minor
from payrecon.core.schema import CANONICAL, TIMESTAMP, Kind, Status
from payrecon.errors import ConfigError

ErrorFactory = Callable[[str, int | None, str | None], Exception]
"""Builds the error to raise from (message, line, field); :meth:`BillParser.error` fits."""

Column: TypeAlias = "pa.Array | str | None"
"""A canonical column for :func:`canonical_batch`: values, one constant string, or all null."""

_MINOR_DIGITS = r"^[+-]?[0-9]{1,18}$"  # 18 digits always fit int64


# --------------------------------------------------------------------------- bill sections


@dataclass(frozen=True)
class Line:
    """One line outside the rows (preamble, header or footer), decoded."""

    number: int
    text: str


class Sections:
    """Cuts a bill's line blocks into head lines, the header, row blocks and tail lines.

    The head is every line before the header, which ``is_header(index, text)`` recognises;
    rows run to the first line starting with ``end_prefix`` (or to the end of the file)
    and only they are passed on, as blocks. Head and tail are small and kept as lines,
    blank tail lines dropped; a bill with more than the limits of either is rejected.
    """

    def __init__(
        self,
        fail: ErrorFactory,
        *,
        is_header: Callable[[int, str], bool],
        end_prefix: bytes | None = None,
        head_limit: int = 64,
        tail_limit: int = 64,
    ) -> None:
        self.head: list[Line] = []
        self.header: Line | None = None
        self.tail: list[Line] = []
        self._fail = fail
        self._is_header = is_header
        self._end = end_prefix
        self._head_limit = head_limit
        self._tail_limit = tail_limit
        self._in_tail = False

    def rows(self, blocks: Iterable[LineBlock]) -> Iterator[LineBlock]:
        """Yield the blocks of row lines; head, header and tail are collected on the way."""
        for block in blocks:
            rest = self._take_head(block) if self.header is None else block
            if rest is not None and not self._in_tail:
                rows, rest = self._cut_rows(rest)
                if rows is not None:
                    yield rows
            if rest is not None:
                self._take_tail(rest)

    def _take_head(self, block: LineBlock) -> LineBlock | None:
        for number, after, raw in _iter_lines(block):
            text = raw.decode()
            if self._is_header(len(self.head), text):
                self.header = Line(number, text)
                rest = block.data[after:]
                return LineBlock(rest, number + 1) if rest else None
            if len(self.head) >= self._head_limit:
                raise self._fail(
                    f"no header row in the first {self._head_limit} lines", number, None
                )
            self.head.append(Line(number, text))
        return None

    def _cut_rows(self, block: LineBlock) -> tuple[LineBlock | None, LineBlock | None]:
        if self._end is None:
            return block, None
        data = block.data
        if data.startswith(self._end):
            cut = 0
        else:
            # memchr for the marker's first byte is far faster than searching "\n#" in
            # every block, and the marker byte is rare inside rows.
            found = data.find(b"\n" + self._end) if self._end[:1] in data else -1
            if found < 0:
                return block, None
            cut = found + 1
        self._in_tail = True
        rows = LineBlock(data[:cut], block.first_line) if cut else None
        return rows, LineBlock(data[cut:], block.line_of(cut))

    def _take_tail(self, block: LineBlock) -> None:
        for number, _, raw in _iter_lines(block):
            if not raw.strip():
                continue
            if len(self.tail) >= self._tail_limit:
                raise self._fail(f"more than {self._tail_limit} lines after the rows", number, None)
            self.tail.append(Line(number, raw.decode()))


def _iter_lines(block: LineBlock) -> Iterator[tuple[int, int, bytes]]:
    """(line number, offset just past the line, text) for each line, lazily."""
    data, pos, number = block.data, 0, block.first_line
    while pos < len(data):
        end = data.find(b"\n", pos)
        end = len(data) if end < 0 else end
        yield number, end + 1, data[pos:end]
        pos, number = end + 1, number + 1


def parse_header(text: str, delimiter: str = ",") -> list[str]:
    """Split a header line into stripped column names (TABs and spaces removed)."""
    return [name.strip() for name in next(csv.reader([text], delimiter=delimiter), [])]


# --------------------------------------------------------------------------- row blocks


@dataclass(frozen=True)
class Rows:
    """One block of rows: trimmed text columns by header name and each row's file line."""

    columns: Mapping[str, pa.Array]
    lines: pa.Array
    fail: ErrorFactory

    @property
    def count(self) -> int:
        return len(self.lines)

    def raw(self, name: str) -> pa.Array:
        """The column's trimmed text; empty cells are ``""``."""
        return self.columns[name]

    def text(self, name: str) -> pa.Array:
        """The column's trimmed text with empty cells as null."""
        values = self.columns[name]
        return pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)

    def required(self, name: str) -> pa.Array:
        """Like :meth:`text`, rejecting empty cells."""
        values = self.text(name)
        self.reject(pc.is_null(values), name, "missing value")
        return values

    def reject(self, mask: pa.Array, field: str, reason: str) -> None:
        """Raise for the first row where ``mask`` is true, naming its line, field and value."""
        index = pc.index(pc.fill_null(mask, False), True).as_py()
        if index < 0:
            return
        column = self.columns.get(field)
        value = column[index].as_py() if column is not None else None
        message = f"{reason}: {value!r}" if value else reason
        raise self.fail(message, self.lines[index].as_py(), field)

    def money(self, name: str, *, scale: int = MINOR_SCALE) -> pa.Array:
        """Decimal major-unit text to int64 ``10**-scale`` units, exactly; empty is null."""
        try:
            return arrow_to_minor(self.text(name), scale=scale)
        except MoneyRowError as exc:
            raise self.fail(exc.reason, self.lines[exc.row].as_py(), name) from None

    def integers(self, name: str, *, factor: int = 1) -> pa.Array:
        """Whole-number text (already minor units) to int64 times ``factor``; empty is null."""
        values = self.text(name)
        shape = pc.match_substring_regex(values, _MINOR_DIGITS)
        self.reject(pc.invert(shape), name, "not a whole number of minor units")
        try:
            return pc.multiply_checked(pc.cast(values, pa.int64()), factor)
        except pa.ArrowInvalid:
            raise self.fail("amount out of range", None, name) from None

    def times(self, name: str, fmt: str, zone: str) -> tuple[pa.Array, pa.Array]:
        """Parse local times in ``zone`` (or with their own ``%z``): UTC times and local dates."""
        values = self.required(name)
        parsed = pc.strptime(values, format=fmt, unit="us", error_is_null=True)
        self.reject(pc.is_null(parsed), name, f"not a time in the format {fmt!r}")
        try:
            if parsed.type.tz is None:
                return pc.assume_timezone(parsed, zone).cast(TIMESTAMP), parsed.cast(pa.date32())
            local = pc.local_timestamp(parsed.cast(pa.timestamp("us", tz=zone)))
            return parsed.cast(TIMESTAMP), local.cast(pa.date32())
        except pa.ArrowInvalid as exc:  # a wall time skipped or repeated by a DST change
            raise self.fail(f"time cannot be placed in {zone}: {exc}", None, name) from None

    def lookup(self, name: str, mapping: Mapping[str, str], reason: str) -> pa.Array:
        """Map the column's values through ``mapping``; any value not in it is an error."""
        keys = pa.array(list(mapping), pa.string())
        found = pc.index_in(self.raw(name), value_set=keys)
        self.reject(pc.is_null(found), name, reason)
        return pc.take(pa.array(list(mapping.values()), pa.string()), found)

    def filter(self, mask: pa.Array) -> Rows:
        """Only the rows where ``mask`` is true (a null counts as false)."""
        keep = pc.fill_null(mask, False)
        columns = {name: values.filter(keep) for name, values in self.columns.items()}
        return Rows(columns, self.lines.filter(keep), self.fail)


def read_rows(
    block: LineBlock,
    header: Sequence[str],
    wanted: Iterable[str],
    *,
    delimiter: str = ",",
    fail: ErrorFactory,
) -> Rows:
    """Parse a block of whole row lines with Arrow into the ``wanted`` columns, as text.

    Columns are found by header name (the first of equal names). Values are trimmed of
    spaces and TABs (Alipay ends values with a TAB to stop Excel reformatting them).
    """
    positions: dict[str, int] = {}
    for index, name in enumerate(header):
        positions.setdefault(name, index)
    names = [f"c{index}" for index in range(len(header))]
    chosen = {name: names[positions[name]] for name in wanted if name in positions}
    table = _read_csv(block, names, sorted(set(chosen.values())), delimiter, fail)
    columns = {
        name: pc.utf8_trim_whitespace(table.column(arrow).combine_chunks())
        for name, arrow in chosen.items()
    }
    return Rows(columns, _row_lines(block, table.num_rows, fail), fail)


def _read_csv(
    block: LineBlock, names: list[str], include: list[str], delimiter: str, fail: ErrorFactory
) -> pa.Table:
    options = {
        "read_options": pacsv.ReadOptions(column_names=names),
        # One record per line: a quoted newline would break line numbering, so Arrow may
        # split the block freely across threads.
        "parse_options": pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=False),
        "convert_options": pacsv.ConvertOptions(
            include_columns=include,
            column_types=dict.fromkeys(include, pa.string()),
            strings_can_be_null=False,
        ),
    }
    try:
        return pacsv.read_csv(pa.BufferReader(block.data), **options)
    except pa.ArrowInvalid as exc:
        raise _parse_error(block, len(names), delimiter, fail, exc) from None


def _parse_error(
    block: LineBlock, width: int, delimiter: str, fail: ErrorFactory, exc: Exception
) -> Exception:
    """Find the line Arrow choked on (the error path only, so a Python scan is fine)."""
    for offset, line in enumerate(block.data.decode().split("\n")):
        if not line:
            continue
        found = len(next(csv.reader([line], delimiter=delimiter)))
        if found != width:
            return fail(f"expected {width} fields, found {found}", block.first_line + offset, None)
    return fail(f"cannot read the rows: {exc}", block.first_line, None)


def _row_lines(block: LineBlock, count: int, fail: ErrorFactory) -> pa.Array:
    """The file line of each row Arrow read; Arrow skips blank lines, so count around them."""
    data = block.data
    lines = data.count(b"\n") + (not data.endswith(b"\n"))
    if count == lines:  # no blank line: rows are consecutive lines
        ones = pa.repeat(pa.scalar(1, pa.int64()), count)
        return pc.add(pc.cumulative_sum(ones), block.first_line - 1)
    pieces = pc.list_flatten(pc.split_pattern(pa.array([data], pa.binary()), pattern=b"\n"))
    filled = pc.indices_nonzero(pc.greater(pc.binary_length(pieces), 0)).cast(pa.int64())
    if len(filled) != count:
        raise fail(f"read {count} rows from {len(filled)} lines", block.first_line, None)
    return pc.add(filled, block.first_line)


def canonical_batch(columns: Mapping[str, Column], count: int) -> pa.RecordBatch:
    """Assemble a :data:`~payrecon.core.schema.CANONICAL` batch of ``count`` rows.

    A string becomes a constant column; a name left out (or ``None``) is all null.
    """
    arrays = [_column(columns.get(field.name), field.type, count) for field in CANONICAL]
    return pa.RecordBatch.from_arrays(arrays, schema=CANONICAL)


def _column(value: Column, kind: pa.DataType, count: int) -> pa.Array:
    if value is None:
        return pa.nulls(count, kind)
    if isinstance(value, str):
        return pa.repeat(pa.scalar(value, kind), count)
    return value if value.type == kind else value.cast(kind)


# --------------------------------------------------------------------------- currencies

# ISO 4217 minor-unit digits where they are not 2; every other three-letter code has 2.
CURRENCY_EXPONENTS: Mapping[str, int] = {
    **dict.fromkeys(
        ("BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX", "UYI",
         "VND", "VUV", "XAF", "XOF", "XPF"),
        0,
    ),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    **dict.fromkeys(("CLF", "UYW"), 4),
}  # fmt: skip
MAX_EXPONENT = 4
_CURRENCY_CODE = r"^[A-Z]{3}$"


def currencies(rows: Rows, name: str) -> tuple[pa.Array, pa.Array]:
    """A currency column as upper-case ISO codes, and each row's minor-unit digits."""
    codes = pc.utf8_upper(rows.required(name))
    shape = pc.match_substring_regex(codes, _CURRENCY_CODE)
    rows.reject(pc.invert(shape), name, "not an ISO 4217 currency code")
    found = pc.index_in(codes, value_set=pa.array(list(CURRENCY_EXPONENTS), pa.string()))
    digits = pa.array(list(CURRENCY_EXPONENTS.values()), pa.int64())
    return codes, pc.fill_null(pc.take(digits, found), 2)


def in_currency(
    rows: Rows,
    name: str,
    exponents: pa.Array,
    fail: ErrorFactory,
    *,
    fee: bool = False,
) -> pa.Array:
    """Decimal major-unit text to int64 minor units of each row's currency, exactly.

    ``JPY 1000`` is 1000, ``USD 10.00`` is 1000, ``KWD 1.500`` is 1500. With ``fee`` the
    unit is a thousandth of the minor unit (the canonical fee unit). An amount with more
    decimals than its currency has, or any text that is not a plain decimal, raises what
    ``fail`` builds (a :class:`~payrecon.errors.MoneyError`, usually) for its line.
    """
    text = rows.text(name)
    extra = FEE_SCALE - MINOR_SCALE if fee else 0
    try:
        scaled = arrow_to_minor(text, scale=MAX_EXPONENT + extra)
    except MoneyRowError as exc:
        raise fail(exc.reason, rows.lines[exc.row].as_py(), name) from None
    powers = pa.array([10**k for k in range(MAX_EXPONENT + 1)], pa.int64())
    divisor = pc.take(powers, pc.subtract(MAX_EXPONENT, exponents))
    minor = pc.divide(scaled, divisor)
    inexact = pc.not_equal(pc.multiply(minor, divisor), scaled)
    index = pc.index(pc.fill_null(inexact, False), True).as_py()
    if index >= 0:
        digits = exponents[index].as_py() + extra
        reason = f"{text[index].as_py()!r} has more than {digits} decimals for its currency"
        raise fail(reason, rows.lines[index].as_py(), name)
    return minor


def strict_strptime(values: pa.Array, fmt: str) -> pa.Array:
    """``pc.strptime`` to microseconds, null where the text is not exactly ``fmt``.

    Arrow's strptime rolls impossible dates over (``02-30`` becomes March 1st) and
    accepts unpadded fields; formatting the result back and comparing rejects both.
    ``fmt`` must not contain ``%z`` (the offset would be formatted back as UTC).
    """
    parsed = pc.strptime(values, format=fmt, unit="s", error_is_null=True)
    same = pc.equal(pc.strftime(parsed, format=fmt), values)
    return pc.if_else(same, parsed, pa.scalar(None, parsed.type)).cast(pa.timestamp("us"))


def local_dates(utc: pa.Array, zone: str) -> pa.Array:
    """The calendar date of each UTC instant in ``zone`` (the accounting day's zone)."""
    return pc.local_timestamp(utc.cast(pa.timestamp("us", tz=zone))).cast(pa.date32())


# --------------------------------------------------------------------------- the parser

_OPTIONAL = frozenset(
    {
        "kind",
        "status",
        "channel_txn_id",
        "origin_order_id",
        "merchant_id",
        "currency",
        "fee",
        "order_amount",
        "coupon_amount",
    }
)
_REQUIRED = ("order_id", "amount", "txn_time")
_KINDS = {kind.value: kind.value for kind in Kind}
_STATUSES = {status.value: status.value for status in Status}


class CsvBillParser(BillParser):
    """A bill in plain CSV, read through a :class:`CsvChannelSettings` column mapping.

    Amounts in ``major`` units are decimal text (``12.34``), in ``minor`` units whole
    numbers (``1234``); a mapped fee is in the same unit. Refund amounts may be written
    negative and become positive; a negative payment is an error. Without a ``status``
    column every row is SUCCESS, without a ``kind`` column every row is a PAY.
    """

    channel = "csv"

    def __init__(
        self,
        path: Path,
        settings: CsvChannelSettings,
        *,
        channel: str,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        super().__init__(path, channel=channel, on_progress=on_progress, timezone=settings.timezone)
        self.settings = settings
        _check_settings(settings)

    def batches(self) -> Iterator[pa.RecordBatch]:
        try:
            yield from self._batches()
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:  # a damaged .gz, mid-stream
            raise self.error(f"the compressed file is damaged: {exc}") from None

    def _batches(self) -> Iterator[pa.RecordBatch]:
        settings = self.settings
        sections = Sections(
            self.error,
            is_header=lambda index, _text: index == settings.skip_lines,
            head_limit=settings.skip_lines,
        )
        counted = {"count": 0, "amount": 0}
        with open_binary(self.path) as stream:
            blocks = read_blocks(
                stream, self.source, encoding=settings.encoding, on_progress=self.on_progress
            )
            for batch in self._parse(sections.rows(blocks), sections):
                counted["count"] += batch.num_rows
                counted["amount"] += pc.sum(batch.column("amount")).as_py() or 0
                yield batch
        self.footer = FooterCheck("none", counted=counted)

    def _parse(self, blocks: Iterator[LineBlock], sections: Sections) -> Iterator[pa.RecordBatch]:
        header: list[str] | None = None
        columns = self.settings.columns
        for block in blocks:
            header = header or self._header(sections)
            rows = read_rows(
                block, header, columns.values(), delimiter=self.settings.delimiter, fail=self.error
            )
            yield self._convert(rows, columns)
        if header is None:
            self._header(sections)  # a bill without rows still needs a valid header

    def _header(self, sections: Sections) -> list[str]:
        """The header's column names, checked against the mapping."""
        if sections.header is None:
            line = self.settings.skip_lines + 1
            raise self.error(f"the file ends before its header row (line {line})")
        names = parse_header(sections.header.text, self.settings.delimiter)
        for canonical, name in self.settings.columns.items():
            if name not in names:
                message = f"the header has no column {name!r} (mapped to {canonical})"
                raise self.error(message, sections.header.number, name)
        return names

    def _convert(self, rows: Rows, columns: Mapping[str, str]) -> pa.RecordBatch:
        settings = self.settings
        kind = self._kinds(rows, columns)
        refund = pc.equal(kind, Kind.REFUND.value)
        utc, day = rows.times(columns["txn_time"], settings.time_format, settings.timezone)
        values: dict[str, Column] = {
            name: rows.text(columns[name])
            for name in ("channel_txn_id", "origin_order_id", "merchant_id")
            if name in columns
        }
        values |= {
            "channel": self.channel_name,
            "kind": kind,
            "order_id": rows.required(columns["order_id"]),
            "status": self._statuses(rows, columns),
            "amount": self._amount(rows, columns["amount"], refund),
            "order_amount": self._unsigned(rows, columns.get("order_amount"), refund),
            "coupon_amount": self._unsigned(rows, columns.get("coupon_amount"), refund),
            "fee": self._money(rows, columns["fee"], FEE_SCALE) if "fee" in columns else None,
            "currency": self._currency(rows, columns),
            "txn_time": utc,
            "bill_date": day,
            "source": self.source,
            "line_no": rows.lines,
        }
        return canonical_batch(values, rows.count)

    def _kinds(self, rows: Rows, columns: Mapping[str, str]) -> pa.Array:
        if "kind" not in columns:
            return pa.repeat(pa.scalar(Kind.PAY.value), rows.count)
        mapping = _KINDS | dict(self.settings.kind_map)
        reason = f"not a kind in kind_map ({', '.join(sorted(mapping))})"
        return rows.lookup(columns["kind"], mapping, reason)

    def _statuses(self, rows: Rows, columns: Mapping[str, str]) -> Column:
        if "status" not in columns:
            return Status.SUCCESS.value
        mapping = _STATUSES | self.settings.status_map
        return rows.lookup(columns["status"], mapping, "not a status in status_map")

    def _money(self, rows: Rows, name: str, scale: int) -> pa.Array:
        if self.settings.amount_unit == "major":
            return rows.money(name, scale=scale)
        return rows.integers(name, factor=10 ** (scale - MINOR_SCALE))

    def _amount(self, rows: Rows, name: str, refund: pa.Array) -> pa.Array:
        amount = self._money(rows, name, MINOR_SCALE)
        rows.reject(pc.is_null(amount), name, "missing value")
        negative_pay = pc.and_(pc.invert(refund), pc.less(amount, 0))
        rows.reject(negative_pay, name, "a payment amount cannot be negative")
        return pc.if_else(refund, pc.abs(amount), amount)

    def _unsigned(self, rows: Rows, name: str | None, refund: pa.Array) -> Column:
        """An optional amount; refunds written negative become positive like ``amount``."""
        if name is None:
            return None
        values = self._money(rows, name, MINOR_SCALE)
        return pc.if_else(refund, pc.abs(values), values)

    def _currency(self, rows: Rows, columns: Mapping[str, str]) -> Column:
        if "currency" not in columns:
            return self.settings.currency
        return pc.fill_null(rows.text(columns["currency"]), self.settings.currency)


def _check_settings(settings: CsvChannelSettings) -> None:
    """Reject settings the file cannot be read with, before opening it (the zone: in base)."""
    if len(settings.delimiter) != 1:
        raise ConfigError(f"delimiter must be one character, got {settings.delimiter!r}")
    try:
        codecs.lookup(settings.encoding)
    except LookupError:
        raise ConfigError(f"unknown encoding {settings.encoding!r}") from None
    unknown = settings.columns.keys() - _OPTIONAL - set(_REQUIRED)
    if unknown:
        raise ConfigError(f"columns maps unknown canonical names {sorted(unknown)}")
