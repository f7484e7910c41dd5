"""UnionPay 全渠道 ZM file (一般交易流水), written as the ACP file download delivers it.

``INN{yyMMdd}01ZM_{merId}.txt`` (FORMATS.md §3): GBK, CRLF, one fixed-width record per
line — the SDK's 42 fields, 607 bytes, one space between fields, no header, no footer.
Payments are 交易代码 ``S22``/交易类型 ``01``, refunds ``S30``/``04`` with their own
商户订单号 and the original's 查询流水号 in 原交易查询流水号. Amounts are zero-padded
fen; 商户手续费, 结算金额 and 清算净额 carry a ``D``/``C`` sign letter. Some records
name a 二级商户简称 in Chinese, so fields are byte ranges, not characters.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType

import pyarrow as pa
import pyarrow.compute as pc

from payrecon.generator.columns import (
    Lookup,
    Part,
    bits,
    column,
    concat,
    fixed_digits,
    lit,
    payload,
    pool,
)
from payrecon.generator.ids import compact_clock_table
from payrecon.generator.output import BillChunk, BillTotals, PartFile
from payrecon.generator.plan import ChunkPlan, DaySpec

ENCODING = "gbk"
NEWLINE = "\r\n"
INSTITUTION = "00010000".ljust(11)
CARDS = tuple(
    card.ljust(19)
    for card in ("6222****1234", "6217****5678", "6228****0021", "6259****8808",
                 "6225****3131", "6214****7070", "6282****4545", "6236****9090")
)  # fmt: skip
SUB_MERCHANTS = ("", "", "", "", "", "", "测试二级商户一号", "南京西路店")
_QUERY_MULTIPLIER = 1_977_326_743


def bill_name(spec: DaySpec) -> str:
    return f"INN{spec.day:%y%m%d}01ZM_{spec.merchant_id}.txt"


def _blank(width: int) -> str:
    return " " * width


def _gbk_field(text: str, width: int) -> str:
    """``text`` padded with spaces to ``width`` bytes of GBK (a Chinese character is two)."""
    return text + _blank(width - len(text.encode(ENCODING)))


_SUB_MERCHANT_FIELDS = tuple(_gbk_field(name, 32) for name in SUB_MERCHANTS)


def _fen(values: pa.Array, width: int) -> pa.Array:
    return pc.utf8_lpad(pc.cast(values, pa.string()), width=width, padding="0")


class UnionpayBill:
    """Streams one ZM file: :meth:`render` chunks (thread-safe), :meth:`append` them."""

    def __init__(self, out_dir: Path, spec: DaySpec) -> None:
        self.spec = spec
        self.totals = BillTotals()
        self._offset = spec.rng("unionpay-ids").randrange(10**9)
        self._mmdd = f"{spec.day:%m%d}"
        self._days = tuple(spec.date_text(back)[2:] for back in range(len(spec.origin_dates())))
        self._file = PartFile(out_dir / bill_name(spec))

    @property
    def rows(self) -> int:
        return self.totals.rows

    def __enter__(self) -> UnionpayBill:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._file.discard()

    def render(self, plan: ChunkPlan) -> tuple[BillChunk, pa.Array]:
        """The chunk's records and totals, plus every key's 查询流水号 (queryId)."""
        query_id = self._query_id(plan.column("key"), pa.repeat(lit(0), plan.size))
        origin_id = self._query_id(plan.column("origin_key"), plan.column("origin_back"))
        extra = {"query_id": query_id, "origin_query_id": origin_id}
        extra["origin_trace"] = self._trace(plan.column("origin_key"))
        pays, refunds = plan.channel_rows(extra)
        lines = pa.concat_arrays([self._pay_lines(pays), self._refund_lines(refunds)])
        order = pc.sort_indices(pa.concat_arrays([column(pays, "key"), column(refunds, "key")]))
        return BillChunk(payload(pc.take(lines, order)), BillTotals.of(pays, refunds)), query_id

    def append(self, chunk: BillChunk) -> None:
        self._file.write(chunk.data)
        self.totals.add(chunk.totals)

    def finish(self) -> list[Path]:
        return [self._file.commit()]  # no footer: the ZM file has none

    def _query_id(self, keys: pa.Array, back: pa.Array) -> pa.Array:
        # 21 digits: the transaction's yyMMdd, then 15 digits unique per key and day.
        tail = fixed_digits(keys, _QUERY_MULTIPLIER, self._offset, 15)
        return concat([pool(self._days, back), tail])

    def _trace(self, keys: pa.Array) -> pa.Array:
        return fixed_digits(keys, 7_919, self._offset, 6)  # 系统跟踪号

    def _common(self, keys: pa.Table, refund: bool) -> dict[str, Part]:
        draw = column(keys, "pick")
        amount = column(keys, "amount")
        fee = pc.abs(column(keys, "fee")) if refund else column(keys, "fee")
        fen = pc.divide(fee, lit(1_000))
        return {
            "trace": self._trace(column(keys, "key")),
            "time": Lookup(compact_clock_table(), column(keys, "seconds")),
            "card": pool(CARDS, bits(draw, 0, 3)),
            "card_type": pool(("01", "01", "01", "02"), bits(draw, 3, 2)),
            "amount": _fen(amount, 12),
            "fee": _fen(fen, 12),
            "net": _fen(pc.subtract(amount, fen), 12),
            "sub": pool(_SUB_MERCHANT_FIELDS, bits(draw, 5, 3), encoding=ENCODING),
        }

    def _pay_lines(self, pays: pa.Table) -> pa.Array:
        c = self._common(pays, refund=False)
        return concat(
            [
                f"S22 {INSTITUTION} {INSTITUTION} ", c["trace"], f" {self._mmdd}", c["time"],
                " ", c["card"], " ", c["amount"], " 5411 07 ", column(pays, "query_id"),
                " " + _blank(2) + " ", pc.utf8_rpad(column(pays, "order_id"), width=32),
                " ", c["card_type"], " " + _blank(6) + " " + _blank(10) + " D", c["fee"],
                " C", c["net"], *self._tail(c, "01 01", _blank(21), "C"),
            ],
            encoding=ENCODING,
        )  # fmt: skip

    def _refund_lines(self, refunds: pa.Table) -> pa.Array:
        c = self._common(refunds, refund=True)
        origin_day = pool(tuple(day[2:] for day in self._days), column(refunds, "origin_back"))
        origin_time = Lookup(compact_clock_table(), column(refunds, "origin_seconds"))
        return concat(
            [
                f"S30 {INSTITUTION} {INSTITUTION} ", c["trace"], f" {self._mmdd}", c["time"],
                " ", c["card"], " ", c["amount"], " 5411 07 ", column(refunds, "query_id"),
                " " + _blank(2) + " ", pc.utf8_rpad(column(refunds, "order_id"), width=32),
                " ", c["card_type"], " ", column(refunds, "origin_trace"), " ", origin_day,
                origin_time, " C", c["fee"], " D", c["net"],
                *self._tail(c, "04 00", column(refunds, "origin_query_id"), "D"),
            ],
            encoding=ENCODING,
        )  # fmt: skip

    def _tail(self, c: dict[str, Part], types: str, origin: Part, sign: str) -> list[Part]:
        """支付方式 … 保留域: fields 18-42 after 结算金额."""
        return [
            " 0001 " + _blank(15) + f" {types} 000201 01 " + _blank(4) + " " + _blank(32)
            + " 0 ", origin, f" {self.spec.merchant_id} " + " " + " " + _blank(15) + " ",
            c["sub"], " " + _blank(13) + f" {sign}", c["net"], " " + _blank(8) + " "
            + _blank(32) + " " + "0" * 13 + " " + "0" * 13 + " " + "0" * 12 + " 00 0 "
            + _blank(32) + " " + _blank(98) + NEWLINE,
        ]  # fmt: skip
