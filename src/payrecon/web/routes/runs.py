"""Pages: the dashboard, runs and their reports, and uploading a bill to start a run."""

from __future__ import annotations

import re
import uuid
from datetime import date
from typing import Annotated

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, HTMLResponse, Response

from payrecon.cases.service import AGE_BUCKETS
from payrecon.core.outcomes import DISCREPANCIES
from payrecon.core.workflow import Severity
from payrecon.errors import InputError
from payrecon.service.reconcile import ReconcileRequest
from payrecon.web import runs as run_views
from payrecon.web.deps import Context, Operator, Viewer
from payrecon.web.render import page

router = APIRouter(include_in_schema=False)
MAX_UPLOAD = 512 * 1024 * 1024
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


@router.get("/", response_class=HTMLResponse)
def dashboard(request: Request, web: Context, who: Viewer, day: str | None = None) -> HTMLResponse:
    """Per channel and day: match rate, discrepancies by outcome, trend, open cases."""
    days = run_views.latest_per_day(web.runs)
    chosen = day or (days[0].day if days else None)
    return page(
        request,
        who,
        "dashboard.html",
        day=chosen,
        days=sorted({d.day for d in days}, reverse=True),
        today=[d for d in days if d.day == chosen],
        outcomes=[o.value for o in DISCREPANCIES],
        trend=run_views.trend(days),
        open_cases=web.office.open_by_age_and_severity(),
        severities=[s.value for s in Severity],
        ages=AGE_BUCKETS,
    )


@router.get("/runs", response_class=HTMLResponse)
def runs_list(
    request: Request, web: Context, who: Viewer, channel: str | None = None
) -> HTMLResponse:
    return page(request, who, "runs.html", runs=run_views.runs(web.runs, channel or None))


@router.get("/runs/upload", response_class=HTMLResponse)
def upload_form(request: Request, web: Context, who: Operator) -> HTMLResponse:
    return page(request, who, "upload.html", channels=_channels(web), job=None)


@router.post("/runs/upload", response_class=HTMLResponse)
async def upload(
    request: Request,
    web: Context,
    who: Operator,
    bill: Annotated[UploadFile, File()],
    channel: Annotated[str, Form(max_length=32)],
    day: Annotated[date, Form()],
    ledger: Annotated[str, Form(min_length=1, max_length=2000)],
) -> HTMLResponse:
    """Save the bill, start the run in the background, show its progress."""
    if channel not in _channels(web):
        raise InputError(f"unknown channel {channel!r}")
    folder = web.settings.home / "uploads" / uuid.uuid4().hex[:12]
    folder.mkdir(parents=True)
    target = folder / (_SAFE_NAME.sub("_", bill.filename or "bill") or "bill")
    size = 0
    with target.open("wb") as sink:
        while chunk := await bill.read(1 << 20):
            size += len(chunk)
            if size > MAX_UPLOAD:
                raise InputError("the bill is larger than 512 MB")
            sink.write(chunk)
    request_ = ReconcileRequest(
        channel=channel,
        bills=(target,),
        ledger=ledger.strip(),
        day=day,
        out=web.settings.home / "runs" / f"{channel}-{day:%Y%m%d}-{folder.name}",
    )
    job = web.jobs.start(request_)
    return page(request, who, "upload.html", channels=_channels(web), job=job)


@router.get("/runs/jobs/{job_id}", response_class=HTMLResponse)
def job_progress(request: Request, web: Context, who: Viewer, job_id: str) -> HTMLResponse:
    return page(request, who, "_job.html", job=web.jobs.get(job_id))


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run_detail(request: Request, web: Context, who: Viewer, run_id: str) -> HTMLResponse:
    view = run_views.run(web.runs, run_id)
    return page(request, who, "run.html", run=view, reports=run_views.reports(view))


@router.get("/runs/{run_id}/reports/{name}")
def run_report(web: Context, who: Viewer, run_id: str, name: str) -> Response:
    path = run_views.report_file(run_views.run(web.runs, run_id), name, web.settings)
    return FileResponse(path, media_type=run_views.REPORTS[name], filename=f"{run_id}-{name}")


def _channels(web: Context) -> list[str]:
    from payrecon.bills.registry import known_channels

    return known_channels(web.settings)
