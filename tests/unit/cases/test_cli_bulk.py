"""The case commands on many cases, and optimistic locking, from the command line: cases
opened by a real reconcile in the embedded store, ``users create``, ``cases list --json``,
``--expect-version``, ``bulk-assign``/``bulk-propose`` and the spreadsheet round trip."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from payrecon.generator import GeneratedDay, generate_day
from tests.unit.test_cli import CHANNEL, DAY, Cli, cli, home, reconcile_args

__all__ = ["cli", "home"]  # fixtures shared with the main CLI tests


@pytest.fixture(scope="module")
def day(tmp_path_factory: pytest.TempPathFactory) -> GeneratedDay:
    # About 120 discrepancies: more than `cases list` shows by default.
    return generate_day(CHANNEL, DAY, 400, tmp_path_factory.mktemp("day"), discrepancy_rate=0.3)


@pytest.fixture
def opened(cli: Cli, day: GeneratedDay, tmp_path: Path) -> dict[str, Any]:
    assert cli(*reconcile_args(day, tmp_path / "run")).code == 1
    assert cli("users", "create", "root", "--role", "admin").code == 0
    for name, role in (("alice", "operator"), ("carol", "operator"), ("bob", "approver")):
        assert cli("users", "create", name, "--role", role, "--as", "root").code == 0
    listed: dict[str, Any] = cli("cases", "list", "--json", "--limit", "10000").json()
    return listed


def by_outcome(opened: dict[str, Any], outcome: str) -> list[dict[str, Any]]:
    return [c for c in opened["cases"] if c["outcome"] == outcome]


def test_users_create_is_the_name_and_add_still_works_hidden(cli: Cli, opened: Any) -> None:
    helped = cli("users", "--help")
    assert "create" in helped.out and " add " not in helped.out
    assert cli("users", "add", "dora", "--role", "approver", "--as", "root").code == 0
    users = {u["name"]: u["role"] for u in cli("users", "list", "--json").json()}
    assert users["dora"] == "approver" and users["alice"] == "operator"


def test_list_json_counts_all_matching_and_shows_up_to_the_limit(
    cli: Cli, opened: dict[str, Any]
) -> None:
    total = opened["total"]
    assert total > 100 and len(opened["cases"]) == total
    default = cli("cases", "list", "--json").json()
    assert set(default) == {"total", "cases"}
    assert default["total"] == total and len(default["cases"]) == 100
    few = cli("cases", "list", "--json", "--limit", "3", "--outcome", "missing_in_ledger").json()
    assert few["total"] == len(by_outcome(opened, "MISSING_IN_LEDGER")) > 3
    assert len(few["cases"]) == 3 and all(c["version"] == 1 for c in few["cases"])


def test_a_stale_expect_version_is_refused_and_the_log_stays_clean(
    cli: Cli, opened: dict[str, Any]
) -> None:
    case_id = str(opened["cases"][0]["id"])
    version = str(cli("cases", "show", case_id, "--json").json()["version"])
    first = cli(
        "cases", "assign", case_id, "--to", "alice", "--as", "bob", "--expect-version", version
    )
    assert first.code == 0
    second = cli(
        "cases", "assign", case_id, "--to", "carol", "--as", "bob", "--expect-version", version
    )
    assert second.code == 2
    assert f"case {case_id} changed meanwhile: you saw version {version}" in second.err
    assert "reload" in second.err
    shown = cli("cases", "show", case_id, "--json").json()
    assert shown["assignee"] == "alice" and shown["version"] == int(version) + 1
    assert [e["event"] for e in shown["audit"]].count("assign") == 1
    verified = cli("audit", "verify")
    assert verified.code == 0 and "intact" in verified.out


def test_bulk_assign_reports_each_case_and_exits_1_on_any_refusal(
    cli: Cli, opened: dict[str, Any]
) -> None:
    taken = by_outcome(opened, "MISSING_IN_LEDGER")
    held = str(taken[0]["id"])
    assert cli("cases", "assign", held, "--to", "carol", "--as", "bob").code == 0
    args = ("cases", "bulk-assign", "--to", "alice", "--outcome", "missing_in_ledger")
    dry = cli(*args, "--as", "alice", "--dry-run", "--json")
    assert dry.code == 1 and dry.json()["dry_run"] is True
    assert dry.json()["matched"] == len(taken) and dry.json()["refused"] == 1
    assert all(
        c["assignee"] is None
        for c in cli("cases", "list", "--json", "--assignee", "alice").json()["cases"]
    )
    done = cli(*args, "--as", "alice", "--json")
    assert done.code == 1
    report = done.json()
    refused = [r for r in report["results"] if not r["ok"]]
    assert [r["case"] for r in refused] == [int(held)]
    assert "assigned to carol" in refused[0]["detail"]
    mine = cli("cases", "list", "--json", "--assignee", "alice", "--limit", "10000").json()
    assert mine["total"] == len(taken) - 1
    clean = cli("cases", "bulk-assign", "--to", "alice", "--as", "alice", "--assignee", "alice")
    assert clean.code == 0 and "0 refused" in clean.err
    unfiltered = cli("cases", "bulk-assign", "--to", "alice", "--as", "alice")
    assert unfiltered.code == 2 and "at least one filter" in unfiltered.err
    assert cli("audit", "verify").code == 0


def test_bulk_propose_on_a_filter(cli: Cli, opened: dict[str, Any]) -> None:
    assert cli("cases", "bulk-assign", "--to", "alice", "--as", "bob", "--open").code == 0
    proposed = cli(
        "cases", "bulk-propose", "--action", "park", "--reason", "wait for T+1",
        "--park-days", "2", "--outcome", "amount_mismatch", "--as", "alice", "--json",
    )  # fmt: skip
    assert proposed.code == 0, proposed.err
    count = len(by_outcome(opened, "AMOUNT_MISMATCH"))
    assert proposed.json()["ok"] == count > 0
    parked = cli("cases", "list", "--json", "--state", "PARKED", "--limit", "10000").json()
    assert parked["total"] == count


def test_export_fill_import_from_the_command_line(
    cli: Cli, opened: dict[str, Any], tmp_path: Path
) -> None:
    sheet_path = tmp_path / "cases.xlsx"
    exported = cli("cases", "export", "--status", "OPEN", "--out", sheet_path)
    assert exported.code == 0 and f"{opened['total']} cases written" in exported.err
    target = by_outcome(opened, "MISSING_IN_LEDGER")[0]["id"]
    wrong = by_outcome(opened, "MISSING_IN_CHANNEL")[0]["id"]

    def filled(decisions: dict[int, dict[str, object]], name: str) -> tuple[Path, dict[int, int]]:
        book = load_workbook(sheet_path)
        sheet = book["cases"]
        header = [c.value for c in sheet[1]]
        rows = {}
        for row in sheet.iter_rows(min_row=2):
            rows[int(row[0].value)] = row[0].row  # type: ignore[arg-type]
            for column, value in decisions.get(int(row[0].value), {}).items():  # type: ignore[arg-type]
                row[header.index(column)].value = value
        book.save(tmp_path / name)
        return tmp_path / name, rows

    bad, rows = filled(
        {target: {"action": "补单", "note": "paid"}, wrong: {"action": "补单", "note": "no"}},
        "bad.xlsx",
    )
    refused = cli("cases", "import", bad, "--as", "alice")
    assert refused.code == 2 and "nothing was applied" in refused.err
    assert f"row {rows[wrong]}, column action" in refused.err
    assert cli("cases", "show", str(target), "--json").json()["state"] == "OPEN"

    good, _ = filled({target: {"action": "补单", "note": "paid"}}, "good.xlsx")
    applied = cli("cases", "import", good, "--as", "alice", "--json")
    assert applied.code == 0, applied.err
    assert applied.json()["results"][0]["ok"] is True
    shown = cli("cases", "show", str(target), "--json").json()
    assert (shown["state"], shown["assignee"]) == ("PENDING_APPROVAL", "alice")
    again = cli("cases", "import", good, "--as", "alice")  # the versions are stale now
    assert again.code == 2 and "changed since the export" in again.err
    assert cli("audit", "verify").code == 0
