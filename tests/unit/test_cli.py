"""The ``payrecon`` command line, driven in-process through ``payrecon.cli.main``.

Checks the conventions every command follows: exit codes (0 clean, 1 differences or
quarantined rows, 2 usage or input error), progress and logs on stderr, and with
``--json`` / ``--summary-json`` exactly one JSON document on stdout.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import pyarrow.parquet as pq
import pytest
from openpyxl import load_workbook

import payrecon.service.reconcile as reconcile_module
from payrecon.cli import main
from payrecon.core.outcomes import Outcome
from payrecon.generator import GeneratedDay, generate_day
from payrecon.service.outputs import REPORT_COLUMNS
from payrecon.service.runstore import RunStore

DAY = date(2026, 11, 20)
CHANNEL: Final = "wechat"
SUMMARY_MARK = "总交易单数"
BAD_AMOUNT = "12.5x"


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PAYRECON_HOME", str(home))
    return home


Cli = Callable[..., Ran]


@pytest.fixture
def cli(home: Path, capsys: pytest.CaptureFixture[str]) -> Cli:
    """Run ``payrecon ARGS`` in-process; returns exit code, stdout and stderr."""

    def run(*args: str | Path) -> Ran:
        capsys.readouterr()  # drop anything printed before
        code = main([str(arg) for arg in args])
        captured = capsys.readouterr()
        return Ran(code, captured.out, captured.err)

    return run


@pytest.fixture(scope="module")
def clean_day(tmp_path_factory: pytest.TempPathFactory) -> GeneratedDay:
    return generate_day(CHANNEL, DAY, 300, tmp_path_factory.mktemp("clean"), discrepancy_rate=0.0)


@pytest.fixture(scope="module")
def messy_day(tmp_path_factory: pytest.TempPathFactory) -> GeneratedDay:
    return generate_day(CHANNEL, DAY, 300, tmp_path_factory.mktemp("messy"), discrepancy_rate=0.05)


def reconcile_args(
    day: GeneratedDay,
    out: Path,
    *extra: str,
    ledger: Path | None = None,
    channel: str = CHANNEL,
) -> list[str]:
    (bill,) = day.bills
    return [
        "reconcile",
        "--channel",
        channel,
        "--bill",
        str(bill),
        "--ledger",
        str(ledger or day.ledger),
        "--date",
        DAY.isoformat(),
        "--out",
        str(out),
        *extra,
    ]


def bill_summary(bill: Path) -> dict[str, str]:
    """The bill's own summary: header name -> value (backtick removed)."""
    lines = bill.read_text(encoding="utf-8-sig").splitlines()
    (at,) = [i for i, line in enumerate(lines) if line.startswith(SUMMARY_MARK)]
    names = lines[at].split(",")
    values = [value.removeprefix("`") for value in lines[at + 1].split(",")]
    return dict(zip(names, values, strict=True))


def fen(yuan: str) -> int:
    return int(Decimal(yuan) * 100)


