"""WeChat Pay trade bills (微信支付交易账单), API v2 and v3 (the same text).

The file is a detail header, detail rows, a summary header starting with ``总交易单数``
and one summary row (FORMATS.md section 1). Every value carries one leading backtick,
an empty value is a lone backtick. Columns are found by header name, never position:
their order differs between ALL, SUCCESS and REFUND bills and between the current and
the legacy (pre-免充值券) layouts, whose names are mapped to the current ones.

Rows are streamed in blocks of lines through Arrow's CSV reader and converted with
Arrow compute; Python touches single rows only on error paths and to repair a row whose
merchant text (商品名称) contains a comma.

Decisions (not fixed by the format):

* 交易状态 is the row type; a value other than SUCCESS, REFUND or REVOKED is an error,
  because a row that cannot be classified cannot be reconciled.
* 退款状态 is tolerated when unknown (new values may appear): an unknown or empty
  status becomes PROCESSING, i.e. "not final", so the refund stays pending for review
  instead of being settled as either a success or a failure.
* REFUND rows carry no order total: their ``order_amount`` and ``coupon_amount`` are null.
* The footer counts every row; ``paid`` sums the amount of PAY rows (REVOKED included, as
  WeChat's 应结订单总金额 sums the column) and ``refund`` that of REFUND rows. A SUCCESS
  bill whose summary has no refund total declares a refund total of 0.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import BinaryIO

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from payrecon.bills.base import (
    BLOCK_SIZE,
    BillParser,
    FooterCheck,
    LineBlock,
    open_binary,
    read_blocks,
)
from payrecon.core.money import (
    FEE_SCALE,
    MINOR_SCALE,
    MoneyRowError,
    arrow_to_minor,
    format_minor,
    parse_minor,
)
from payrecon.core.schema import CANONICAL, TIMESTAMP, Kind, Status
from payrecon.errors import (
    BillFooterMismatch,
    BillFormatError,
    BillTruncatedError,
    ChannelErrorResponse,
    Location,
    MoneyError,
)

# Detail columns, by their current names.
TIME, MCH, SUB_MCH = "交易时间", "商户号", "特约商户号"
TXN_ID, ORDER_NO, STATE = "微信订单号", "商户订单号", "交易状态"
CURRENCY, SETTLED, COUPON = "货币种类", "应结订单金额", "代金券金额"
FEE, ORDER_TOTAL, REFUND_ID = "手续费", "订单金额", "微信退款单号"
REFUND_NO, REFUNDED, REFUND_STATE = "商户退款单号", "退款金额", "退款状态"
APPLIED_AT, REFUNDED_AT = "退款申请时间", "退款成功时间"

# Legacy names of the same columns (official mapping on format-trade.html).
ALIASES = {
    "总金额": SETTLED,
    "企业红包金额": COUPON,
    "代金券或立减优惠金额": COUPON,
    "子商户号": SUB_MCH,
}
_COMMON = (TIME, MCH, TXN_ID, ORDER_NO, STATE, CURRENCY, SETTLED, FEE)
_REFUND_COLUMNS = (REFUND_ID, REFUND_NO, REFUNDED, REFUND_STATE)
_WANTED = frozenset((*_COMMON, *_REFUND_COLUMNS, SUB_MCH, COUPON, ORDER_TOTAL))
_WANTED |= {APPLIED_AT, REFUNDED_AT}

SUMMARY_MARK = "总交易单数"
# Summary header name -> footer key (总交易额 and 总退款金额 are the legacy names).
SUMMARY_KEYS = {
    SUMMARY_MARK: "count",
    "应结订单总金额": "paid",
    "总交易额": "paid",
    "退款总金额": "refund",
    "总退款金额": "refund",
    "手续费总金额": "fee",
}
FOOTER_KEYS = ("count", "paid", "refund", "fee")
_SCALES = {"paid": MINOR_SCALE, "refund": MINOR_SCALE, "fee": FEE_SCALE}

ROW_TYPES = ("SUCCESS", "REFUND", "REVOKED")  # the values of 交易状态
REFUND_STATUSES = {
    "SUCCESS": Status.SUCCESS,
    "PROCESSING": Status.PROCESSING,
    "REFUNDCLOSE": Status.CLOSED,
    "CLOSED": Status.CLOSED,
    "CHANGE": Status.FAILED,
    "ABNORMAL": Status.FAILED,
}
UNKNOWN_REFUND_STATUS = Status.PROCESSING

_TICK = "`"
_MARK = SUMMARY_MARK.encode()
_MAX_VALUE = 2**31 - 1  # binary_slice stop meaning "to the end of the value"
_TIME_LENGTH = len("2021-01-28 17:07:11")
_NOT_A_TIME = "not a time like 2021-01-28 17:07:11"
_SUMMARY_LIMIT = 1 << 16  # bytes from the summary mark on; more is not a WeChat bill
_XML_FIELD = re.compile(r"<(\w+)>\s*(?:<!\[CDATA\[(.*?)\]\]>|([^<]*))\s*</\1>", re.S)

Fail = Callable[[str, int | None, str | None], Exception]
FieldOf = Callable[[int], str]  # the column a row's value came from, by row index


@dataclass(frozen=True)
class WechatLayout:
    """A trade bill's detail header: its bill type and where each column is."""

    bill_type: str  # ALL, SUCCESS or REFUND
    fields: tuple[str, ...]  # the header as written
    names: dict[str, str]  # current column name -> name as written

    def label(self, name: str) -> str:
        """The column's name as the file writes it, for messages."""
        return self.names.get(name, name)


