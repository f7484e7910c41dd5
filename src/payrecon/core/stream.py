"""Streaming pay/receipt matcher: pure per-key logic, watermarks and timers (no I/O).

The same code runs in the local runtime and inside a PyFlink ``KeyedCoProcessFunction``;
time is always passed in, never read from a clock (the Bytewax model).

* :class:`KeyMatcher` is the state of one order id. A pay with no receipt sets a timer at
  ``pay.ts + receipt_timeout``; a receipt with no pay one at ``receipt.ts + pay_timeout``.
* :class:`Watermarks` tracks event time per input: ``max ts seen - out_of_orderness``;
  the effective watermark is the minimum over the inputs, leaving out an input that has
  been silent (in processing time) longer than the idleness timeout. An ended input counts
  as +∞ (:data:`END_OF_TIME`); before any event the watermark is :data:`NO_WATERMARK`.
* :class:`StreamMatcher` keys the events, keeps a timer queue ordered by
  ``(ts, order_id)`` and fires every timer at or below the effective watermark.

Semantics decided here:

* ``matched`` carries both timestamps and amounts; ``amount_mismatch`` is emitted right
  after it when both amounts are known and differ. State and timer are then cleared.
* Pay and receipt match when the later one is strictly less than the earlier one's
  timeout after it, in event time (``gap < timeout``; the timeout of whichever side came
  first in event time). An event of a key at or after that key's pending timer first
  expires the pending side (the event proves event time has passed the timer), exactly
  what happens when the watermark reaches the timer first. A counterpart that arrives
  late in processing order but lies too far *before* the pending side is alerted as
  unmatched at once, and the pending side keeps waiting. So for on-time input with at
  most one event per side and order the outputs depend only on event timestamps, not on
  arrival order, watermark lag or how sparse the stream is (the output order may differ).
* A second event for the pending side is a ``duplicate`` alert; it does not reset the
  timer. Duplicates are detected only while a side is pending: after a match or a timeout
  the state is gone (as in Flink), so the next event starts a new pending side. In
  particular a receipt arriving after its pay's timer fired becomes a new pending receipt
  and alerts ``unmatched_receipt`` when its own timer fires. Which event is the duplicate
  follows arrival order.
* An event is late when its timestamp is below the current effective watermark. Late
  events are counted in ``StreamMatcher.late_events`` and still processed like any other;
  a timer they register behind the watermark fires at once, as a Flink timer would.
  ``process`` handles the event first, then fires the timers its watermark makes due.
* The effective watermark never goes back. When every input that has not ended is idle it
  is the maximum of the inputs' watermarks (Flink's ``StatusWatermarkValve``).
* ``alert_id`` hashes the output type, order id and both timestamps (plus, for a
  duplicate, the pending event's timestamp and the duplicate's sequence number), so a
  replayed stream yields the same ids and downstream de-duplication works.
* Snapshots are plain JSON-serialisable dicts. They keep event-time state (pending sides,
  timers, per-input max timestamps, the emitted watermark) but not processing time: after
  a restore the idleness clocks start again from the first ``now_ms`` seen. ``raw`` is not
  kept in state (no output carries it).
"""

from __future__ import annotations

import hashlib
import heapq
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from payrecon.errors import ConfigError, InputError

Side = Literal["pay", "receipt"]
OutputType = Literal[
    "matched", "amount_mismatch", "unmatched_pay", "unmatched_receipt", "duplicate"
]

