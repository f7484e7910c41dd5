"""The case commands end to end: reconcile opens cases in the embedded store, people work
them from the command line, a webhook executor carries out the approved action, and
``audit verify`` catches a rewritten entry."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from payrecon.generator import GeneratedDay, generate_day
from tests.support.fake_platform import DEFAULT_SECRET, FakePlatform
from tests.unit.test_cli import CHANNEL, DAY, Cli, cli, home, reconcile_args

__all__ = ["cli", "home"]  # fixtures shared with the main CLI tests


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> GeneratedDay:
    return generate_day(CHANNEL, DAY, 300, tmp_path_factory.mktemp("day"), discrepancy_rate=0.05)


@pytest.fixture
def platform(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakePlatform]:
    with FakePlatform() as running:
        monkeypatch.setenv("PAYRECON_CASES__EXECUTOR__KIND", "webhook")
        monkeypatch.setenv("PAYRECON_CASES__EXECUTOR__URL", running.url)
        monkeypatch.setenv("PAYRECON_CASES__EXECUTOR__SECRET", DEFAULT_SECRET.decode())
        yield running


def test_reconcile_then_work_a_case_to_an_executed_adjustment(
    cli: Cli, day: GeneratedDay, tmp_path: Path, home: Path, platform: FakePlatform
) -> None:
    ran = cli(*reconcile_args(day, tmp_path / "run"))
    assert ran.code == 1 and "opened" in ran.out
    again = cli(*reconcile_args(day, tmp_path / "run2", "--json"))
    assert again.json()["cases"]["opened"] == 0  # idempotent
    assert cli("users", "add", "root", "--role", "admin").code == 0
    assert cli("users", "add", "mallory", "--role", "admin").code == 2  # setup is over
    for name, role in (("alice", "operator"), ("bob", "approver")):
        assert cli("users", "add", name, "--role", role, "--as", "root").code == 0

    listed = cli("cases", "list", "--outcome", "amount_mismatch", "--json").json()
    assert listed["total"] > 0
    case = listed["cases"][0]
    case_id = str(case["id"])
    assert cli("cases", "assign", case_id, "--to", "alice", "--as", "alice").code == 0
    assert cli("cases", "start", case_id, "--as", "alice").code == 0
    assert cli("cases", "comment", case_id, "checked both sides", "--as", "alice").code == 0
    proposed = cli(
        "cases", "propose", case_id, "adjust", "--reason", "ledger typo", "--as", "alice"
    )
    assert proposed.code == 0 and "PROPOSED" in proposed.err
    refused = cli("cases", "approve", case_id, "--as", "alice")
    assert refused.code == 2 and "second person" in refused.err
    assert platform.moves == []
    approved = cli("cases", "approve", case_id, "--as", "bob", "--note", "ok")
    assert approved.code == 0 and "EXECUTED" in approved.err
    assert len(platform.moves) == 1
    assert platform.moves[0]["amount_minor"] == case["amount_diff"]

    shown = cli("cases", "show", case_id, "--json").json()
    assert shown["state"] == "RESOLVED"
    events = [e["event"] for e in shown["audit"]]
    assert events[-3:] == ["approve", "execution_started", "executed"]

    verified = cli("audit", "verify")
    assert verified.code == 0 and "intact" in verified.out
    head = cli("audit", "head").out.strip()
    assert cli("audit", "verify", "--expect-head", head).code == 0

    # Someone with database rights drops the guard and rewrites history.
    with sqlite3.connect(home / "cases.sqlite") as db:
        db.execute("DROP TRIGGER audit_log_no_update")
        db.execute("UPDATE audit_log SET actor = 'mallory' WHERE event = 'approve'")
    seq = shown["audit"][events.index("approve")]["seq"]
    broken = cli("audit", "verify")
    assert broken.code == 1 and f"entry {seq}" in broken.err


def test_no_cases_opens_none_and_db_upgrade_reports(
    cli: Cli, day: GeneratedDay, tmp_path: Path
) -> None:
    assert (
        cli(*reconcile_args(day, tmp_path / "run", "--no-cases", "--json")).json()["cases"] is None
    )
    upgraded = cli("db", "upgrade")
    assert upgraded.code == 0 and "-> 0003" in upgraded.err
    assert cli("db", "current").code == 0
    assert cli("cases", "list", "--json").json()["total"] == 0
    missing = cli("cases", "show", "42")
    assert missing.code == 2 and "no case 42" in missing.err
