"""Raw ledger rows -> canonical records or quarantine rows: the one place that decides.

Every reader hands over a :class:`~payrecon.ledger.base.RawBatch` whose columns already
carry canonical names; values are text (CSV) or typed (Parquet, databases). Each column
is parsed with ``pyarrow.compute`` into its canonical type plus a mask of the rows it
cannot read; only those rows are visited in Python, to write the quarantine reason.

Rules, column by column (a row is quarantined for the first problem found, in the
canonical column order):

- ``kind``: ``PAY`` (default) or ``REFUND``, any case.
- ``order_id``: required, not empty.
- ``status``: required; first looked up in ``status_map``, then matched (any case)
  against the canonical statuses.
- ``amount``, ``order_amount``, ``coupon_amount``: integer minor units (分), not negative.
  Integer columns, digit text, or DECIMAL columns without a fraction (``100.00``). Text
  with a decimal point (``1.00``), floating-point values and signs are refused: the
  ledger must say unambiguously that it counts fen. ``amount`` is required.
- ``fee``: like the amounts but in thousandths of a minor unit and may be negative;
  missing means unknown (null).
- ``currency``: three letters (default ``CNY``); ``channel`` defaults to the run's.
- ``txn_time``: required; ISO 8601 text (``T`` or space, optional fraction, optional
  ``Z``/``+08:00`` offset) or a timestamp column. Values without a zone are wall-clock
  time in ``settings.timezone``.
- ``bill_date`` is the date of ``txn_time`` in the channel's zone.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from payrecon.config import LedgerSettings
from payrecon.core.schema import CANONICAL, CANONICAL_NAMES, QUARANTINE, TIMESTAMP, Kind, Status
from payrecon.errors import InvariantError, LedgerSourceError, Location
from payrecon.ledger.base import DEFAULT_CHANNEL_TIMEZONE, LedgerBatch, RawBatch, Rejected

REQUIRED: tuple[str, ...] = ("order_id", "amount", "status", "txn_time")
COMPUTED: tuple[str, ...] = ("bill_date", "source", "line_no")
# The canonical columns a ledger source may carry; the rest are computed here.
INPUT_COLUMNS: tuple[str, ...] = tuple(n for n in CANONICAL_NAMES if n not in COMPUTED)

DEFAULT_CURRENCY = "CNY"
MINOR_UNITS = "minor units (分)"
FEE_UNITS = "thousandths of a minor unit"

_KINDS = pa.array([kind.value for kind in Kind])
_STATUSES = pa.array([status.value for status in Status])
_UNSIGNED = r"^[0-9]{1,18}$"  # 18 digits always fit int64
_SIGNED = r"^-?[0-9]{1,18}$"
_TIME_SHAPE = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?"
    r"(Z|[+-]([01][0-9]|2[0-3])(:?[0-5][0-9])?)?$"
)
_ZONED = r"(Z|[+-][0-9]{2}(:?[0-9]{2})?)$"
_WHOLE = re.compile(r"[+-]?\d+")
_POINT = re.compile(r"[+-]?\d*\.\d*")

Reason = Callable[[Any], str]


@dataclass(frozen=True)
class Parsed:
    """One canonical column: its values, the rows it cannot read and why."""

    name: str
    values: pa.Array
    bad: pa.Array | None = None  # boolean without nulls; None when every row is fine
    raw: pa.Array | None = None  # the column as read, for the reason and the quarantine
    reason: Reason | None = None


def missing_required(names: Iterable[str]) -> list[str]:
    """Required canonical columns absent from ``names``."""
    present = set(names)
    return [name for name in REQUIRED if name not in present]


@dataclass(frozen=True)
class Normalizer:
    """Turns raw ledger batches of one source into :class:`LedgerBatch` objects."""

    source: str
    channel: str
    settings: LedgerSettings
    channel_timezone: str = DEFAULT_CHANNEL_TIMEZONE

    def normalize(self, raw: RawBatch) -> LedgerBatch:
        """Split ``raw`` into canonical records and quarantine rows; every row lands once."""
        rows = raw.rows
        missing = missing_required(rows.schema.names)
        if missing:
            raise LedgerSourceError(f"no {missing[0]!r} column", Location(self.source))
        parsed = self.parse(rows)
        bad = _any_bad(parsed)
        records = self._records(parsed, raw.line_no, bad)
        quarantined = self._quarantine(parsed, raw, bad)
        if records.num_rows + quarantined.num_rows != rows.num_rows + len(raw.rejected):
            raise InvariantError(f"{self.source}: ledger rows lost while normalising")
        return LedgerBatch(records, quarantined)

    def parse(self, rows: pa.RecordBatch) -> list[Parsed]:
        """Every input column parsed, in canonical order."""
        present = set(rows.schema.names)

        def column(name: str) -> pa.Array | None:
            return rows.column(name) if name in present else None

        tz = self.settings.timezone
        n = rows.num_rows
        return [
            _with_default("channel", column("channel"), self.channel, n),
            _optional_text("merchant_id", column("merchant_id"), n),
            parse_kind(column("kind"), n),
            parse_order_id(rows.column("order_id")),
            _optional_text("origin_order_id", column("origin_order_id"), n),
            _optional_text("channel_txn_id", column("channel_txn_id"), n),
            parse_status(rows.column("status"), self.settings.status_map),
            parse_integer("amount", rows.column("amount"), n, required=True),
            parse_integer("order_amount", column("order_amount"), n),
            parse_integer("coupon_amount", column("coupon_amount"), n),
            parse_integer("fee", column("fee"), n, signed=True, unit=FEE_UNITS),
            parse_currency(column("currency"), n),
            parse_txn_time(rows.column("txn_time"), tz),
        ]

    def _records(
        self, parsed: list[Parsed], line_no: pa.Array, bad: pa.Array | None
    ) -> pa.RecordBatch:
        columns = {field.name: field.values for field in parsed}
        n = len(line_no)
        columns["bill_date"] = local_date(columns["txn_time"], self.channel_timezone)
        columns["source"] = pa.repeat(self.source, n)
        columns["line_no"] = line_no.cast(pa.int64())
        batch = pa.RecordBatch.from_arrays(
            [columns[name] for name in CANONICAL_NAMES], schema=CANONICAL
        )
        return batch if bad is None else batch.filter(pc.invert(bad))

    def _quarantine(
        self, parsed: list[Parsed], raw: RawBatch, bad: pa.Array | None
    ) -> pa.RecordBatch:
        rows = [_rejected_row(self.source, rejected) for rejected in raw.rejected]
        if bad is not None:
            rows.extend(self._bad_rows(parsed, raw.line_no, bad))
        return pa.RecordBatch.from_pylist(rows, schema=QUARANTINE)

    def _bad_rows(
        self, parsed: list[Parsed], line_no: pa.Array, bad: pa.Array
    ) -> list[dict[str, Any]]:
        """One quarantine row per bad row, for the first column (in order) that failed."""
        order_ids = next(f.values for f in parsed if f.name == "order_id")
        found: list[tuple[int, dict[str, Any]]] = []
        undecided = bad
        for field in parsed:
            if field.bad is None:
                continue
            mine = pc.and_(undecided, field.bad)
            undecided = pc.and_(undecided, pc.invert(field.bad))
            found += self._field_rows(field, pc.indices_nonzero(mine), line_no, order_ids)
        return [row for _, row in sorted(found, key=lambda item: item[0])]

    def _field_rows(
        self, field: Parsed, indices: pa.Array, line_no: pa.Array, order_ids: pa.Array
    ) -> list[tuple[int, dict[str, Any]]]:
        # The slow path: Python touches only the rows that are quarantined.
        assert field.raw is not None and field.reason is not None
        columns = zip(
            indices.to_pylist(),
            pc.take(line_no, indices).to_pylist(),
            pc.take(order_ids, indices).to_pylist(),
            pc.take(field.raw, indices).to_pylist(),
            strict=True,
        )
        return [
            (index, _quarantine_row(self.source, line, order_id, field.name, value, field.reason))
            for index, line, order_id, value in columns
        ]


def _quarantine_row(
    source: str, line: int, order_id: str | None, name: str, value: Any, reason: Reason
) -> dict[str, Any]:
    return {
        "source": source,
        "line_no": line,
        "order_id": order_id,
        "field": name,
        "value": as_text(value),
        "reason": reason(value),
    }


def _rejected_row(source: str, rejected: Rejected) -> dict[str, Any]:
    return {
        "source": source,
        "line_no": rejected.line_no,
        "order_id": rejected.order_id,
        "field": rejected.field,
        "value": rejected.value,
        "reason": rejected.reason,
    }


def _any_bad(parsed: Sequence[Parsed]) -> pa.Array | None:
    """Rows any column cannot read, or None when the whole batch is clean."""
    bad: pa.Array | None = None
    for field in parsed:
        if field.bad is not None:
            bad = field.bad if bad is None else pc.or_(bad, field.bad)
    if bad is None or not pc.any(bad).as_py():
        return None
    return bad


def _checked(name: str, values: pa.Array, bad: pa.Array, raw: pa.Array, reason: Reason) -> Parsed:
    bad = pc.fill_null(bad, True)
    return Parsed(name, values, bad, raw, reason)


# --- text ------------------------------------------------------------------------------


def text(column: pa.Array) -> pa.Array:
    """The column as trimmed text; empty text becomes null."""
    strings = pc.utf8_trim_whitespace(column.cast(pa.string()))
    return pc.if_else(pc.equal(strings, ""), pa.scalar(None, pa.string()), strings)


def as_text(value: Any) -> str | None:
    """A raw value as the text the quarantine shows."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


