"""UnionPay 全渠道 (ACP 5.x) merchant reconciliation file: 一般交易流水 ``ZM``.

``INN{yyMMdd}{nn}ZM_{merId}.txt`` (FORMATS.md section 3), also accepted inside the zip
the file-transfer transaction (``txnType=76``) returns. GBK text, one record per line,
no header and no footer; every record is fixed width, fields separated by one space, so
a field is a byte range (a 二级商户简称 in Chinese is 32 *bytes*, not characters). The
layout is the ACP SDK's length array — 42 fields, 607 bytes; only the first 28 (up to
商户代码, byte 308) are read, so both SDK variants of the tail fit.

Lines are read as raw bytes in blocks and cut into columns by Arrow, never per row in
Python: the block is checked to be valid GBK, split into lines, and each field sliced
out of the line's first 308 bytes.

Units: 交易金额 is 12 zero-padded digits of **fen**; 商户手续费 13 characters, a sign
letter and 12 digits of fen (``D000000000060``: 0.60 yuan debited from the merchant,
``C…`` credited back; 13 plain digits are read as a debit). Currency is CNY (the file
has no currency field).

Decisions (not fixed by the format):

* 交易类型 (txnType) decides the kind: ``01`` 消费 and ``03`` 预授权完成 are PAYs;
  ``04`` 退货, ``31`` 消费撤销 and ``33`` 预授权完成撤销 give money back and are
  REFUNDs; any other code is an error naming the line. A REFUND is keyed by its own
  商户订单号 (the orderId the merchant sent with the refund); 原交易查询流水号 links it
  to the original *UnionPay* id only, so ``origin_order_id`` stays null.
* ``channel_txn_id`` is 查询流水号 (queryId), ``merchant_id`` 商户代码 (merId).
* ``fee`` is 商户手续费 in thousandths of a fen: positive when debited, negative when
  credited back (on refunds); null when the field is blank.
* 交易传输时间 is ``MMDDhhmmss`` with **no year**: the year is the file name's
  (``INN``\\ *yyMMdd*), moved one back or forward when the month lies more than six
  months from the file's (a December record in a January file). Times are Beijing
  wall-clock time, i.e. the run's zone (``Asia/Shanghai`` by default).
* Status is SUCCESS: the file lists settled transactions. There is no footer and no
  total, so the footer check is ``none`` (rows counted by kind).
"""

from __future__ import annotations

import gzip
import re
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import date
from typing import BinaryIO, cast

import pyarrow as pa
import pyarrow.compute as pc

from payrecon.bills.base import BLOCK_SIZE, BillParser, FooterCheck, LineBlock, open_binary
from payrecon.bills.csv_generic import canonical_batch, local_dates, strict_strptime
from payrecon.core.schema import TIMESTAMP, Kind, Status
from payrecon.errors import BillFormatError, Location, MoneyError

# The ACP SDK's field lengths (newer array); fields are separated by one space.
WIDTHS = (3, 11, 11, 6, 10, 19, 12, 4, 2, 21, 2, 32, 2, 6, 10, 13, 13, 4, 15, 2, 2, 6, 2, 4,
          32, 1, 21, 15, 1, 15, 32, 13, 13, 8, 32, 13, 13, 12, 2, 1, 32, 98)  # fmt: skip
RECORD_BYTES = sum(WIDTHS) + len(WIDTHS) - 1  # 607
STARTS = tuple(sum(WIDTHS[:index]) + index for index in range(len(WIDTHS)))

CODE, TIME, AMOUNT, QUERY_ID, ORDER_ID = (
    "交易代码",
    "交易传输时间",
    "交易金额",
    "查询流水号",
    "商户订单号",
)
FEE, TXN_TYPE, MER_ID = "商户手续费", "交易类型", "商户代码"
FIELDS = {CODE: 0, TIME: 4, AMOUNT: 6, QUERY_ID: 9, ORDER_ID: 11, FEE: 15, TXN_TYPE: 19}
FIELDS[MER_ID] = 27
USED_BYTES = STARTS[27] + WIDTHS[27]  # 308: through 商户代码
KINDS = {
    "01": Kind.PAY.value,  # 消费
    "03": Kind.PAY.value,  # 预授权完成
    "04": Kind.REFUND.value,  # 退货
    "31": Kind.REFUND.value,  # 消费撤销
    "33": Kind.REFUND.value,  # 预授权完成撤销
}
ENCODING = "gb18030"  # the superset of GBK
FILE_NAME = re.compile(r"INN(\d{2})(\d{2})(\d{2})\d{2}ZM_", re.IGNORECASE)
# The first 308 bytes of a record: every separator where the layout puts it.
_SHAPE = "^" + " ".join(f".{{{WIDTHS[index]}}}" for index in range(28)) + "$"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_DAMAGED = (zipfile.BadZipFile, EOFError, zlib.error, gzip.BadGzipFile)


@dataclass(frozen=True)
class _Fields:
    """One block's records: each used field as trimmed text, and each record's line."""

    text: dict[str, pa.Array]
    lines: pa.Array

    @property
    def count(self) -> int:
        return len(self.lines)


