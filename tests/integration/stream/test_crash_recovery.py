"""``kill -9`` a running ``payrecon stream`` again and again, restart it on the same
checkpoint, and compare what it emitted with an uninterrupted run.

Data is chosen so the answer depends only on event times: each input is sorted (nothing
is late), every order has at most one event per side, and idleness is off. Inputs grow
while the job runs (followed files, or Kafka topics). Runs alternate between frequent
checkpoints and none before the kill, so some kills fall between a checkpoint and the
outputs after it: those outputs must come again, with the same ``alert_id``.
"""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from payrecon.cli import main
from tests.integration.stream.conftest import WAIT_S, TopicReader, committed, create, ends
from tests.integration.stream.conftest import produce as produce_messages
from tests.integration.stream.conftest import topic as new_topic

BASE = 1_606_549_000
INTERVALS = ("30ms", "10m")  # frequent checkpoints / none before the kill
CUT = 7  # pieces of a file end this many bytes before a line's end: writers stop mid-line


def scenario(orders: int) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """Pay and receipt lines as ``(ts, line)``: every branch of the matcher, no repeats."""
    pays: list[tuple[int, str]] = []
    receipts: list[tuple[int, str]] = []
    for number in range(orders):
        ts, order = BASE + 3 * number, f"o{number:05d}"
        pay_at, receipt_at = {
            0: (ts, ts + 1),  # matched
            1: (ts, ts + 9),  # receipt too late: both unmatched
            2: (ts, None),  # no receipt
            3: (None, ts),  # no pay
            4: (ts + 2, ts),  # receipt first, pay in time
            5: (ts + 5, ts),  # receipt first, pay too late
        }[number % 6]
        if pay_at is not None:
            pays.append((pay_at, f"1,pay,{order},{pay_at}\n"))
        if receipt_at is not None:
            receipts.append((receipt_at, f"{order},wechat,{receipt_at}\n"))
        if number % 250 == 7:
            pays.append((ts, f"1,create,{order},{ts}\n"))  # ignored
            receipts.append((ts, f"{order},wechat,not-a-time\n"))  # a dead letter
    return sorted(pays), sorted(receipts)


def pieces(lines: list[tuple[int, str]], bounds: list[int]) -> list[str]:
    """The text in pieces by event time; each piece but the last ends mid-line."""
    text = "".join(line for _, line in lines)
    cuts, size = [], 0
    for bound in bounds:
        size = sum(len(line) for ts, line in lines if ts < bound)
        cuts.append(max(0, size - CUT))
    cuts[-1] = len(text)
    return [text[start:end] for start, end in zip([0, *cuts[:-1]], cuts, strict=True)]


def ids(path: Path, *, whole: bool = False) -> list[str]:
    """The alert ids in a JSON-lines file; one being written may end mid-line, unless
    ``whole`` is asked for (then every line must parse)."""
    if not path.exists():
        return []
    lines = path.read_text("utf-8").split("\n")
    if whole:
        assert lines[-1] == "", "the file ends mid-line"
    return [json.loads(line)["alert_id"] for line in lines[:-1]]


def dead_positions(path: Path) -> set[tuple[str, int]]:
    records = [json.loads(line) for line in path.read_text("utf-8").splitlines()]
    return {(record["side"], record["position"]) for record in records}


def append(path: Path, text: str) -> None:
    with path.open("a", encoding="utf-8") as file:
        file.write(text)


def checkpoint_sequence(path: Path) -> int:
    """The sequence of the checkpoint in ``path`` (0 for none), read while a job runs."""
    if not path.exists():
        return 0
    try:
        with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            row = db.execute("SELECT sequence FROM checkpoint").fetchone()
    except sqlite3.OperationalError:  # the job has not created the table yet
        return 0
    return int(row[0]) if row else 0


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(0.01)


