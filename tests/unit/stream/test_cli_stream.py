"""``payrecon stream`` driven in-process through ``payrecon.cli.main``."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

import pytest

from payrecon.cli import main, parse_duration_ms
from payrecon.errors import ConfigError
from tests.unit.stream.servers import WebhookReceiver

PAYS = "1,create,order01,1606549510\n1,pay,order01,1606549513\n2,pay,order02,1606549520\n"
RECEIPTS = "order01,wechat,1606549536\norder02,alipay,1606549522\n"
UNMATCHED_PAY = "unmatched_pay> order01 pay 2020-11-28 15:45:13"
MATCHED = "matched> order02 pay 2020-11-28 15:45:20 receipt 2020-11-28 15:45:22"
UNMATCHED_RECEIPT = "unmatched_receipt> order01 receipt 2020-11-28 15:45:36"


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    pay, receipt = tmp_path / "pay.csv", tmp_path / "receipt.csv"
    pay.write_text(PAYS, encoding="utf-8")
    receipt.write_text(RECEIPTS, encoding="utf-8")
    return pay, receipt


def stream(capsys: pytest.CaptureFixture[str], *args: str | Path) -> Ran:
    code = main(["stream", *map(str, args)])
    captured = capsys.readouterr()
    return Ran(code, captured.out, captured.err)


def read_jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_alerts_exit_1_with_one_line_per_output(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    pay, receipt = files
    ran = stream(capsys, "--pay", pay, "--receipt", receipt)
    assert ran.code == 1
    assert ran.out.splitlines() == [UNMATCHED_PAY, MATCHED, UNMATCHED_RECEIPT]
    summary = ran.err.strip().splitlines()
    assert len(summary) == 1
    assert "2 pay and 2 receipt events, 1 ignored, 0 dead letters" in summary[0]


def test_all_matched_exits_0(files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    pay, receipt = files
    ran = stream(capsys, "--pay", pay, "--receipt", receipt, "--receipt-timeout", "30s")
    assert ran.code == 0
    assert ran.out.splitlines() == [
        "matched> order01 pay 2020-11-28 15:45:13 receipt 2020-11-28 15:45:36",
        "matched> order02 pay 2020-11-28 15:45:20 receipt 2020-11-28 15:45:22",
    ]


def test_quiet_prints_nothing_on_stdout(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    pay, receipt = files
    ran = stream(capsys, "--pay", pay, "--receipt", receipt, "--quiet")
    assert ran.code == 1
    assert ran.out == ""
    assert "outputs: matched 1" in ran.err


def test_jsonl_appends_across_runs(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    pay, receipt = files
    out = tmp_path / "out.jsonl"
    for _ in range(2):
        ran = stream(capsys, "--pay", pay, "--receipt", receipt, "--jsonl", out, "--quiet")
        assert ran.code == 1
    records = read_jsonl(out)
    assert [record["type"] for record in records] == [
        "unmatched_pay",
        "matched",
        "unmatched_receipt",
    ] * 2
    assert records[:3] == records[3:]  # same alert ids on a replay
    assert records[1] == {
        "type": "matched",
        "order_id": "order02",
        "alert_id": records[1]["alert_id"],
        "pay": {"ts_ms": 1606549520000, "amount": None},
        "receipt": {"ts_ms": 1606549522000, "amount": None},
    }
    assert isinstance(records[1]["alert_id"], str) and len(records[1]["alert_id"]) == 32


def test_dead_letter_file_and_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pay, receipt = tmp_path / "pay.csv", tmp_path / "receipt.csv"
    pay.write_text("1,pay,order01,1606549513\n1,pay,order02,12.5\n", encoding="utf-8")
    receipt.write_text("order01,wechat,1606549514\n", encoding="utf-8")
    dead = tmp_path / "dead.jsonl"
    ran = stream(capsys, "--pay", pay, "--receipt", receipt, "--dead-letter", dead)
    assert ran.code == 1
    assert ran.out.splitlines() == [
        "matched> order01 pay 2020-11-28 15:45:13 receipt 2020-11-28 15:45:14"
    ]
    assert read_jsonl(dead) == [
        {
            "side": "pay",
            "source": str(pay),
            "position": 2,
            "raw": "1,pay,order02,12.5",
            "reason": "field 'timestamp' must be an integer, got '12.5'",
        }
    ]


def test_pay_from_stdin_in_milliseconds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    receipt = tmp_path / "receipt.csv"
    receipt.write_text("order01,wechat,1606549513400\n", encoding="utf-8")
    monkeypatch.setattr("sys.stdin", io.StringIO("1,pay,order01,1606549513000\n"))
    ran = stream(
        capsys, "--pay", "-", "--receipt", receipt, "--time-unit", "ms", "--pay-timeout", "500ms"
    )
    assert ran.code == 0
    assert ran.out == "matched> order01 pay 2020-11-28 15:45:13 receipt 2020-11-28 15:45:13.400\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--receipt-timeout", "5"], "--receipt-timeout: '5' is not a duration"),
        (["--pay-timeout", "1h"], "--pay-timeout: '1h' is not a duration"),
        (["--out-of-orderness", "-1s"], "--out-of-orderness"),
        (["--time-unit", "us"], "time_unit must be 's' or 'ms'"),
    ],
)
def test_bad_options_exit_2(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    pay, receipt = files
    ran = stream(capsys, "--pay", pay, "--receipt", receipt, *args)
    assert ran.code == 2
    assert message in ran.err
    assert ran.out == ""


def test_missing_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ran = stream(capsys, "--pay", tmp_path / "nope.csv", "--receipt", tmp_path / "nope2.csv")
    assert ran.code == 2
    assert "cannot read" in ran.err and "nope.csv" in ran.err


def test_unwritable_output_exits_2(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    pay, receipt = files
    ran = stream(capsys, "--pay", pay, "--receipt", receipt, "--jsonl", tmp_path / "no" / "x")
    assert ran.code == 2
    assert "cannot write" in ran.err


def test_both_from_stdin_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    ran = stream(capsys, "--pay", "-", "--receipt", "-")
    assert ran.code == 2
    assert "stdin" in ran.err


def test_missing_option_exits_2(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    ran = stream(capsys, "--pay", files[0])
    assert ran.code == 2


def test_undecodable_file_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pay, receipt = tmp_path / "pay.csv", tmp_path / "receipt.csv"
    pay.write_bytes(b"1,pay,order01,1606549513\n1,pay,\xff\xfe,1\n")
    receipt.write_text("", encoding="utf-8")
    ran = stream(capsys, "--pay", pay, "--receipt", receipt)
    assert ran.code == 2
    assert "not UTF-8" in ran.err


@pytest.mark.parametrize(
    ("text", "ms"), [("0s", 0), ("500ms", 500), ("5s", 5000), ("2m", 120_000), (" 3s ", 3000)]
)
def test_parse_duration(text: str, ms: int) -> None:
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize("text", ["", "5", "s", "1.5s", "-1s", "5 s", "1h", "5S", "5sec"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match="not a duration"):
        parse_duration_ms(text)


# --- sinks, checkpoints and sources by option ----------------------------------------------


def test_a_finished_run_with_a_checkpoint_is_not_repeated(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    pay, receipt = files
    out, checkpoint = tmp_path / "out.jsonl", tmp_path / "cp.sqlite"
    args = ("--pay", pay, "--receipt", f"file:{receipt}", "--sink", f"jsonl:{out}")
    first = stream(capsys, *args, "--checkpoint", checkpoint)
    assert first.code == 1 and len(read_jsonl(out)) == 3
    again = stream(capsys, *args, "--checkpoint", checkpoint, "--quiet")
    assert again.code == 1
    assert "is of a finished run; nothing to do" in again.err
    assert "outputs: matched 1, unmatched_pay 1, unmatched_receipt 1" in again.err
    assert len(read_jsonl(out)) == 3 and again.out == ""


def test_every_output_goes_to_every_sink_once(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    pay, receipt = files
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    ran = stream(
        capsys,
        *("--pay", pay, "--receipt", receipt, "--jsonl", first),
        *("--sink", f"jsonl:{second}", "--sink", "stdout", "--sink", f"jsonl:{second}"),
    )
    assert ran.code == 1
    assert read_jsonl(first) == read_jsonl(second) and len(read_jsonl(first)) == 3
    assert ran.out.splitlines() == [UNMATCHED_PAY, MATCHED, UNMATCHED_RECEIPT]  # stdout once


def test_webhook_sink_by_option(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    pay, receipt = files
    with WebhookReceiver() as receiver:
        ran = stream(
            capsys, "--pay", pay, "--receipt", receipt, "--sink", f"webhook:{receiver.url}"
        )
    assert ran.code == 1
    assert [body["type"] for body in receiver.received.bodies] == [
        "unmatched_pay",
        "matched",
        "unmatched_receipt",
    ]


def test_forced_json_format_dead_letters_csv_lines(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    pay, receipt = files
    ran = stream(capsys, "--pay", pay, "--receipt", receipt, "--format", "json", "--quiet")
    assert ran.code == 1
    assert "0 pay and 0 receipt events, 0 ignored, 5 dead letters" in ran.err


def test_idle_timeout_can_be_off(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    pay, receipt = files
    ran = stream(capsys, "--pay", pay, "--receipt", receipt, "--idle-timeout", "off", "--quiet")
    assert ran.code == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--sink", "mail:x"], "unknown sink"),
        (["--kafka-option", "novalue"], "is not KEY=VALUE"),
        (["--idle-timeout", "never"], "--idle-timeout"),
        (["--checkpoint-interval", "1h"], "--checkpoint-interval"),
        (["--format", "xml"], "encoding must be one of"),
        (["--checkpoint", "/no/such/dir/cp.sqlite"], "cannot use checkpoint"),
    ],
)
def test_bad_stream_options_exit_2(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    pay, receipt = files
    ran = stream(capsys, "--pay", pay, "--receipt", receipt, *args)
    assert ran.code == 2
    assert message in ran.err


@pytest.mark.parametrize("source", ["tcp://nohost", "kafka://h:1", "ftp://x/y"])
def test_bad_sources_exit_2(
    files: tuple[Path, Path], capsys: pytest.CaptureFixture[str], source: str
) -> None:
    ran = stream(capsys, "--pay", source, "--receipt", files[1])
    assert ran.code == 2