def _optional_text(name: str, column: pa.Array | None, n: int) -> Parsed:
    if column is None:
        return Parsed(name, pa.nulls(n, pa.string()))
    return Parsed(name, text(column))


def _with_default(name: str, column: pa.Array | None, default: str, n: int) -> Parsed:
    if column is None:
        return Parsed(name, pa.repeat(default, n))
    return Parsed(name, pc.coalesce(text(column), pa.scalar(default)))


def parse_order_id(column: pa.Array) -> Parsed:
    """Required; any non-empty text (numbers from a database become text)."""
    values = text(column)
    return _checked("order_id", values, pc.is_null(values), column, lambda _: "order_id is empty")


def parse_kind(column: pa.Array | None, n: int) -> Parsed:
    """``PAY`` or ``REFUND`` in any case; missing or empty means ``PAY``."""
    if column is None:
        return Parsed("kind", pa.repeat(Kind.PAY.value, n))
    values = pc.coalesce(pc.utf8_upper(text(column)), pa.scalar(Kind.PAY.value))
    bad = pc.invert(pc.is_in(values, value_set=_KINDS))
    return _checked("kind", values, bad, column, _kind_reason)


def _kind_reason(value: Any) -> str:
    return f"unknown kind {as_text(value)!r}; expected PAY or REFUND"