class Jobs:
    """Starts ``payrecon stream`` subprocesses one after another; stderr kept per run."""

    def __init__(self, folder: Path, args: list[str]) -> None:
        self.folder, self.args = folder, args
        self.runs = 0
        self.current: subprocess.Popen[bytes] | None = None

    @property
    def checkpoints_often(self) -> bool:
        """Whether the running job was started with frequent checkpoints."""
        return (self.runs - 1) % len(INTERVALS) == 0

    def start(self) -> None:
        interval = INTERVALS[self.runs % len(INTERVALS)]
        command = [sys.executable, "-m", "payrecon", "stream", *self.args]
        with (self.folder / f"stderr-{self.runs}.txt").open("wb") as stderr:
            self.current = subprocess.Popen(
                [*command, "--checkpoint-interval", interval],
                cwd=self.folder,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
        self.runs += 1

    def kill_9(self) -> None:
        assert self.current is not None and self.current.poll() is None, self.stderr()
        self.current.kill()  # SIGKILL: no handler, no final checkpoint, no flush
        assert self.current.wait(WAIT_S) == -signal.SIGKILL

    def stop(self) -> int:
        assert self.current is not None
        self.current.send_signal(signal.SIGTERM)
        return self.current.wait(WAIT_S)

    def stderr(self) -> str:
        return (self.folder / f"stderr-{self.runs - 1}.txt").read_text("utf-8")

    def close(self) -> None:
        if self.current is not None and self.current.poll() is None:
            self.current.kill()
            self.current.wait(WAIT_S)


@pytest.fixture
def jobs() -> Iterator[Callable[[Path, list[str]], Jobs]]:
    started: list[Jobs] = []

    def make(folder: Path, args: list[str]) -> Jobs:
        started.append(Jobs(folder, args))
        return started[-1]

    yield make
    for each in started:
        each.close()


def reference(folder: Path, pays: list[tuple[int, str]], receipts: list[tuple[int, str]]) -> Any:
    """An uninterrupted bounded run over the complete inputs: outputs and summary."""
    (folder / "ref").mkdir()
    pay, receipt = folder / "ref" / "pay.csv", folder / "ref" / "receipt.csv"
    pay.write_text("".join(line for _, line in pays), encoding="utf-8")
    receipt.write_text("".join(line for _, line in receipts), encoding="utf-8")
    out, dead = folder / "ref" / "out.jsonl", folder / "ref" / "dead.jsonl"
    args = ["stream", "--pay", str(pay), "--receipt", str(receipt), "--quiet"]
    assert main([*args, "--jsonl", str(out), "--dead-letter", str(dead)]) == 1
    return out, dead


def test_kill_9_on_followed_files_loses_no_alert(
    tmp_path: Path, jobs: Callable[[Path, list[str]], Jobs], capsys: pytest.CaptureFixture[str]
) -> None:
    rng = random.Random(20261120)
    pays, receipts = scenario(1800)
    end = BASE + 3 * 1800 + 100_000  # a matched pair far ahead: every earlier timer fires
    pays.append((end, f"1,pay,zz-end,{end}\n"))
    receipts.append((end + 1, f"zz-end,wechat,{end + 1}\n"))
    ref_out, ref_dead = reference(tmp_path, pays, receipts)
    summary = capsys.readouterr().err.strip().splitlines()[-1]
    expected = set(ids(ref_out))
    assert len(expected) > 1500

    bounds = [BASE + 3 * 1800 * k // 24 for k in range(1, 25)] + [end + 2]
    pay_pieces, receipt_pieces = pieces(pays, bounds), pieces(receipts, bounds)
    pay, receipt, out = tmp_path / "pay.csv", tmp_path / "receipt.csv", tmp_path / "out.jsonl"
    checkpoint = tmp_path / "cp.sqlite"
    pay.write_text("", encoding="utf-8")
    receipt.write_text("", encoding="utf-8")
    run = jobs(
        tmp_path,
        [
            *("--pay", "file:pay.csv", "--receipt", "file:receipt.csv", "--follow"),
            *("--idle-timeout", "off", "--quiet", "--checkpoint", "cp.sqlite"),
            *("--sink", "jsonl:out.jsonl", "--dead-letter", "dead.jsonl"),
        ],
    )
    run.start()
    kills, checkpointed = 0, 0
    for first in range(0, len(pay_pieces) - 1, 2):  # two pieces per run, then kill -9
        emitted = len(ids(out))
        append(pay, pay_pieces[first])
        append(receipt, receipt_pieces[first])
        wait_for(lambda: len(ids(out)) > emitted, "outputs of the new lines")  # noqa: B023
        if run.checkpoints_often:
            saved = checkpoint_sequence(checkpoint)
            wait_for(lambda: checkpoint_sequence(checkpoint) > saved, "a checkpoint")  # noqa: B023
            checkpointed += 1
        append(pay, pay_pieces[first + 1])
        append(receipt, receipt_pieces[first + 1])
        time.sleep(rng.uniform(0, 0.04))  # before, while or after the job reads them
        run.kill_9()
        kills += 1
        run.start()
    append(pay, pay_pieces[-1])
    append(receipt, receipt_pieces[-1])
    wait_for(lambda: expected <= set(ids(out)), "every expected output")
    assert run.stop() == 130, run.stderr()

    emitted_ids = ids(out, whole=True)  # a line torn by a kill was cut on restart
    assert kills >= 10 and checkpointed >= 5
    assert set(emitted_ids) == expected  # none lost, none made up
    assert len(emitted_ids) > len(expected)  # some were emitted twice, with the same id
    assert dead_positions(tmp_path / "dead.jsonl") == dead_positions(ref_dead)
    counts = summary.removeprefix("stream: ")  # state counts are exact, not at least once
    assert counts in run.stderr()
    assert "resumed from checkpoint" in run.stderr()


def pay_line(order: str) -> tuple[str, bytes]:
    return order, f"1,pay,{order},{2000 + int(order[1:])}".encode()


def receipt_line(order: str) -> tuple[str, bytes]:
    return order, f"{order},x,{2001 + int(order[1:])}".encode()


def test_kill_9_reading_kafka_loses_no_alert_and_commits_to_the_end(
    tmp_path: Path,
    kafka: str,
    jobs: Callable[[Path, list[str]], Jobs],
    readers: Callable[[str], TopicReader],
) -> None:
    rng = random.Random(4)
    topics, out, group = (new_topic("pay"), new_topic("receipt")), new_topic("alerts"), "crash"
    create(kafka, out)
    reader = readers(out)
    run = jobs(
        tmp_path,
        [
            *("--pay", f"kafka://{kafka}/{topics[0]}?group={group}"),
            *("--receipt", f"kafka://{kafka}/{topics[1]}?group={group}"),
            *("--out-of-orderness", "100000s", "--quiet", "--checkpoint", "cp.sqlite"),
            *("--sink", f"kafka://{kafka}/{out}", "--sink", "jsonl:out.jsonl"),
        ],
    )
    orders = [f"k{number:04d}" for number in range(400)]
    batches = [orders[start : start + 80] for start in range(0, 400, 80)]
    for name in topics:
        create(kafka, name)
    run.start()
    for number in range(len(batches) + 1):  # pays of a batch, with the receipts of the last
        seen = len(reader.read())
        if number < len(batches):
            produce_messages(kafka, topics[0], [pay_line(order) for order in batches[number]])
        if number > 0:
            produce_messages(kafka, topics[1], [receipt_line(o) for o in batches[number - 1]])
        if 0 < number < len(batches):  # pays of this batch wait in the state when killed
            wait_for(lambda: len(reader.read()) > seen, "outputs on the topic")  # noqa: B023
            time.sleep(rng.uniform(0, 0.03))
            run.kill_9()
            run.start()
    wait_for(lambda: len({m.key() for m in reader.read()}) == len(orders), "every order")
    assert run.stop() == 130, run.stderr()
    messages = reader.read()

    assert sorted({message.key().decode() for message in messages}) == orders
    assert {json.loads(message.value())["type"] for message in messages} == {"matched"}
    by_id: dict[str, set[bytes]] = {}
    for message in messages:  # a repeat carries the same alert id for the same order
        by_id.setdefault(json.loads(message.value())["alert_id"], set()).add(message.key())
    assert len(by_id) == len(orders) and all(len(keys) == 1 for keys in by_id.values())
    assert set(ids(tmp_path / "out.jsonl")) == set(by_id)
    for name in topics:  # the last checkpoint covered everything, and was then committed
        assert committed(kafka, group, name) == ends(kafka, name)
