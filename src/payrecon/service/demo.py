"""The demo: a realistic day for WeChat and Alipay, generated and reconciled end to end."""

from __future__ import annotations

from datetime import date
from functools import partial
from pathlib import Path

from payrecon.config import Settings
from payrecon.core.workflow import Actor, Role
from payrecon.generator import GeneratedDay, generate_day
from payrecon.service.progress import Observer
from payrecon.service.reconcile import ReconcileRequest, RunResult, run_reconciliation

DEMO_DAY = date(2026, 11, 20)
DEMO_RATE = 0.02


def generate_with_progress(
    channel: str,
    day: date,
    rows: int,
    out: Path,
    seed: int,
    discrepancy_rate: float,
    observer: Observer,
) -> GeneratedDay:
    """Run the generator with a progress bar counted in rows."""
    key = f"generate:{channel}"
    observer.task(key, f"generating {channel} {day}", rows)
    made = generate_day(
        channel,  # type: ignore[arg-type]
        day,
        rows,
        out,
        seed=seed,
        discrepancy_rate=discrepancy_rate,
        on_progress=partial(observer.advance, key),
    )
    observer.done(key)
    return made


def run_demo(out: Path, rows: int, settings: Settings, observer: Observer) -> list[RunResult]:
    """Generate and reconcile one day per built-in channel; every outcome kind appears."""
    results = []
    for seed, channel in enumerate(("wechat", "alipay"), start=1):
        inputs = out / "inputs" / channel
        made = generate_with_progress(channel, DEMO_DAY, rows, inputs, seed, DEMO_RATE, observer)
        request = ReconcileRequest(
            channel=channel,
            bills=tuple(made.bills),
            ledger=str(made.ledger),
            day=DEMO_DAY,
            out=out / "runs" / channel,
        )
        results.append(run_reconciliation(request, settings, observer))
    if settings.cases.enabled and settings.web.environment == "development":
        add_demo_users(settings)
    return results


# Development only: `payrecon serve` after the demo logs in with these (docs/back-office.md).
DEMO_USERS = {
    "admin": (Role.ADMIN, "demo-admin"),
    "alice": (Role.OPERATOR, "demo-alice"),
    "bob": (Role.APPROVER, "demo-bob1"),
}


def add_demo_users(settings: Settings) -> None:
    """Make the demo's users (and reset their demo passwords) in the case store."""
    from payrecon.cases.service import BackOffice
    from payrecon.service.cases import case_service

    service = case_service(settings)
    try:
        existing = {user["name"] for user in service.users()}
        office = BackOffice(service)
        for name, (role, password) in DEMO_USERS.items():
            if name not in existing:
                service.add_user(name, role, display_name=f"demo {role.value}")
            office.set_password(name, password, by=Actor.system())
    finally:
        service.store.close()