def parse_status(column: pa.Array, status_map: dict[str, str]) -> Parsed:
    """The platform's status through ``status_map``, else a canonical status in any case."""
    values = text(column)
    if status_map:
        keys = pa.array(list(status_map), pa.string())
        mapped = pc.take(
            pa.array(list(status_map.values()), pa.string()), pc.index_in(values, keys)
        )
        values = pc.coalesce(mapped, values)
    values = pc.utf8_upper(values)
    bad = pc.invert(pc.is_in(values, value_set=_STATUSES))
    return _checked("status", values, bad, column, _status_reason)


def _status_reason(value: Any) -> str:
    shown = as_text(value)
    if shown is None or not shown.strip():
        return "status is empty"
    return f"unknown status {shown.strip()!r}"


def parse_currency(column: pa.Array | None, n: int) -> Parsed:
    """An ISO 4217 code in any case; missing or empty means CNY."""
    if column is None:
        return Parsed("currency", pa.repeat(DEFAULT_CURRENCY, n))
    values = pc.coalesce(pc.utf8_upper(text(column)), pa.scalar(DEFAULT_CURRENCY))
    bad = pc.invert(pc.match_substring_regex(values, r"^[A-Z]{3}$"))
    return _checked("currency", values, bad, column, _currency_reason)


