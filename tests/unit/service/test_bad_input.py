"""Bad inputs to a reconciliation run: a clear error naming file, line and field, exit 2,
and nothing half-written (no --out, no staging folder, no pool snapshot, no work files).

Inputs are corrupted copies of a generated WeChat bill: UTF-8 with BOM, CRLF line ends,
backtick-prefixed values, and a summary (header starting with 总交易单数, then one row).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Final

import pytest

from payrecon.cli import main
from payrecon.config import Settings, load_settings
from payrecon.errors import (
    BillDateError,
    BillFooterMismatch,
    BillFormatError,
    BillTruncatedError,
    ChannelErrorResponse,
    DuplicateBillError,
    InputError,
    MoneyError,
)
from payrecon.generator import GeneratedDay, generate_day
from payrecon.service.reconcile import ReconcileRequest, RunResult, run_reconciliation
from payrecon.service.runstore import RunStore

DAY = date(2026, 11, 20)
CHANNEL: Final = "wechat"
BOM = "\ufeff"
CRLF = "\r\n"
SUMMARY_MARK = "总交易单数"
AMOUNT_FIELD = "应结订单金额"
STATE_FIELD = "交易状态"
NO_BILL = (
    "<xml><return_code><![CDATA[FAIL]]></return_code>"
    "<return_msg><![CDATA[No Bill Exist]]></return_msg>"
    "<error_code><![CDATA[20002]]></error_code></xml>"
)


# -- inputs ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> GeneratedDay:
    """One small clean WeChat day; tests only read it and corrupt copies elsewhere."""
    return generate_day(
        CHANNEL, DAY, 300, tmp_path_factory.mktemp("day"), seed=7, discrepancy_rate=0.0
    )


def good_bill(day: GeneratedDay) -> Path:
    (bill,) = day.bills
    return bill


def read_lines(bill: Path) -> list[str]:
    """The bill's lines without BOM and CRLF (checks the format the corruptions assume)."""
    text = bill.read_bytes().decode("utf-8")
    assert text.startswith(BOM) and text.endswith(CRLF), "the generated bill changed format"
    return text.removeprefix(BOM).removesuffix(CRLF).split(CRLF)


def write_lines(target: Path, lines: list[str], encoding: str = "utf-8") -> Path:
    text = CRLF.join(lines) + CRLF
    target.write_bytes(
        (BOM + text).encode(encoding) if encoding == "utf-8" else text.encode(encoding)
    )
    return target


def summary_index(lines: list[str]) -> int:
    """0-based index of the summary header, i.e. the 1-based line of the last detail row."""
    (index,) = [i for i, line in enumerate(lines) if line.startswith(SUMMARY_MARK)]
    return index


def first_row(lines: list[str], name: str, value: str) -> int:
    """Index of the first detail row whose column ``name`` is ``value`` (as written)."""
    column = [field.lstrip("`") for field in lines[0].split(",")].index(name)
    return next(i for i, line in enumerate(lines) if i and line.split(",")[column] == value)


def set_value(line: str, header: str, name: str, value: str) -> str:
    """``line`` with the value of column ``name`` (found by ``header``) replaced."""
    names = [field.lstrip("`") for field in header.split(",")]
    values = line.split(",")
    assert len(values) == len(names), "a value with a comma in the row to corrupt"
    values[names.index(name)] = value
    return ",".join(values)


# -- the bad inputs ----------------------------------------------------------------------


@dataclass(frozen=True)
class Expect:
    """A bad input and the error it must raise."""

    bills: tuple[Path, ...]
    error: type[InputError]
    source: Path  # the file the message names
    line: int | None
    field: str | None
    quotes: tuple[str, ...]  # text the message must contain
    day: date = DAY
    recorded: bool = True  # whether the run got far enough to be in the run store


Corruption = Callable[[Path, Path], Expect]


def truncated_summary(good: Path, folder: Path) -> Expect:
    lines = read_lines(good)
    cut = summary_index(lines)
    bad = write_lines(folder / good.name, lines[:cut])
    return Expect((bad,), BillTruncatedError, bad, cut, None, ("truncated", SUMMARY_MARK))


