"""WeChat Pay ALL trade bill (交易账单), current 27-column format, written as WeChat does.

Layout (FORMATS.md §1.2-1.4): UTF-8 BOM and CRLF like real v2 responses; header row;
detail rows with every value backtick-prefixed; the 7-column summary header; the summary
row. Payment rows carry 微信退款单号/商户退款单号 ``0`` and zero refund amounts; refund
rows carry the original order's ids, ``REFUND``, 0.00 in 应结订单金额/订单金额 and a
negative fee. The summary comes from integer totals accumulated while rows stream out.
"""

from __future__ import annotations

import random
from pathlib import Path
from types import TracebackType

import pyarrow as pa
import pyarrow.compute as pc

from payrecon.core.money import FEE_SCALE, format_minor
from payrecon.generator.columns import (
    Lookup,
    Part,
    bits,
    clock,
    column,
    concat,
    fixed_digits,
    lit,
    modulo,
    payload,
    pool,
    yuan,
)
from payrecon.generator.output import BillChunk, BillTotals, PartFile
from payrecon.generator.plan import ChunkPlan, DaySpec

HEADER = (
    "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,"
    "交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,"
    "充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,"
    "费率备注"
)
SUMMARY_HEADER = (
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额"
)
NEWLINE = "\r\n"
BOM = "\ufeff"

# Weighted pools of 16 so four random bits pick one (see `bits`).
TRADE_TYPES = ("JSAPI",) * 9 + ("NATIVE",) * 3 + ("APP",) * 3 + ("MICROPAY",)
BANKS = ("OTHERS",) * 5 + ("CFT",) * 3 + (
    "ICBC_DEBIT", "CMB_CREDIT", "CCB_DEBIT", "ABC_DEBIT",
    "BOC_DEBIT", "CMB_DEBIT", "SPDB_CREDIT", "PSBC_DEBIT",
)  # fmt: skip
PRODUCTS = (
    "会员月卡", "咖啡外卖订单", "电影票", "线上课程", "停车缴费", "生鲜到家", "话费充值",
    "Package Venue", "for testing", "酒店预订", "图书", "水电燃气", "快递寄件", "健身团课",
    "游戏道具", "外卖订单",
)  # fmt: skip
ATTACHES = ("", "", "vip", "mp")
REFUND_TYPES = ("ORIGINAL",) * 15 + ("BALANCE",)
RATES = {38: "0.38%", 60: "0.60%"}
_RATE_TEXT = tuple(RATES.get(bp, "") for bp in range(61))
_OPENID_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"
_OPENIDS = 1024
_TXN_MIDDLES = 900  # 微信订单号 digits 8-10


def bill_name(spec: DaySpec) -> str:
    return f"wechat_{spec.date_text()}_ALL.csv"


def summary_line(totals: BillTotals) -> str:
    """The summary row; 申请退款总金额 equals 退款总金额 (no coupon part on our refunds)."""
    values = (
        str(totals.rows),
        format_minor(totals.pay_amount),
        format_minor(totals.refund_amount),
        format_minor(0),
        format_minor(totals.fee, scale=FEE_SCALE),
        format_minor(totals.pay_amount + totals.coupon),
        format_minor(totals.refund_amount),
    )
    return ",".join("`" + value for value in values)


