"""Fixed text of Alipay's trade bill: markers, headers, footers, stores and buyers."""

from __future__ import annotations

import random
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc

from payrecon.core.money import format_minor
from payrecon.generator.columns import bits, column, lit
from payrecon.generator.output import BillTotals

NEWLINE = "\r\n"
DETAIL_START = "#" + "-" * 41 + "业务明细列表" + "-" * 40
DETAIL_END = "#" + "-" * 41 + "业务明细列表结束" + "-" * 36
SUMMARY_START = "#" + "-" * 41 + "业务汇总列表" + "-" * 40
SUMMARY_END = "#" + "-" * 40 + "业务汇总列表结束" + "-" * 37
HEADER = (
    "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,"
    "对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,"
    "商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,"
    "退款批次号/请求号,服务费（元）,分润（元）,备注"
)
SUMMARY_HEADER = (
    "门店编号,门店名称,交易订单总笔数,退款订单总笔数,订单金额（元）,商家实收（元）,"
    "支付宝优惠（元）,商家优惠（元）,卡消费金额（元）,服务费（元）,分润（元）,实收净额（元）"
)
# (门店编号, 门店名称, 操作员); most API payments have no store.
STORES = (
    ("", "", ""),
    ("alipay_store", "alipay_store", "alipay"),
    ("NJ0001", "南京西路店", "收银员01"),
)
_STORE_OF_DRAW = pa.array([0, 0, 1, 2], pa.int64())  # two random bits -> store, weighted
_GIVEN = "津水庚辰伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华博"
_MAILS = ("qq.com", "163.com", "126.com", "sina.com")


def store_index(pick: pa.Array) -> pa.Array:
    """Which store a row belongs to, from its random bits (shared by rows and summary)."""
    return pc.take(_STORE_OF_DRAW, bits(pick, 10, 2))


def stamp(moment: datetime) -> str:
    """``2019年09月16日 00:00:00``, the form of Alipay's preamble and export lines."""
    return f"{moment:%Y}年{moment:%m}月{moment:%d}日 {moment:%H:%M:%S}"


def buyers(rng: random.Random, count: int = 1024) -> list[str]:
    """Masked counterpart accounts: ``*津水(602***@qq.com)``, ``**博(156******89)``."""
    return [_buyer(rng) for _ in range(count)]


def _buyer(rng: random.Random) -> str:
    name = "*" * rng.randint(1, 2) + "".join(rng.choices(_GIVEN, k=rng.randint(1, 2)))
    if rng.random() < 0.5:
        account = f"1{rng.randrange(30, 99)}******{rng.randrange(100):02d}"
    else:
        account = f"{rng.randrange(100, 1000)}***@{rng.choice(_MAILS)}"
    return f"{name}({account})"


def footer(totals: BillTotals) -> list[str]:
    """The ``#交易合计`` and ``#退款合计`` lines (refunds written negative, as Alipay does)."""
    return [
        f"#交易合计：{totals.pays}笔，商家实收共{format_minor(totals.pay_amount)}元，"
        f"商家优惠共{format_minor(totals.coupon)}元",
        f"#退款合计：{totals.refunds}笔，商家实收退款共{format_minor(-totals.refund_amount)}元，"
        "商家优惠退款共0.00元",
    ]


def summary_row(totals: BillTotals, store: str, name: str, tab: str = "\t") -> str:
    """One line of the summary file: a store's totals, or the ``合计`` line."""
    received = totals.pay_amount - totals.refund_amount
    fee = totals.fee // 1_000  # Alipay fees are whole fen: exact
    values = (
        f"{store}{tab}",
        f"{name}{tab}",
        str(totals.pays),
        str(totals.refunds),
        format_minor(received + totals.coupon),
        format_minor(received),
        "0.00",
        format_minor(totals.coupon),
        "0.00",
        format_minor(fee),
        "0.00",
        format_minor(received - fee),
    )
    return ",".join(values)


def by_store(pays: pa.Table, refunds: pa.Table) -> dict[int, BillTotals]:
    """Totals of a chunk's rows per store index, for the summary file."""
    pay_store = store_index(column(pays, "pick"))
    refund_store = store_index(column(refunds, "pick"))
    stores: dict[int, BillTotals] = {}
    for index in range(len(STORES)):
        mine = BillTotals.of(
            pays.filter(pc.equal(pay_store, lit(index))),
            refunds.filter(pc.equal(refund_store, lit(index))),
        )
        if mine.rows:
            stores[index] = mine
    return stores
