"""Alipay merchant trade bill (业务明细, ``bill_type=trade``), as a zip or a bare CSV.

Alipay serves a zip of GBK CSVs whose entry names are GBK bytes without the UTF-8 flag:
the detail file ``…_业务明细.csv`` and a summary ``…_业务明细(汇总).csv``. The detail file
is picked by its first line ``#支付宝业务明细查询``, never by name. Layout: ``#`` preamble
(title, ``#账号：[…]``, dates, start marker), the header, the rows, the end marker
``#---…业务明细列表结束---`` and ``#`` footer lines with the totals, which are checked.

Decisions (see FORMATS.md section 2):

* 业务类型 ``交易`` is a PAY keyed by 商户订单号; ``退款`` is a REFUND keyed by
  退款批次号/请求号 with the 商户订单号 as ``origin_order_id``. Any other 业务类型 is an
  error naming the line: the canonical record has only PAY and REFUND, and a row that is
  silently dropped would also break the footer totals.
* ``amount`` is 商家实收（元）. Refunds are written negative; they become positive, as
  canonical amounts are (a positive refund amount, seen in synthetic files, is accepted).
  ``order_amount`` (订单金额) follows the same rule. A negative payment is an error.
* ``coupon_amount`` is null: Alipay splits discounts by who funds them (支付宝红包, 集分宝,
  支付宝优惠, 商家优惠, 券核销) and no single column is the part of 订单金额 the merchant
  was not paid; that part is ``order_amount - amount``.
* ``fee`` is 服务费（元） in thousandths of a fen, sign as written; null without the column.
* ``merchant_id`` is the ``#账号：[…]`` value as written, with Alipay's trailing ``0156``
  (PID + 0156): stripping it would be a guess about an undocumented suffix.
* The footer totals are compared as counts and fen, refunds as a positive total (the bill
  writes ``-0.04``): ``pay_count``, ``paid``, ``refund_count``, ``refund``.
* ``source`` is the path, plus ``!<entry name>`` for the CSV inside a zip.
"""

from __future__ import annotations

import codecs
import gzip
import re
import zipfile
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import BinaryIO, cast

import pyarrow as pa
import pyarrow.compute as pc

from payrecon.bills.base import (
    BillParser,
    FooterCheck,
    LineBlock,
    ProgressCallback,
    open_binary,
    read_blocks,
)
from payrecon.bills.csv_generic import (
    Line,
    Rows,
    Sections,
    canonical_batch,
    parse_header,
    read_rows,
)
from payrecon.core.money import FEE_SCALE, format_minor, parse_minor
from payrecon.core.schema import Kind, Status
from payrecon.errors import BillFooterMismatch, BillTruncatedError, Location, MoneyError

DETAIL_MARKER = "#支付宝业务明细查询"
_ACCOUNT_BILL_MARKER = "#支付宝账务明细查询"
_END_MARKER = "业务明细列表结束"
_ACCOUNT = re.compile(r"^#\s*账号[:：]\s*\[?\s*([^\]\s]+)")
_TOTAL_LABEL = re.compile(r"^#\s*(交易|退款)合计")
# Wording varies ("商家实收共0.06元", "交易金额共0.08元", "交易退款金额共0.00元"): take the
# count before 笔 and the first amount after the 商家实收/交易 label.
_TOTAL = re.compile(
    r"^#\s*(交易|退款)合计[:：]\s*(\d+)\s*笔\s*[,，]\s*(?:商家实收|交易)[^\d+-]*([+-]?\d+(?:\.\d+)?)\s*元"
)
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_DAMAGED = (zipfile.BadZipFile, EOFError, zlib.error, gzip.BadGzipFile)
_SNIFF_BYTES = 64 << 10
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"

TRADE_NO = "支付宝交易号"
ORDER_NO = "商户订单号"
BIZ_TYPE = "业务类型"
FINISHED = "完成时间"
ORDER_AMOUNT = "订单金额（元）"
RECEIVED = "商家实收（元）"
FEE = "服务费（元）"
REFUND_NO = ("退款批次号/请求号", "退款批次号")  # the second in the 29-column layout
REQUIRED = (TRADE_NO, ORDER_NO, BIZ_TYPE, FINISHED, ORDER_AMOUNT, RECEIVED)
_KINDS = {"交易": Kind.PAY.value, "退款": Kind.REFUND.value}


