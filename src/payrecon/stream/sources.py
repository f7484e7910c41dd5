"""Where event lines come from: one small interface, and the file and stdin sources.

A :class:`Source` is polled, never waited on: :meth:`Source.poll` returns at once with
the lines that are available now (possibly none), so one thread can serve two live inputs
and still notice idleness and signals. Each line carries a position for dead letters.

Sources differ in whether they can resume after a crash (``resumable``); the runtime saves
:meth:`Source.position` in each checkpoint and hands it back to :meth:`Source.open`:

* file, bounded or followed: ``{"offset": bytes, "line": n}`` after the last complete line;
* Kafka (:mod:`payrecon.stream.kafka`): ``{"<partition>": next offset, ...}``;
* stdin and TCP: not resumable (``None``), since what was sent cannot be asked for again;
* in-memory lines (tests, :func:`~payrecon.stream.runtime.run_bounded`): not resumable.

A file is an artifact that can be fixed and read again, so bytes that are not UTF-8 stop
the job with an :class:`InputError` naming the line. A stream cannot be rewound, so a
stream source hands such a line on with ``error`` set and it becomes a dead letter.
"""

from __future__ import annotations

import os
import select
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import BinaryIO, NamedTuple, Protocol, TextIO

from payrecon.errors import InputError, Location

Position = dict[str, int]
READ_BYTES = 1 << 16


class SourceLine(NamedTuple):
    """One line as read; ``error`` is set when it cannot even be text (a dead letter)."""

    text: str
    position: int | str
    error: str | None = None


class Source(Protocol):
    """A pollable input of event lines; see the module docstring for positions."""

    @property
    def name(self) -> str:
        """Shown in dead letters and messages."""

    @property
    def identity(self) -> str:
        """What a checkpoint must have been written for (not the bootstrap address)."""

    @property
    def resumable(self) -> bool:
        """True when :meth:`open` can continue from a saved :meth:`position`."""

    @property
    def ended(self) -> bool:
        """True once a bounded source has handed out its last line."""

    def open(self, position: Mapping[str, int] | None) -> None:
        """Start reading, at ``position`` when given (only for a resumable source)."""

    def poll(self, max_lines: int) -> list[SourceLine]:
        """Up to ``max_lines`` lines available now; never blocks for long."""

    def position(self) -> Position | None:
        """Where to continue after the lines handed out so far (None: not resumable)."""

    def commit(self, position: Position | None) -> None:
        """A checkpoint holding ``position`` is durable (Kafka commits its offsets)."""

    def close(self) -> None:
        """Release the connection or file."""


def decoded(raw: bytes, position: int | str) -> SourceLine:
    """The line as text, or a line marked with why it is not UTF-8."""
    try:
        return SourceLine(raw.decode("utf-8"), position)
    except UnicodeDecodeError as exc:
        reason = f"not UTF-8 text: {exc.reason} at byte {exc.start}"
        return SourceLine(raw.decode("utf-8", "replace"), position, reason)


class LineBuffer:
    """Splits chunks of a byte stream into lines, keeping an unfinished last line.

    >>> buffer = LineBuffer()
    >>> buffer.feed(b"a\\nb"), buffer.feed(b"c\\n"), buffer.rest()
    ([b'a'], [b'bc'], b'')
    """

    def __init__(self) -> None:
        self._partial = b""

    def feed(self, chunk: bytes) -> list[bytes]:
        """The lines ``chunk`` completes, without their ``\\n``."""
        if b"\n" not in chunk:
            self._partial += chunk
            return []
        lines = (self._partial + chunk).split(b"\n")
        self._partial = lines.pop()
        return lines

    def rest(self) -> bytes:
        """The unfinished line (the stream has closed), and forget it."""
        rest, self._partial = self._partial, b""
        return rest


class LineIterSource:
    """Lines from an iterable of text (tests, :func:`run_bounded`, a stdin without a fd)."""

    resumable = False

    def __init__(self, lines: Iterable[str], name: str, identity: str = "lines") -> None:
        self.name = name
        self.identity = identity
        self.ended = False
        self._lines: Iterable[str] = lines
        self._iterator: Iterator[str] = iter(())
        self._number = 0

    def open(self, position: Mapping[str, int] | None) -> None:
        """Start iterating; a position is ignored (not resumable)."""
        self._iterator = iter(self._lines)

    def poll(self, max_lines: int) -> list[SourceLine]:
        """The next lines, numbered from 1; ends when the iterable is exhausted."""
        lines: list[SourceLine] = []
        while len(lines) < max_lines and not self.ended:
            line = next(self._iterator, None)
            if line is None:
                self.ended = True
            else:
                self._number += 1
                lines.append(SourceLine(line, self._number))
        return lines

    def position(self) -> Position | None:
        """None: not resumable."""
        return None

    def commit(self, position: Position | None) -> None:
        """Nothing to commit."""

    def close(self) -> None:
        """Nothing to release."""


