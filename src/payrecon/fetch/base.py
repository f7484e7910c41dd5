"""The fetcher interface and what every fetcher shares.

A fetcher downloads one merchant's bills of one accounting day. Each bill is streamed
into a staging file while it is hashed (SHA-256 for the store, SHA-1 for WeChat's own
check), so a bill of any size takes a few buffers of memory; the store then moves the
file into place or, when it already holds the same content, drops it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

from payrecon.errors import BillIntegrityError, ConfigError

CHUNK = 1 << 20
HEAD_BYTES = 64 << 10  # kept in memory to recognise error answers
_GZIP_MAGIC = b"\x1f\x8b"
_GZIP_WBITS = 16 + zlib.MAX_WBITS


@dataclass(frozen=True)
class Provenance:
    """Where a bill came from and when."""

    channel: str
    merchant: str
    day: date
    bill_type: str  # ALL, fundflow-BASIC, trade, or the file name for file sources
    source: str  # the URL, sftp://user@host:port/path or file it was read from
    fetched_at: datetime  # UTC


@dataclass(frozen=True)
class FetchedFile:
    """One downloaded bill in a staging file (the store moves or deletes it)."""

    path: Path
    name: str  # a file name to show, e.g. wechat_1601959334_2026-11-20_ALL.csv
    sha256: str
    size: int
    provenance: Provenance


class Fetcher(Protocol):
    """Downloads bills. Configured for one source; told which bills to get."""

    def fetch(self, channel: str, merchant: str, day: date) -> list[FetchedFile]:
        """Every configured bill of ``merchant`` for ``day``, in staging files.

        Raises :class:`~payrecon.errors.BillNotReadyError` when a bill is not published
        yet (then no staging file is left behind) and other
        :class:`~payrecon.errors.FetchError` subclasses when it cannot be fetched.
        """
        ...


@dataclass(frozen=True)
class Spooled:
    """A finished spool: the staging file, its hashes, size and first bytes."""

    path: Path
    sha256: str
    sha1: str
    size: int
    head: bytes

    def fetched(self, name: str, provenance: Provenance) -> FetchedFile:
        return FetchedFile(self.path, name, self.sha256, self.size, provenance)


class Spool:
    """Writes a download into a staging file, hashing what is written.

    With ``gunzip`` a body that starts with the gzip magic is decompressed on the way,
    so the hashes are those of the bill itself (WeChat hashes the uncompressed file, and
    gzip headers differ between downloads of the same bill). Used as a context manager,
    the staging file is deleted unless :meth:`finish` was reached.
    """

    def __init__(self, staging: Path, *, gunzip: bool = False) -> None:
        staging.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=staging, prefix=".fetch-", suffix=".part")
        self.path = Path(name)
        self._file = os.fdopen(handle, "wb")
        self._sha256 = hashlib.sha256()
        self._sha1 = hashlib.sha1(usedforsecurity=False)
        self._size = 0
        self._head = b""
        self._sniff: bytes | None = b"" if gunzip else None  # bytes before gzip is decided
        self._inflater: zlib._Decompress | None = None
        self._in_member = False
        self._done = False

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self._done:
            self.discard()

    def write(self, data: bytes) -> None:
        """Add the next bytes of the download."""
        if self._sniff is not None:
            self._sniff += data
            if len(self._sniff) < len(_GZIP_MAGIC):
                return
            data, self._sniff = self._sniff, None
            if data.startswith(_GZIP_MAGIC):
                self._inflater = zlib.decompressobj(_GZIP_WBITS)
        if self._inflater is None:
            self._emit(data)
        else:
            self._inflate(data)

    def finish(self) -> Spooled:
        """Close the file; its hashes. A gzip stream cut short is an integrity error."""
        if self._sniff:
            self._emit(self._sniff)
        if self._inflater is not None and self._in_member:
            self.discard()
            raise BillIntegrityError(f"{self.path.name}: the gzip stream is cut short")
        self._file.close()
        self._done = True
        return Spooled(
            self.path, self._sha256.hexdigest(), self._sha1.hexdigest(), self._size, self._head
        )

    def discard(self) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)
        self._done = True

    def _inflate(self, data: bytes) -> None:
        assert self._inflater is not None
        while data:
            try:
                self._emit(self._inflater.decompress(data))
            except zlib.error as exc:
                raise BillIntegrityError(
                    f"{self.path.name}: not a valid gzip stream: {exc}"
                ) from exc
            self._in_member = not self._inflater.eof
            if self._inflater.eof:  # a gzip file may hold several members
                data = self._inflater.unused_data
                self._inflater = zlib.decompressobj(_GZIP_WBITS)
            else:
                data = b""

    def _emit(self, data: bytes) -> None:
        if not data:
            return
        if len(self._head) < HEAD_BYTES:
            self._head += data[: HEAD_BYTES - len(self._head)]
        self._sha256.update(data)
        self._sha1.update(data)
        self._size += len(data)
        self._file.write(data)


def expand(template: str, *, channel: str, merchant: str, day: date) -> str:
    """Fill ``{channel}``, ``{merchant}`` and ``{date}`` (or ``{date:%Y%m%d}``) in a template.

    >>> expand("{merchant}/ZM_{date:%Y%m%d}*.txt", channel="c", merchant="m", day=date(2026, 1, 2))
    'm/ZM_20260102*.txt'
    >>> expand("bill-{date}.csv", channel="c", merchant="m", day=date(2026, 1, 2))
    'bill-2026-01-02.csv'
    """
    try:
        return template.format(channel=channel, merchant=merchant, date=day)
    except (KeyError, IndexError, ValueError, AttributeError) as exc:
        raise ConfigError(
            f"cannot fill in {template!r} ({exc}); the placeholders are {{channel}},"
            " {merchant}, {date} and {date:FORMAT} (strftime), and a literal brace is {{ or }}"
        ) from exc


def fetch_all(bills: Iterable[Callable[[], FetchedFile]]) -> list[FetchedFile]:
    """Run each download; if one fails, delete the staging files of those before it."""
    done: list[FetchedFile] = []
    try:
        for fetch_one in bills:
            done.append(fetch_one())
    except BaseException:
        for fetched in done:
            fetched.path.unlink(missing_ok=True)
        raise
    return done


def read_secret(file: Path | None, env: str | None, what: str) -> bytes:
    """The secret from ``file`` or from the environment variable ``env``."""
    if file is not None:
        try:
            return file.expanduser().read_bytes().strip()
        except OSError as exc:
            raise ConfigError(f"{what}: cannot read {file}: {exc.strerror}") from exc
    if env:
        value = os.environ.get(env, "").strip()
        if not value:
            raise ConfigError(f"{what}: the environment variable {env} is not set")
        return value.encode()
    raise ConfigError(f"{what}: not configured (give a _file or an _env)")


def utc_now() -> datetime:
    return datetime.now(UTC)
