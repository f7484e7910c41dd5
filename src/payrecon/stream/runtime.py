"""The local runtime for bounded inputs: read, decode, match, send to sinks (no file I/O).

:func:`run_bounded` reads the pay and receipt lines round-robin, one line of each in turn
(the order of arrival), numbering each source's lines from 1. Every decoded event goes
to the :class:`StreamMatcher` at processing time ``clock()``; every output goes to every
sink. When one input is exhausted its side ends (its watermark becomes +∞); at the end
:meth:`StreamMatcher.finish` fires every pending timer, then the sinks are flushed.
Opening and closing files is the caller's business.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from payrecon.core.stream import SIDES, MatcherConfig, Side, StreamMatcher, StreamOutput
from payrecon.stream.events import DeadLetter, EventDecoder, EventFormat
from payrecon.stream.sinks import Sink


@dataclass
class RunStats:
    """What a run saw and emitted."""

    events: Counter[str] = field(default_factory=Counter)  # decoded events by side
    ignored: int = 0
    dead_letters: int = 0
    outputs: Counter[str] = field(default_factory=Counter)  # outputs by type
    late_events: int = 0

    @property
    def alerts(self) -> int:
        """Outputs other than ``matched``."""
        return sum(count for kind, count in self.outputs.items() if kind != "matched")

    @property
    def clean(self) -> bool:
        """True when there was no alert and no dead letter."""
        return self.alerts == 0 and self.dead_letters == 0

    def summary(self) -> str:
        """One line for a log or the terminal."""
        outputs = ", ".join(f"{kind} {count}" for kind, count in sorted(self.outputs.items()))
        return (
            f"{self.events['pay']} pay and {self.events['receipt']} receipt events,"
            f" {self.ignored} ignored, {self.dead_letters} dead letters,"
            f" {self.late_events} late; outputs: {outputs or 'none'}"
        )


class _Run:
    """The state of one bounded run: matcher, decoders, sinks and counts."""

    def __init__(
        self,
        decoders: dict[Side, EventDecoder],
        config: MatcherConfig,
        sinks: Sequence[Sink[StreamOutput]],
        dead_letters: Sink[DeadLetter] | None,
        clock: Callable[[], int],
    ) -> None:
        self.decoders = decoders
        self.matcher = StreamMatcher(config)
        self.sinks = sinks
        self.dead_letters = dead_letters
        self.clock = clock
        self.stats = RunStats()

    def line(self, side: Side, line: str, position: int) -> None:
        """Decode one line and feed the result on."""
        result = self.decoders[side].decode(line, position)
        if isinstance(result, DeadLetter):
            self.stats.dead_letters += 1
            if self.dead_letters is not None:
                self.dead_letters.add(result)
        elif result is not None:
            self.stats.events[side] += 1
            self.emit(self.matcher.process(result, self.clock()))
        else:
            self.stats.ignored += 1

    def end(self, side: Side) -> None:
        """The input of ``side`` is exhausted."""
        self.emit(self.matcher.end(side, self.clock()))

    def finish(self) -> RunStats:
        """Fire every pending timer, flush the sinks and return the counts."""
        self.emit(self.matcher.finish())
        for sink in self.sinks:
            sink.flush()
        if self.dead_letters is not None:
            self.dead_letters.flush()
        self.stats.late_events = self.matcher.late_events
        return self.stats

    def emit(self, outputs: list[StreamOutput]) -> None:
        """Send every output to every sink."""
        for output in outputs:
            self.stats.outputs[output.type] += 1
            for sink in self.sinks:
                sink.add(output)


def _round_robin(
    inputs: dict[Side, Iterable[str]],
) -> Iterator[tuple[Side, str | None, int]]:
    """``(side, line, position)`` one side at a time; ``line`` is ``None`` once exhausted."""
    iterators = {side: iter(lines) for side, lines in inputs.items()}
    positions = dict.fromkeys(iterators, 0)
    while iterators:
        for side in [side for side in SIDES if side in iterators]:
            line = next(iterators[side], None)
            if line is None:
                del iterators[side]
            else:
                positions[side] += 1
            yield side, line, positions[side]


def run_bounded(
    pay_lines: Iterable[str],
    receipt_lines: Iterable[str],
    *,
    fmt: EventFormat,
    config: MatcherConfig,
    sinks: Sequence[Sink[StreamOutput]],
    dead_letters: Sink[DeadLetter] | None,
    pay_source: str,
    receipt_source: str,
    clock: Callable[[], int],
) -> RunStats:
    """Match two bounded inputs read round-robin; every output goes to every sink."""
    decoders: dict[Side, EventDecoder] = {
        "pay": EventDecoder("pay", fmt, pay_source),
        "receipt": EventDecoder("receipt", fmt, receipt_source),
    }
    run = _Run(decoders, config, sinks, dead_letters, clock)
    for side, line, position in _round_robin({"pay": pay_lines, "receipt": receipt_lines}):
        if line is None:
            run.end(side)
        else:
            run.line(side, line, position)
    return run.finish()