class FileSource:
    """A file read from a byte offset; with ``follow`` it is tailed and never ends.

    While following, an unfinished last line (no ``\\n`` yet: the writer is mid-line) is
    left for a later poll and is not part of :meth:`position`. Without ``follow`` the file
    ends at end of file and a last line without ``\\n`` is a line. A followed file that
    shrinks below what was read (truncated or replaced) is an input error.
    """

    resumable = True

    def __init__(self, path: Path, *, follow: bool = False) -> None:
        self.path = path
        self.follow = follow
        self.name = str(path)
        self.identity = f"file:{path.resolve()}"
        self.ended = False
        self._file: BinaryIO | None = None
        self._offset = 0
        self._line = 0

    def open(self, position: Mapping[str, int] | None) -> None:
        """Open the file and seek to ``position`` (a saved offset and line number)."""
        try:
            file = self.path.open("rb")
        except OSError as exc:
            raise InputError(f"cannot read {self.path}: {exc.strerror or exc}") from exc
        if position is not None:
            self._offset, self._line = int(position["offset"]), int(position["line"])
            try:
                self._check_size(file)
            except InputError:
                file.close()
                raise
            file.seek(self._offset)
        self._file = file

    def poll(self, max_lines: int) -> list[SourceLine]:
        """The next complete lines, numbered by their line in the file."""
        file = self._opened()
        lines: list[SourceLine] = []
        while len(lines) < max_lines:
            raw = file.readline()
            if not raw.endswith(b"\n") and not self._take_unfinished(file, raw):
                break
            self._offset += len(raw)
            self._line += 1
            lines.append(SourceLine(self._text(raw), self._line))
        return lines

    def _take_unfinished(self, file: BinaryIO, raw: bytes) -> bool:
        """Whether a read without ``\\n`` is a line; else note the end or wait for more."""
        if self.follow:
            if raw:
                file.seek(-len(raw), os.SEEK_CUR)  # the writer is mid-line: read it again
            else:
                self._check_size(file)
            return False
        if not raw:
            self.ended = True
        return bool(raw)

    def _text(self, raw: bytes) -> str:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError("not UTF-8 text", Location(self.name, self._line)) from exc

    def _check_size(self, file: BinaryIO) -> None:
        size = os.fstat(file.fileno()).st_size
        if size < self._offset:
            raise InputError(
                f"{self.name} is shorter ({size} bytes) than what was already read"
                f" ({self._offset} bytes): truncated or replaced"
            )

    def _opened(self) -> BinaryIO:
        if self._file is None:
            raise InputError(f"{self.name} was polled before it was opened")
        return self._file

    def position(self) -> Position | None:
        """Byte offset and line number after the last line handed out."""
        return {"offset": self._offset, "line": self._line}

    def commit(self, position: Position | None) -> None:
        """Nothing to commit: the checkpoint itself holds the offset."""

    def close(self) -> None:
        """Close the file."""
        if self._file is not None:
            self._file.close()
            self._file = None


class ByteStreamSource:
    """Lines from a byte stream that cannot be rewound (a pipe or a socket).

    Subclasses implement :meth:`_read` (``None``: nothing available now, ``b""``: the
    other end closed) and :meth:`_on_close` (end, or reconnect). A close ends an
    unfinished last line. Lines are numbered from 1 over the life of the source.
    """

    resumable = False

    def __init__(self, name: str, identity: str) -> None:
        self.name = name
        self.identity = identity
        self._buffer = LineBuffer()
        self._ready: deque[bytes] = deque()
        self._closed = False
        self._line = 0

    @property
    def ended(self) -> bool:
        """True once the stream closed for good and every line was handed out."""
        return self._closed and not self._ready

    def poll(self, max_lines: int) -> list[SourceLine]:
        """The complete lines available now."""
        lines: list[SourceLine] = []
        while len(lines) < max_lines:
            if not self._ready:
                if not self._fill():
                    break
                continue
            self._line += 1
            lines.append(decoded(self._ready.popleft(), self._line))
        return lines

    def _fill(self) -> bool:
        """Read once; True when something was read (more may follow at once)."""
        chunk = None if self._closed else self._read()
        if chunk is None:
            return False
        if chunk:
            self._ready.extend(self._buffer.feed(chunk))
            return True
        rest = self._buffer.rest()
        if rest:
            self._ready.append(rest)
        self._on_close()
        return bool(self._ready)

    def _read(self) -> bytes | None:
        raise NotImplementedError

    def _on_close(self) -> None:
        self._closed = True

    def position(self) -> Position | None:
        """None: not resumable."""
        return None

    def commit(self, position: Position | None) -> None:
        """Nothing to commit."""


class FdSource(ByteStreamSource):
    """A readable file descriptor (stdin as a pipe, terminal or redirected file)."""

    def __init__(self, fd: int, name: str = "<stdin>", identity: str = "stdin") -> None:
        super().__init__(name, identity)
        self.fd = fd

    def open(self, position: Mapping[str, int] | None) -> None:
        """Nothing to open; a position is ignored (not resumable)."""

    def _read(self) -> bytes | None:
        if not select.select([self.fd], [], [], 0)[0]:
            return None
        return os.read(self.fd, READ_BYTES)

    def close(self) -> None:
        """Leave the descriptor open: it belongs to the caller."""


def stdin_source(stream: TextIO) -> Source:
    """Stdin read without blocking when it has a descriptor, else line by line."""
    try:
        return FdSource(stream.fileno())
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is an OSError
        return LineIterSource(stream, "<stdin>", "stdin")