def parse_layout(header: str, fail: Fail) -> WechatLayout:
    """Read the detail header; the bill type follows from which refund columns it has."""
    fields = tuple(name.strip().lstrip(_TICK) for name in header.split(","))
    names: dict[str, str] = {}
    for name in fields:
        current = ALIASES.get(name, name)
        if current in names:
            raise fail(f"column {name!r} appears twice in the header", 1, name)
        names[current] = name
    if APPLIED_AT in names or REFUNDED_AT in names:
        bill_type = "REFUND"
    else:
        bill_type = "ALL" if names.keys() & set(_REFUND_COLUMNS) else "SUCCESS"
    required = _COMMON + (_REFUND_COLUMNS if bill_type != "SUCCESS" else ())
    required += (REFUNDED_AT,) if bill_type == "REFUND" else ()
    missing = [name for name in required if name not in names]
    if missing:
        message = f"not a WeChat trade bill header: no column {', '.join(missing)} in {header}"
        raise fail(message, 1, None)
    return WechatLayout(bill_type, fields, names)


def channel_error(head: bytes, source: str) -> BillFormatError | None:
    """The error for a body that is a channel error response instead of a bill, if it is.

    v2 answers with XML (``return_code`` FAIL, ``return_msg``, ``error_code``); v3 with
    JSON (``code``, ``message``).
    """
    text = head.lstrip().decode("utf-8", "replace")
    where = Location(source)
    if text.startswith("<"):
        fields = {m[1]: (m[2] or m[3]).strip() for m in _XML_FIELD.finditer(text)}
        if fields.get("return_code") != "FAIL":
            return BillFormatError(f"XML, not a WeChat bill: {text[:200]!r}", where)
        code = fields.get("error_code") or fields.get("err_code")
        return _error_response(fields.get("return_msg", ""), code, where)
    if text.startswith("{"):
        try:
            body = json.loads(text)
        except ValueError:
            return BillFormatError(f"not a WeChat bill: {text[:200]!r}", where)
        return _error_response(str(body.get("message", "")), body.get("code"), where)
    return None


def _error_response(message: str, code: object, where: Location) -> ChannelErrorResponse:
    suffix = f" (error_code {code})" if code else ""
    text = f"WeChat Pay returned an error instead of a bill: {message}{suffix}"
    return ChannelErrorResponse(text, where)