class UnionpayBillParser(BillParser):
    """A UnionPay 全渠道 ZM file (or the zip holding it)."""

    channel = "unionpay"

    def _setup(self) -> None:
        self.member: str | None = None
        self._counted = {"rows": 0, "pays": 0, "refunds": 0}

    @property
    def source(self) -> str:
        return f"{self.path}!{self.member}" if self.member else str(self.path)

    def batches(self) -> Iterator[pa.RecordBatch]:
        try:
            yield from self._batches()
        except _DAMAGED as exc:
            raise self.error(f"the compressed file is damaged: {exc}") from None

    def _batches(self) -> Iterator[pa.RecordBatch]:
        with ExitStack() as stack:
            stream = self._open(stack)
            settled = self._file_date()
            for block in _raw_blocks(stream):
                if self.on_progress and not self.member:
                    self.on_progress(len(block.data))
                fields = self._fields(block)
                if fields.count:
                    yield self._convert(fields, settled)
        if self.on_progress and self.member:  # the zip's bytes, not the larger entry's
            self.on_progress(self.path.stat().st_size)
        self.footer = FooterCheck("none", counted=dict(self._counted))

    # ------------------------------------------------------------------ the file

    def _open(self, stack: ExitStack) -> BinaryIO:
        with self.path.open("rb") as probe:
            is_zip = probe.read(4) in _ZIP_MAGIC
        if not is_zip:
            return stack.enter_context(open_binary(self.path))
        try:
            archive = stack.enter_context(zipfile.ZipFile(self.path, metadata_encoding="gb18030"))
        except zipfile.BadZipFile as exc:
            raise self.error(f"not a readable zip file: {exc}") from None
        names = [info.filename for info in archive.infolist() if FILE_NAME.search(info.filename)]
        if len(names) != 1:
            listed = ", ".join(info.filename for info in archive.infolist()) or "none"
            raise self.error(f"expected one INN…ZM_ file in the zip, found: {listed}")
        self.member = names[0]
        return cast(BinaryIO, stack.enter_context(archive.open(names[0])))

    def _file_date(self) -> date:
        name = self.member or self.path.name
        match = FILE_NAME.search(name)
        if match is None:
            message = (
                f"{name!r} is not named INN<yyMMdd><nn>ZM_<merId>.txt: the records' times"
                " (交易传输时间, MMDDhhmmss) have no year, which comes from that name"
            )
            raise self.error(message)
        year, month, day = (int(part) for part in match.groups())
        try:
            return date(2000 + year, month, day)
        except ValueError:
            raise self.error(f"{name!r} does not carry a valid date") from None

    # ------------------------------------------------------------------ fields

    def _fields(self, block: LineBlock) -> _Fields:
        self._check_encoding(block)
        pieces = pc.list_flatten(pc.split_pattern(pa.array([block.data], pa.binary()), b"\n"))
        length = pc.binary_length(pieces)
        blank = pc.or_(pc.equal(length, 0), pc.equal(pieces, pa.scalar(b"\r", pa.binary())))
        keep = pc.indices_nonzero(pc.invert(blank))
        records = pc.take(pieces, keep)
        lines = pc.add(keep.cast(pa.int64()), block.first_line)
        short = pc.less(pc.binary_length(records), USED_BYTES)
        self._reject(short, lines, None, f"shorter than the {USED_BYTES} bytes through 商户代码")
        head = self._ascii(pc.binary_slice(records, 0, USED_BYTES), lines)
        misplaced = pc.invert(pc.match_substring_regex(head, _SHAPE))
        self._reject(misplaced, lines, None, "fields are not where the ZM layout puts them")
        text = {
            name: pc.utf8_trim_whitespace(
                pc.utf8_slice_codeunits(head, STARTS[index], STARTS[index] + WIDTHS[index])
            )
            for name, index in FIELDS.items()
        }
        return _Fields(text, lines)

    def _check_encoding(self, block: LineBlock) -> None:
        try:
            block.data.decode(ENCODING)
        except UnicodeDecodeError as exc:
            line = block.line_of(exc.start)
            message = f"not valid GBK text (byte {block.data[exc.start : exc.start + 1]!r})"
            raise BillFormatError(message, Location(self.source, line)) from None

    def _ascii(self, head: pa.Array, lines: pa.Array) -> pa.Array:
        try:
            return head.cast(pa.string())
        except pa.ArrowInvalid:
            for index, value in enumerate(head.to_pylist()):  # the error path only
                if not value.isascii():
                    line = lines[index].as_py()
                    raise self.error("non-ASCII bytes in the first 308 bytes", line) from None
            raise

    def _reject(self, mask: pa.Array, lines: pa.Array, field: str | None, reason: str) -> None:
        index = pc.index(pc.fill_null(mask, False), True).as_py()
        if index >= 0:
            raise self.error(reason, lines[index].as_py(), field)

    # ------------------------------------------------------------------ values

    def _convert(self, fields: _Fields, settled: date) -> pa.RecordBatch:
        text, lines = fields.text, fields.lines
        known = pc.is_in(text[TXN_TYPE], value_set=pa.array(list(KINDS)))
        codes = ", ".join(KINDS)
        self._reject(pc.invert(known), lines, TXN_TYPE, f"not a money-moving txnType ({codes})")
        found = pc.index_in(text[TXN_TYPE], value_set=pa.array(list(KINDS)))
        kind = pc.take(pa.array(list(KINDS.values())), found)
        self._reject(pc.equal(text[ORDER_ID], ""), lines, ORDER_ID, "missing value")
        utc = self._times(fields, settled)
        refunds = int(pc.sum(pc.cast(pc.equal(kind, Kind.REFUND.value), pa.int64())).as_py() or 0)
        self._counted["rows"] += fields.count
        self._counted["refunds"] += refunds
        self._counted["pays"] += fields.count - refunds
        values = {
            "channel": self.channel_name,
            "merchant_id": _blank_as_null(text[MER_ID]),
            "kind": kind,
            "order_id": text[ORDER_ID],
            "channel_txn_id": _blank_as_null(text[QUERY_ID]),
            "status": Status.SUCCESS.value,
            "amount": self._amount(fields),
            "fee": self._fee(fields),
            "currency": "CNY",
            "txn_time": utc,
            "bill_date": local_dates(utc, self.timezone),
            "source": self.source,
            "line_no": lines,
        }
        return canonical_batch(values, fields.count)

    def _amount(self, fields: _Fields) -> pa.Array:
        text = fields.text[AMOUNT]
        bad = pc.invert(pc.match_substring_regex(text, r"^[0-9]{12}$"))
        self._money_reject(bad, fields, AMOUNT, "is not 12 digits of fen")
        return pc.cast(text, pa.int64())

    def _fee(self, fields: _Fields) -> pa.Array:
        text = fields.text[FEE]
        blank = pc.equal(text, "")
        shape = pc.match_substring_regex(text, r"^([CD][0-9]{12}|[0-9]{13})$")
        wrong = pc.invert(pc.or_(blank, shape))
        self._money_reject(wrong, fields, FEE, "is not C/D + 12 digits of fen")
        credit = pc.starts_with(text, "C")
        digits = pc.if_else(blank, pa.scalar(None, pa.string()), pc.utf8_slice_codeunits(text, 1))
        plain = pc.match_substring_regex(text, r"^[0-9]")
        fen = pc.cast(pc.if_else(plain, text, digits), pa.int64())
        signed = pc.if_else(credit, pc.negate(fen), fen)
        return pc.multiply(signed, 1000)

    def _money_reject(self, mask: pa.Array, fields: _Fields, name: str, reason: str) -> None:
        index = pc.index(pc.fill_null(mask, False), True).as_py()
        if index >= 0:
            value = fields.text[name][index].as_py()
            location = Location(self.source, fields.lines[index].as_py(), name)
            raise MoneyError(f"{value!r} {reason}", location)

    def _times(self, fields: _Fields, settled: date) -> pa.Array:
        text, lines = fields.text[TIME], fields.lines
        digits = pc.match_substring_regex(text, r"^[0-9]{10}$")
        self._reject(pc.invert(digits), lines, TIME, "not MMDDhhmmss")
        month = pc.cast(pc.utf8_slice_codeunits(text, 0, 2), pa.int64())
        distance = pc.subtract(month, settled.month)
        # A record more than six months after the file's month belongs to the year before.
        shift = pc.subtract(pc.cast(pc.less(distance, -6), pa.int64()),
                            pc.cast(pc.greater(distance, 6), pa.int64()))  # fmt: skip
        year = pc.cast(pc.add(shift, settled.year), pa.string())
        stamp = pc.binary_join_element_wise(year, text, "")
        local = strict_strptime(stamp, "%Y%m%d%H%M%S")
        self._reject(pc.is_null(local), lines, TIME, "not a valid date and time (MMDDhhmmss)")
        try:
            utc = pc.assume_timezone(local, self.timezone, ambiguous="earliest")
        except pa.ArrowInvalid as exc:  # a wall time skipped by a DST change
            raise self.error(f"time cannot be placed in {self.timezone}: {exc}") from None
        return utc.cast(TIMESTAMP)


def _raw_blocks(stream: BinaryIO, block_size: int = BLOCK_SIZE) -> Iterator[LineBlock]:
    """The file's bytes in blocks of whole lines, undecoded: fields are byte ranges."""
    pending, line = b"", 1
    while chunk := stream.read(block_size):
        cut = chunk.rfind(b"\n") + 1
        if cut == 0:
            pending += chunk
            continue
        data = pending + chunk[:cut]
        pending = chunk[cut:]
        yield LineBlock(data, line)
        line += data.count(b"\n")
    if pending:
        yield LineBlock(pending, line)


def _blank_as_null(values: pa.Array) -> pa.Array:
    return pc.if_else(pc.equal(values, ""), pa.scalar(None, pa.string()), values)
