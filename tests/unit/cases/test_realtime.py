"""Real-time alerts become provisional cases; the T+1 batch run settles them."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from payrecon.cases.ingest import open_cases
from payrecon.cases.realtime import open_stream_cases
from payrecon.cases.service import CaseFilter, CaseService
from payrecon.cli import main
from payrecon.core.stream import MatcherConfig, StreamEvent, StreamMatcher, StreamOutput
from tests.conftest import record
from tests.unit.cases.conftest import Outcomes

DAY = date(2026, 11, 20)


def ms(hhmmss: str) -> int:
    """A Shanghai wall-clock time on DAY in epoch milliseconds."""
    moment = datetime.fromisoformat(f"{DAY} {hhmmss}+08:00")
    return int(moment.astimezone(UTC).timestamp() * 1000)


def alerts() -> list[StreamOutput]:
    matcher = StreamMatcher(MatcherConfig())
    events = [
        StreamEvent("pay", "late", ms("12:00:00"), 100),  # its receipt is late: false alarm
        StreamEvent("pay", "lost", ms("12:00:01"), 300),  # the channel never had it
        StreamEvent("receipt", "ok", ms("12:00:02"), 50),
        StreamEvent("pay", "ok", ms("12:00:03"), 50),
    ]
    out: list[StreamOutput] = []
    for event in events:
        out += matcher.process(event, 0)
    return out + matcher.finish()


def test_alerts_open_provisional_cases_once(service: CaseService) -> None:
    outputs = alerts()
    assert sorted(o.type for o in outputs) == ["matched", "unmatched_pay", "unmatched_pay"]
    assert open_stream_cases(service, outputs, channel="wechat") == 2
    assert open_stream_cases(service, outputs, channel="wechat") == 0  # replay after restart
    total, rows = service.query(CaseFilter(channel="wechat"))
    assert total == 2
    assert {(r["order_id"], r["outcome"], r["source"], r["run_day"]) for r in rows} == {
        ("late", "MISSING_IN_CHANNEL", "stream", "2026-11-20"),
        ("lost", "MISSING_IN_CHANNEL", "stream", "2026-11-20"),
    }


def test_the_batch_run_closes_false_alarms_and_points_real_ones_at_its_case(
    service: CaseService, outcomes: Outcomes
) -> None:
    open_stream_cases(service, alerts(), channel="wechat")
    ledger = [record("late", 100), record("lost", 300), record("ok", 50)]
    channel = [record("late", 100), record("ok", 50)]
    report = open_cases(service, outcomes(ledger, channel), run_id="r1", channel="wechat", day=DAY)
    assert (report.opened, report.stream_settled) == (1, 2)
    _, rows = service.query(CaseFilter(channel="wechat"), limit=10)
    by_key = {(r["source"], r["order_id"]): r for r in rows}
    batch_case = by_key[("batch", "lost")]
    assert batch_case["state"] == "OPEN"
    late = by_key[("stream", "late")]
    assert late["state"] == "CLOSED" and "late arrival" in late["closed_reason"]
    lost = by_key[("stream", "lost")]
    assert lost["state"] == "CLOSED"
    assert f"as case {batch_case['id']}" in lost["closed_reason"]


def test_stream_command_writes_to_the_case_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PAYRECON_HOME", str(tmp_path / "home"))
    pay, receipt = tmp_path / "pay.csv", tmp_path / "receipt.csv"
    pay.write_text("1,pay,order01,1606549513\n2,pay,order02,1606549520\n", encoding="utf-8")
    receipt.write_text("order02,wechat,1606549522\n", encoding="utf-8")
    args = ["stream", "--pay", str(pay), "--receipt", str(receipt), "--quiet"]
    assert main([*args, "--sink", "cases:wechat"]) == 1
    assert main([*args, "--sink", "cases:wechat"]) == 1  # the same alert again
    capsys.readouterr()
    assert main(["cases", "list", "--json", "--channel", "wechat"]) == 0
    listed = capsys.readouterr().out
    assert '"total": 1' in listed and '"order01"' in listed and '"stream"' in listed