def strip_tick(values: pa.Array) -> pa.Array:
    """Drop one leading backtick from each value (WeChat's guard against Excel)."""
    ticked = pc.starts_with(values, _TICK)
    # Slicing bytes is several times faster than slicing UTF-8 characters, and exact
    # here because the byte removed is an ASCII backtick.
    sliced = pc.binary_slice(values.view(pa.binary()), 1, _MAX_VALUE).view(pa.string())
    if pc.all(ticked, min_count=0).as_py():
        return sliced
    return pc.if_else(ticked, sliced, values)


def repair_line(line: bytes, width: int) -> list[bytes] | None:
    """Split a detail line into ``width`` fields, or None if that cannot be done safely.

    A value can contain a comma (商品名称 is merchant text), but every value starts with
    a backtick, so the ``,``` boundary still separates the fields.
    """
    fields = line.split(b",")
    if len(fields) == width:
        return fields
    parts = line.split(b",`")
    if len(parts) != width:
        return None
    return [parts[0], *(b"`" + part for part in parts[1:])]


@dataclass(frozen=True)
class _Rows:
    """One block of detail rows: backtick-free text by current column name."""

    columns: dict[str, pa.Array]
    first_line: int
    count: int
    fail: Fail

    def text(self, name: str) -> pa.Array:
        """The column's values (empty ones null); all null when the bill lacks it."""
        values = self.columns.get(name)
        return pa.nulls(self.count, pa.string()) if values is None else values

    def reject(self, mask: pa.Array, field: str | FieldOf | None, reason: str) -> None:
        """Raise for the first row where ``mask`` holds, naming its line and field."""
        index = pc.index(pc.fill_null(mask, False), True).as_py()
        if index >= 0:
            name = field(index) if callable(field) else field
            column = self.columns.get(name) if name is not None else None
            value = column[index].as_py() if column is not None else None
            message = f"{reason}: {value!r}" if value else reason
            raise self.fail(message, self.first_line + index, name)

    def lines(self) -> pa.Array:
        ones = pa.repeat(pa.scalar(1, pa.int64()), self.count)
        return pc.add(pc.cumulative_sum(ones), self.first_line - 1)


