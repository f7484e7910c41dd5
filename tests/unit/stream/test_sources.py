"""File, followed-file, stdin and in-memory sources: lines, positions, ends, resuming."""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from payrecon.errors import InputError
from payrecon.stream.sources import (
    FdSource,
    FileSource,
    LineBuffer,
    LineIterSource,
    Source,
    SourceLine,
    stdin_source,
)

Opener = Callable[..., Source]


@pytest.fixture
def opened() -> Iterator[Opener]:
    """Open sources for a test and close them after it."""
    sources: list[Source] = []

    def open_source(source: Source, position: dict[str, int] | None = None) -> Source:
        source.open(position)
        sources.append(source)
        return source

    yield open_source
    for source in sources:
        source.close()


def texts(lines: list[SourceLine]) -> list[str]:
    return [line.text for line in lines]


def drain(source: Source, batch: int = 100) -> list[SourceLine]:
    """Poll until the source has nothing more right now."""
    lines: list[SourceLine] = []
    while chunk := source.poll(batch):
        lines += chunk
    return lines


# --- bounded files -------------------------------------------------------------------------


def test_file_lines_positions_and_end(tmp_path: Path, opened: Opener) -> None:
    path = tmp_path / "pay.csv"
    path.write_bytes(b"a\r\nbb\nccc")  # no newline at the very end: still a line
    source = opened(FileSource(path))
    first = source.poll(2)
    assert first == [SourceLine("a\r\n", 1), SourceLine("bb\n", 2)]
    assert source.position() == {"offset": 6, "line": 2}
    assert not source.ended
    assert source.poll(5) == [SourceLine("ccc", 3)]
    assert source.position() == {"offset": 9, "line": 3}
    assert source.poll(5) == []
    assert source.ended


def test_file_resumes_at_a_saved_position(tmp_path: Path, opened: Opener) -> None:
    path = tmp_path / "pay.csv"
    path.write_text("one\ntwo\nthree\n", encoding="utf-8")
    first = opened(FileSource(path))
    first.poll(1)
    saved = first.position()
    again = opened(FileSource(path), saved)
    assert drain(again) == [SourceLine("two\n", 2), SourceLine("three\n", 3)]
    assert again.resumable and again.identity == f"file:{path.resolve()}"


def test_file_that_is_not_utf8_is_an_input_error_naming_the_line(
    tmp_path: Path, opened: Opener
) -> None:
    path = tmp_path / "pay.csv"
    path.write_bytes(b"fine\n\xff\xfe\n")
    source = opened(FileSource(path))
    with pytest.raises(InputError, match=r"pay.csv, line 2: not UTF-8 text"):
        drain(source)


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        FileSource(tmp_path / "nope.csv").open(None)


def test_polling_before_open_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="before it was opened"):
        FileSource(tmp_path / "x").poll(1)


# --- followed files ------------------------------------------------------------------------


def test_follow_waits_for_the_end_of_an_unfinished_line(tmp_path: Path, opened: Opener) -> None:
    path = tmp_path / "receipt.csv"
    path.write_bytes(b"r1\nr2-hal")
    source = opened(FileSource(path, follow=True))
    assert texts(drain(source)) == ["r1\n"]
    assert source.position() == {"offset": 3, "line": 1}  # the half line is not read yet
    with path.open("ab") as file:
        file.write(b"f\nr3\n")
    assert drain(source) == [SourceLine("r2-half\n", 2), SourceLine("r3\n", 3)]
    assert not source.ended  # a followed file never ends
    assert source.poll(10) == [] and not source.ended


def test_follow_resumes_before_an_unfinished_line(tmp_path: Path, opened: Opener) -> None:
    path = tmp_path / "receipt.csv"
    path.write_bytes(b"r1\nr2-hal")
    first = opened(FileSource(path, follow=True))
    drain(first)
    saved = first.position()
    with path.open("ab") as file:
        file.write(b"f\n")
    assert drain(opened(FileSource(path, follow=True), saved)) == [SourceLine("r2-half\n", 2)]


def test_follow_notices_a_truncated_file(tmp_path: Path, opened: Opener) -> None:
    path = tmp_path / "receipt.csv"
    path.write_text("r1\nr2\n", encoding="utf-8")
    source = opened(FileSource(path, follow=True))
    drain(source)
    path.write_text("", encoding="utf-8")
    with pytest.raises(InputError, match="truncated or replaced"):
        source.poll(1)


def test_resuming_past_the_end_of_a_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "pay.csv"
    path.write_text("a\n", encoding="utf-8")
    with pytest.raises(InputError, match="shorter"):
        FileSource(path).open({"offset": 100, "line": 9})


# --- stdin and other byte streams -----------------------------------------------------------


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    read_fd, write_fd = os.pipe()
    yield read_fd, write_fd
    for fd in (read_fd, write_fd):
        with contextlib.suppress(OSError):  # the test may have closed it
            os.close(fd)


def test_fd_source_reads_what_is_there_without_blocking(
    pipe: tuple[int, int], opened: Opener
) -> None:
    read_fd, write_fd = pipe
    source = opened(FdSource(read_fd))
    assert source.poll(10) == []  # nothing written yet: returns at once
    os.write(write_fd, b"p1\np2-")
    assert source.poll(10) == [SourceLine("p1", 1)]
    os.write(write_fd, b"half\n\xff\n")
    got = source.poll(10)
    assert got[0] == SourceLine("p2-half", 2)
    assert got[1].position == 3 and got[1].error is not None
    assert got[1].error.startswith("not UTF-8 text")
    assert not source.ended and not source.resumable and source.position() is None


def test_fd_source_ends_when_the_writer_closes(pipe: tuple[int, int], opened: Opener) -> None:
    read_fd, write_fd = pipe
    source = opened(FdSource(read_fd))
    os.write(write_fd, b"last-without-newline")
    os.close(write_fd)
    assert drain(source) == [SourceLine("last-without-newline", 1)]
    assert source.ended


def test_stdin_without_a_descriptor_is_read_line_by_line() -> None:
    source = stdin_source(io.StringIO("a\nb\n"))
    assert isinstance(source, LineIterSource)
    source.open(None)
    assert drain(source) == [SourceLine("a\n", 1), SourceLine("b\n", 2)]
    assert source.ended and source.name == "<stdin>" and source.identity == "stdin"


def test_stdin_with_a_descriptor_is_polled(pipe: tuple[int, int]) -> None:
    with open(pipe[0], closefd=False) as stream:
        assert isinstance(stdin_source(stream), FdSource)


def test_line_iter_source_numbers_lines_and_ends(opened: Opener) -> None:
    source = opened(LineIterSource(["x", "y", "z"], "mem"))
    assert source.poll(2) == [SourceLine("x", 1), SourceLine("y", 2)]
    assert not source.ended
    assert source.poll(2) == [SourceLine("z", 3)]
    assert source.ended


def test_line_buffer_keeps_the_unfinished_line() -> None:
    buffer = LineBuffer()
    assert buffer.feed(b"a") == []
    assert buffer.feed(b"b\nc\n\nd") == [b"ab", b"c", b""]
    assert buffer.rest() == b"d"
    assert buffer.rest() == b""
