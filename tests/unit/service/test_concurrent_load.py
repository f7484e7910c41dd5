"""Bills and ledger load at the same time; a failure on either side is reported as itself."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from payrecon.config import Settings
from payrecon.errors import BillTruncatedError, LedgerSourceError
from payrecon.generator import generate_day
from payrecon.service.reconcile import ReconcileRequest, run_reconciliation

DAY = date(2026, 11, 20)


@pytest.fixture
def day(tmp_path: Path) -> tuple[Path, Path]:
    made = generate_day("wechat", DAY, 300, tmp_path / "in", seed=3)
    return made.bills[0], made.ledger


def truncate(bill: Path) -> Path:
    text = bill.read_bytes()
    cut = bill.with_name("truncated.csv")
    cut.write_bytes(text[: text.index("总交易单数".encode())])
    return cut


def drop_column(ledger: Path, column: str) -> Path:
    lines = ledger.read_text(encoding="utf-8").splitlines()
    header = lines[0].split(",")
    at = header.index(column)
    broken = ledger.with_name("broken.csv")
    rows = [",".join(v for i, v in enumerate(line.split(",")) if i != at) for line in lines]
    broken.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return broken


def run(tmp_path: Path, bill: Path, ledger: Path) -> None:
    request = ReconcileRequest("wechat", (bill,), str(ledger), DAY, tmp_path / "out")
    run_reconciliation(request, Settings(home=tmp_path / "home"))


def test_a_broken_ledger_fails_the_run_with_its_own_error(
    tmp_path: Path, day: tuple[Path, Path]
) -> None:
    bill, ledger = day
    with pytest.raises(LedgerSourceError, match="amount"):
        run(tmp_path, bill, drop_column(ledger, "amount"))
    assert not (tmp_path / "out").exists()


def test_when_both_sides_fail_one_real_error_is_reported(
    tmp_path: Path, day: tuple[Path, Path]
) -> None:
    bill, ledger = day
    # Whichever side fails first stops the other; either error names its own file.
    with pytest.raises((BillTruncatedError, LedgerSourceError)) as caught:
        run(tmp_path, truncate(bill), drop_column(ledger, "amount"))
    assert any(name in str(caught.value) for name in ("truncated.csv", "broken.csv"))
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out.staging-*"))
