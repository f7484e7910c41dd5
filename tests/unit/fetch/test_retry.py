"""fetch_with_retry: backoff while not published, a clear failure at the deadline."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from payrecon.errors import (
    BillDeadlineError,
    BillIntegrityError,
    BillNotReadyError,
    ChannelUnavailableError,
)
from payrecon.fetch.base import FetchedFile
from payrecon.fetch.retry import fetch_with_retry
from payrecon.stream.backoff import Backoff
from tests.unit.fetch.helpers import DAY, fetched


class ScriptedFetcher:
    """Raises the scripted errors in turn, then returns one file."""

    def __init__(self, staging: Path, errors: list[Exception]) -> None:
        self.staging = staging
        self.errors = errors
        self.calls = 0

    def fetch(self, channel: str, merchant: str, day: date) -> list[FetchedFile]:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return [fetched(self.staging, b"the bill")]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def time(self) -> float:
        return self.now


def retry(fetcher: ScriptedFetcher, clock: Clock, deadline: timedelta) -> list[FetchedFile]:
    return fetch_with_retry(
        fetcher,
        "wechat",
        "1601959334",
        DAY,
        deadline=deadline,
        backoff=Backoff(10.0, 2.0, 60.0),
        sleep=clock.sleep,
        clock=clock.time,
    )


def test_not_ready_is_retried_with_backoff_until_it_is(tmp_path: Path) -> None:
    errors: list[Exception] = [BillNotReadyError("No Bill Exist")] * 4
    errors.insert(2, ChannelUnavailableError("HTTP 503"))
    fetcher, clock = ScriptedFetcher(tmp_path, errors), Clock()

    [result] = retry(fetcher, clock, timedelta(hours=1))

    assert result.path.read_bytes() == b"the bill"
    assert clock.slept == [10.0, 20.0, 40.0, 60.0, 60.0]
    assert fetcher.calls == 6


def test_the_last_attempt_is_at_the_deadline_then_it_fails_clearly(tmp_path: Path) -> None:
    fetcher = ScriptedFetcher(tmp_path, [BillNotReadyError("No Bill Exist")] * 10)
    clock = Clock()

    with pytest.raises(BillDeadlineError) as caught:
        retry(fetcher, clock, timedelta(seconds=100))

    assert clock.slept == [10.0, 20.0, 40.0, 30.0]  # the last wait ends at the deadline
    assert fetcher.calls == 5
    assert str(caught.value) == (
        "wechat merchant 1601959334, 2026-11-20: the bill is still not published"
        " (5 attempts until the deadline (1m40s)): No Bill Exist"
    )
    assert isinstance(caught.value.__cause__, BillNotReadyError)


def test_no_deadline_means_one_attempt(tmp_path: Path) -> None:
    fetcher, clock = ScriptedFetcher(tmp_path, [BillNotReadyError("404")]), Clock()

    with pytest.raises(BillDeadlineError, match=r"tried once; give a deadline"):
        retry(fetcher, clock, timedelta(0))

    assert (fetcher.calls, clock.slept) == (1, [])


def test_an_unreachable_channel_at_the_deadline_stays_unavailable(tmp_path: Path) -> None:
    fetcher = ScriptedFetcher(tmp_path, [ChannelUnavailableError("timed out")] * 3)

    with pytest.raises(ChannelUnavailableError, match=r"gave up \(3 attempts") as caught:
        retry(fetcher, Clock(), timedelta(seconds=30))

    assert not isinstance(caught.value, BillNotReadyError)


def test_other_errors_are_not_retried(tmp_path: Path) -> None:
    fetcher, clock = ScriptedFetcher(tmp_path, [BillIntegrityError("SHA1 differs")]), Clock()

    with pytest.raises(BillIntegrityError):
        retry(fetcher, clock, timedelta(hours=1))

    assert (fetcher.calls, clock.slept) == (1, [])