class WechatBillParser(BillParser):
    """Parses a WeChat Pay trade bill (ALL, SUCCESS or REFUND; current or legacy layout).

    ``timezone`` is the zone of the bill's wall-clock times (Beijing time). After the
    last batch :attr:`footer` holds the summary's totals and the counted ones, keys
    ``count``, ``paid`` and ``refund`` (fen) and ``fee`` (thousandths of a fen).
    """

    channel = "wechat"

    def _setup(self) -> None:
        self.block_size = BLOCK_SIZE  # bytes of text per batch; ~3 blocks are in memory
        self.layout: WechatLayout | None = None
        self._summary: list[LineBlock] = []
        self._tail: LineBlock | None = None  # the last block, to place a truncation

    @property
    def bill_type(self) -> str | None:
        """ALL, SUCCESS or REFUND once the header has been read."""
        return self.layout.bill_type if self.layout else None

    def batches(self) -> Generator[pa.RecordBatch, None, None]:
        """Yield canonical batches, one per block of detail lines, then check the summary."""
        self.layout, self._summary, self._tail, self.footer = None, [], None, None
        counted = dict.fromkeys(FOOTER_KEYS, 0)
        with open_binary(self.path) as stream, ThreadPoolExecutor(1, "wechat-bill") as pool:
            for rows in self._parsed(pool, self._details(self._blocks(stream))):
                yield self._convert(rows, counted)
        self.footer = self._check_footer(counted)

    def _parsed(self, pool: Executor, details: Iterable[tuple[bytes, int]]) -> Iterator[_Rows]:
        """Parse each block in ``pool`` while the caller converts the previous one.

        Arrow releases the GIL, so reading and converting here and CSV parsing there use
        two cores.
        """
        pending: Future[_Rows] | None = None
        try:
            for data, first_line in details:
                parsed = pool.submit(self._rows, data, first_line)
                if pending is not None:
                    yield pending.result()
                pending = parsed
        except BillFormatError:
            # Errors in file order: the block before an unreadable one is checked first.
            if pending is not None:
                yield pending.result()
            raise
        if pending is not None:
            yield pending.result()

    def _located(self, message: str, line: int | None, field: str | None) -> Exception:
        """An error naming the field as the file writes it (legacy names included)."""
        return self.error(
            message, line, self.layout.label(field) if self.layout and field else field
        )

    @property
    def _layout(self) -> WechatLayout:
        assert self.layout is not None, "the header is read before any row"
        return self.layout

    # ------------------------------------------------------------------ sections

    def _blocks(self, stream: BinaryIO) -> Iterator[LineBlock]:
        """Line blocks of the file; a damaged gzip stream is a format error."""
        try:
            yield from read_blocks(
                stream, self.source, block_size=self.block_size, on_progress=self.on_progress
            )
        except EOFError:
            raise BillTruncatedError("the gzip stream ends early", Location(self.source)) from None
        except (OSError, zlib.error) as exc:
            raise self.error(f"cannot read the file: {exc}") from None

    def _details(self, blocks: Iterable[LineBlock]) -> Iterator[tuple[bytes, int]]:
        """Yield the detail lines block by block; the header and summary are kept aside."""
        for raw in blocks:
            block = raw if self.layout else self._take_header(raw)
            self._tail = block
            if self._summary:
                self._keep_summary(block)
                continue
            cut = _summary_offset(block.data)
            detail = block.data if cut < 0 else block.data[:cut]
            if detail:
                yield detail, block.first_line
            if cut >= 0:
                self._keep_summary(LineBlock(block.data[cut:], block.line_of(cut)))
        if self.layout is None:
            raise self.error("the file is empty")

    def _take_header(self, block: LineBlock) -> LineBlock:
        data = block.data
        if not data.strip():
            raise self.error("the file is empty")
        problem = channel_error(data[:4096], self.source)
        if problem is not None:
            raise problem
        end = data.find(b"\n")
        header = (data if end < 0 else data[:end]).decode()
        if header.startswith(SUMMARY_MARK):
            raise self.error("the bill has no detail header before its summary", 1)
        self.layout = parse_layout(header, self._located)
        return LineBlock(b"" if end < 0 else data[end + 1 :], block.first_line + 1)

    def _keep_summary(self, block: LineBlock) -> None:
        self._summary.append(block)
        if sum(len(kept.data) for kept in self._summary) > _SUMMARY_LIMIT:
            raise self.error("unexpected content after the summary", block.first_line)

    # ------------------------------------------------------------------ detail rows

    def _read_csv(self, data: bytes, first_line: int) -> pa.Table:
        try:
            return self._arrow_csv(data, quoted=False)
        except pa.ArrowInvalid as exc:
            # Arrow names no line: find it, and repair rows split by a comma in a value.
            return self._arrow_csv(self._repair(data, first_line, exc), quoted=True)

    def _arrow_csv(self, data: bytes, *, quoted: bool) -> pa.Table:
        wanted = [label for name, label in self._layout.names.items() if name in _WANTED]
        return pacsv.read_csv(
            pa.BufferReader(data),
            # No threads: the conversion of the previous block runs in parallel already.
            read_options=pacsv.ReadOptions(column_names=self._layout.fields, use_threads=False),
            parse_options=pacsv.ParseOptions(
                quote_char='"' if quoted else False,
                double_quote=quoted,
                newlines_in_values=False,
                # A blank line stays a row (of nulls), so row i is on line first + i;
                # _row_types rejects it.
                ignore_empty_lines=False,
            ),
            convert_options=pacsv.ConvertOptions(
                include_columns=wanted,
                column_types=dict.fromkeys(wanted, pa.string()),
                null_values=["", _TICK],  # an empty value is a lone backtick
                strings_can_be_null=True,
                check_utf8=False,  # read_blocks has validated the text
            ),
        )

    def _repair(self, data: bytes, first_line: int, exc: Exception) -> bytes:
        """Re-split every line on the ``,``` boundary where needed, quoted for Arrow."""
        width = len(self._layout.fields)
        lines = data.removesuffix(b"\n").split(b"\n")
        out = []
        for offset, line in enumerate(lines):
            fields = repair_line(line, width)
            if fields is None:
                found = line.count(b",") + 1
                message = f"expected {width} fields as in the header, found {found}"
                raise self.error(message, first_line + offset)
            out.append(b",".join(b'"' + field.replace(b'"', b'""') + b'"' for field in fields))
        if all(line.count(b",") + 1 == width for line in lines):  # Arrow failed otherwise
            raise self.error(f"cannot read the detail rows: {exc}", first_line)
        return b"\n".join(out)

    def _rows(self, data: bytes, first_line: int) -> _Rows:
        table = self._read_csv(data, first_line)
        columns = {
            name: strip_tick(table.column(label).combine_chunks())
            for name, label in self._layout.names.items()
            if label in table.column_names
        }
        return _Rows(columns, first_line, table.num_rows, self._located)

    def _convert(self, rows: _Rows, counted: dict[str, int]) -> pa.RecordBatch:
        is_refund, is_revoked = self._row_types(rows)
        amount = self._amounts(rows, is_refund)
        fee = self._money(rows, FEE, FEE_SCALE)
        utc, day = self._times(rows, is_refund)
        _add(counted, rows.count, amount, is_refund, fee)
        pay = pc.invert(is_refund)
        arrays = {
            "channel": pa.repeat(pa.scalar(self.channel_name), rows.count),
            "merchant_id": _merchants(rows),
            "kind": pc.if_else(is_refund, Kind.REFUND.value, Kind.PAY.value),
            "order_id": _order_ids(rows, is_refund),
            "origin_order_id": pc.if_else(is_refund, rows.text(ORDER_NO), None),
            "channel_txn_id": pc.if_else(is_refund, rows.text(REFUND_ID), rows.text(TXN_ID)),
            "status": _statuses(rows, is_refund, is_revoked),
            "amount": amount,
            "order_amount": pc.if_else(pay, self._order_totals(rows, amount), None),
            "coupon_amount": pc.if_else(pay, self._coupons(rows), None),
            "fee": fee,
            "currency": _required(rows, CURRENCY),
            "txn_time": utc,
            "bill_date": day,
            "source": pa.repeat(pa.scalar(self.source), rows.count),
            "line_no": rows.lines(),
        }
        columns = [arrays[field.name].cast(field.type) for field in CANONICAL]
        return pa.RecordBatch.from_arrays(columns, schema=CANONICAL)

    def _row_types(self, rows: _Rows) -> tuple[pa.Array, pa.Array]:
        blank = pc.and_(pc.is_null(rows.text(TIME)), pc.is_null(rows.text(STATE)))
        rows.reject(blank, None, "blank line (or empty row) inside the detail rows")
        index = pc.index_in(rows.text(STATE), value_set=pa.array(ROW_TYPES))
        rows.reject(pc.is_null(index), STATE, f"not a row type ({'/'.join(ROW_TYPES)})")
        is_refund = pc.equal(index, ROW_TYPES.index("REFUND"))
        if self._layout.bill_type == "SUCCESS":
            rows.reject(is_refund, STATE, "a refund row in a bill without refund columns")
        return is_refund, pc.equal(index, ROW_TYPES.index("REVOKED"))

    # ------------------------------------------------------------------ values

    def _amounts(self, rows: _Rows, is_refund: pa.Array) -> pa.Array:
        """PAY rows settle 应结订单金额, REFUND rows 退款金额; only the used one is parsed."""
        text = pc.if_else(is_refund, rows.text(REFUNDED), rows.text(SETTLED))
        field = _by_row(is_refund, REFUNDED, SETTLED)
        amount = self._to_minor(rows, text, field, MINOR_SCALE)
        rows.reject(pc.is_null(amount), field, "missing amount")
        return amount

    def _order_totals(self, rows: _Rows, amount: pa.Array) -> pa.Array:
        # Without a coupon 订单金额 repeats 应结订单金额 (refund rows, masked out later,
        # write 0.00 in both): equal text is an equal amount, and that one is parsed.
        if _all(pc.equal(rows.text(ORDER_TOTAL), rows.text(SETTLED))):
            return amount
        return self._money(rows, ORDER_TOTAL, MINOR_SCALE)

    def _coupons(self, rows: _Rows) -> pa.Array:
        if _all(pc.equal(rows.text(COUPON), "0.00")):  # the common case, parsed for free
            return pa.repeat(pa.scalar(0, pa.int64()), rows.count)
        return self._money(rows, COUPON, MINOR_SCALE)

    def _money(self, rows: _Rows, name: str, scale: int) -> pa.Array:
        return self._to_minor(rows, rows.text(name), lambda _index: name, scale)

    def _to_minor(self, rows: _Rows, text: pa.Array, field: FieldOf, scale: int) -> pa.Array:
        try:
            return arrow_to_minor(text, scale=scale)
        except MoneyRowError as exc:
            line, label = rows.first_line + exc.row, self._layout.label(field(exc.row))
            raise MoneyError(exc.reason, Location(self.source, line, label)) from None

    def _times(self, rows: _Rows, is_refund: pa.Array) -> tuple[pa.Array, pa.Array]:
        """UTC time and local date of each row.

        In REFUND bills 交易时间 is the original payment's time, so a refund row is
        dated by 退款成功时间, or 退款申请时间 while the refund has not succeeded.
        """
        text, field = rows.text(TIME), _by_row(is_refund, TIME, TIME)
        if self._layout.bill_type == "REFUND":
            done = pc.coalesce(rows.text(REFUNDED_AT), rows.text(APPLIED_AT))
            text, field = pc.if_else(is_refund, done, text), _by_row(is_refund, REFUNDED_AT, TIME)
        rows.reject(pc.is_null(text), field, "missing time")
        local = self._parse_times(rows, text, field)
        try:
            utc = pc.assume_timezone(local, self.timezone, ambiguous="earliest")
        except pa.ArrowInvalid as exc:  # a wall time skipped by a DST change
            raise self.error(f"time cannot be placed in {self.timezone}: {exc}") from None
        return utc.cast(TIMESTAMP), local.cast(pa.date32())

    def _parse_times(self, rows: _Rows, text: pa.Array, field: FieldOf) -> pa.Array:
        # Arrow's ISO-8601 cast is fast; the length check keeps it to this one format,
        # and the strict strptime finds the bad row when the cast fails.
        rows.reject(pc.not_equal(pc.binary_length(text), _TIME_LENGTH), field, _NOT_A_TIME)
        try:
            return text.cast(pa.timestamp("s"))
        except pa.ArrowInvalid as exc:
            parsed = pc.strptime(text, "%Y-%m-%d %H:%M:%S", "s", error_is_null=True)
            rows.reject(pc.is_null(parsed), field, _NOT_A_TIME)
            raise self.error(f"{_NOT_A_TIME}: {exc}", rows.first_line) from None

    # ------------------------------------------------------------------ summary

    def _check_footer(self, counted: dict[str, int]) -> FooterCheck:
        declared, labels, line = self._read_summary()
        if "refund" not in declared and self._layout.bill_type == "SUCCESS":
            declared["refund"] = 0  # a SUCCESS bill has no refunds by definition
        for key in FOOTER_KEYS:
            if key not in declared:
                raise self.error(f"the summary has no {key} total", line)
            if declared[key] != counted[key]:
                said, added = _figure(key, declared[key]), _figure(key, counted[key])
                message = f"summary says {labels[key]} {said} but rows add up to {added}"
                raise BillFooterMismatch(message, Location(self.source, line, labels[key]))
        return FooterCheck("ok", declared=declared, counted=counted)

    def _read_summary(self) -> tuple[dict[str, int], dict[str, str], int]:
        """Totals the summary row declares, the summary's name for each, and its line."""
        lines = [
            (block.first_line + offset, text)
            for block in self._summary
            for offset, text in enumerate(block.data.decode().split("\n"))
            if text.strip()
        ]
        if len(lines) < 2:
            missing = "its summary row" if lines else "its summary"
            message = f"the bill ends without {missing} (总交易单数…); it may be truncated"
            raise BillTruncatedError(message, Location(self.source, self._end_line()))
        if len(lines) > 2:
            raise self.error("unexpected content after the summary", lines[2][0])
        names = [name.strip() for name in lines[0][1].split(",")]
        line, row = lines[1]
        values = [value.strip().removeprefix(_TICK) for value in row.split(",")]
        if len(values) != len(names):
            message = f"the summary has {len(names)} columns but its row {len(values)} values"
            raise self.error(message, line)
        found = {
            SUMMARY_KEYS[n]: (n, v) for n, v in zip(names, values, strict=True) if n in SUMMARY_KEYS
        }
        declared = {key: self._summary_value(key, *item, line) for key, item in found.items()}
        return declared, {key: name for key, (name, _) in found.items()}, line

    def _summary_value(self, key: str, name: str, value: str, line: int) -> int:
        if key == "count":
            if not value.isdigit():
                raise self.error(f"{value!r} is not a row count", line, name)
            return int(value)
        try:
            return parse_minor(value, scale=_SCALES[key])
        except MoneyError as exc:
            raise MoneyError(exc.reason, Location(self.source, line, name)) from None

    def _end_line(self) -> int | None:
        tail = self._tail
        if tail is None:
            return None
        return tail.line_of(len(tail.data) - 1) if tail.data else tail.first_line - 1