def sniff_encoding(head: bytes) -> str:
    """``utf-8`` when the bill's first bytes are strict UTF-8 (BOM allowed), else ``gb18030``.

    The preamble and header are Chinese, so GBK text there is never valid UTF-8; GB18030
    is the superset of GBK/cp936, the "ANSI" encoding Alipay writes.
    """
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return "gb18030"
    return "utf-8"


def _first_line(head: bytes) -> str:
    text = codecs.getincrementaldecoder(sniff_encoding(head))(errors="replace").decode(head)
    return text.lstrip("\ufeff").split("\n", 1)[0].strip()


def _normalise(name: str) -> str:
    """Header names with full-width parentheses, as Alipay writes them (some exports don't)."""
    return name.strip().replace("(", "（").replace(")", "）")


@dataclass(frozen=True)
class _Layout:
    header: list[str]
    refund_no: str | None
    fee: str | None
    merchant_id: str | None

    @property
    def wanted(self) -> tuple[str, ...]:
        return REQUIRED + tuple(name for name in (self.refund_no, self.fee) if name)


@dataclass
class _Tally:
    """What the rows add up to, in the footer's terms."""

    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(("pay_count", "paid", "refund_count", "refund"), 0)
    )

    def add(self, refund: pa.Array, amount: pa.Array) -> None:
        refunded = pc.sum(pc.if_else(refund, amount, 0)).as_py() or 0
        refunds = pc.sum(refund).as_py() or 0
        self.counts["refund_count"] += refunds
        self.counts["refund"] += refunded
        self.counts["pay_count"] += len(amount) - refunds
        self.counts["paid"] += (pc.sum(amount).as_py() or 0) - refunded


class _ZipProgress:
    """Progress in bytes of the zip file, not of the (larger) uncompressed entry."""

    def __init__(self, raw: BinaryIO, size: int, report: ProgressCallback) -> None:
        self.raw, self.size, self.report = raw, size, report
        self.done = 0

    def __call__(self, _uncompressed: int) -> None:
        position = self.raw.tell()  # zipfile reads the entry's compressed bytes from raw
        if position > self.done:
            self.report(position - self.done)
            self.done = position

    def finish(self) -> None:
        if self.size > self.done:
            self.report(self.size - self.done)
            self.done = self.size


