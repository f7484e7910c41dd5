"""Ledger files: CSV and Parquet whose columns carry the canonical names.

CSV is streamed with Arrow's reader, every column as text, so the one normaliser judges
every value. ``line_no`` is the physical line in the file (the header is line 1), also
when quoted values span lines; blank lines are skipped, and a line with the wrong number
of fields is quarantined rather than failing the file. Parquet rows are numbered from 1.
"""

from __future__ import annotations

import csv
import io
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pv
import pyarrow.parquet as pq

from payrecon.config import LedgerSettings
from payrecon.errors import LedgerSourceError, Location
from payrecon.ledger.base import (
    DEFAULT_CHANNEL_TIMEZONE,
    LedgerReader,
    ProgressCallback,
    RawBatch,
    Rejected,
    ordinals,
)
from payrecon.ledger.normalize import INPUT_COLUMNS, missing_required

# Arrow's streaming CSV reader reads up to 32 blocks ahead of the consumer, so the block
# size bounds memory: 4 MiB blocks keep that near 128 MB at ~95% of 16 MiB's throughput.
CSV_BLOCK_SIZE = 4 << 20


class _FileLedgerReader(LedgerReader):
    def __init__(
        self,
        path: Path | str,
        settings: LedgerSettings,
        *,
        channel: str,
        day: date,
        channel_timezone: str = DEFAULT_CHANNEL_TIMEZONE,
        on_progress: ProgressCallback | None = None,
    ) -> None:
        super().__init__(
            settings,
            channel=channel,
            day=day,
            channel_timezone=channel_timezone,
            on_progress=on_progress,
        )
        self.path = Path(path)
        if not self.path.is_file():
            raise LedgerSourceError("no such ledger file", Location(self.source))

    @property
    def source(self) -> str:
        return str(self.path)

    def canonical_columns(self, names: list[str], header_line: int | None) -> list[str]:
        """The canonical columns among ``names``; fails naming the first required one missing."""
        missing = missing_required(names)
        if missing:
            found = ", ".join(names) or "none"
            raise LedgerSourceError(
                f"the ledger has no {missing[0]!r} column (columns found: {found})",
                Location(self.source, header_line, missing[0]),
            )
        duplicated = sorted({name for name in names if names.count(name) > 1} & set(INPUT_COLUMNS))
        if duplicated:
            raise LedgerSourceError(
                f"column {duplicated[0]!r} appears twice", Location(self.source, header_line)
            )
        return [name for name in INPUT_COLUMNS if name in names]


class CsvLedgerReader(_FileLedgerReader):
    """A UTF-8 CSV ledger with a header line of canonical column names."""

    block_size = CSV_BLOCK_SIZE

    def raw_batches(self) -> Iterator[RawBatch]:
        header = self._header()
        wanted = self.canonical_columns(header, 1)
        lines = _LineCounter(header)
        reader = self._open(header, lines)
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            except pa.ArrowInvalid as exc:
                raise LedgerSourceError(str(exc), Location(self.source)) from None
            yield _without_blank_rows(lines.number(batch), wanted)
        leftover = lines.flush()
        if leftover:
            empty = pa.RecordBatch.from_pylist([], schema=_text_schema(wanted))
            yield RawBatch(empty, pa.array([], pa.int64()), leftover)

    def _header(self) -> list[str]:
        try:
            with self.path.open(encoding="utf-8-sig", newline="") as stream:
                header = next(csv.reader(stream), None)
        except (UnicodeDecodeError, csv.Error) as exc:
            raise LedgerSourceError(f"unreadable header: {exc}", Location(self.source, 1)) from None
        if not header:
            raise LedgerSourceError("the file is empty (no header line)", Location(self.source, 1))
        return [name.strip() for name in header]

    def _open(self, header: list[str], lines: _LineCounter) -> pv.CSVStreamingReader:
        # Serial reading keeps the record numbers Arrow hands to the invalid-row handler.
        read = pv.ReadOptions(
            use_threads=False, block_size=self.block_size, column_names=header, skip_rows=1
        )
        parse = pv.ParseOptions(
            newlines_in_values=True, ignore_empty_lines=False, invalid_row_handler=lines.reject
        )
        convert = pv.ConvertOptions(
            column_types={name: pa.string() for name in header},
            strings_can_be_null=False,
            quoted_strings_can_be_null=False,
        )
        try:
            return pv.open_csv(
                self.path, read_options=read, parse_options=parse, convert_options=convert
            )
        except pa.ArrowInvalid as exc:
            raise LedgerSourceError(str(exc), Location(self.source)) from None


