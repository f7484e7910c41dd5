"""The local runtime: poll two sources, decode, match, send to every sink, checkpoint.

:class:`StreamJob` runs one loop for bounded and unbounded inputs alike. Each round polls
the pay source, then the receipt source, for up to ``batch`` lines each, and feeds the
lines one of each side in turn (:func:`interleave`), every decoded event to the
:class:`StreamMatcher` at processing time ``clock()``. A source that
ends ends its side (its watermark becomes +∞). A round that read nothing calls
:meth:`StreamMatcher.advance`, so an idle input stops holding the watermark back once the
idleness timeout has passed, then sleeps ``poll_interval_s``. When both sides have ended,
:meth:`StreamMatcher.finish` fires every pending timer. ``stop()`` is asked between rounds
(the CLI's signal handler sets it); a stop ends the loop as cleanly as the end of input,
without firing pending timers.

Outputs go to every sink. Sinks are flushed when a round is idle, at least every
``flush_interval_s`` while outputs are waiting, and before each checkpoint.

Checkpoints (every ``checkpoint_interval_s`` of processing time, and at the end) keep
this order, so that a crash at any point loses no output and the state never runs ahead
of the outputs:

1. flush every sink durably (``fsync`` files, Kafka acknowledged, webhook answered);
2. write matcher snapshot + source positions + ended inputs + counts in one SQLite
   transaction;
3. only then commit Kafka offsets to the consumer group.

A restart with the same checkpoint restores the matcher and the counts and opens each
resumable source at its saved position, so what was emitted after the checkpoint is
emitted again, with the same ``alert_id`` (at least once). A checkpoint written at the end
of a finished bounded run makes a restart do nothing.

:func:`run_bounded` is the special case of two in-memory line iterables read one line
of each in turn, with no checkpoint.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Set
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from payrecon.core.stream import SIDES, MatcherConfig, Side, StreamMatcher, StreamOutput
from payrecon.errors import ConfigError
from payrecon.stream.checkpoint import Checkpoint, CheckpointStore
from payrecon.stream.events import DeadLetter, EventDecoder, EventFormat
from payrecon.stream.sinks import Sink
from payrecon.stream.sources import LineIterSource, Position, Source, SourceLine

_log = logging.getLogger(__name__)


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

    def to_json(self) -> dict[str, Any]:
        """Plain counts for a checkpoint."""
        return {
            "events": dict(self.events),
            "ignored": self.ignored,
            "dead_letters": self.dead_letters,
            "outputs": dict(self.outputs),
            "late_events": self.late_events,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> RunStats:
        """Counts from :meth:`to_json`."""
        return cls(
            events=Counter({str(key): int(value) for key, value in data["events"].items()}),
            ignored=int(data["ignored"]),
            dead_letters=int(data["dead_letters"]),
            outputs=Counter({str(key): int(value) for key, value in data["outputs"].items()}),
            late_events=int(data["late_events"]),
        )


@dataclass(frozen=True)
class JobOptions:
    """Pacing of the loop, in seconds of monotonic time; None turns a timer off."""

    batch: int = 512
    poll_interval_s: float = 0.02
    flush_interval_s: float | None = 0.2
    checkpoint_interval_s: float | None = 5.0

    def __post_init__(self) -> None:
        intervals = (self.flush_interval_s, self.checkpoint_interval_s)
        if (
            self.batch < 1
            or self.poll_interval_s < 0
            or any(i is not None and i < 0 for i in intervals)
        ):
            raise ConfigError("stream job batch must be >= 1 and intervals must not be negative")


@dataclass(frozen=True)
class JobResult:
    """How a run ended: ``finished`` (both inputs ended) or ``stopped`` (asked to)."""

    stats: RunStats
    finished: bool
    stopped: bool
    resumed_from: int | None = None  # sequence of the checkpoint restored
    checkpoint: int | None = None  # sequence of the last checkpoint written or restored
    already_finished: bool = False  # the checkpoint was of a finished run: nothing done


def _never() -> bool:
    return False


class Observer(Protocol):
    """Called after each round of the loop, and with ``final=True`` when the run ends."""

    def __call__(self, job: StreamJob, *, final: bool = False) -> None:
        """Look at the job (its stats and matcher); must be cheap."""


class StreamJob:
    """Two sources, the matcher, the sinks and an optional checkpoint store."""

    def __init__(
        self,
        sources: Mapping[Side, Source],
        *,
        fmt: EventFormat,
        config: MatcherConfig,
        sinks: Sequence[Sink[StreamOutput]],
        dead_letters: Sink[DeadLetter] | None = None,
        clock: Callable[[], int],
        store: CheckpointStore | None = None,
        options: JobOptions | None = None,
        timer: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        observer: Observer | None = None,
    ) -> None:
        if set(sources) != set(SIDES):
            raise ConfigError("a stream job needs a pay source and a receipt source")
        self.sources = sources
        self.decoders = {side: EventDecoder(side, fmt, sources[side].name) for side in SIDES}
        self.config = config
        self.matcher = StreamMatcher(config)
        self.sinks = sinks
        self.dead_letters = dead_letters
        self.clock = clock
        self.store = store
        self.options = options or JobOptions()
        self.timer = timer
        self.sleep = sleep
        self.observer = observer
        self.stats = RunStats()
        self._ended: set[Side] = set()
        self._dirty = False  # outputs or dead letters not yet flushed
        self._progress = False  # anything read or emitted since the last checkpoint
        self._last_flush = self._last_checkpoint = timer()
        self._sequence: int | None = None
        self._timed = self.options.flush_interval_s is not None or (
            store is not None and self.options.checkpoint_interval_s is not None
        )

    def run(self, stop: Callable[[], bool] = _never) -> JobResult:
        """Run until both inputs end or ``stop()`` is true; checkpoint at the end."""
        restored = self._restore()
        resumed = None if restored is None else restored.sequence
        if restored is not None and restored.finished:
            return self._result(True, resumed, already_finished=True)
        try:
            self._open(restored)
            self._loop(stop)
            finished = len(self._ended) == len(SIDES)
            if finished:
                self._emit(self.matcher.finish())
            self._checkpoint(finished)
        finally:
            for source in self.sources.values():
                source.close()
        if self.observer is not None:
            self.observer(self, final=True)
        return self._result(finished, resumed)

    def _result(self, finished: bool, resumed: int | None, **extra: bool) -> JobResult:
        self.stats.late_events = self.matcher.late_events
        return JobResult(self.stats, finished, not finished, resumed, self._sequence, **extra)

    # --- the loop -------------------------------------------------------------------------

    def _loop(self, stop: Callable[[], bool]) -> None:
        while len(self._ended) < len(SIDES) and not stop():
            if not self._round():
                self._emit(self.matcher.advance(self.clock()))
                self._idle()
            if self._timed:
                self._tick()
            if self.observer is not None:
                self.observer(self)

    def _round(self) -> bool:
        """Poll each live side once; True when a line was read or an input ended."""
        batches: dict[Side, list[SourceLine]] = {}
        ends: set[Side] = set()
        for side in SIDES:
            if side not in self._ended:
                source = self.sources[side]
                batches[side] = source.poll(self.options.batch)
                if source.ended:
                    ends.add(side)
        self._progress = self._progress or bool(ends) or any(batches.values())
        for side, line in interleave(batches, ends):
            if line is not None:
                self._line(side, line)
            else:
                self._ended.add(side)
                self._emit(self.matcher.end(side, self.clock()))
        return bool(ends) or any(batches.values())

    def _line(self, side: Side, line: SourceLine) -> None:
        if line.error is not None:
            source = self.sources[side].name
            raw = line.text.rstrip("\r\n")
            self._dead(DeadLetter(side, source, line.position, raw, line.error))
            return
        result = self.decoders[side].decode(line.text, line.position)
        if isinstance(result, DeadLetter):
            self._dead(result)
        elif result is not None:
            self.stats.events[side] += 1
            self._emit(self.matcher.process(result, self.clock()))
        else:
            self.stats.ignored += 1

    def _dead(self, letter: DeadLetter) -> None:
        self.stats.dead_letters += 1
        if self.dead_letters is not None:
            self.dead_letters.add(letter)
            self._dirty = True

    def _emit(self, outputs: list[StreamOutput]) -> None:
        """Send every output to every sink."""
        for output in outputs:
            self.stats.outputs[output.type] += 1
            for sink in self.sinks:
                sink.add(output)
        self._dirty = self._dirty or bool(outputs)
        self._progress = self._progress or bool(outputs)

    def _idle(self) -> None:
        if self._dirty and self.options.flush_interval_s is not None:
            self._flush()
        self.sleep(self.options.poll_interval_s)

    def _tick(self) -> None:
        now = self.timer()
        if self._checkpoint_due(now):
            self._checkpoint(False)
            return
        every = self.options.flush_interval_s
        if self._dirty and every is not None and now - self._last_flush >= every:
            self._flush()

    def _checkpoint_due(self, now: float) -> bool:
        every = self.options.checkpoint_interval_s
        if self.store is None or every is None or not self._progress:
            return False  # an idle job does not rewrite the same checkpoint
        return now - self._last_checkpoint >= every

    # --- durability -----------------------------------------------------------------------

    def _flush(self) -> None:
        """Make every output and dead letter so far durable (each sink raises if not)."""
        for sink in self.sinks:
            sink.flush()
        if self.dead_letters is not None:
            self.dead_letters.flush()
        self._dirty = False
        self._last_flush = self.timer()

    def _checkpoint(self, finished: bool) -> None:
        """Flush sinks, then save state and positions, then commit source offsets."""
        self._flush()
        if self.store is None:
            return
        positions: dict[str, Position | None] = {
            side: source.position() for side, source in self.sources.items()
        }
        self.stats.late_events = self.matcher.late_events
        checkpoint = Checkpoint(
            sources=self._identities(),
            matcher=self.matcher.snapshot(),
            positions=dict(positions),
            ended=tuple(sorted(self._ended)),
            stats=self.stats.to_json(),
            finished=finished,
        )
        self._sequence = self.store.save(checkpoint)
        for side, source in self.sources.items():
            source.commit(positions[side])
        self._progress = False
        self._last_checkpoint = self.timer()

    def _identities(self) -> dict[str, str]:
        return {side: source.identity for side, source in self.sources.items()}

    def _restore(self) -> Checkpoint | None:
        checkpoint = None if self.store is None else self.store.load()
        if checkpoint is None:
            return None
        if checkpoint.sources != self._identities():
            raise ConfigError(
                f"checkpoint {self.store.path if self.store else ''} was written for"
                f" {checkpoint.sources}, not {self._identities()}; use another checkpoint"
            )
        self.matcher = StreamMatcher.restore(checkpoint.matcher, self.config)
        self.stats = RunStats.from_json(checkpoint.stats)
        self._ended = {cast(Side, side) for side in checkpoint.ended}
        self._sequence = checkpoint.sequence
        return checkpoint

    def _open(self, restored: Checkpoint | None) -> None:
        for side, source in self.sources.items():
            if side in self._ended:
                continue  # ended before the checkpoint: its watermark is already +∞
            saved = None if restored is None else restored.positions.get(side)
            if restored is not None and not source.resumable:
                _log.warning(
                    "%s cannot resume: what it sent after checkpoint %d was not kept",
                    source.name,
                    restored.sequence,
                )
            source.open(saved if source.resumable else None)


BOUNDED = JobOptions(flush_interval_s=None, checkpoint_interval_s=None)


def interleave(
    batches: Mapping[Side, Sequence[SourceLine]], ends: Set[Side]
) -> Iterator[tuple[Side, SourceLine | None]]:
    """One line of each side in turn; ``None`` where an ended side's next line would be.

    Reading batches this way gives the order of reading one line of each side in turn
    (:func:`_round_robin`) whenever a source returns every line it has, up to the batch
    size; so a bounded run's outputs do not depend on the batch size.
    """
    longest = max((len(lines) for lines in batches.values()), default=0)
    for index in range(longest + 1):
        for side in SIDES:
            lines = batches.get(side)
            if lines is None:
                continue
            if index < len(lines):
                yield side, lines[index]
            elif index == len(lines) and side in ends:
                yield side, None


def _round_robin(
    inputs: dict[Side, Iterable[str]],
) -> Iterator[tuple[Side, str | None, int]]:
    """The reading order of :func:`run_bounded`: ``(side, line, position)`` one side at a
    time; ``line`` is ``None`` once that side is exhausted (kept as the reference order)."""
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
    sources: dict[Side, Source] = {
        "pay": LineIterSource(pay_lines, pay_source),
        "receipt": LineIterSource(receipt_lines, receipt_source),
    }
    job = StreamJob(
        sources,
        fmt=fmt,
        config=config,
        sinks=sinks,
        dead_letters=dead_letters,
        clock=clock,
        options=BOUNDED,
    )
    return job.run().stats
