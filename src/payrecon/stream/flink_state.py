"""One step of one order id inside Flink, as pure functions (no PyFlink).

The Flink job keeps, per order id, the :class:`~payrecon.core.stream.KeyMatcher`
snapshot as JSON text in a ``ValueState`` and at most one event-time timer. Each element
or timer is one :class:`KeyStep`: restore the key, let it handle the event or the timer,
then say which timer to delete, which to register, what to store (``None``: clear the
state) and what to emit. The job only applies the step; this module is where the
equivalence with the local runtime lives, and it is tested without a cluster.

Why timers sit one millisecond early: Flink's bounded-out-of-orderness watermark is
``max ts - out_of_orderness - 1`` and a timer fires when the watermark reaches it, while
the local runtime's watermark is ``max ts - out_of_orderness``. A Flink timer at
``notify_at - 1`` therefore fires exactly when the local runtime's timer at ``notify_at``
would; :func:`on_timer` adds the millisecond back before asking the key.

Outputs and dead letters are rendered exactly as the local JSON-lines sinks write them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from payrecon.core.stream import KeyMatcher, MatcherConfig, StreamEvent, StreamOutput
from payrecon.stream.events import DeadLetter
from payrecon.stream.sinks import DEAD_LETTER_FIELDS, output_from_record, output_record

TIMER_LEAD_MS = 1


@dataclass(frozen=True)
class KeyStep:
    """What the Flink function does after one element or timer of one key."""

    outputs: list[StreamOutput]
    state: str | None  # the KeyMatcher snapshot as JSON; None clears the state
    delete_timer: int | None  # a Flink timer to delete
    register_timer: int | None  # a Flink timer to register


def flink_timer(notify_at: int | None) -> int | None:
    """The Flink timer for a key timer at ``notify_at`` (see the module docstring)."""
    return None if notify_at is None else notify_at - TIMER_LEAD_MS


def on_event(state: str | None, event: StreamEvent, config: MatcherConfig) -> KeyStep:
    """An event of the key whose ValueState holds ``state``."""
    key = _restore(state, event.order_id, config)
    before = key.notify_at()
    return _step(key, before, key.on_event(event))


def on_timer(state: str | None, flink_ts: int, config: MatcherConfig) -> KeyStep:
    """The Flink timer at ``flink_ts`` fired for the key whose ValueState holds ``state``."""
    if state is None:  # nothing pending: a timer left over from a restore, say
        return KeyStep([], None, None, None)
    key = _restore(state, "", config)
    before = key.notify_at()
    return _step(key, before, key.on_timer(flink_ts + TIMER_LEAD_MS))


def _restore(state: str | None, order_id: str, config: MatcherConfig) -> KeyMatcher:
    if state is None:
        return KeyMatcher(order_id, config)
    return KeyMatcher.restore(json.loads(state), config)


def _step(key: KeyMatcher, before: int | None, outputs: list[StreamOutput]) -> KeyStep:
    after = key.notify_at()
    changed = before != after
    return KeyStep(
        outputs=outputs,
        state=None if key.is_empty else json.dumps(key.snapshot(), separators=(",", ":")),
        delete_timer=flink_timer(before) if changed else None,
        register_timer=flink_timer(after) if changed else None,
    )


def output_json(output: StreamOutput) -> str:
    """One output as the local JSON-lines sink writes it (without the newline)."""
    return json.dumps(output_record(output), ensure_ascii=False)


def output_from_json(text: str) -> StreamOutput:
    """Read back a line written by :func:`output_json` (or by the local sink)."""
    return output_from_record(json.loads(text))


def dead_letter_json(letter: DeadLetter) -> str:
    """One dead letter as the local dead-letter sink writes it."""
    record = asdict(letter)
    return json.dumps({name: record[name] for name in DEAD_LETTER_FIELDS}, ensure_ascii=False)


def dead_letter_from_json(text: str) -> DeadLetter:
    """Read back a line written by :func:`dead_letter_json`."""
    return DeadLetter(**json.loads(text))