@dataclass
class _LineCounter:
    """Physical line numbers for CSV rows, across batches.

    Arrow numbers records, not lines: a quoted value may span lines, and a malformed
    record is skipped. Each row spans 1 + the line breaks inside its values; records Arrow
    rejected are put back at their record number so the lines after them stay exact.
    """

    header: list[str]
    next_record: int = 2  # Arrow's number for the next record (the header is record 1)
    next_line: int = 2
    pending: deque[tuple[int, str, int]] = field(default_factory=deque)

    def reject(self, row: pv.InvalidRow) -> str:
        """Arrow's invalid-row handler: remember the record and skip it."""
        self.pending.append((row.number, row.text, row.actual_columns))
        return "skip"

    def number(self, batch: pa.RecordBatch) -> RawBatch:
        """Line numbers for ``batch``, with the rejected records that sit among its rows."""
        spans = _line_spans(batch)
        starts = pc.subtract(pc.add(pc.cumulative_sum(spans), self.next_line), spans)
        rejected, starts = self._place_rejected(batch.num_rows, spans, starts)
        self.next_record += batch.num_rows + len(rejected)
        self.next_line += (pc.sum(spans).as_py() or 0) + sum(_span(r.value or "") for r in rejected)
        return RawBatch(batch, starts, tuple(rejected))

    def flush(self) -> tuple[Rejected, ...]:
        """Rejected records after the last row."""
        empty = pa.array([], pa.int64())
        rejected, _ = self._place_rejected(0, empty, empty)
        return tuple(rejected)

    def _place_rejected(
        self, rows: int, spans: pa.Array, starts: pa.Array
    ) -> tuple[list[Rejected], pa.Array]:
        # Slow path, one step per malformed record: shift the lines of the rows after it.
        placed: list[Rejected] = []
        shift = 0  # lines taken by the records placed so far
        index = ordinals(0, rows)
        end = self.next_line + (pc.sum(spans).as_py() or 0)
        while self.pending:
            number, text, actual = self.pending[0]
            before = number - self.next_record - len(placed)  # rows of this batch before it
            if before > rows:
                break  # it lies beyond this batch
            self.pending.popleft()
            line = starts[before].as_py() if before < rows else end + shift
            placed.append(_malformed(line, text, actual, self.header))
            starts = pc.if_else(
                pc.greater_equal(index, before), pc.add(starts, _span(text)), starts
            )
            shift += _span(text)
        return placed, starts


def _span(text: str) -> int:
    return 1 + text.count("\n")


def _line_spans(batch: pa.RecordBatch) -> pa.Array:
    """How many physical lines each row occupies: 1 + line breaks inside its values."""
    spans = pa.repeat(pa.scalar(1, pa.int64()), batch.num_rows)
    for column in batch.columns:
        if _has_line_break(column):
            spans = pc.add(spans, pc.count_substring(column, "\n").cast(pa.int64()))
    return spans


def _has_line_break(column: pa.Array) -> bool:
    # One search over the column's bytes is far cheaper than one per value.
    _, offset_buffer, data = column.buffers()
    if data is None or len(column) == 0:
        return False
    offsets = pa.Array.from_buffers(
        pa.int32(), len(column) + 1, [None, offset_buffer], offset=column.offset
    )
    start, end = offsets[0].as_py(), offsets[-1].as_py()
    return b"\n" in data.slice(start, end - start).to_pybytes()


def _malformed(line: int, text: str, actual: int, header: list[str]) -> Rejected:
    order_id = None
    try:
        fields = next(csv.reader(io.StringIO(text)), [])
    except csv.Error:
        fields = []
    position = header.index("order_id") if "order_id" in header else len(fields)
    if position < len(fields):
        order_id = fields[position].strip() or None
    reason = f"expected {len(header)} fields, found {actual}"
    return Rejected(line_no=line, value=text, reason=reason, order_id=order_id)


def _without_blank_rows(raw: RawBatch, wanted: list[str]) -> RawBatch:
    """Keep the canonical columns; drop rows where every field is empty (blank lines)."""
    rows = raw.rows
    selected = rows.select(wanted)
    blank = pc.equal(rows.column(0), "")
    if rows.num_rows == 0 or not pc.any(blank).as_py():  # the usual case, one cheap test
        return RawBatch(selected, raw.line_no, raw.rejected)
    for column in rows.columns[1:]:
        blank = pc.and_(blank, pc.equal(column, ""))
    keep = pc.invert(blank)
    return RawBatch(selected.filter(keep), raw.line_no.filter(keep), raw.rejected)


def _text_schema(names: list[str]) -> pa.Schema:
    return pa.schema([pa.field(name, pa.string()) for name in names])


class ParquetLedgerReader(_FileLedgerReader):
    """A Parquet ledger with canonical column names; ``line_no`` is the 1-based row number."""

    def raw_batches(self) -> Iterator[RawBatch]:
        try:
            parquet = pq.ParquetFile(self.path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise LedgerSourceError(
                f"not a readable Parquet file: {exc}", Location(self.source)
            ) from None
        with parquet:
            wanted = self.canonical_columns(list(parquet.schema_arrow.names), None)
            first = 1
            size = self.settings.fetch_size
            for batch in parquet.iter_batches(batch_size=size, columns=wanted):
                yield RawBatch(batch, ordinals(first, batch.num_rows))
                first += batch.num_rows