class AlipayBillParser(BillParser):
    """Alipay 业务明细 (trade) bill: the zip Alipay serves, or its detail CSV alone."""

    channel = "alipay"

    def _setup(self) -> None:
        self.member: str | None = None
        self._finish: Callable[[], None] = lambda: None

    @property
    def source(self) -> str:
        return f"{self.path}!{self.member}" if self.member else str(self.path)

    def batches(self) -> Iterator[pa.RecordBatch]:
        try:
            yield from self._batches()
        except _DAMAGED as exc:  # raised by zipfile/gzip while streaming, not on opening
            raise self.error(f"the compressed file is damaged: {exc}") from None

    def _batches(self) -> Iterator[pa.RecordBatch]:
        with ExitStack() as stack:
            stream, encoding, progress = self._open(stack)
            blocks = read_blocks(stream, self.source, encoding=encoding, on_progress=progress)
            sections = Sections(self.error, is_header=_is_header, end_prefix=b"#")
            tally = _Tally()
            yield from self._parse(blocks, sections, tally)
            self._finish()
        self._check_footer(sections.tail, tally)

    def _parse(
        self, blocks: Iterator[LineBlock], sections: Sections, tally: _Tally
    ) -> Iterator[pa.RecordBatch]:
        layout: _Layout | None = None
        for block in sections.rows(blocks):
            layout = layout or self._layout(sections)
            rows = read_rows(block, layout.header, layout.wanted, fail=self.error)
            yield self._convert(rows, layout, tally)
        if layout is None:
            self._layout(sections)  # a bill without rows still needs its title and header

    # ------------------------------------------------------------------ opening the file

    def _open(self, stack: ExitStack) -> tuple[BinaryIO, str, ProgressCallback | None]:
        with self.path.open("rb") as probe:
            is_zip = probe.read(4) in _ZIP_MAGIC
        if is_zip:
            return self._open_member(stack)
        with open_binary(self.path) as probe:
            head = probe.read(_SNIFF_BYTES)
        return stack.enter_context(open_binary(self.path)), sniff_encoding(head), self.on_progress

    def _open_member(self, stack: ExitStack) -> tuple[BinaryIO, str, ProgressCallback | None]:
        raw = stack.enter_context(self.path.open("rb"))
        archive = stack.enter_context(self._open_zip(raw))
        info = self._detail_member(archive)
        self.member = info.filename
        with archive.open(info) as probe:
            head = probe.read(_SNIFF_BYTES)
        progress = None
        if self.on_progress:
            progress = _ZipProgress(raw, self.path.stat().st_size, self.on_progress)
            self._finish = progress.finish
        stream = cast(BinaryIO, stack.enter_context(archive.open(info)))
        return stream, sniff_encoding(head), progress

    def _open_zip(self, raw: BinaryIO) -> zipfile.ZipFile:
        try:
            try:
                return zipfile.ZipFile(raw, metadata_encoding="gb18030")
            except UnicodeDecodeError:  # names that are not GBK: keep zipfile's cp437 reading
                raw.seek(0)
                return zipfile.ZipFile(raw)
        except zipfile.BadZipFile as exc:
            raise self.error(f"not a readable zip file: {exc}") from None

    def _detail_member(self, archive: zipfile.ZipFile) -> zipfile.ZipInfo:
        """The one entry whose first line is the 业务明细 title."""
        entries = [info for info in archive.infolist() if not info.is_dir()]
        details = [info for info in entries if self._title(archive, info) == DETAIL_MARKER]
        if len(details) == 1:
            return details[0]
        names = ", ".join(info.filename for info in entries) or "none"
        if details:
            raise self.error(f"{len(details)} 业务明细 files in one zip, expected one: {names}")
        raise self.error(
            f"no 业务明细 file (first line {DETAIL_MARKER}) in the zip; entries: {names}"
        )

    def _title(self, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> str:
        try:
            with archive.open(info) as entry:
                return _first_line(entry.read(4096))
        except (zipfile.BadZipFile, RuntimeError, NotImplementedError) as exc:
            raise self.error(f"cannot read zip entry {info.filename}: {exc}") from None

    # ------------------------------------------------------------------ head and rows

    def _layout(self, sections: Sections) -> _Layout:
        """Check the title and header; find the columns by name."""
        if sections.header is None:
            raise BillTruncatedError("the file ends before its header row", Location(self.source))
        self._check_title(sections.head, sections.header)
        header = [_normalise(name) for name in parse_header(sections.header.text)]
        for name in REQUIRED:
            if name not in header:
                raise self.error(f"the header has no {name} column", sections.header.number, name)
        return _Layout(
            header=header,
            refund_no=next((name for name in REFUND_NO if name in header), None),
            fee=FEE if FEE in header else None,
            merchant_id=_account(sections.head),
        )

    def _check_title(self, head: Sequence[Line], header: Line) -> None:
        first = next((line for line in head if line.text.strip()), header)
        title = first.text.lstrip("\ufeff").strip()
        if title == DETAIL_MARKER:
            return
        hint = " (an 账务明细 account bill)" if title.startswith(_ACCOUNT_BILL_MARKER) else ""
        message = f"not an Alipay 业务明细 bill{hint}: expected {DETAIL_MARKER}, found {title!r}"
        raise self.error(message, first.number)

    def _convert(self, rows: Rows, layout: _Layout, tally: _Tally) -> pa.RecordBatch:
        reason = "业务类型 is neither 交易 nor 退款, so the row cannot be reconciled"
        kind = rows.lookup(BIZ_TYPE, _KINDS, reason)
        refund = pc.equal(kind, Kind.REFUND.value)
        order_id, origin = self._order_ids(rows, layout, refund)
        amount = self._amount(rows, refund)
        utc, day = rows.times(FINISHED, TIME_FORMAT, self.timezone)
        tally.add(refund, amount)
        values = {
            "channel": self.channel_name,
            "merchant_id": layout.merchant_id,
            "kind": kind,
            "order_id": order_id,
            "origin_order_id": origin,
            "channel_txn_id": rows.text(TRADE_NO),
            "status": Status.SUCCESS.value,  # the trade bill lists completed trades only
            "amount": amount,
            "order_amount": _unsigned(rows.money(ORDER_AMOUNT), refund),
            "fee": rows.money(layout.fee, scale=FEE_SCALE) if layout.fee else None,
            "currency": "CNY",
            "txn_time": utc,
            "bill_date": day,
            "source": self.source,
            "line_no": rows.lines,
        }
        return canonical_batch(values, rows.count)

    def _order_ids(self, rows: Rows, layout: _Layout, refund: pa.Array) -> tuple[pa.Array, ...]:
        """(order_id, origin_order_id): a refund is keyed by its own request number."""
        order = rows.required(ORDER_NO)
        field_name = layout.refund_no or REFUND_NO[0]
        request = (
            rows.text(layout.refund_no) if layout.refund_no else pa.nulls(rows.count, pa.string())
        )
        missing = pc.and_(refund, pc.is_null(request))
        rows.reject(missing, field_name, f"a 退款 row without {field_name}")
        none = pa.scalar(None, pa.string())
        return pc.if_else(refund, request, order), pc.if_else(refund, order, none)

    def _amount(self, rows: Rows, refund: pa.Array) -> pa.Array:
        received = rows.money(RECEIVED)
        rows.reject(pc.is_null(received), RECEIVED, "missing value")
        negative_pay = pc.and_(pc.invert(refund), pc.less(received, 0))
        rows.reject(negative_pay, RECEIVED, "a 交易 row with a negative amount")
        return _unsigned(received, refund)

    # ------------------------------------------------------------------ footer

    def _check_footer(self, tail: Sequence[Line], tally: _Tally) -> None:
        declared, lines = self._read_footer(tail)
        counted = dict(tally.counts)
        wrong = [key for key in declared if declared[key] != counted[key]]
        if wrong:
            message = (
                f"the footer declares {_describe(declared)}, "
                f"but the rows add up to {_describe(counted)}"
            )
            raise BillFooterMismatch(message, Location(self.source, lines[wrong[0]]))
        self.footer = FooterCheck("ok", declared=declared, counted=counted)

    def _read_footer(self, tail: Sequence[Line]) -> tuple[dict[str, int], dict[str, int]]:
        """The declared totals and the line each was read from."""
        if not tail:
            message = f"the file ends without the {_END_MARKER} marker and the totals"
            raise BillTruncatedError(message, Location(self.source))
        if _END_MARKER not in tail[0].text:
            raise self.error(f"the rows end without the {_END_MARKER} marker", tail[0].number)
        declared: dict[str, int] = {}
        lines: dict[str, int] = {}
        for line in tail[1:]:
            for key, value in self._totals(line).items():
                declared[key], lines[key] = value, line.number
        for label, key in (("交易合计", "pay_count"), ("退款合计", "refund_count")):
            if key not in declared:
                message = f"the footer has no #{label} line"
                raise BillTruncatedError(message, Location(self.source, tail[-1].number))
        return declared, lines

    def _totals(self, line: Line) -> dict[str, int]:
        """Totals from one footer line; other ``#`` lines (导出时间) give none."""
        if not line.text.startswith("#"):
            raise self.error(f"a row after the {_END_MARKER} marker", line.number)
        match = _TOTAL.match(line.text)
        if match is None:
            if _TOTAL_LABEL.match(line.text):
                raise self.error("cannot read the count and amount of this total", line.number)
            return {}
        label, count, amount = match.groups()
        try:
            fen = parse_minor(amount)
        except MoneyError as exc:
            raise self.error(exc.reason, line.number) from None
        if label == "交易":
            return {"pay_count": int(count), "paid": fen}
        return {"refund_count": int(count), "refund": abs(fen)}  # written as -0.04


def _is_header(_index: int, text: str) -> bool:
    return bool(text.strip()) and not text.startswith("#")


def _account(head: Sequence[Line]) -> str | None:
    for line in head:
        match = _ACCOUNT.match(line.text)
        if match:
            return match.group(1)
    return None


def _unsigned(values: pa.Array, refund: pa.Array) -> pa.Array:
    """Refunds are written negative; canonical amounts are positive."""
    return pc.if_else(refund, pc.abs(values), values)


def _describe(totals: dict[str, int]) -> str:
    return (
        f"{totals['pay_count']} payments of {format_minor(totals['paid'])} yuan and "
        f"{totals['refund_count']} refunds of {format_minor(totals['refund'])} yuan"
    )
