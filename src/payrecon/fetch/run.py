"""Fetch a day's bills of a channel into the store: what ``payrecon fetch`` does.

Merchants are fetched one after another, sharing one deadline; each merchant's bills go
into the store as soon as they are fetched, so a later failure keeps the earlier ones.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date, timedelta

from payrecon.config import FetchSettings, FetchSource, Settings
from payrecon.errors import ConfigError
from payrecon.fetch.factory import open_fetcher
from payrecon.fetch.retry import WaitCallback, fetch_with_retry
from payrecon.fetch.store import BillStore, StoredBill
from payrecon.stream.backoff import Backoff

BACKOFF_FACTOR = 2.0


def bill_store(settings: Settings) -> BillStore:
    """The store under ``<home>/bills``."""
    return BillStore(settings.home / "bills")


def fetch_bills(
    settings: Settings,
    channel: str,
    day: date,
    *,
    merchant: str | None = None,
    deadline: timedelta | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    on_wait: WaitCallback | None = None,
    on_stored: Callable[[StoredBill], None] | None = None,
) -> list[StoredBill]:
    """Fetch ``channel``'s bills of ``day`` (one merchant or all configured) into the store.

    ``deadline`` (default ``fetch.deadline_seconds``) bounds the retries of bills not
    published yet, across all merchants; then :class:`BillDeadlineError` is raised.
    """
    fetch = settings.fetch
    sources = merchant_sources(fetch, channel, merchant)
    budget = deadline if deadline is not None else timedelta(seconds=fetch.deadline_seconds)
    backoff = Backoff(fetch.retry_initial_seconds, BACKOFF_FACTOR, fetch.retry_max_seconds)
    store = bill_store(settings)
    start = clock()
    stored: list[StoredBill] = []
    for name, source in sources:
        left = max(budget - timedelta(seconds=clock() - start), timedelta(0))
        with open_fetcher(channel, name, source, fetch, store.staging) as fetcher:
            files = fetch_with_retry(
                fetcher,
                channel,
                name,
                day,
                deadline=left,
                backoff=backoff,
                sleep=sleep,
                clock=clock,
                on_wait=on_wait,
            )
        try:
            for fetched in files:
                stored.append(store.put(fetched))
                if on_stored is not None:
                    on_stored(stored[-1])
        finally:
            for fetched in files:
                fetched.path.unlink(missing_ok=True)
    return stored


def merchant_sources(
    fetch: FetchSettings, channel: str, merchant: str | None
) -> list[tuple[str, FetchSource]]:
    """The configured (merchant, source) pairs of ``channel``: one, or all of them."""
    merchants = fetch.channels.get(channel)
    if not merchants:
        known = ", ".join(sorted(fetch.channels)) or "none"
        raise ConfigError(
            f"no fetch source for channel {channel!r} (configured: {known});"
            f" add [fetch.channels.{channel}.<merchant>] to payrecon.toml (docs/fetch.md)"
        )
    if merchant is None:
        return sorted(merchants.items())
    if merchant not in merchants:
        raise ConfigError(
            f"merchant {merchant!r} has no fetch source under channel {channel!r}"
            f" (configured: {', '.join(sorted(merchants))})"
        )
    return [(merchant, merchants[merchant])]
