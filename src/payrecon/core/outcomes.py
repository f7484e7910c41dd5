"""Outcome kinds of a batch run and the schema of ``outcomes.parquet``.

One outcome row per key: a matched pair is one row. Every record beyond the first with
the same key on the same side is a DUPLICATE row of its own. A row carries both sides'
records as they were (``ledger_*`` and ``channel_*`` columns), so a case opened from it,
or the suspense pool built from it, needs nothing else.
"""

from __future__ import annotations

from enum import StrEnum

import pyarrow as pa

from payrecon.core.schema import CANONICAL


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


class Side(StrEnum):
    LEDGER = "ledger"
    CHANNEL = "channel"


DISCREPANCIES = tuple(outcome for outcome in Outcome if outcome.is_discrepancy)

# Key columns appear once per outcome row; every other canonical field once per side.
ROW_KEY = ("channel", "kind", "order_id")
SIDE_FIELDS = tuple(f for f in CANONICAL if f.name not in ROW_KEY)

OUTCOMES = pa.schema(
    [
        pa.field("channel", pa.string()),
        pa.field("kind", pa.string()),
        pa.field("order_id", pa.string()),
        pa.field("outcome", pa.string()),
        # Which fields differ, comma-separated ("status,amount"); empty when they agree.
        pa.field("diff_fields", pa.string()),
        # channel - ledger in minor units: positive = 长款 (channel over), negative = 短款.
        pa.field("amount_diff", pa.int64()),
        # For one-sided rows (missing, carried over, duplicate): which side is present.
        pa.field("side", pa.string()),
        # Set when a side of this row came from the suspense pool: the day it was first seen.
        pa.field("carried_from", pa.date32()),
        pa.field("merchant_id", pa.string()),
        pa.field("bill_date", pa.date32()),
        *(pa.field(f"{side}_{f.name}", f.type) for side in Side for f in SIDE_FIELDS),
    ]
)

# The suspense pool: carried-over records as they were, with the side and first-seen day.
POOL = pa.schema([*CANONICAL, pa.field("side", pa.string()), pa.field("carried_from", pa.date32())])
