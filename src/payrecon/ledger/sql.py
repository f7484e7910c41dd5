"""Ledger databases: PostgreSQL (psycopg 3), MySQL/MariaDB (PyMySQL) and SQLite.

Rows come from ``ledger.query`` or, without one, from ``ledger.table`` restricted to the
day (and to the run's channel when the table has a ``channel`` column, mapped or not),
selecting the columns ``ledger.columns`` maps. Either way the read is one streaming pass,
``fetch_size`` rows at a time (a PostgreSQL server-side cursor, a MySQL unbuffered
cursor, SQLite's lazy stepping), never OFFSET paging. Each chunk of tuples is turned
into Arrow column by column.

Query parameters (write them as ``:name``; they are bound by the driver, never pasted in):

- ``:start`` / ``:end``: the accounting day's bounds, ``[start, end)``. The day is the
  channel's day (midnight to midnight in the channel's zone); the bounds are that instant
  as *naive wall-clock time in* ``ledger.timezone``, the zone the ledger writes its local
  timestamps in: ``datetime`` for PostgreSQL and MySQL, ``'YYYY-MM-DD HH:MM:SS'`` text for
  SQLite (which stores timestamps as text). The session time zone is set to
  ``ledger.timezone`` as well, so ``timestamptz`` / ``TIMESTAMP`` columns compare
  correctly against the same bounds.
- ``:date``: the accounting day (``date``; ``'YYYY-MM-DD'`` text for SQLite).
- ``:channel``: the channel name (text).

``line_no`` is the row's 1-based position in the result. PostgreSQL and MySQL timestamps
are fetched as ISO text and parsed by Arrow with the same rules as CSV text.
"""

from __future__ import annotations

import re
import sqlite3
from abc import abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, closing, contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, ClassVar
from urllib.parse import quote, unquote, urlsplit
from zoneinfo import ZoneInfo

import pyarrow as pa

from payrecon.config import LedgerSettings
from payrecon.core.rules import AccountingDay
from payrecon.errors import ConfigError, LedgerSourceError, Location, require
from payrecon.ledger.base import (
    DEFAULT_CHANNEL_TIMEZONE,
    LedgerReader,
    ProgressCallback,
    RawBatch,
    ordinals,
)
from payrecon.ledger.normalize import INPUT_COLUMNS, REQUIRED, as_text

PARAMETERS = ("date", "start", "end", "channel")
SQLITE_PREFIX = "sqlite:///"
_TEXT_TIME = "%Y-%m-%d %H:%M:%S"
_PG_SESSION = "SELECT set_config('TimeZone', %s, false), set_config('DateStyle', 'ISO', false)"


# --- query text ------------------------------------------------------------------------


@dataclass(frozen=True)
class Dialect:
    """How one driver quotes identifiers, writes literals and takes parameters."""

    name: str
    quote: str
    literal: str  # regex for a string literal, so a ':x' inside one is left alone
    placeholder: str  # the driver's named placeholder, with {name}
    percent: str  # what a literal '%' must become (pyformat drivers need '%%')
    comment: str = r"--[^\n]*|/\*.*?\*/"

    def identifier(self, name: str) -> str:
        """``schema.table`` or ``column`` quoted part by part."""
        q = self.quote
        return ".".join(q + part.replace(q, q + q) + q for part in name.split("."))

    def bind(self, query: str) -> str:
        """Rewrite ``:name`` parameters as the driver's placeholders."""
        tokens = re.compile(
            rf"(?P<skip>{self.literal}|\"(?:[^\"]|\"\")*\"|`[^`]*`|{self.comment}|::)"
            r"|(?<![\w:]):(?P<name>[A-Za-z_]\w*)",
            re.DOTALL,
        )
        pieces: list[str] = []
        position = 0
        for match in tokens.finditer(query):
            pieces.append(query[position : match.start()].replace("%", self.percent))
            pieces.append(self._token(match))
            position = match.end()
        pieces.append(query[position:].replace("%", self.percent))
        return "".join(pieces)

    def _token(self, match: re.Match[str]) -> str:
        name = match.group("name")
        if name is None:
            return match.group("skip").replace("%", self.percent)
        if name not in PARAMETERS:
            known = ", ".join(f":{p}" for p in PARAMETERS)
            raise ConfigError(f"ledger.query uses unknown parameter :{name} (known: {known})")
        return self.placeholder.format(name=name)


