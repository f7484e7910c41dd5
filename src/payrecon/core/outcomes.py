"""Outcome kinds of a batch run and the schema of ``outcomes.parquet``.

One outcome row per key: a matched pair is one row. Every record beyond the first with
the same key on the same side is a DUPLICATE row of its own.
"""

from __future__ import annotations

from enum import StrEnum

import pyarrow as pa

from payrecon.core.schema import TIMESTAMP


class Outcome(StrEnum):
    MATCHED = "MATCHED"
    MISSING_IN_CHANNEL = "MISSING_IN_CHANNEL"  # 本端有、对端无 (银行漏单)
    MISSING_IN_LEDGER = "MISSING_IN_LEDGER"  # 对端有、本端无 (平台漏单)
    AMOUNT_MISMATCH = "AMOUNT_MISMATCH"  # 短款 / 长款
    STATUS_MISMATCH = "STATUS_MISMATCH"
    FEE_MISMATCH = "FEE_MISMATCH"
    DUPLICATE = "DUPLICATE"
    CARRIED_OVER = "CARRIED_OVER"  # 跨日: waiting in the suspense pool

    @property
    def is_discrepancy(self) -> bool:
        """True for outcomes someone has to handle (a carried-over record is still waiting)."""
        return self not in (Outcome.MATCHED, Outcome.CARRIED_OVER)


SIDE_COLUMNS = (
    "amount",
    "order_amount",
    "status",
    "fee",
    "txn_time",
    "source",
    "line_no",
    "channel_txn_id",
    "origin_order_id",
    "merchant_id",
    "currency",
    "bill_date",
)

OUTCOMES = pa.schema(
    [
        pa.field("channel", pa.string()),
        pa.field("merchant_id", pa.string()),
        pa.field("kind", pa.string()),
        pa.field("order_id", pa.string()),
        pa.field("outcome", pa.string()),
        # Which fields differ, comma-separated ("status,amount"); empty when matched.
        pa.field("diff_fields", pa.string()),
        pa.field("ledger_amount", pa.int64()),
        pa.field("channel_amount", pa.int64()),
        # channel - ledger, in minor units: positive = 长款 (platform over), negative = 短款.
        pa.field("amount_diff", pa.int64()),
        pa.field("ledger_status", pa.string()),
        pa.field("channel_status", pa.string()),
        pa.field("ledger_fee", pa.int64()),
        pa.field("channel_fee", pa.int64()),
        pa.field("channel_order_amount", pa.int64()),
        pa.field("ledger_currency", pa.string()),
        pa.field("channel_currency", pa.string()),
        pa.field("ledger_txn_time", TIMESTAMP),
        pa.field("channel_txn_time", TIMESTAMP),
        pa.field("channel_txn_id", pa.string()),
        pa.field("origin_order_id", pa.string()),
        pa.field("bill_date", pa.date32()),
        # Set when a side of this row came from the suspense pool: the day it was first seen.
        pa.field("carried_from", pa.date32()),
        # Which side a CARRIED_OVER or DUPLICATE row stands for: "ledger" or "channel".
        pa.field("side", pa.string()),
        pa.field("ledger_source", pa.string()),
        pa.field("ledger_line", pa.int64()),
        pa.field("channel_source", pa.string()),
        pa.field("channel_line", pa.int64()),
    ]
)
