"""Building fetched files without a network, for the store and retry tests."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from payrecon.fetch.base import FetchedFile, Provenance, Spool

DAY = date(2026, 11, 20)
FETCHED_AT = datetime(2026, 11, 21, 2, 30, tzinfo=UTC)


def fetched(
    staging: Path,
    content: bytes,
    *,
    bill_type: str = "ALL",
    merchant: str = "1601959334",
    day: date = DAY,
) -> FetchedFile:
    """A staged file as a fetcher would hand it to the store."""
    with Spool(staging) as spool:
        spool.write(content)
        spooled = spool.finish()
    origin = Provenance(
        "wechat", merchant, day, bill_type, "https://api.example/v3/billdownload/file", FETCHED_AT
    )
    return spooled.fetched(f"wechat_{merchant}_{day}_{bill_type}.csv", origin)
