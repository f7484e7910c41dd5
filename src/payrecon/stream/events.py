"""Decode one line of the pay or receipt stream into a :class:`StreamEvent` (no I/O).

The order service sends ``{"userId": 1, "action": "pay", "orId": "order01",
"timestamp": 1606549513}`` or the CSV line ``1,pay,order01,1606549513``; the channel sends
``{"orId": "order01", "payChannel": "wechat", "timestamp": 1606549536}`` or
``order01,wechat,1606549536``. :meth:`EventDecoder.decode` returns an event, ``None`` for
an ignored action, or a :class:`DeadLetter` carrying the reason; it never raises.

Decisions:

* The line terminator, surrounding blanks and a leading BOM are dropped; a blank line is a
  dead letter. With ``encoding="auto"`` a line starting with ``{`` is JSON, else CSV.
  JSON must be an object. CSV is read strictly (a broken quote is a dead letter; blanks
  after a comma are skipped) and must have exactly the configured columns.
* A pay line's action is checked first: any other action (``create``...) is ignored
  without further checks. A non-text action is a dead letter.
* A field that is absent, JSON ``null`` or blank is missing. The order id is stripped
  text; a JSON integer is accepted and turned into text.
* Timestamps and amounts are integers: a JSON integer or integer text (``"1606549513"``).
  Floats and decimal text (``1606549513.5``, ``12.50``) are dead letters, never rounded.
  Neither may be negative or exceed a signed 64-bit integer; seconds become ms (×1000).
* The amount (minor units) is read only when ``amount_field`` is set, and is ``None``
  when missing. The event's ``raw`` holds every parsed field (CSV cells stripped).
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from payrecon.core.stream import END_OF_TIME, SIDES, Side, StreamEvent
from payrecon.errors import ConfigError

_MS_PER_UNIT = {"s": 1000, "ms": 1}
_ENCODINGS = ("json", "csv", "auto")
_INTEGER = re.compile(r"[+-]?[0-9]+")
_INT64_MAX = 2**63 - 1
_SHOWN_CHARS = 40


@dataclass(frozen=True)
class EventFormat:
    """Field names, units and encodings of the pay and receipt streams."""

    order_field: str = "orId"
    time_field: str = "timestamp"
    action_field: str = "action"
    pay_action: str = "pay"
    amount_field: str | None = None
    time_unit: Literal["s", "ms"] = "s"
    pay_csv_columns: tuple[str, ...] = ("userId", "action", "orId", "timestamp")
    receipt_csv_columns: tuple[str, ...] = ("orId", "payChannel", "timestamp")
    encoding: Literal["json", "csv", "auto"] = "auto"

    def __post_init__(self) -> None:
        if self.time_unit not in _MS_PER_UNIT:
            raise ConfigError(f"time_unit must be 's' or 'ms', not {self.time_unit!r}")
        if self.encoding not in _ENCODINGS:
            raise ConfigError(f"encoding must be one of {_ENCODINGS}, not {self.encoding!r}")
        names = (self.order_field, self.time_field, self.action_field, self.pay_action)
        if not all(names) or self.amount_field == "":
            raise ConfigError("event field names and the pay action must not be empty")
        object.__setattr__(self, "pay_csv_columns", tuple(self.pay_csv_columns))
        object.__setattr__(self, "receipt_csv_columns", tuple(self.receipt_csv_columns))
        if self.encoding != "json":
            for side in SIDES:
                self._check_columns(side)

    def csv_columns(self, side: Side) -> tuple[str, ...]:
        """The CSV column names of one stream, in order."""
        return self.pay_csv_columns if side == "pay" else self.receipt_csv_columns

    def required_fields(self, side: Side) -> tuple[str, ...]:
        """The fields an event of ``side`` must carry."""
        common = (self.order_field, self.time_field)
        return (self.action_field, *common) if side == "pay" else common

    def _check_columns(self, side: Side) -> None:
        columns = self.csv_columns(side)
        if len(set(columns)) != len(columns):
            raise ConfigError(f"{side} CSV columns repeat a name: {columns}")
        missing = [name for name in self.required_fields(side) if name not in columns]
        if missing:
            raise ConfigError(f"{side} CSV columns {columns} lack {missing}")


@dataclass(frozen=True)
class DeadLetter:
    """A line that could not become an event, where it came from and why."""

    side: Side
    source: str
    position: int | str
    raw: str
    reason: str


class _Reject(Exception):
    """The line is a dead letter; the message is the reason."""


class EventDecoder:
    """Turns lines of one stream into events, ignored actions (``None``) or dead letters."""

    def __init__(self, side: Side, fmt: EventFormat, source: str) -> None:
        if side not in SIDES:
            raise ConfigError(f"decoder side must be 'pay' or 'receipt', not {side!r}")
        self.side: Side = side
        self.fmt = fmt
        self.source = source
        self.decoded = 0
        self.ignored = 0
        self.dead = 0

    def decode(self, line: str, position: int | str) -> StreamEvent | DeadLetter | None:
        """Decode one line; ``position`` (line number or offset) goes into a dead letter."""
        try:
            event = self._event(self._parse(line))
        except _Reject as reject:
            self.dead += 1
            return DeadLetter(self.side, self.source, position, line.rstrip("\r\n"), str(reject))
        if event is None:
            self.ignored += 1
        else:
            self.decoded += 1
        return event

    def _parse(self, line: str) -> dict[str, Any]:
        text = line.removeprefix("\ufeff").strip()
        if not text:
            raise _Reject("empty line")
        if self.fmt.encoding == "json" or (self.fmt.encoding == "auto" and text[0] == "{"):
            return _parse_json(text)
        return _parse_csv(text, self.fmt.csv_columns(self.side))

    def _event(self, fields: dict[str, Any]) -> StreamEvent | None:
        fmt = self.fmt
        if self.side == "pay" and _action(fields, fmt.action_field) != fmt.pay_action:
            return None
        order_id = _order_id(fields, fmt.order_field)
        ts_ms = _integer(_present(fields, fmt.time_field), fmt.time_field)
        ts_ms *= _MS_PER_UNIT[fmt.time_unit]
        if ts_ms >= END_OF_TIME:
            raise _Reject(f"field {fmt.time_field!r} is out of range")
        amount = None
        if fmt.amount_field is not None and not _missing(fields.get(fmt.amount_field)):
            amount = _integer(fields[fmt.amount_field], fmt.amount_field, "(minor units)")
        return StreamEvent(self.side, order_id, ts_ms, amount, raw=fields)


def _parse_json(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:  # RecursionError: absurdly deep nesting
        raise _Reject(f"bad JSON: {exc}") from None
    if not isinstance(value, dict):
        raise _Reject(f"bad JSON: expected an object, got {_show(value)}")
    return value


def _parse_csv(text: str, columns: tuple[str, ...]) -> dict[str, Any]:
    try:
        rows = list(csv.reader([text], strict=True, skipinitialspace=True))
    except csv.Error as exc:
        raise _Reject(f"bad CSV: {exc}") from None
    cells = rows[0] if len(rows) == 1 else []
    if len(cells) != len(columns):
        names = ", ".join(columns)
        raise _Reject(f"expected {len(columns)} CSV columns ({names}), got {len(cells)}")
    return {name: cell.strip() for name, cell in zip(columns, cells, strict=True)}


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _present(fields: Mapping[str, Any], name: str) -> Any:
    value = fields.get(name)
    if _missing(value):
        raise _Reject(f"missing field {name!r}")
    return value


def _action(fields: Mapping[str, Any], name: str) -> str:
    value = _present(fields, name)
    if not isinstance(value, str):
        raise _Reject(f"field {name!r} must be text, got {_show(value)}")
    return value.strip()


def _order_id(fields: Mapping[str, Any], name: str) -> str:
    value = _present(fields, name)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise _Reject(f"field {name!r} must be text, got {_show(value)}")
    return value.strip()


def _integer(value: Any, name: str, unit: str = "") -> int:
    """A non-negative int64 from a JSON integer or integer text; anything else is rejected."""
    wanted = f"field {name!r} must be an integer{' ' + unit if unit else ''}, got {_show(value)}"
    if isinstance(value, str) and _INTEGER.fullmatch(value.strip()):
        try:
            value = int(value)
        except ValueError:  # more digits than int() accepts
            raise _Reject(f"field {name!r} is out of range") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Reject(wanted)
    if value < 0:
        raise _Reject(f"field {name!r} must not be negative, got {value}")
    if value > _INT64_MAX:
        raise _Reject(f"field {name!r} is out of range")
    return value


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."
