"""JSON-lines sinks across a crash: a torn last line is cut off when the file is reopened."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from payrecon.core.stream import StreamOutput
from payrecon.stream.events import DeadLetter
from payrecon.stream.sinks import DeadLetterSink, JsonLinesSink, cut_torn_tail, output_record

OUTPUT = StreamOutput("matched", "order01", 1000, 2000, None, None, "c" * 32)


def test_output_record_has_the_fields_in_order() -> None:
    assert list(output_record(OUTPUT)) == ["type", "order_id", "alert_id", "pay", "receipt"]


def test_output_record_carries_each_side_or_null() -> None:
    assert output_record(OUTPUT)["pay"] == {"ts_ms": 1000, "amount": None}
    assert output_record(OUTPUT)["receipt"] == {"ts_ms": 2000, "amount": None}
    alone = StreamOutput("unmatched_receipt", "order02", None, 3000, None, 1250, "d" * 32)
    assert output_record(alone) == {
        "type": "unmatched_receipt",
        "order_id": "order02",
        "alert_id": "d" * 32,
        "pay": None,
        "receipt": {"ts_ms": 3000, "amount": 1250},
    }


@pytest.mark.parametrize(
    ("content", "kept"),
    [
        (b"", b""),
        (b'{"a": 1}\n', b'{"a": 1}\n'),
        (b'{"a": 1}\n{"b": ', b'{"a": 1}\n'),
        (b'{"tor', b""),
        (b"x\n" + b"y" * 200_000, b"x\n"),  # the tear is longer than one read chunk
    ],
)
def test_cut_torn_tail(tmp_path: Path, content: bytes, kept: bytes) -> None:
    path = tmp_path / "out.jsonl"
    path.write_bytes(content)
    cut_torn_tail(path)
    assert path.read_bytes() == kept


def test_a_missing_file_is_left_alone(tmp_path: Path) -> None:
    cut_torn_tail(tmp_path / "new.jsonl")
    assert not (tmp_path / "new.jsonl").exists()


def test_reopening_after_a_crash_appends_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    sink = JsonLinesSink(path)
    sink.add(OUTPUT)
    sink.flush()
    sink.close()
    with path.open("a", encoding="utf-8") as file:
        file.write('{"type": "matc')  # what a kill -9 mid-write leaves
    again = JsonLinesSink(path)
    again.add(OUTPUT)
    again.close()
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert records == [output_record(OUTPUT)] * 2


def test_dead_letter_sink_appends_and_flushes(tmp_path: Path) -> None:
    path = tmp_path / "dead.jsonl"
    sink = DeadLetterSink(path)
    sink.add(DeadLetter("pay", "orders", "0:7", "x", "bad JSON"))
    sink.flush()
    assert json.loads(path.read_text(encoding="utf-8")) == {
        "side": "pay",
        "source": "orders",
        "position": "0:7",
        "raw": "x",
        "reason": "bad JSON",
    }
    sink.close()
