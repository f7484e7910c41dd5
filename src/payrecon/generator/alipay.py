"""Alipay trade bill (业务明细) zip, written as Alipay does.

``<PID>0156_<yyyymmdd>.csv.zip`` holds ``…_业务明细.csv`` and ``…_业务明细(汇总).csv``,
GBK text with CRLF, entry names GBK bytes without the UTF-8 flag (FORMATS.md §2).
The detail file: 4 ``#`` preamble lines, header, rows whose id-like values end in a TAB,
end marker, ``#交易合计`` / ``#退款合计`` footers and ``#导出时间``. Refund rows repeat
the order's 支付宝交易号 and 商户订单号, carry negative amounts and the refund request
number. Rows are built as GBK bytes directly (pools are encoded once) and streamed into
the zip member, so footers and the summary come from integer totals kept on the way.
"""

from __future__ import annotations

import contextlib
import zipfile
from datetime import datetime, time, timedelta
from pathlib import Path
from types import TracebackType

import pyarrow as pa
import pyarrow.compute as pc

from payrecon.generator import alipay_text as text
from payrecon.generator.columns import (
    Lookup,
    Part,
    bits,
    clock,
    column,
    concat,
    fixed_digits,
    lit,
    payload,
    pool,
    yuan,
)
from payrecon.generator.output import BillChunk, BillTotals, PartFile
from payrecon.generator.plan import ChunkPlan, DaySpec

ENCODING = "gbk"
COMPRESS_LEVEL = 1  # deflate level 1: several times faster than 6; readers do not care
ZIP64_FROM_KEYS = 4_000_000  # ~300 bytes a row: above this the member may pass 2 GiB
PRODUCTS = (
    "下单测试", "会员月卡", "咖啡外卖订单", "电影票", "线上课程", "停车缴费", "生鲜到家",
    "话费充值", "酒店预订", "图书", "水电燃气", "快递寄件", "健身团课", "游戏道具",
    "外卖订单", "RPC_GENERAL接口测试",
)  # fmt: skip
_STORE_FIELDS = tuple(tuple(store[i] for store in text.STORES) for i in range(3))


def names(spec: DaySpec) -> tuple[str, str, str]:
    """(zip, detail entry, summary entry) names for the day."""
    stem = f"{spec.merchant_id}0156_{spec.date_text()}"
    return f"{stem}.csv.zip", f"{stem}_业务明细.csv", f"{stem}_业务明细(汇总).csv"


class _GbkEntry(zipfile.ZipInfo):
    """A zip entry named in GBK bytes without the UTF-8 flag (0x800), as Alipay's are."""

    def __init__(self, name: str, when: datetime) -> None:
        super().__init__(name, date_time=when.timetuple()[:6])
        self.compress_type = zipfile.ZIP_DEFLATED
        self.create_system = 0  # fixed, so the bytes do not depend on the host OS
        self._compresslevel = COMPRESS_LEVEL

    # zipfile's own hook for how a name is stored; the default picks UTF-8 and sets 0x800.
    def _encodeFilenameFlags(self) -> tuple[bytes, int]:
        return self.filename.encode(ENCODING), self.flag_bits