SIDES: tuple[Side, Side] = ("pay", "receipt")
NO_WATERMARK = -(2**63)  # Flink's Long.MIN_VALUE: no event seen yet
END_OF_TIME = 2**63 - 1  # Flink's Long.MAX_VALUE: the input has ended
SNAPSHOT_VERSION = 1


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One pay or receipt for an order, at event time ``ts_ms``; ``amount`` in minor units."""

    side: Side
    order_id: str
    ts_ms: int
    amount: int | None = None
    raw: Mapping[str, Any] | None = field(default=None, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.side not in SIDES:
            raise InputError(f"event side must be 'pay' or 'receipt', not {self.side!r}")


@dataclass(frozen=True, slots=True)
class StreamOutput:
    """A match or an alert for one order; fields of a side that is absent are ``None``."""

    type: OutputType
    order_id: str
    pay_ts_ms: int | None
    receipt_ts_ms: int | None
    pay_amount: int | None
    receipt_amount: int | None
    alert_id: str


@dataclass(frozen=True)
class MatcherConfig:
    """Timeouts and watermark settings, all in milliseconds."""

    receipt_timeout_ms: int = 5000
    pay_timeout_ms: int = 3000
    out_of_orderness_ms: int = 0
    idle_timeout_ms: int | None = None

    def __post_init__(self) -> None:
        values = (self.receipt_timeout_ms, self.pay_timeout_ms, self.out_of_orderness_ms)
        if min(values) < 0 or (self.idle_timeout_ms is not None and self.idle_timeout_ms < 0):
            raise ConfigError("stream matcher timeouts must not be negative")

    def timeout_for(self, pending: Side) -> int:
        """How long a pending side waits for its counterpart."""
        return self.receipt_timeout_ms if pending == "pay" else self.pay_timeout_ms


def alert_id(
    kind: OutputType, order_id: str, pay_ts: int | None, receipt_ts: int | None, *extra: int
) -> str:
    """A deterministic id for an output: the same content always hashes the same."""
    text = json.dumps([kind, order_id, pay_ts, receipt_ts, *extra])
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def _output(kind: OutputType, events: list[StreamEvent], *extra: int) -> StreamOutput:
    by_side = {event.side: event for event in events}
    pay, receipt = by_side.get("pay"), by_side.get("receipt")
    pay_ts = pay.ts_ms if pay else None
    receipt_ts = receipt.ts_ms if receipt else None
    return StreamOutput(
        type=kind,
        order_id=events[0].order_id,
        pay_ts_ms=pay_ts,
        receipt_ts_ms=receipt_ts,
        pay_amount=pay.amount if pay else None,
        receipt_amount=receipt.amount if receipt else None,
        alert_id=alert_id(kind, events[0].order_id, pay_ts, receipt_ts, *extra),
    )


class KeyMatcher:
    """The state of one order id: at most one pending side and its timer."""

    __slots__ = ("_duplicates", "_pending", "_timer", "config", "order_id")

    def __init__(self, order_id: str, config: MatcherConfig) -> None:
        self.order_id = order_id
        self.config = config
        self._pending: StreamEvent | None = None
        self._timer: int | None = None
        self._duplicates = 0

    @property
    def is_empty(self) -> bool:
        """True when nothing is pending, so the key can be dropped."""
        return self._pending is None

    def notify_at(self) -> int | None:
        """Event time of the pending timer, if any."""
        return self._timer

    def on_event(self, event: StreamEvent) -> list[StreamOutput]:
        """Take one event of this order; an event at or past the timer expires it first."""
        if event.order_id != self.order_id:
            raise InputError(f"event for {event.order_id!r} sent to key {self.order_id!r}")
        return self.on_timer(event.ts_ms) + self._accept(event)

    def on_timer(self, ts_ms: int) -> list[StreamOutput]:
        """Event time reached ``ts_ms``: alert the pending side if its timer is due."""
        if self._pending is None or self._timer is None or ts_ms < self._timer:
            return []
        pending = self._pending
        self._clear()
        return [_unmatched(pending)]

    def _accept(self, event: StreamEvent) -> list[StreamOutput]:
        pending = self._pending
        if pending is None:
            # What the decoder parsed (``raw``) is not kept while the side waits: state is
            # the bytes per pending order.
            self._pending = (
                event
                if event.raw is None
                else StreamEvent(event.side, event.order_id, event.ts_ms, event.amount)
            )
            self._timer = event.ts_ms + self.config.timeout_for(event.side)
            return []
        if pending.side == event.side:
            self._duplicates += 1
            return [_output("duplicate", [event], pending.ts_ms, self._duplicates)]
        if event.ts_ms < pending.ts_ms and not self._within(event, pending):
            return [_unmatched(event)]  # too early: it timed out before the pending side came
        self._clear()
        return _matched(pending, event)

    def _within(self, first: StreamEvent, second: StreamEvent) -> bool:
        return second.ts_ms - first.ts_ms < self.config.timeout_for(first.side)

    def _clear(self) -> None:
        self._pending, self._timer, self._duplicates = None, None, 0

    def snapshot(self) -> dict[str, Any]:
        """Plain, JSON-serialisable state."""
        pending = self._pending
        return {
            "order_id": self.order_id,
            "pending": None if pending is None else _event_state(pending),
            "timer": self._timer,
            "duplicates": self._duplicates,
        }

    @classmethod
    def restore(cls, state: Mapping[str, Any], config: MatcherConfig) -> KeyMatcher:
        """Rebuild a key from :meth:`snapshot`."""
        key = cls(str(state["order_id"]), config)
        pending = state["pending"]
        key._pending = None if pending is None else _event_from_state(key.order_id, pending)
        key._timer = state["timer"]
        key._duplicates = int(state["duplicates"])
        return key


def _unmatched(event: StreamEvent) -> StreamOutput:
    kind: OutputType = "unmatched_pay" if event.side == "pay" else "unmatched_receipt"
    return _output(kind, [event])


def _matched(first: StreamEvent, second: StreamEvent) -> list[StreamOutput]:
    outputs = [_output("matched", [first, second])]
    amounts = (first.amount, second.amount)
    if None not in amounts and amounts[0] != amounts[1]:
        outputs.append(_output("amount_mismatch", [first, second]))
    return outputs


def _event_state(event: StreamEvent) -> dict[str, Any]:
    return {"side": event.side, "ts_ms": event.ts_ms, "amount": event.amount}


def _event_from_state(order_id: str, state: Mapping[str, Any]) -> StreamEvent:
    return StreamEvent(cast(Side, state["side"]), order_id, int(state["ts_ms"]), state["amount"])


class Watermarks:
    """Event-time progress of the two inputs, with idleness measured in processing time."""

    def __init__(self, out_of_orderness_ms: int = 0, idle_timeout_ms: int | None = None) -> None:
        self.out_of_orderness_ms = out_of_orderness_ms
        self.idle_timeout_ms = idle_timeout_ms
        self._max_ts: dict[str, int] = {}
        self._last_active_ms: dict[str, int] = {}
        self._ended: set[str] = set()
        self._start_ms: int | None = None
        self._emitted = NO_WATERMARK

    @property
    def emitted(self) -> int:
        """The last effective watermark returned by :meth:`current`."""
        return self._emitted

    def observe(self, side: Side, ts_ms: int, now_ms: int) -> None:
        """Record an event of ``side`` at event time ``ts_ms``, seen at processing time."""
        self._started(now_ms)
        self._max_ts[side] = max(ts_ms, self._max_ts.get(side, NO_WATERMARK))
        self._last_active_ms[side] = now_ms

    def end(self, side: Side) -> None:
        """The bounded input ``side`` has no more events: its watermark becomes +∞."""
        self._ended.add(side)

    def is_late(self, ts_ms: int) -> bool:
        """True for an event behind the current effective watermark."""
        return ts_ms < self._emitted

    def input_watermark(self, side: Side) -> int:
        """One input's watermark: max ts seen minus the allowed out-of-orderness."""
        if side in self._ended:
            return END_OF_TIME
        if side not in self._max_ts:
            return NO_WATERMARK
        return max(NO_WATERMARK, self._max_ts[side] - self.out_of_orderness_ms)

    def is_idle(self, side: Side, now_ms: int) -> bool:
        """True for a live input silent longer than the idleness timeout."""
        if self.idle_timeout_ms is None or side in self._ended:
            return False
        since = self._last_active_ms.get(side, self._started(now_ms))
        return now_ms - since > self.idle_timeout_ms

    def current(self, now_ms: int) -> int:
        """The effective watermark at processing time ``now_ms``; it never goes back."""
        self._started(now_ms)
        marks = [self.input_watermark(side) for side in SIDES]
        active = [
            mark for side, mark in zip(SIDES, marks, strict=True) if not self.is_idle(side, now_ms)
        ]
        computed = min(active) if active else max(marks)
        self._emitted = max(self._emitted, computed)
        return self._emitted

    def _started(self, now_ms: int) -> int:
        if self._start_ms is None:
            self._start_ms = now_ms
        return self._start_ms

    def snapshot(self) -> dict[str, Any]:
        """Event-time state only; idleness clocks restart after a restore."""
        return {
            "max_ts": dict(sorted(self._max_ts.items())),
            "ended": sorted(self._ended),
            "emitted": self._emitted,
        }

    @classmethod
    def restore(cls, state: Mapping[str, Any], config: MatcherConfig) -> Watermarks:
        """Rebuild from :meth:`snapshot`."""
        marks = cls(config.out_of_orderness_ms, config.idle_timeout_ms)
        marks._max_ts = {str(side): int(ts) for side, ts in state["max_ts"].items()}
        marks._ended = {str(side) for side in state["ended"]}
        marks._emitted = int(state["emitted"])
        return marks