# ---------------------------------------------------------------------- column helpers


def _statuses(rows: _Rows, is_refund: pa.Array, is_revoked: pa.Array) -> pa.Array:
    keys = pa.array(list(REFUND_STATUSES))
    values = pa.array([status.value for status in REFUND_STATUSES.values()])
    found = pc.take(values, pc.index_in(rows.text(REFUND_STATE), value_set=keys))
    refund = pc.fill_null(found, UNKNOWN_REFUND_STATUS.value)
    pay = pc.if_else(is_revoked, Status.REVOKED.value, Status.SUCCESS.value)
    return pc.if_else(is_refund, refund, pay)


def _order_ids(rows: _Rows, is_refund: pa.Array) -> pa.Array:
    ids = pc.if_else(is_refund, rows.text(REFUND_NO), rows.text(ORDER_NO))
    rows.reject(pc.is_null(ids), _by_row(is_refund, REFUND_NO, ORDER_NO), "missing order number")
    return ids


def _merchants(rows: _Rows) -> pa.Array:
    # 特约商户号 names the sub-merchant in partner mode and is 0 for ordinary merchants.
    sub = rows.text(SUB_MCH)
    own = pc.or_kleene(pc.is_null(sub), pc.equal(sub, "0"))
    return pc.if_else(own, rows.text(MCH), sub)


