"""The demo: a realistic day for WeChat and Alipay, generated and reconciled end to end."""

from __future__ import annotations

from datetime import date
from functools import partial
from pathlib import Path

from payrecon.config import Settings
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
    return results