class AlipayBill:
    """Streams one Alipay trade zip: :meth:`render` chunks (thread-safe), :meth:`append`."""

    def __init__(self, out_dir: Path, spec: DaySpec) -> None:
        self.spec = spec
        self.totals = BillTotals()
        zip_name, self._detail_name, self._summary_name = names(spec)
        rng = spec.rng("alipay-pools")
        midnight = datetime.combine(spec.day + timedelta(days=1), time())
        self._exported = midnight + timedelta(hours=5, seconds=rng.randrange(3600))
        self._buyers = pa.array([b.encode(ENCODING) for b in text.buyers(rng)], pa.binary())
        self._offset = spec.rng("alipay-ids").randrange(10**15)
        self._heads = tuple(f"{day}22001" for day in spec.origin_dates())
        self._day = spec.date_text(separator="-") + " "
        self._file = PartFile(out_dir / zip_name)
        self._zip = zipfile.ZipFile(self._file.stream, "w")
        entry = _GbkEntry(self._detail_name, self._exported)
        self._member = self._zip.open(entry, "w", force_zip64=spec.keys >= ZIP64_FROM_KEYS)
        self._member.write(self._text([*self._preamble("业务明细"), text.DETAIL_START]))
        self._member.write(self._text([text.HEADER]))

    @property
    def rows(self) -> int:
        return self.totals.rows

    def __enter__(self) -> AlipayBill:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # Only an aborted run gets here unfinished; close quietly so nothing is left open.
        with contextlib.suppress(Exception):
            self._member.close()
            self._zip.close()
        self._file.discard()

    def render(self, plan: ChunkPlan) -> tuple[BillChunk, pa.Array]:
        """The chunk's bill rows and totals, plus every key's 支付宝交易号."""
        trade_no = self._trade_no(plan)
        pays, refunds = plan.channel_rows({"trade_no": trade_no})
        lines = pa.concat_arrays([self._pay_lines(pays), self._refund_lines(refunds)])
        order = pc.sort_indices(pa.concat_arrays([column(pays, "key"), column(refunds, "key")]))
        totals = BillTotals.of(pays, refunds)
        totals.stores = text.by_store(pays, refunds)
        return BillChunk(payload(pc.take(lines, order)), totals), trade_no

    def append(self, chunk: BillChunk) -> None:
        self._member.write(chunk.data)
        self.totals.add(chunk.totals)

    def finish(self) -> list[Path]:
        """Write footers and the summary entry, close the zip and put it in place."""
        lines = [text.DETAIL_END, *text.footer(self.totals), self._exported_line()]
        self._member.write(self._text(lines))
        self._member.close()
        summary = _GbkEntry(self._summary_name, self._exported)
        self._zip.writestr(summary, self._text(self._summary_lines()))
        self._zip.close()
        return [self._file.commit()]

    def _text(self, lines: list[str]) -> bytes:
        return "".join(line + text.NEWLINE for line in lines).encode(ENCODING)

    def _preamble(self, title: str) -> list[str]:
        start = datetime.combine(self.spec.day, time())
        end = start + timedelta(days=1)
        return [
            f"#支付宝{title}查询",
            f"#账号：[{self.spec.merchant_id}0156]",
            f"#起始日期：[{text.stamp(start)}]   终止日期：[{text.stamp(end)}]",
        ]

    def _exported_line(self) -> str:
        return f"#导出时间：[{text.stamp(self._exported)}]"

    def _summary_lines(self) -> list[str]:
        stores = self.totals.stores
        rows = [text.summary_row(stores[i], *text.STORES[i][:2]) for i in sorted(stores)]
        total = text.summary_row(self.totals, "合计", "", tab="")
        head = [*self._preamble("业务汇总"), text.SUMMARY_START, text.SUMMARY_HEADER]
        return [*head, *rows, total, text.SUMMARY_END, self._exported_line()]

    def _trade_no(self, plan: ChunkPlan) -> pa.Array:
        # 支付宝交易号: order date + 22001 + 15 digits; a refund repeats its order's number.
        refund = plan.column("refund")
        key = pc.if_else(refund, plan.column("origin_key"), plan.column("key"))
        back = pc.if_else(refund, plan.column("origin_back"), lit(0))
        tail = fixed_digits(key, 1_977_326_743, self._offset, 15)
        return concat([pool(self._heads, back), tail])

    def _common(self, keys: pa.Table) -> dict[str, Part]:
        draw = column(keys, "pick")
        store = text.store_index(draw)
        product = bits(draw, 12, 4)
        # 备注 repeats the product name on about half the rows, else stays empty.
        remark = pc.multiply(bits(draw, 16, 1), pc.add(product, lit(1)))
        ids, names_, operators = (pool(f, store, encoding=ENCODING) for f in _STORE_FIELDS)
        return {
            "done": clock(column(keys, "seconds")),
            "buyer": Lookup(self._buyers, bits(draw, 0, 10)),
            "store": ids,
            "store_name": names_,
            "operator": operators,
            "product": pool(PRODUCTS, product, encoding=ENCODING),
            "remark": pool(("", *PRODUCTS), remark, encoding=ENCODING),
            "fee": yuan(pc.divide(pc.abs(column(keys, "fee")), lit(1_000))),
        }

    def _pay_lines(self, pays: pa.Table) -> pa.Array:
        c = self._common(pays)
        lag = pc.add(bits(column(pays, "pick"), 17, 6), lit(1))
        created = clock(pc.max_element_wise(pc.subtract(column(pays, "seconds"), lag), lit(0)))
        # The plan's coupon is Alipay's 商家优惠: 订单金额 = 商家实收 + 商家优惠.
        amount, discount = column(pays, "amount"), column(pays, "coupon")
        return concat(
            [
                column(pays, "trade_no"), "\t,", column(pays, "order_id"), "\t,交易\t,",
                c["product"], "," + self._day, created, "," + self._day, c["done"], ",",
                *_shop(c), yuan(pc.add(amount, discount)), ",", yuan(amount),
                ",0.00,0.00,0.00,", yuan(discount), ",0.00,,0.00\t,0.00,\t,", c["fee"],
                ",0.00,", c["remark"], text.NEWLINE,
            ],
            encoding=ENCODING,
        )  # fmt: skip

    def _refund_lines(self, refunds: pa.Table) -> pa.Array:
        c = self._common(refunds)
        dates = pool(self.spec.origin_dates("-"), column(refunds, "origin_back"))
        created = clock(column(refunds, "origin_seconds"))
        amount = yuan(column(refunds, "amount"))
        sign = pool(("", "-"), pc.cast(pc.less(column(refunds, "fee"), lit(0)), pa.int64()))
        return concat(
            [
                column(refunds, "trade_no"), "\t,", column(refunds, "origin_order_id"),
                "\t,退款\t,", c["product"], ",", dates, " ", created, "," + self._day,
                c["done"], ",", *_shop(c), "-", amount, ",-", amount,
                ",0.00,0.00,0.00,0.00,0.00,,0.00\t,0.00,", column(refunds, "order_id"), "\t,",
                sign, c["fee"], ",0.00,", c["remark"], text.NEWLINE,
            ],
            encoding=ENCODING,
        )  # fmt: skip


def _shop(c: dict[str, Part]) -> list[Part]:
    """门店编号 … 对方账户: five TAB-guarded fields (终端号 is always empty)."""
    return [c["store"], "\t,", c["store_name"], "\t,", c["operator"], "\t,\t,", c["buyer"], "\t,"]
