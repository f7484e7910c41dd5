"""The match definition, outcome by outcome, on the embedded engine."""

from __future__ import annotations

from datetime import timedelta

import pytest
import sqlglot

from payrecon.core.outcomes import OUTCOMES, Outcome
from payrecon.core.rules import MatchRules
from payrecon.engines.definition import MatchDefinition
from tests.conftest import DAY, MatchRunner, pooled, record


def outcomes_by_order(rows: list[dict[str, object]]) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    for row in rows:
        result.setdefault(str(row["order_id"]), []).append(str(row["outcome"]))
    return result


def test_every_outcome_kind(run_match: MatchRunner) -> None:
    ledger = [
        record("matched"),
        record("short", 100),
        record("status", status="PROCESSING"),
        record("fee", fee=600),
        record("dup"),
        record("dup", line_no=2),
        record("late", local_time="23:55:00"),
        record("lost"),
    ]
    channel = [
        record("matched"),
        record("short", 90),
        record("status"),
        record("fee", fee=601),
        record("dup"),
        record("extra"),
        record("early", local_time="00:05:00"),
    ]
    assert outcomes_by_order(run_match(ledger, channel)) == {
        "matched": ["MATCHED"],
        "short": ["AMOUNT_MISMATCH"],
        "status": ["STATUS_MISMATCH"],
        "fee": ["FEE_MISMATCH"],
        "dup": ["DUPLICATE", "MATCHED"],
        "late": ["CARRIED_OVER"],
        "lost": ["MISSING_IN_CHANNEL"],
        "extra": ["MISSING_IN_LEDGER"],
        "early": ["CARRIED_OVER"],
    }


def test_a_row_carries_both_sides_and_the_difference(run_match: MatchRunner) -> None:
    (row,) = run_match([record("a", 100, fee=1)], [record("a", 90, fee=2, line_no=7)])
    assert row["outcome"] == "AMOUNT_MISMATCH"
    assert row["diff_fields"] == "amount,fee"
    assert (row["ledger_amount"], row["channel_amount"], row["amount_diff"]) == (100, 90, -10)
    assert row["channel_line_no"] == 7
    assert row["side"] is None


def test_duplicate_rows_stand_for_the_extra_record_only(run_match: MatchRunner) -> None:
    rows = run_match([record("d", line_no=1), record("d", line_no=5)], [record("d")])
    duplicate = next(r for r in rows if r["outcome"] == "DUPLICATE")
    assert (duplicate["side"], duplicate["ledger_line_no"]) == ("ledger", 5)
    assert duplicate["channel_amount"] is None


def test_channel_duplicates_are_reported_too(run_match: MatchRunner) -> None:
    rows = run_match([record("d")], [record("d", line_no=3), record("d", line_no=4)])
    assert outcomes_by_order(rows) == {"d": ["DUPLICATE", "MATCHED"]}
    assert next(r for r in rows if r["outcome"] == "DUPLICATE")["side"] == "channel"


def test_amount_tolerance(run_match: MatchRunner) -> None:
    rules = MatchRules(amount_tolerance=1)
    rows = run_match(
        [record("a", 100), record("b", 100)], [record("a", 101), record("b", 102)], rules=rules
    )
    assert outcomes_by_order(rows) == {"a": ["MATCHED"], "b": ["AMOUNT_MISMATCH"]}


def test_order_amount_rule_compares_totals_before_coupons(run_match: MatchRunner) -> None:
    ledger = [record("coupon", 1000)]
    channel = [record("coupon", 800, order_amount=1000)]
    assert run_match(ledger, channel)[0]["outcome"] == "AMOUNT_MISMATCH"
    rules = MatchRules(compare_amount="order_amount")
    assert run_match(ledger, channel, rules=rules)[0]["outcome"] == "MATCHED"


def test_refunded_order_still_matches_its_payment(run_match: MatchRunner) -> None:
    ledger = [record("o1", status="REFUNDED"), record("r1", 30, kind="REFUND")]
    channel = [record("o1"), record("r1", 30, kind="REFUND")]
    assert outcomes_by_order(run_match(ledger, channel)) == {"o1": ["MATCHED"], "r1": ["MATCHED"]}


