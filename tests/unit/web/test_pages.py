"""The pages: dashboard, runs and reports, the queue (HTMX), case detail, bulk, upload."""

from __future__ import annotations

import re
import threading

from payrecon.cases.service import CaseService
from tests.unit.web.conftest import RUN_ID, Login, case_id, csrf_of


def test_dashboard_shows_the_run_and_open_cases(login: Login) -> None:
    page = login("victor").get("/").text
    assert 'data-testid="match-rate-wechat">33.33%' in page
    assert "AMOUNT_MISMATCH" in page and "trend-data" in page


def test_runs_list_detail_and_reports(login: Login) -> None:
    victor = login("victor")
    assert RUN_ID in victor.get("/runs").text
    detail = victor.get(f"/runs/{RUN_ID}").text
    assert 'data-testid="footer">ok' in detail
    for name in ("outcomes.parquet", "discrepancies.xlsx", "summary.json"):
        answer = victor.get(f"/runs/{RUN_ID}/reports/{name}")
        assert answer.status_code == 200 and answer.content, name
    assert victor.get(f"/runs/{RUN_ID}/reports/../../etc/passwd").status_code == 404
    assert victor.get(f"/runs/{RUN_ID}/reports/secret.txt").status_code == 404


def test_the_queue_page_filters_and_htmx_gets_the_table_alone(login: Login) -> None:
    victor = login("victor")
    full = victor.get("/cases", params={"outcome": "MISSING_IN_CHANNEL", "state": ""}).text
    assert full.count('data-outcome="MISSING_IN_CHANNEL"') == 2 and "<html" in full
    partial = victor.get(
        "/cases", params={"min_amount": "900.00"}, headers={"HX-Request": "true"}
    ).text
    assert "<html" not in partial
    stakes = re.findall(r'class="num">([\d,.]+) CNY', partial)
    assert stakes and all(float(s.replace(",", "")) >= 900 for s in stakes)
    assert victor.get("/cases", params={"min_amount": "abc"}).status_code == 400


def test_case_detail_highlights_what_differs_and_offers_what_is_allowed(
    login: Login, service: CaseService
) -> None:
    mismatch = case_id(service, "AMOUNT_MISMATCH")
    alice = login("alice").get(f"/cases/{mismatch}").text
    assert re.search(r'<tr class="differs" data-field="amount">', alice)
    assert not re.search(r'<tr class="differs" data-field="currency">', alice)
    assert 'data-command="assign"' in alice and 'data-command="approve"' not in alice
    viewer = login("victor").get(f"/cases/{mismatch}").text
    assert 'data-command="assign"' not in viewer and "Nothing for you to do" in viewer


def test_near_misses_for_a_missing_record(login: Login, service: CaseService) -> None:
    missing = case_id(service, "MISSING_IN_LEDGER")
    page = login("alice").get(f"/cases/{missing}").text
    near = page[page.index('data-testid="near-misses"') :]
    assert near.index("o7") < near.index("o2")  # 950.10 is nearest to 950.00


def test_bulk_claim_reports_each_case(login: Login, service: CaseService) -> None:
    alice = login("alice")
    token = csrf_of(alice.get("/cases").text)
    _, rows = service.query(limit=2)
    ids = [str(r["id"]) for r in rows]
    answer = alice.post(
        "/cases/bulk",
        data={"command": "assign", "case_id": [*ids, "999999"], "csrf_token": token},
    )
    assert answer.status_code == 200
    assert answer.text.count('class="ok"') == 2 and "no case 999999" in answer.text
    assert {r["assignee"] for r in service.query(limit=2)[1]} == {"alice"}


def test_page_errors_render_with_their_status(login: Login, service: CaseService) -> None:
    alice = login("alice")
    token = csrf_of(alice.get("/").text)
    case = case_id(service, "AMOUNT_MISMATCH")
    answer = alice.post(f"/cases/{case}/start", data={"csrf_token": token})
    assert answer.status_code == 409 and "cannot start" in answer.text
    assert alice.get("/cases/999999").status_code == 404


def test_uploading_a_bill_starts_a_run_and_reports_progress(login: Login, app: object) -> None:
    alice = login("alice")
    token = csrf_of(alice.get("/runs/upload").text)
    started = alice.post(
        "/runs/upload",
        data={
            "channel": "wechat",
            "day": "2026-11-20",
            "ledger": "/nonexistent.csv",
            "csrf_token": token,
        },
        files={"bill": ("bill.csv", b"not a wechat bill\n", "text/csv")},
    )
    assert started.status_code == 200 and 'data-testid="job"' in started.text
    job_id = re.search(r'hx-get="/runs/jobs/([0-9a-f]+)"', started.text)
    assert job_id
    state = "running"
    for _ in range(200):
        state_page = alice.get(f"/runs/jobs/{job_id.group(1)}").text
        state = re.search(r'data-state="(\w+)"', state_page).group(1)  # type: ignore[union-attr]
        if state != "running":
            break
        threading.Event().wait(0.05)
    assert state == "failed" and "flash error" in state_page
