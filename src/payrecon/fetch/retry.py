"""Retrying a fetch while the bill is not published, until a deadline.

Channels publish the day's bills in the morning (WeChat from 09:00, advised after
10:00), so an early fetch meets ``No Bill Exist``. :func:`fetch_with_retry` retries that,
and a channel that cannot be reached, with exponential backoff; the last attempt is made
at the deadline itself, after which it fails with :class:`BillDeadlineError`. Time is
passed in (``sleep``, ``clock``), so tests advance a fake clock instead of waiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import date, timedelta

from payrecon.errors import BillDeadlineError, BillNotReadyError, ChannelUnavailableError
from payrecon.fetch.base import FetchedFile, Fetcher
from payrecon.stream.backoff import Backoff

RETRIED = (BillNotReadyError, ChannelUnavailableError)
DEFAULT_BACKOFF = Backoff(60.0, 2.0, 900.0)

WaitCallback = Callable[[Exception, float], None]
"""Told the error and the seconds it will sleep before the next attempt."""


def fetch_with_retry(
    fetcher: Fetcher,
    channel: str,
    merchant: str,
    day: date,
    *,
    deadline: timedelta,
    backoff: Backoff = DEFAULT_BACKOFF,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    on_wait: WaitCallback | None = None,
) -> list[FetchedFile]:
    """``fetcher.fetch(...)``, retried while not published or unreachable, up to ``deadline``.

    ``deadline`` counts from the first attempt; zero means a single attempt. Other
    errors (a refused signature, a bad hash, an invalid date) are raised at once.
    """
    start = clock()
    attempt = 0
    while True:
        try:
            return fetcher.fetch(channel, merchant, day)
        except RETRIED as exc:
            remaining = deadline.total_seconds() - (clock() - start)
            if remaining <= 0:
                what = f"{channel} merchant {merchant}, {day}"
                raise _gave_up(what, exc, attempt + 1, deadline) from exc
            wait = min(backoff.delay(attempt), remaining)
            if on_wait is not None:
                on_wait(exc, wait)
            sleep(wait)
            attempt += 1


def _gave_up(what: str, exc: Exception, attempts: int, deadline: timedelta) -> Exception:
    if deadline <= timedelta(0):
        tried = "tried once; give a deadline (--deadline 30m) to keep trying"
    else:
        tried = f"{attempts} attempts until the deadline ({_duration(deadline)})"
    if isinstance(exc, BillNotReadyError):
        return BillDeadlineError(f"{what}: the bill is still not published ({tried}): {exc}")
    return ChannelUnavailableError(f"{what}: gave up ({tried}): {exc}")


def _duration(span: timedelta) -> str:
    """``1h30m``, ``45m``, ``90s``.

    >>> _duration(timedelta(minutes=90)), _duration(timedelta(seconds=90))
    ('1h30m', '1m30s')
    """
    seconds = int(span.total_seconds())
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else ""]
    parts.append(f"{seconds}s" if seconds or not (hours or minutes) else "")
    return "".join(parts)