POSTGRES = Dialect("postgresql", '"', r"'(?:[^']|'')*'", "%({name})s", "%%")
MYSQL = Dialect(
    "mysql", "`", r"'(?:[^'\\]|\\.|'')*'", "%({name})s", "%%", r"--[^\n]*|#[^\n]*|/\*.*?\*/"
)
SQLITE = Dialect("sqlite", '"', r"'(?:[^']|'')*'", ":{name}", "%")


def day_bounds(day: date, channel_timezone: str, ledger_timezone: str) -> tuple[datetime, datetime]:
    """The channel's accounting day as naive wall-clock bounds in the ledger's zone."""
    accounting = AccountingDay(day, channel_timezone)
    zone = ZoneInfo(ledger_timezone)
    return (
        accounting.start.astimezone(zone).replace(tzinfo=None),
        accounting.end.astimezone(zone).replace(tzinfo=None),
    )


def mask_url(url: str) -> str:
    """The URL with its password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{parts.username}:***@{host}").geturl()


def describe_url(url: str) -> str:
    """``scheme://host:port/database`` (or the SQLite path): no user, no password."""
    if url.startswith(SQLITE_PREFIX):
        return url.split("?", 1)[0]
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}{parts.path}"


# --- readers -----------------------------------------------------------------------------