def test_refund_and_payment_with_the_same_id_are_different_keys(run_match: MatchRunner) -> None:
    rows = run_match([record("x", kind="PAY")], [record("x", kind="REFUND")])
    assert sorted((r["kind"], r["outcome"]) for r in rows) == [
        ("PAY", "MISSING_IN_CHANNEL"),
        ("REFUND", "MISSING_IN_LEDGER"),
    ]


def test_failed_refund_against_successful_one_is_a_status_mismatch(run_match: MatchRunner) -> None:
    rows = run_match([record("r", kind="REFUND", status="FAILED")], [record("r", kind="REFUND")])
    assert rows[0]["outcome"] == "STATUS_MISMATCH"


def test_currency_difference_is_an_amount_mismatch(run_match: MatchRunner) -> None:
    rows = run_match([record("c", currency="USD")], [record("c")])
    assert (rows[0]["outcome"], rows[0]["diff_fields"]) == ("AMOUNT_MISMATCH", "currency")


def test_fee_is_judged_only_when_both_sides_know_it(run_match: MatchRunner) -> None:
    rows = run_match([record("f", fee=None)], [record("f", fee=500)])
    assert rows[0]["outcome"] == "MATCHED"


@pytest.mark.parametrize(
    ("local_time", "outcome"),
    [
        ("23:49:59", "MISSING_IN_CHANNEL"),
        ("23:50:00", "CARRIED_OVER"),
        ("00:09:59", "CARRIED_OVER"),
        ("00:10:00", "MISSING_IN_CHANNEL"),
    ],
)
def test_cross_day_window_edges(run_match: MatchRunner, local_time: str, outcome: str) -> None:
    rows = run_match([record("edge", local_time=local_time)], [])
    assert rows[0]["outcome"] == outcome


def test_window_zero_disables_carry_over(run_match: MatchRunner) -> None:
    rules = MatchRules(cross_day_window=timedelta(0))
    rows = run_match([record("late", local_time="23:59:59")], [], rules=rules)
    assert rows[0]["outcome"] == "MISSING_IN_CHANNEL"


def test_pool_records_match_the_next_day_and_age_out(run_match: MatchRunner) -> None:
    yesterday = DAY - timedelta(days=1)
    pool = [
        pooled(record("waited", local_time="23:58:00", day=yesterday), "ledger", yesterday),
        pooled(record("still", local_time="23:59:00", day=yesterday), "channel", yesterday),
        pooled(record("old", day=DAY - timedelta(days=4)), "ledger", DAY - timedelta(days=4)),
    ]
    channel = [record("waited", local_time="00:01:00")]
    rows = run_match([], channel, pool=pool)
    by_order = {r["order_id"]: r for r in rows}
    assert by_order["waited"]["outcome"] == "MATCHED"
    assert by_order["waited"]["carried_from"] == yesterday
    assert by_order["still"]["outcome"] == "CARRIED_OVER"
    assert by_order["old"]["outcome"] == "MISSING_IN_CHANNEL"


def test_output_has_the_outcomes_schema(run_match: MatchRunner) -> None:
    rows = run_match([record("a")], [record("a")])
    assert set(rows[0]) == set(OUTCOMES.names)
    assert {o.value for o in Outcome} >= {rows[0]["outcome"]}


def test_definition_compiles_for_spark() -> None:
    sql = MatchDefinition(MatchRules(), DAY).sql("spark")
    parsed = sqlglot.parse_one(sql, read="spark")
    assert parsed is not None
    assert "TIMESTAMPTZ" not in sql.upper()
    assert "FULL OUTER JOIN" in sql.upper()


def test_rule_literals_are_quoted_not_injected() -> None:
    rules = MatchRules(success_statuses={"PAY": frozenset({"SUCCESS' OR 1=1 --"})})
    sql = MatchDefinition(rules, DAY).sql()
    assert "'SUCCESS'' OR 1=1 --'" in sql
