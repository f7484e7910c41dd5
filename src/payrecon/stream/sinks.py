"""Where stream outputs and dead letters go: a tiny sink interface and the local sinks.

* :class:`StdoutSink` writes one human-readable line per output to a text stream, in the
  style of the classic Flink reconciliation example:
  ``matched> order01 pay 2020-11-28 07:45:13 receipt 2020-11-28 07:45:16``.
  Times are shown in UTC unless another zone is given; milliseconds only when not zero.
* :class:`JsonLinesSink` appends one JSON object per output to a file.
* :class:`DeadLetterSink` appends one JSON object per :class:`DeadLetter` to a file.

The file sinks open their file in append mode when created, so repeated runs accumulate.
Their ``flush`` is durable (``fsync``): the runtime flushes every sink before it writes a
checkpoint. A crash can leave half a line at the end of the file; it is cut off when the
file is opened again (its output lies after the last checkpoint, so it is emitted again).
The Kafka and webhook sinks live in :mod:`payrecon.stream.kafka` and
:mod:`payrecon.stream.webhook`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any, BinaryIO, Protocol, TextIO, TypeVar

from payrecon.core.stream import StreamOutput
from payrecon.stream.events import DeadLetter

T_contra = TypeVar("T_contra", contravariant=True)

OUTPUT_FIELDS = ("type", "order_id", "alert_id", "pay", "receipt")
DEAD_LETTER_FIELDS = ("side", "source", "position", "raw", "reason")
_TAIL_CHUNK = 1 << 16


class Sink(Protocol[T_contra]):
    """Receives items one by one; ``flush`` pushes buffered items out, ``close`` ends it."""

    def add(self, item: T_contra) -> None:
        """Take one item."""

    def flush(self) -> None:
        """Make everything added so far durable or delivered; raise when that fails."""

    def close(self) -> None:
        """Flush and release the sink's resources."""


def output_record(output: StreamOutput) -> dict[str, Any]:
    """The output as a JSON-able dict with the fields of :data:`OUTPUT_FIELDS`.

    ``pay`` and ``receipt`` are the two sides' events (``ts_ms``, ``amount`` in minor units
    or null when the event had none), or null for a side the output has no event of.
    """
    pay_ts, receipt_ts = output.pay_ts_ms, output.receipt_ts_ms
    return {
        "type": output.type,
        "order_id": output.order_id,
        "alert_id": output.alert_id,
        "pay": None if pay_ts is None else {"ts_ms": pay_ts, "amount": output.pay_amount},
        "receipt": (
            None if receipt_ts is None else {"ts_ms": receipt_ts, "amount": output.receipt_amount}
        ),
    }


def output_from_record(record: Mapping[str, Any]) -> StreamOutput:
    """The inverse of :func:`output_record`."""
    pay, receipt = record["pay"], record["receipt"]
    return StreamOutput(
        type=record["type"],
        order_id=record["order_id"],
        pay_ts_ms=None if pay is None else pay["ts_ms"],
        receipt_ts_ms=None if receipt is None else receipt["ts_ms"],
        pay_amount=None if pay is None else pay["amount"],
        receipt_amount=None if receipt is None else receipt["amount"],
        alert_id=record["alert_id"],
    )


def format_ts(ts_ms: int, tz: tzinfo = UTC) -> str:
    """``2020-11-28 07:45:13`` (with ``.123`` when the milliseconds are not zero)."""
    moment = datetime.fromtimestamp(ts_ms // 1000, tz)
    text = moment.strftime("%Y-%m-%d %H:%M:%S")
    return text if ts_ms % 1000 == 0 else f"{text}.{ts_ms % 1000:03d}"


def format_output(output: StreamOutput, tz: tzinfo = UTC) -> str:
    """One human-readable line: type, order id, then each side present with its time."""
    parts = [f"{output.type}>", output.order_id]
    sides = (
        ("pay", output.pay_ts_ms, output.pay_amount),
        ("receipt", output.receipt_ts_ms, output.receipt_amount),
    )
    for name, ts_ms, amount in sides:
        if ts_ms is not None:
            parts += [name, format_ts(ts_ms, tz)]
            if amount is not None:
                parts.append(f"amount {amount}")
    return " ".join(parts)


class StdoutSink:
    """Human-readable lines on a text stream (stdout by default in the CLI)."""

    def __init__(self, stream: TextIO, tz: tzinfo = UTC) -> None:
        self.stream = stream
        self.tz = tz

    def add(self, item: StreamOutput) -> None:
        """Write one line for ``item``."""
        self.stream.write(format_output(item, self.tz) + "\n")

    def flush(self) -> None:
        """Flush the stream."""
        self.stream.flush()

    def close(self) -> None:
        """Flush only: the stream belongs to the caller."""
        self.flush()


def cut_torn_tail(path: Path) -> None:
    """Cut an unfinished last line (a crash mid-write) off a JSON-lines file, if any."""
    try:
        file = path.open("rb+")
    except FileNotFoundError:
        return
    with file:
        end = file.seek(0, os.SEEK_END)
        keep = _after_last_newline(file, end)
        if keep < end:
            file.truncate(keep)
            os.fsync(file.fileno())


def _after_last_newline(file: BinaryIO, end: int) -> int:
    """The offset just after the file's last ``\\n`` (0 when there is none)."""
    stop = end
    while stop > 0:
        start = max(0, stop - _TAIL_CHUNK)
        file.seek(start)
        found = file.read(stop - start).rfind(b"\n")
        if found >= 0:
            return start + found + 1
        stop = start
    return 0


class _JsonLinesFile:
    """A file opened for appending, one JSON object per line."""

    def __init__(self, path: Path) -> None:
        self.path = path
        cut_torn_tail(path)
        self._file = path.open("a", encoding="utf-8")

    def _write(self, record: dict[str, Any]) -> None:
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")

    def flush(self) -> None:
        """Flush the file to disk (``fsync``)."""
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        """Flush and close the file."""
        self._file.close()


class JsonLinesSink(_JsonLinesFile):
    """Appends outputs as JSON lines with the fields of :data:`OUTPUT_FIELDS`."""

    def add(self, item: StreamOutput) -> None:
        """Append one output."""
        self._write(output_record(item))


class DeadLetterSink(_JsonLinesFile):
    """Appends dead letters as JSON lines with the fields of :data:`DEAD_LETTER_FIELDS`."""

    def add(self, item: DeadLetter) -> None:
        """Append one dead letter."""
        record = asdict(item)
        self._write({name: record[name] for name in DEAD_LETTER_FIELDS})