class SqlLedgerReader(LedgerReader):
    """A ledger read from a database URL with ``settings.query`` or ``settings.table``."""

    dialect: ClassVar[Dialect]

    def __init__(
        self,
        url: str,
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
        if not settings.query and not settings.table:
            raise ConfigError(f"set ledger.query or ledger.table to read {mask_url(url)}")
        self.url = url
        self.start, self.end = day_bounds(day, channel_timezone, settings.timezone)
        if settings.query:
            self.dialect.bind(settings.query)  # fail on an unknown parameter before connecting

    @property
    def source(self) -> str:
        target = "query" if self.settings.query else self.settings.table
        return f"{describe_url(self.url)}:{target}"

    def parameters(self) -> dict[str, Any]:
        """Values for ``:date``, ``:start``, ``:end`` and ``:channel``."""
        return {"date": self.day, "start": self.start, "end": self.end, "channel": self.channel}

    def raw_batches(self) -> Iterator[RawBatch]:
        with self.connect() as connection, self._driver_errors():
            sql = self.statement(connection)
            with self.streaming_cursor(connection) as cursor:
                yield from self._stream(cursor, sql)

    def _stream(self, cursor: Any, sql: str) -> Iterator[RawBatch]:
        cursor.execute(sql, self.parameters())
        positions = result_columns(_names(cursor), self.settings.columns, self.source)
        first = 1
        while rows := cursor.fetchmany(self.settings.fetch_size):
            yield RawBatch(rows_to_batch(rows, positions), ordinals(first, len(rows)))
            first += len(rows)

    def statement(self, connection: Any) -> str:
        """The driver-ready SQL: the configured query, or a day's range over the table."""
        if self.settings.query:
            return self.dialect.bind(self.settings.query)
        assert self.settings.table is not None
        cursor = connection.cursor()
        try:
            cursor.execute(
                f"SELECT * FROM {self.dialect.identifier(self.settings.table)} WHERE 1 = 0"
            )
            names = _names(cursor)
        finally:
            cursor.close()
        return self.dialect.bind(self._table_query(names))

    def _table_query(self, names: list[str]) -> str:
        positions = result_columns(names, self.settings.columns, self.source)
        mapping = self.settings.columns
        sources = dict.fromkeys(mapping.get(name, name) for name in positions)
        ident = self.dialect.identifier
        time = ident(mapping.get("txn_time", "txn_time"))
        conditions = [f"{time} >= :start", f"{time} < :end"]
        if "channel" in positions:  # a table of every channel: keep this run's
            conditions.append(f"{ident(mapping.get('channel', 'channel'))} = :channel")
        columns = ", ".join(ident(source) for source in sources)
        table = ident(self.settings.table or "")
        return f"SELECT {columns} FROM {table} WHERE {' AND '.join(conditions)}"

    @contextmanager
    def _driver_errors(self) -> Iterator[None]:
        try:
            yield
        except self.driver_errors() as exc:
            message = str(exc).strip() or type(exc).__name__
            raise LedgerSourceError(f"query failed: {message}", Location(self.source)) from None

    def connection_error(self, exc: Exception) -> LedgerSourceError:
        """The error for a database that cannot be reached, naming it without the password."""
        message = str(exc).strip() or type(exc).__name__
        return LedgerSourceError(f"cannot connect to {mask_url(self.url)}: {message}")

    @abstractmethod
    def connect(self) -> AbstractContextManager[Any]:
        """A context manager yielding an open DB-API connection, closed on exit."""

    @abstractmethod
    def streaming_cursor(self, connection: Any) -> AbstractContextManager[Any]:
        """A cursor that fetches rows as they are asked for, not the whole result."""

    @abstractmethod
    def driver_errors(self) -> tuple[type[Exception], ...]:
        """The driver's exception classes, turned into :class:`LedgerSourceError`."""


class PostgresLedgerReader(SqlLedgerReader):
    """PostgreSQL via psycopg 3: a server-side cursor in a read-only transaction."""

    dialect = POSTGRES

    @contextmanager
    def connect(self) -> Iterator[Any]:
        require("psycopg", "postgres")
        import psycopg

        # Without a timeout a host that drops packets would hang the run.
        conninfo = self.url
        if "connect_timeout" not in conninfo:
            conninfo = psycopg.conninfo.make_conninfo(conninfo, connect_timeout=10)
        try:
            connection = psycopg.connect(conninfo, autocommit=False)
        except psycopg.Error as exc:
            raise self.connection_error(exc) from None
        with closing(connection):
            connection.read_only = True
            _timestamps_as_text(connection)
            with self._driver_errors():
                # Naive bounds and naive columns are both wall-clock time in this zone.
                connection.execute(_PG_SESSION, [self.settings.timezone])
            yield connection

    def streaming_cursor(self, connection: Any) -> AbstractContextManager[Any]:
        return closing(connection.cursor(name="payrecon_ledger"))

    def driver_errors(self) -> tuple[type[Exception], ...]:
        import psycopg

        return (psycopg.Error,)


def _timestamps_as_text(connection: Any) -> None:
    # ISO text is parsed by Arrow in one vectorised pass, far faster than one datetime
    # object per row; values Python cannot hold ('infinity') are quarantined, not fatal.
    from psycopg.types.string import TextLoader

    for name in ("timestamp", "timestamptz"):
        connection.adapters.register_loader(name, TextLoader)


class MysqlLedgerReader(SqlLedgerReader):
    """MySQL and MariaDB via PyMySQL: an unbuffered (SSCursor) streaming read."""

    dialect = MYSQL

    @contextmanager
    def connect(self) -> Iterator[Any]:
        require("pymysql", "mysql")
        import pymysql

        options = mysql_options(self.url)
        try:
            connection = pymysql.connect(**options, conv=_mysql_converters())
        except pymysql.MySQLError as exc:
            raise self.connection_error(exc) from None
        with closing(connection), self._driver_errors():
            self._set_time_zone(connection)
            yield connection

    def _set_time_zone(self, connection: Any) -> None:
        import pymysql

        with connection.cursor() as cursor:
            try:
                cursor.execute("SET time_zone = %s", (self.settings.timezone,))
            except pymysql.MySQLError:
                # Named zones need the server's time zone tables; the day's offset will do.
                cursor.execute("SET time_zone = %s", (self._utc_offset(),))

    def _utc_offset(self) -> str:
        offset = self.start.replace(tzinfo=ZoneInfo(self.settings.timezone)).utcoffset()
        minutes = int(offset.total_seconds() // 60) if offset else 0
        sign = "-" if minutes < 0 else "+"
        return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"

    @contextmanager
    def streaming_cursor(self, connection: Any) -> Iterator[Any]:
        import pymysql.cursors

        # Not closed on purpose: closing an unbuffered cursor first reads every row left,
        # which an early stop would pay for; closing the connection ends the result.
        yield connection.cursor(pymysql.cursors.SSCursor)

    def driver_errors(self) -> tuple[type[Exception], ...]:
        import pymysql

        return (pymysql.MySQLError,)


def _mysql_converters() -> dict[Any, Any]:
    # DATETIME/TIMESTAMP stay text for Arrow to parse (as for PostgreSQL); a zero date
    # ('0000-00-00 00:00:00') is then quarantined like any other unreadable time.
    from pymysql.constants import FIELD_TYPE
    from pymysql.converters import conversions, through

    converters = dict(conversions)
    converters[FIELD_TYPE.DATETIME] = converters[FIELD_TYPE.TIMESTAMP] = through
    return converters


def mysql_options(url: str) -> dict[str, Any]:
    """``mysql://user:password@host:port/database?charset=...`` as PyMySQL arguments."""
    parts = urlsplit(url)
    try:
        port = parts.port or 3306
    except ValueError:
        raise ConfigError(f"bad port in ledger URL {mask_url(url)}") from None
    options: dict[str, Any] = {
        "host": parts.hostname or "localhost",
        "port": port,
        "user": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
        "database": unquote(parts.path.lstrip("/")) or None,
        "charset": "utf8mb4",
    }
    for pair in filter(None, parts.query.split("&")):
        key, _, value = pair.partition("=")
        if key not in ("charset", "unix_socket"):
            raise ConfigError(f"unsupported option {key!r} in ledger URL {mask_url(url)}")
        options[key] = unquote(value)
    return options


class SqliteLedgerReader(SqlLedgerReader):
    """SQLite via the standard library, opened read-only.

    Timestamps are text; stored as ``YYYY-MM-DD HH:MM:SS[.ffffff]`` they compare
    correctly with the text bounds (a ``T`` separator would not).
    """

    dialect = SQLITE

    @contextmanager
    def connect(self) -> Iterator[Any]:
        path = self.url[len(SQLITE_PREFIX) :].split("?", 1)[0]
        try:
            connection = sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True)
        except sqlite3.Error as exc:
            raise self.connection_error(exc) from None
        with closing(connection):
            yield connection

    def parameters(self) -> dict[str, Any]:
        # SQLite has no date types: pass text that sorts like the stored timestamps.
        return {
            "date": self.day.isoformat(),
            "start": self.start.strftime(_TEXT_TIME),
            "end": self.end.strftime(_TEXT_TIME),
            "channel": self.channel,
        }

    def streaming_cursor(self, connection: Any) -> AbstractContextManager[Any]:
        return closing(connection.cursor())

    def driver_errors(self) -> tuple[type[Exception], ...]:
        return (sqlite3.Error,)


# --- rows to Arrow -----------------------------------------------------------------------


def _names(cursor: Any) -> list[str]:
    return [str(column[0]) for column in cursor.description or ()]


def result_columns(names: list[str], mapping: Mapping[str, str], source: str) -> dict[str, int]:
    """Canonical name -> position in the result, via ``ledger.columns`` or the same name."""
    index = {name: position for position, name in reversed(list(enumerate(names)))}
    positions: dict[str, int] = {}
    for canonical in INPUT_COLUMNS:
        column = mapping.get(canonical, canonical)
        if column in index:
            positions[canonical] = index[column]
        elif canonical in REQUIRED or canonical in mapping:
            found = ", ".join(names) or "none"
            raise LedgerSourceError(
                f"no column {column!r} for {canonical!r} (columns found: {found})",
                Location(source, field=canonical),
            )
    return positions


def rows_to_batch(rows: Sequence[Sequence[Any]], positions: Mapping[str, int]) -> pa.RecordBatch:
    """A chunk of DB-API tuples as an Arrow batch, converted one column at a time."""
    columns = list(zip(*rows, strict=True))
    arrays = [column_to_arrow(columns[position]) for position in positions.values()]
    return pa.RecordBatch.from_arrays(arrays, names=list(positions))


def column_to_arrow(values: Sequence[Any]) -> pa.Array:
    """One result column as Arrow, typed where the normaliser can judge the type.

    Anything else (UUIDs, bytes, values SQLite mixes within a column) becomes text, so
    each row is still judged on its own rather than failing the batch.
    """
    try:
        array = pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return _as_text_array(values)
    kind = array.type
    if pa.types.is_floating(kind):  # integers widened to floats by a REAL neighbour?
        keep = not any(isinstance(value, int) for value in values)
    else:
        keep = any(check(kind) for check in _NATIVE)
    return array if keep else _as_text_array(values)


_NATIVE = (
    pa.types.is_integer,
    pa.types.is_decimal,
    pa.types.is_string,
    pa.types.is_timestamp,
    pa.types.is_date,
    pa.types.is_null,
)


def _as_text_array(values: Sequence[Any]) -> pa.Array:
    return pa.array([as_text(value) for value in values], pa.string())