class StreamMatcher:
    """All keys, the watermarks and the timer queue of one matcher instance."""

    def __init__(self, config: MatcherConfig | None = None) -> None:
        self.config = config or MatcherConfig()
        self.watermarks = Watermarks(self.config.out_of_orderness_ms, self.config.idle_timeout_ms)
        self.late_events = 0
        self._keys: dict[str, KeyMatcher] = {}
        self._timers: list[tuple[int, str]] = []  # may hold stale entries; checked on pop
        self._queued: set[tuple[int, str]] = set()  # what _timers holds, for O(1) look-up

    @property
    def pending_keys(self) -> int:
        """How many order ids have a side waiting."""
        return len(self._keys)

    def process(self, event: StreamEvent, now_ms: int) -> list[StreamOutput]:
        """Take one event at processing time ``now_ms``, then fire the timers now due."""
        if self.watermarks.is_late(event.ts_ms):
            self.late_events += 1
        self.watermarks.observe(event.side, event.ts_ms, now_ms)
        key = self._keys.get(event.order_id) or KeyMatcher(event.order_id, self.config)
        outputs = key.on_event(event)
        self._retain(key)
        return outputs + self.advance(now_ms)

    def advance(self, now_ms: int) -> list[StreamOutput]:
        """Fire every timer at or below the effective watermark, in (ts, order id) order."""
        return self._fire_until(self.watermarks.current(now_ms))

    def end(self, side: Side, now_ms: int) -> list[StreamOutput]:
        """One bounded input has ended; fire what the new watermark allows."""
        self.watermarks.end(side)
        return self.advance(now_ms)

    def finish(self) -> list[StreamOutput]:
        """Both inputs have ended: the watermark is +∞ and every pending timer fires."""
        for side in SIDES:
            self.watermarks.end(side)
        return self._fire_until(self.watermarks.current(END_OF_TIME))

    def _fire_until(self, watermark: int) -> list[StreamOutput]:
        outputs: list[StreamOutput] = []
        while self._timers and self._timers[0][0] <= watermark:
            ts_ms, order_id = heapq.heappop(self._timers)
            self._queued.discard((ts_ms, order_id))
            key = self._keys.get(order_id)
            if key is not None and key.notify_at() == ts_ms:
                outputs += key.on_timer(ts_ms)
                self._retain(key)
        return outputs

    def _retain(self, key: KeyMatcher) -> None:
        if key.is_empty:
            self._keys.pop(key.order_id, None)
            return
        if self._keys.get(key.order_id) is not key:
            self._keys[key.order_id] = key
        timer = key.notify_at()
        if timer is not None:
            entry = (timer, key.order_id)  # one tuple, shared by the heap and the set
            if entry not in self._queued:
                self._queued.add(entry)
                heapq.heappush(self._timers, entry)

    def snapshot(self) -> dict[str, Any]:
        """The whole state as plain, JSON-serialisable dicts (for a checkpoint)."""
        return {
            "version": SNAPSHOT_VERSION,
            "keys": [self._keys[order_id].snapshot() for order_id in sorted(self._keys)],
            "watermarks": self.watermarks.snapshot(),
            "late_events": self.late_events,
        }

    @classmethod
    def restore(
        cls, state: Mapping[str, Any], config: MatcherConfig | None = None
    ) -> StreamMatcher:
        """Rebuild a matcher from :meth:`snapshot`; the timer queue is derived from the keys."""
        if state.get("version") != SNAPSHOT_VERSION:
            raise InputError(f"unknown stream matcher snapshot version {state.get('version')!r}")
        matcher = cls(config)
        matcher.watermarks = Watermarks.restore(state["watermarks"], matcher.config)
        matcher.late_events = int(state["late_events"])
        for key_state in state["keys"]:
            matcher._retain(KeyMatcher.restore(key_state, matcher.config))
        return matcher
