"""Open (and close) cases for a finished run in the configured case store."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

from payrecon.cases.ingest import open_cases
from payrecon.cases.policy import CasePolicy, build_executor
from payrecon.cases.service import CaseService
from payrecon.cases.store import CaseStore, open_store
from payrecon.config import Settings
from payrecon.service.progress import Observer


def case_service(settings: Settings, store: CaseStore | None = None) -> CaseService:
    """The case service on the configured store, policy and executor."""
    opened = store or open_store(settings.cases_url, embedded=settings.cases.url is None)
    policy = CasePolicy.from_settings(settings.cases)
    return CaseService(opened, policy, build_executor(settings.cases))


def sync_run_cases(
    settings: Settings,
    outcomes: Path,
    *,
    run_id: str,
    channel: str,
    day: date,
    observer: Observer,
) -> dict[str, Any]:
    """Bring the cases of ``channel``/``day`` in line with a run's outcomes."""
    observer.task("cases", "opening cases", None, "steps")
    service = case_service(settings)
    try:
        report = open_cases(service, outcomes, run_id=run_id, channel=channel, day=day)
    finally:
        service.store.close()
    observer.done("cases")
    return report.as_dict()