def _currency_reason(value: Any) -> str:
    return f"currency {as_text(value)!r} is not an ISO 4217 code"


# --- integers (money) ------------------------------------------------------------------


def parse_integer(
    name: str,
    column: pa.Array | None,
    n: int,
    *,
    required: bool = False,
    signed: bool = False,
    unit: str = MINOR_UNITS,
) -> Parsed:
    """An exact integer column (money in minor units, fees in thousandths of one)."""
    if column is None:
        return Parsed(name, pa.nulls(n, pa.int64()))
    values = integers(column, signed=signed)
    missing = pc.is_null(values)
    bad = missing if required else pc.and_(missing, present(column))
    return _checked(name, values, bad, column, _integer_reason(name, unit, signed))


def integers(column: pa.Array, *, signed: bool) -> pa.Array:
    """int64 values; null where a value is missing or not an exact integer in range.

    Never goes through a float: floating-point columns are refused outright, DECIMAL
    columns are accepted only without a fraction.
    """
    kind = column.type
    if pa.types.is_floating(kind):
        return pa.nulls(len(column), pa.int64())
    if pa.types.is_integer(kind):
        try:
            values = column.cast(pa.int64())
        except pa.ArrowInvalid:  # an unsigned value beyond int64: judged as text below
            pass
        else:
            return values if signed else pc.if_else(pc.less(values, 0), None, values)
    strings = pc.utf8_trim_whitespace(column.cast(pa.string()))
    if pa.types.is_decimal(kind):
        strings = pc.replace_substring_regex(strings, r"\.0+$", "")
    ok = pc.match_substring_regex(strings, _SIGNED if signed else _UNSIGNED)
    return pc.if_else(ok, strings, pa.scalar(None, pa.string())).cast(pa.int64())


def present(column: pa.Array) -> pa.Array:
    """Rows that hold a value (non-null, and for text, not blank)."""
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return pc.fill_null(pc.not_equal(pc.utf8_trim_whitespace(column), ""), False)
    return pc.is_valid(column)


def _integer_reason(name: str, unit: str, signed: bool) -> Reason:
    def reason(value: Any) -> str:
        problem = integer_problem(value, signed=signed)
        if problem == "is empty":
            return f"{name} is empty"
        return f"{name} {as_text(value)!r} {problem}; expected an integer in {unit}"

    return reason


def integer_problem(value: Any, *, signed: bool) -> str:
    """Why :func:`integers` refused ``value``, as a phrase."""
    if isinstance(value, float):
        return "is a floating-point number"
    if isinstance(value, Decimal):
        if not value.is_finite() or value != value.to_integral_value():
            return "has a fraction"
        value = int(value)
    shown = "" if value is None else str(value).strip()
    if not shown:
        return "is empty"
    if _POINT.fullmatch(shown):
        return "has a decimal point"
    if not _WHOLE.fullmatch(shown):
        return "is not an integer"
    if shown.startswith("-") and not signed:
        return "is negative"
    if shown.startswith("+"):
        return "has a sign"
    return "is out of range"


# --- time ------------------------------------------------------------------------------


def parse_txn_time(column: pa.Array, timezone: str) -> Parsed:
    """Required; UTC timestamps from text or timestamp columns (naive = ``timezone``)."""
    values = timestamps(column, timezone)
    return _checked("txn_time", values, pc.is_null(values), column, _time_reason)