def truncated_summary_row(good: Path, folder: Path) -> Expect:
    lines = read_lines(good)
    keep = summary_index(lines) + 1
    bad = write_lines(folder / good.name, lines[:keep])
    return Expect((bad,), BillTruncatedError, bad, keep, None, ("summary row", "truncated"))


def gbk_encoded(good: Path, folder: Path) -> Expect:
    bad = write_lines(folder / good.name, read_lines(good), encoding="gbk")
    return Expect((bad,), BillFormatError, bad, 1, None, ("utf-8", "encoding"))


def amount_not_a_number(good: Path, folder: Path) -> Expect:
    # A PAY row: a REFUND row settles 退款金额, and its 应结订单金额 is not read.
    lines = read_lines(good)
    index = first_row(lines, STATE_FIELD, "`SUCCESS")
    lines[index] = set_value(lines[index], lines[0], AMOUNT_FIELD, "`abc")
    bad = write_lines(folder / good.name, lines)
    quotes = ("'abc'", "not an amount")
    return Expect((bad,), MoneyError, bad, index + 1, AMOUNT_FIELD, quotes)


def same_path_twice(good: Path, folder: Path) -> Expect:
    return Expect(
        (good, good), DuplicateBillError, good, None, None, (str(good), "twice"), recorded=False
    )


def identical_copy(good: Path, folder: Path) -> Expect:
    copy = folder / "copy-of-the-bill.csv"
    shutil.copyfile(good, copy)
    return Expect(
        (good, copy), DuplicateBillError, copy, None, None, (str(good), "twice"), recorded=False
    )


def another_day(good: Path, folder: Path) -> Expect:
    later = DAY + timedelta(days=1)
    return Expect((good,), BillDateError, good, 2, "txn_time", (str(DAY), str(later)), day=later)


def no_bill_exist(good: Path, folder: Path) -> Expect:
    bad = folder / good.name
    bad.write_text(NO_BILL, encoding="utf-8")
    return Expect((bad,), ChannelErrorResponse, bad, None, None, ("No Bill Exist", "20002"))


def footer_count_off(good: Path, folder: Path) -> Expect:
    lines = read_lines(good)
    row = summary_index(lines) + 1
    declared = int(lines[row].split(",")[0].removeprefix("`"))
    lines[row] = set_value(lines[row], lines[row - 1], SUMMARY_MARK, f"`{declared + 1}")
    bad = write_lines(folder / good.name, lines)
    quotes = (f"{SUMMARY_MARK} {declared + 1}", f"add up to {declared}")
    return Expect((bad,), BillFooterMismatch, bad, row + 1, SUMMARY_MARK, quotes)


CASES: dict[str, Corruption] = {
    "truncated-summary": truncated_summary,
    "truncated-summary-row": truncated_summary_row,
    "gbk-encoding": gbk_encoded,
    "amount-not-a-number": amount_not_a_number,
    "same-path-twice": same_path_twice,
    "identical-copy": identical_copy,
    "bill-of-another-day": another_day,
    "no-bill-exist": no_bill_exist,
    "footer-mismatch": footer_count_off,
}


@pytest.fixture(params=list(CASES))
def case(request: pytest.FixtureRequest, day: GeneratedDay, tmp_path: Path) -> Expect:
    folder = tmp_path / "bad"
    folder.mkdir()
    corrupt: Corruption = CASES[request.param]
    return corrupt(good_bill(day), folder)


# -- running -----------------------------------------------------------------------------


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PAYRECON_HOME", str(home))
    return home


def settings(home: Path) -> Settings:
    loaded = load_settings()
    assert loaded.home == home
    return loaded


def reconcile(
    home: Path, day: GeneratedDay, bills: tuple[Path, ...], out: Path, on: date = DAY
) -> RunResult:
    request = ReconcileRequest(CHANNEL, bills, str(day.ledger), on, out)
    return run_reconciliation(request, settings(home))