def ledger_with_bad_amount(ledger: Path, target: Path) -> int:
    """Copy ``ledger`` plus one extra row (a new order) whose amount is not a number.

    Returns the extra row's line number (the header is line 1).
    """
    with ledger.open(encoding="utf-8", newline="") as stream:
        rows = list(csv.DictReader(stream))
    extra = {**rows[0], "order_id": "S-QUARANTINED-1", "amount": BAD_AMOUNT}
    with target.open("w", encoding="utf-8", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows([*rows, extra])
    return len(rows) + 2


def read_summary(out: Path) -> Any:
    return json.loads((out / "summary.json").read_text(encoding="utf-8"))


def csv_rows(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as stream:
        return list(csv.reader(stream))


def xlsx_rows(path: Path) -> list[tuple[Any, ...]]:
    book = load_workbook(path, read_only=True)
    try:
        return list(book["discrepancies"].iter_rows(values_only=True))
    finally:
        book.close()


# -- generate + reconcile ----------------------------------------------------------------


@pytest.mark.parametrize(("rate", "code"), [("0", 0), ("0.05", 1)])
def test_generate_then_reconcile_exit_code(cli: Cli, tmp_path: Path, rate: str, code: int) -> None:
    made = cli(
        "generate", "--channel", CHANNEL, "--date", DAY.isoformat(), "--rows", "300",
        "--out", "inputs", "--discrepancy-rate", rate,
    )  # fmt: skip
    assert made.code == 0
    assert made.out == ""  # "wrote ..." is a log line: stderr
    (bill,) = (tmp_path / "inputs").glob("wechat_*.csv")
    assert f"wrote {Path('inputs') / bill.name}" in made.err

    ran = cli(
        "reconcile", "--channel", CHANNEL, "--bill", bill, "--ledger", "inputs/ledger.csv",
        "--date", DAY.isoformat(), "--out", "run",
    )  # fmt: skip
    assert ran.code == code
    summary = read_summary(tmp_path / "run")
    assert (summary["discrepancies"] == 0) == (code == 0)
    assert summary["footer"] == "ok"
    assert "outputs in" in ran.out
    assert "matching" in ran.err and "matching" not in ran.out


def test_json_prints_one_document_and_nothing_else(
    cli: Cli, messy_day: GeneratedDay, tmp_path: Path
) -> None:
    ran = cli(*reconcile_args(messy_day, tmp_path / "run", "--json"))
    assert ran.code == 1
    summary = ran.json()  # fails on anything else on stdout
    assert ran.out.endswith("}\n") and ran.out.count("\n") == 1
    assert set(summary["outcomes"]) == {outcome.value for outcome in Outcome}
    assert len(summary["outcomes"]) == 8
    for totals in summary["outcomes"].values():
        assert set(totals) == {"count", "ledger_amount", "channel_amount"}
    counted = sum(v["count"] for k, v in summary["outcomes"].items() if Outcome(k).is_discrepancy)
    assert summary["discrepancies"] == counted > 0
    assert summary["rows_in"]["channel"] == messy_day.rows
    assert summary["rows_in"]["ledger"] > 0 and summary["rows_in"]["pool"] == 0
    assert summary["quarantined"] == 0
    assert summary["footer"] == "ok"
    cases = summary.pop("cases")
    assert cases["opened"] == counted  # one case per discrepancy, in the embedded store
    assert summary == read_summary(tmp_path / "run")
    # progress goes to stderr
    for step in ("parsing", "reading ledger", "matching", "writing reports"):
        assert step in ran.err


def test_json_on_a_clean_day_exits_0(cli: Cli, clean_day: GeneratedDay, tmp_path: Path) -> None:
    ran = cli(*reconcile_args(clean_day, tmp_path / "run", "--json"))
    assert ran.code == 0
    summary = ran.json()
    assert summary["outcomes"]["MATCHED"]["count"] == clean_day.rows
    assert summary["discrepancies"] == 0 and summary["quarantined"] == 0


# -- parse -------------------------------------------------------------------------------


def test_parse_summary_json_matches_the_bill_summary(cli: Cli, messy_day: GeneratedDay) -> None:
    (bill,) = messy_day.bills
    ran = cli("parse", "--channel", CHANNEL, bill, "--summary-json")
    assert ran.code == 0
    parsed = ran.json()
    assert {"rows", "by_kind", "footer"} <= set(parsed)
    declared = bill_summary(bill)
    assert parsed["rows"] == int(declared[SUMMARY_MARK]) == messy_day.rows
    assert parsed["by_kind"]["PAY"]["amount"] == fen(declared["应结订单总金额"])
    assert parsed["by_kind"]["REFUND"]["amount"] == fen(declared["退款总金额"])
    assert (
        parsed["by_kind"]["PAY"]["count"] + parsed["by_kind"]["REFUND"]["count"] == parsed["rows"]
    )
    assert parsed["by_kind"]["REFUND"]["count"] > 0
    assert parsed["footer"] == "ok"
    assert "parsing" in ran.err


def test_parse_truncated_bill_exits_2_naming_the_file(
    cli: Cli, clean_day: GeneratedDay, tmp_path: Path
) -> None:
    (bill,) = clean_day.bills
    text = bill.read_bytes()
    cut = tmp_path / "cut-short.csv"
    cut.write_bytes(text[: text.index(SUMMARY_MARK.encode())])
    ran = cli("parse", "--channel", CHANNEL, cut, "--summary-json")
    assert ran.code == 2
    assert ran.out == ""
    assert f"error: {cut}, line " in ran.err
    assert "truncated" in ran.err


# -- usage errors ------------------------------------------------------------------------


USAGE_ERRORS = {
    "missing --date": (["--channel", CHANNEL], "Missing option '--date'"),
    "bad date text": (["--channel", CHANNEL, "--date", "2026-13-01"], "'2026-13-01' is not a date"),
    "unknown channel": (["--channel", "applepay", "--date", DAY.isoformat()], "'applepay'"),
}


@pytest.mark.parametrize("case", list(USAGE_ERRORS))
def test_reconcile_usage_errors_exit_2(
    cli: Cli, clean_day: GeneratedDay, tmp_path: Path, case: str
) -> None:
    options, message = USAGE_ERRORS[case]
    (bill,) = clean_day.bills
    args = ["reconcile", "--bill", str(bill), "--ledger", str(clean_day.ledger), "--out", "run"]
    ran = cli(*args, *options)
    assert ran.code == 2
    assert ran.out == ""
    assert message in ran.err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command", ["reconcile", "parse"])
def test_unknown_channel_lists_the_known_ones(
    cli: Cli, clean_day: GeneratedDay, command: str
) -> None:
    (bill,) = clean_day.bills
    if command == "parse":
        ran = cli("parse", "--channel", "applepay", bill)
    else:
        ran = cli(*reconcile_args(clean_day, Path("run"), channel="applepay"))
    assert ran.code == 2
    (message,) = [line for line in ran.err.splitlines() if line.startswith("error:")]
    assert "unknown channel 'applepay'" in message
    assert "known: wechat, alipay" in message


def test_generate_rejects_a_channel_it_cannot_write(cli: Cli, tmp_path: Path) -> None:
    ran = cli(
        "generate", "--channel", "applepay", "--date", DAY.isoformat(), "--rows", "10", "--out", "g"
    )
    assert ran.code == 2
    assert "paypal or adyen bills" in ran.err
    assert not (tmp_path / "g").exists()


# -- outputs -----------------------------------------------------------------------------


def test_xlsx_holds_the_discrepancies(cli: Cli, messy_day: GeneratedDay, tmp_path: Path) -> None:
    out = tmp_path / "run"
    ran = cli(*reconcile_args(messy_day, out, "--xlsx"))
    assert ran.code == 1
    rows = xlsx_rows(out / "discrepancies.xlsx")
    assert rows[0] == REPORT_COLUMNS
    assert rows[0][:4] == ("outcome", "channel", "kind", "order_id")
    discrepancies = read_summary(out)["discrepancies"]
    assert len(rows) - 1 == discrepancies == len(csv_rows(out / "discrepancies.csv")) - 1 > 0
    assert {row[0] for row in rows[1:]} <= {o.value for o in Outcome if o.is_discrepancy}


def test_without_xlsx_no_workbook_is_written(
    cli: Cli, messy_day: GeneratedDay, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    assert cli(*reconcile_args(messy_day, out)).code == 1
    assert not (out / "discrepancies.xlsx").exists()
    assert (out / "discrepancies.csv").exists()


def test_demo_runs_both_channels(cli: Cli, home: Path, tmp_path: Path) -> None:
    ran = cli("demo", "--rows", "300", "--out", "demo")
    assert ran.code == 0
    for channel in ("wechat", "alipay"):
        summary = read_summary(tmp_path / "demo" / "runs" / channel)
        assert summary["channel"] == channel
        assert summary["footer"] == "ok"
        assert summary["discrepancies"] > 0
    runs = RunStore(home).runs()
    assert sorted((run["channel"], run["status"]) for run in runs) == [
        ("alipay", "DONE"),
        ("wechat", "DONE"),
    ]
    assert "payrecon reconcile" in ran.out  # how to go on (it does not start a server)


# -- quarantine --------------------------------------------------------------------------


def test_unreadable_ledger_row_is_quarantined_and_exits_1(
    cli: Cli, clean_day: GeneratedDay, tmp_path: Path
) -> None:
    ledger = tmp_path / "ledger.csv"
    line = ledger_with_bad_amount(clean_day.ledger, ledger)
    out = tmp_path / "run"
    ran = cli(*reconcile_args(clean_day, out, "--json", ledger=ledger))
    assert ran.code == 1
    summary = ran.json()
    assert summary["quarantined"] == 1
    assert summary["discrepancies"] == 0  # only the quarantined row makes it exit 1
    assert summary["rows_in"]["ledger"] == clean_day.rows
    (bad,) = pq.read_table(out / "quarantine.parquet").to_pylist()
    assert bad["source"] == str(ledger)
    assert bad["line_no"] == line
    assert bad["field"] == "amount"
    assert bad["order_id"] == "S-QUARANTINED-1"
    assert bad["value"] == BAD_AMOUNT
    assert bad["reason"]


def test_an_interrupted_run_exits_130_and_publishes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PAYRECON_HOME", str(tmp_path / "home"))
    made = generate_day("wechat", date(2026, 11, 20), 300, tmp_path / "in", seed=5)

    def interrupted(*args: object, **kwargs: object) -> object:
        raise KeyboardInterrupt

    monkeypatch.setattr(reconcile_module, "open_ledger", interrupted)
    code = main(
        [
            "reconcile",
            "--channel=wechat",
            f"--bill={made.bills[0]}",
            f"--ledger={made.ledger}",
            "--date=2026-11-20",
            f"--out={tmp_path / 'out'}",
        ]
    )
    assert code == 130
    assert "interrupted" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out.staging-*"))