def _time_reason(value: Any) -> str:
    shown = as_text(value)
    if shown is None or not shown.strip():
        return "txn_time is empty"
    return (
        f"txn_time {shown!r} is not a valid ISO 8601 date and time "
        "(YYYY-MM-DD HH:MM:SS[.ffffff][+08:00])"
    )


def timestamps(column: pa.Array, timezone: str) -> pa.Array:
    """Canonical UTC timestamps; null where a value is missing or unreadable."""
    kind = column.type
    if pa.types.is_timestamp(kind):
        # Nanoseconds lose only their sub-microsecond part; other units must not overflow.
        exact = kind.unit != "ns"
        if kind.tz is None:
            return assume_zone(column.cast(pa.timestamp("us"), safe=exact), timezone)
        return column.cast(TIMESTAMP, safe=exact)
    return parse_iso_text(column.cast(pa.string()), timezone)


def parse_iso_text(strings: pa.Array, timezone: str) -> pa.Array:
    """ISO 8601 text to UTC; values without an offset are wall-clock time in ``timezone``."""
    trimmed = pc.utf8_trim_whitespace(strings)
    shaped = pc.fill_null(pc.match_substring_regex(trimmed, _TIME_SHAPE), False)
    candidates = pc.if_else(shaped, trimmed, pa.scalar(None, pa.string()))
    # A ledger usually writes one style throughout: try all naive, then all with offsets.
    try:
        return assume_zone(candidates.cast(pa.timestamp("us")), timezone)
    except pa.ArrowInvalid:
        pass
    try:
        return candidates.cast(TIMESTAMP)
    except pa.ArrowInvalid:
        return _parse_mixed(candidates, timezone)


def _parse_mixed(candidates: pa.Array, timezone: str) -> pa.Array:
    """The slower vectorised path: mixed styles, sub-microsecond digits, impossible dates."""
    none = pa.scalar(None, pa.string())
    # Arrow reads at most microseconds, the canonical unit: drop finer digits.
    candidates = pc.replace_substring_regex(candidates, r"(\.[0-9]{6})[0-9]+", r"\1")
    candidates = pc.if_else(_calendar_valid(candidates), candidates, none)
    zoned = pc.fill_null(pc.match_substring_regex(candidates, _ZONED), False)
    local = pc.if_else(zoned, none, candidates).cast(pa.timestamp("us"))
    absolute = pc.if_else(zoned, candidates, none).cast(TIMESTAMP)
    return pc.coalesce(absolute, assume_zone(local, timezone))


def _calendar_valid(strings: pa.Array) -> pa.Array:
    """Text naming a real date and time (no February 30th, no 25 o'clock)."""
    # strptime rolls 02-30 over to 03-01; a round trip that changes the text was not real.
    head = pc.utf8_replace_slice(pc.utf8_slice_codeunits(strings, 0, 19), 10, 11, " ")
    fmt = "%Y-%m-%d %H:%M:%S"
    parsed = pc.strptime(head, format=fmt, unit="s", error_is_null=True)
    return pc.fill_null(pc.equal(pc.strftime(parsed, format=fmt), head), False)


def assume_zone(naive: pa.Array, timezone: str) -> pa.Array:
    """Wall-clock timestamps in ``timezone`` as UTC instants.

    Around a DST change the earlier reading of an ambiguous or skipped time is taken;
    a ledger in such a zone should store offsets.
    """
    local = pc.assume_timezone(naive, timezone, ambiguous="earliest", nonexistent="earliest")
    return local.cast(TIMESTAMP)


def local_date(instants: pa.Array, timezone: str) -> pa.Array:
    """The calendar date of each instant in ``timezone`` (the accounting day, 账期)."""
    zoned = instants.cast(pa.timestamp("us", tz=timezone))
    return pc.local_timestamp(zoned).cast(pa.date32())
