"""The canonical record both sides normalise to, as Arrow schemas.

Bill parsers and ledger readers emit batches of :data:`CANONICAL`; the engines read
nothing else. Amounts are int64 minor units (分); fees are int64 thousandths of a minor
unit, as WeChat writes them (``0.74070`` yuan -> ``74070``).
"""

from __future__ import annotations

from enum import StrEnum

import pyarrow as pa

UTC = "UTC"
TIMESTAMP = pa.timestamp("us", tz=UTC)


class Kind(StrEnum):
    PAY = "PAY"
    REFUND = "REFUND"


class Status(StrEnum):
    """Normalised record status. For a REFUND record it describes the refund itself."""

    SUCCESS = "SUCCESS"
    REFUNDED = "REFUNDED"
    CLOSED = "CLOSED"
    REVOKED = "REVOKED"
    PROCESSING = "PROCESSING"
    FAILED = "FAILED"


CANONICAL = pa.schema(
    [
        pa.field("channel", pa.string(), nullable=False),
        pa.field("merchant_id", pa.string()),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("order_id", pa.string(), nullable=False),
        pa.field("origin_order_id", pa.string()),
        pa.field("channel_txn_id", pa.string()),
        pa.field("status", pa.string(), nullable=False),
        pa.field("amount", pa.int64(), nullable=False),
        # Order total before coupons (WeChat 订单金额) and the coupon part (代金券金额),
        # so a rule can compare a ledger that records order totals.
        pa.field("order_amount", pa.int64()),
        pa.field("coupon_amount", pa.int64()),
        pa.field("fee", pa.int64()),
        pa.field("currency", pa.string(), nullable=False),
        pa.field("txn_time", TIMESTAMP, nullable=False),
        pa.field("bill_date", pa.date32(), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("line_no", pa.int64(), nullable=False),
    ]
)

CANONICAL_NAMES: tuple[str, ...] = tuple(CANONICAL.names)

# Ledger rows that cannot be read are set aside with the reason, never dropped.
QUARANTINE = pa.schema(
    [
        pa.field("source", pa.string(), nullable=False),
        pa.field("line_no", pa.int64()),
        pa.field("order_id", pa.string()),
        pa.field("field", pa.string()),
        pa.field("value", pa.string()),
        pa.field("reason", pa.string(), nullable=False),
    ]
)