class WechatBill:
    """Streams one WeChat ALL bill: :meth:`render` chunks (thread-safe), :meth:`append`."""

    def __init__(self, out_dir: Path, spec: DaySpec) -> None:
        self.spec = spec
        self.totals = BillTotals()
        rng = spec.rng("wechat-pools")
        appid = "wx" + rng.randbytes(8).hex()
        self._openids = pa.array([_openid(rng) for _ in range(_OPENIDS)])
        self._offset = spec.rng("wechat-ids").randrange(10**9)
        self._day = f"`{spec.date_text(separator='-')} "
        self._merchant = f",`{appid},`{spec.merchant_id},`0,`,`"
        self._txn_heads = pa.array(
            [
                f"4200000{middle + 100}{day}"
                for day in spec.origin_dates()
                for middle in range(_TXN_MIDDLES)
            ]
        )
        self._file = PartFile(out_dir / bill_name(spec))
        self._file.write((BOM + HEADER + NEWLINE).encode())

    @property
    def rows(self) -> int:
        return self.totals.rows

    def __enter__(self) -> WechatBill:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._file.discard()

    def render(self, plan: ChunkPlan) -> tuple[BillChunk, pa.Array]:
        """The chunk's bill rows and totals, plus every key's canonical channel_txn_id."""
        txn = self._txn(plan)
        refund_id = self._refund_id(plan)
        pays, refunds = plan.channel_rows({"txn": txn, "refund_id": refund_id})
        lines = pa.concat_arrays([self._pay_lines(pays), self._refund_lines(refunds)])
        # Rows keep key order: the two kinds are built apart, then interleaved back.
        order = pc.sort_indices(pa.concat_arrays([column(pays, "key"), column(refunds, "key")]))
        chunk = BillChunk(payload(pc.take(lines, order)), BillTotals.of(pays, refunds))
        # Canonical channel_txn_id: 微信订单号, for a refund its 微信退款单号.
        return chunk, pc.if_else(plan.column("refund"), refund_id, txn)

    def append(self, chunk: BillChunk) -> None:
        self._file.write(chunk.data)
        self.totals.add(chunk.totals)

    def finish(self) -> list[Path]:
        """Write the summary from the accumulated totals and put the bill in place."""
        tail = SUMMARY_HEADER + NEWLINE + summary_line(self.totals) + NEWLINE
        self._file.write(tail.encode())
        return [self._file.commit()]

    def _common(self, keys: pa.Table) -> dict[str, Part]:
        draw = column(keys, "pick")
        return {
            "time": clock(column(keys, "seconds")),
            "openid": Lookup(self._openids, bits(draw, 0, 10)),
            "type": pool(TRADE_TYPES, bits(draw, 10, 4)),
            "bank": pool(BANKS, bits(draw, 14, 4)),
            "product": pool(PRODUCTS, bits(draw, 18, 4)),
            "attach": pool(ATTACHES, bits(draw, 22, 2)),
            "rate": pool(_RATE_TEXT, column(keys, "rate_bp")),
            # Fees are whole fen (see plan._fee): yuan text plus three zero decimals.
            "fee": yuan(pc.divide(pc.abs(column(keys, "fee")), lit(1_000))),
        }

    def _pay_lines(self, pays: pa.Table) -> pa.Array:
        c = self._common(pays)
        amount, coupon = column(pays, "amount"), column(pays, "coupon")
        return concat(
            [
                self._day, c["time"], self._merchant, column(pays, "txn"), ",`",
                column(pays, "order_id"), ",`", c["openid"], ",`", c["type"], ",`SUCCESS,`",
                c["bank"], ",`CNY,`", yuan(amount), ",`", yuan(coupon),
                ",`0,`0,`0.00,`0.00,`,`,`", c["product"], ",`", c["attach"], ",`", c["fee"],
                "000,`", c["rate"], ",`", yuan(pc.add(amount, coupon)), ",`0.00,`" + NEWLINE,
            ]
        )  # fmt: skip

    def _refund_lines(self, refunds: pa.Table) -> pa.Array:
        c = self._common(refunds)
        amount = yuan(column(refunds, "amount"))
        draw = column(refunds, "pick")
        # A refund's fee is negative unless it rounded to nothing ("0.00000", not "-0").
        sign = pool(("", "-"), pc.cast(pc.less(column(refunds, "fee"), lit(0)), pa.int64()))
        return concat(
            [
                self._day, c["time"], self._merchant, column(refunds, "txn"), ",`",
                column(refunds, "origin_order_id"), ",`", c["openid"], ",`", c["type"],
                ",`REFUND,`", c["bank"], ",`CNY,`0.00,`0.00,`", column(refunds, "refund_id"),
                ",`", column(refunds, "order_id"), ",`", amount, ",`0.00,`",
                pool(REFUND_TYPES, bits(draw, 24, 4)), ",`SUCCESS,`", c["product"], ",`",
                c["attach"], ",`", sign, c["fee"], "000,`", c["rate"], ",`0.00,`", amount,
                ",`" + NEWLINE,
            ]
        )  # fmt: skip

    def _txn(self, plan: ChunkPlan) -> pa.Array:
        # 微信订单号: 4200000 + 3 digits + order date + 10 digits, 28 in all. A refund row
        # repeats the refunded order's number, from the day that order was paid.
        refund = plan.column("refund")
        key = pc.if_else(refund, plan.column("origin_key"), plan.column("key"))
        back = pc.if_else(refund, plan.column("origin_back"), lit(0))
        middle = pc.add(pc.multiply(back, lit(_TXN_MIDDLES)), modulo(key, _TXN_MIDDLES))
        tail = fixed_digits(key, 282_475_249, self._offset, 10)
        return concat([Lookup(self._txn_heads, middle), tail])

    def _refund_id(self, plan: ChunkPlan) -> pa.Array:
        # 微信退款单号: 5030 + 6 digits + refund date + 11 digits, 29 in all; "0" on payments.
        refund = plan.column("refund")
        key = plan.column("key").filter(refund)
        middle = fixed_digits(key, 7_919, self._offset, 6)
        tail = fixed_digits(key, 1_977_326_743, self._offset, 11)
        refund_id = concat(["5030", middle, self.spec.date_text(), tail])
        zeros = pa.repeat(lit("0"), plan.size)
        return pc.replace_with_mask(zeros, refund, refund_id)


def _openid(rng: random.Random) -> str:
    return "o" + "".join(rng.choices(_OPENID_ALPHABET, k=27))
