"""The back-office in a real browser: Debian's chromium driven by Playwright against a
real uvicorn server, a real case store and the fake payment platform as the executor.

Screenshots go to ``$PAYRECON_SCREENSHOTS`` when set (``docs/img`` for the README).
"""

from __future__ import annotations

import os
import re
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, expect, sync_playwright

from payrecon.cases.ingest import open_cases
from payrecon.cases.policy import build_executor
from payrecon.cases.service import BackOffice, CaseService
from payrecon.cases.store import CaseStore
from payrecon.config import Settings
from payrecon.core.workflow import Actor, Role
from payrecon.web.app import create_app
from tests.conftest import DAY
from tests.support.fake_platform import DEFAULT_SECRET, FakePlatform
from tests.unit.web.conftest import RUN_ID, _record_run, day_outcomes  # noqa: F401

pytestmark = pytest.mark.integration
CHROMIUM = "/usr/bin/chromium"
PASSWORDS = {"alice": "alice-password", "bob": "bob-password"}


@dataclass
class Server:
    url: str
    platform: FakePlatform
    service: CaseService


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path, day_outcomes: Path) -> Iterator[Server]:  # noqa: F811
    with FakePlatform() as platform:
        settings = Settings(
            home=tmp_path / "home",
            cases={
                "url": f"sqlite:///{tmp_path / 'cases.sqlite'}",
                "executor": {
                    "kind": "webhook",
                    "url": platform.url,
                    "secret": DEFAULT_SECRET.decode(),
                    "max_attempts": 1,
                },
            },
        )
        store = CaseStore(settings.cases_url)
        store.upgrade()
        service = CaseService(store, executor=build_executor(settings.cases))
        office = BackOffice(service)
        for name, role in (("alice", Role.OPERATOR), ("bob", Role.APPROVER)):
            service.add_user(name, role)
            office.set_password(name, PASSWORDS[name], by=Actor.system())
        out = settings.home / "runs" / RUN_ID
        out.mkdir(parents=True)
        (out / "outcomes.parquet").write_bytes(day_outcomes.read_bytes())
        open_cases(service, out / "outcomes.parquet", run_id=RUN_ID, channel="wechat", day=DAY)
        _record_run(settings, out)
        port = _free_port()
        uv = uvicorn.Server(
            uvicorn.Config(
                create_app(settings, service),
                host="127.0.0.1",
                port=port,
                log_level="warning",
                lifespan="off",
            )
        )
        thread = threading.Thread(target=uv.run, daemon=True)
        thread.start()
        for _ in range(500):
            if uv.started:
                break
            threading.Event().wait(0.02)
        assert uv.started, "uvicorn did not start"
        yield Server(f"http://127.0.0.1:{port}", platform, service)
        uv.should_exit = True
        thread.join()
        store.close()


@pytest.fixture
def browser() -> Iterator[Browser]:
    assert Path(CHROMIUM).is_file(), "chromium is missing: `make test` installs it with apt"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
        )
        yield launched
        launched.close()


def _log_in(page: Page, base: str, name: str) -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=username]", name)
    page.fill("input[name=password]", PASSWORDS[name])
    page.click("button[type=submit]")
    expect(page.get_by_test_id("user")).to_contain_text(name)


def _shoot(page: Page, name: str) -> None:
    folder = os.environ.get("PAYRECON_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / name), full_page=True)


def test_operator_proposes_and_a_second_person_approves(server: Server, browser: Browser) -> None:
    base = server.url
    alice = browser.new_page(viewport={"width": 1360, "height": 900})
    _log_in(alice, base, "alice")

    # The dashboard: the run's match rate and the open cases.
    expect(alice.get_by_test_id("match-rate-wechat")).to_have_text("33.33%")
    expect(alice.get_by_test_id("open-cases")).to_contain_text("low")
    _shoot(alice, "dashboard.png")

    # The queue, filtered to the records the platform is missing (HTMX swaps the table).
    alice.goto(f"{base}/cases")
    alice.select_option("select[name=outcome]", "MISSING_IN_LEDGER")
    rows = alice.locator("[data-testid=queue] tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-outcome", "MISSING_IN_LEDGER")
    expect(alice).to_have_url(re.compile(r"outcome=MISSING_IN_LEDGER"))
    alice.get_by_test_id("case-link").first.click()

    # Case page: both sides, the near miss on the ledger side, then claim, start, propose.
    expect(alice.get_by_test_id("near-misses")).to_contain_text("o7")
    alice.click("button[data-command=assign]")
    alice.click("button[data-command=start]")
    proposal = alice.locator("form:has(button[data-action=supplement_order])")
    proposal.locator("input[name=body]").fill("channel has the money: 补单")
    proposal.locator("button").click()
    expect(alice.get_by_test_id("case-state")).to_have_text("PENDING_APPROVAL")
    expect(alice.locator("button[data-command=approve]")).to_have_count(0)

    # Approving her own proposal is refused by the service, whatever the page offers.
    case_url = alice.url.split("?")[0]
    token = alice.locator("input[name=csrf_token]").first.get_attribute("value") or ""
    refused = alice.request.post(f"{case_url}/approve", form={"csrf_token": token, "body": ""})
    assert refused.status == 403
    assert "a second person must" in refused.text()
    assert server.platform.moves == []

    # Bob, an approver, approves: the fake platform carries it out once.
    alice.locator("form.logout button").click()
    bob = alice
    _log_in(bob, base, "bob")
    bob.goto(case_url)
    bob.click("button[data-command=approve]")
    expect(bob.get_by_test_id("flash")).to_contain_text("executed")
    expect(bob.get_by_test_id("case-state")).to_have_text("RESOLVED")
    expect(bob.locator("[data-testid=actions] tr[data-state=EXECUTED]")).to_have_count(1)
    audit = bob.get_by_test_id("audit")
    for event in ("propose", "approve", "execution_started", "executed"):
        expect(audit.locator(f"tr[data-event={event}]")).to_have_count(1)
    moves = server.platform.moves
    assert len(moves) == 1 and moves[0]["kind"] == "supplement_order"
    assert moves[0]["approved_by"] == "bob" and moves[0]["proposed_by"] == "alice"
    _shoot(bob, "case.png")