def _required(rows: _Rows, name: str) -> pa.Array:
    values = rows.text(name)
    rows.reject(pc.is_null(values), name, "missing value")
    return values


def _by_row(is_refund: pa.Array, refund: str, pay: str) -> FieldOf:
    return lambda index: refund if is_refund[index].as_py() else pay


def _add(
    counted: dict[str, int], count: int, amount: pa.Array, is_refund: pa.Array, fee: pa.Array
) -> None:
    counted["count"] += count
    counted["paid"] += _sum(pc.if_else(is_refund, 0, amount))
    counted["refund"] += _sum(pc.if_else(is_refund, amount, 0))
    counted["fee"] += _sum(fee)


def _all(mask: pa.Array) -> bool:
    """True when every value is true; a null (a missing value) counts as false."""
    return bool(pc.all(pc.fill_null(mask, False), min_count=0).as_py())


def _sum(values: pa.Array) -> int:
    total = pc.sum(values).as_py()
    return int(total) if total is not None else 0


def _figure(key: str, value: int) -> str:
    return str(value) if key == "count" else format_minor(value, scale=_SCALES[key])


def _summary_offset(data: bytes) -> int:
    """Offset of the line starting the summary in ``data``, or -1."""
    if data.startswith(_MARK):
        return 0
    found = data.find(b"\n" + _MARK)
    return found + 1 if found >= 0 else -1