def cli_args(day: GeneratedDay, bills: tuple[Path, ...], out: Path, on: date) -> list[str]:
    args = ["reconcile", "--channel", CHANNEL, "--ledger", str(day.ledger)]
    for bill in bills:
        args += ["--bill", str(bill)]
    return [*args, "--date", on.isoformat(), "--out", str(out)]


def pool_file(home: Path, on: date) -> Path:
    return home / "pool" / CHANNEL / f"{on.isoformat()}.parquet"


def contents(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by relative path (empty when it does not exist)."""
    if not folder.exists():
        return {}
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def leftovers(out: Path, home: Path) -> list[str]:
    """Staging folders beside ``out`` and run work folders under the home."""
    staged = [path.name for path in out.parent.glob(f".{out.name}.*")]
    work = [path.name for path in (home / "tmp").glob("*")]
    return sorted(staged + work)


def assert_nothing_written(out: Path, home: Path, on: date) -> None:
    assert not out.exists()
    assert leftovers(out, home) == []
    assert not pool_file(home, on).exists()


def assert_names(exc: InputError, case: Expect) -> None:
    assert type(exc) is case.error
    assert exc.location is not None
    assert (exc.location.source, exc.location.line, exc.location.field) == (
        str(case.source),
        case.line,
        case.field,
    )
    for quote in case.quotes:
        assert quote in str(exc)


# -- tests -------------------------------------------------------------------------------


def test_bad_input_is_a_clear_error_and_writes_nothing(
    case: Expect, day: GeneratedDay, home: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    with pytest.raises(InputError) as raised:
        reconcile(home, day, case.bills, out, case.day)
    assert_names(raised.value, case)
    assert_nothing_written(out, home, case.day)


def test_bad_input_exits_2_naming_file_line_and_field(
    case: Expect,
    day: GeneratedDay,
    home: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "run"
    assert main(cli_args(day, case.bills, out, case.day)) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (message,) = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert str(case.source) in message
    if case.line is not None:
        assert f"line {case.line}" in message
    if case.field is not None:
        assert f"field {case.field!r}" in message
    for quote in case.quotes:
        assert quote in message
    assert_nothing_written(out, home, case.day)


def test_bad_input_leaves_a_previous_run_unchanged(
    case: Expect, day: GeneratedDay, home: Path, tmp_path: Path
) -> None:
    out = tmp_path / "run"
    reconcile(home, day, (good_bill(day),), out)
    before, pool_before = contents(out), contents(home / "pool")
    assert "summary.json" in before
    assert pool_file(home, DAY).exists()

    with pytest.raises(InputError):
        reconcile(home, day, case.bills, out, case.day)

    assert contents(out) == before
    assert contents(home / "pool") == pool_before
    assert leftovers(out, home) == []


def test_failed_run_is_recorded_as_failed(
    case: Expect, day: GeneratedDay, home: Path, tmp_path: Path
) -> None:
    with pytest.raises(InputError) as raised:
        reconcile(home, day, case.bills, tmp_path / "run", case.day)
    runs = RunStore(home).runs()
    assert [run["status"] for run in runs] == (["FAILED"] if case.recorded else [])
    for run in runs:
        assert run["error"].startswith(f"{type(raised.value).__name__}: ")
        assert run["out_dir"] is None and run["summary"] is None


def test_rerun_into_existing_out_replaces_it(day: GeneratedDay, home: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = reconcile(home, day, (good_bill(day),), out)
    (out / "stale.txt").write_text("from an older run", encoding="utf-8")

    second = reconcile(home, day, (good_bill(day),), out)

    assert second.run_id != first.run_id
    assert not (out / "stale.txt").exists()
    assert sorted(contents(out)) == [
        "discrepancies.csv",
        "outcomes.parquet",
        "quarantine.parquet",
        "summary.json",
    ]
    assert second.run_id in (out / "summary.json").read_text(encoding="utf-8")
    assert leftovers(out, home) == []
    runs = RunStore(home).runs()
    assert sorted((run["run_id"], run["status"]) for run in runs) == sorted(
        [(first.run_id, "DONE"), (second.run_id, "DONE")]
    )
