"""Runs started from the back-office (an uploaded bill), carried out in a worker thread.

The page polls the job (HTMX, once a second) and draws its progress from what the run
reports through the usual :class:`~payrecon.service.progress.Observer` protocol.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from payrecon.config import Settings
from payrecon.errors import NotFoundError
from payrecon.service.progress import Unit
from payrecon.service.reconcile import ReconcileRequest, RunResult, run_reconciliation

Runner = Callable[..., RunResult]


@dataclass
class Task:
    description: str
    total: int | None
    done: int = 0
    finished: bool = False


@dataclass
class Job:
    """One uploaded bill being reconciled."""

    id: str
    channel: str
    day: str
    state: Literal["running", "done", "failed"] = "running"
    tasks: dict[str, Task] = field(default_factory=dict)
    run_id: str | None = None
    discrepancies: int | None = None
    error: str | None = None

    @property
    def percent(self) -> int:
        """A rough overall figure: finished tasks count fully, others by their counts."""
        if self.state != "running":
            return 100
        shares = [
            1.0 if t.finished else (min(t.done / t.total, 1.0) if t.total else 0.0)
            for t in self.tasks.values()
        ]
        return int(95 * sum(shares) / len(shares)) if shares else 0

    @property
    def current(self) -> str:
        running = [t.description for t in self.tasks.values() if not t.finished]
        return running[-1] if running else "starting"


class _JobObserver:
    def __init__(self, job: Job, lock: threading.Lock) -> None:
        self.job, self.lock = job, lock

    def task(
        self, key: str, description: str, total: int | None = None, unit: Unit = "rows"
    ) -> None:
        with self.lock:
            self.job.tasks[key] = Task(description, total)

    def advance(self, key: str, amount: int) -> None:
        with self.lock:
            if key in self.job.tasks:
                self.job.tasks[key].done += amount

    def done(self, key: str) -> None:
        with self.lock:
            if key in self.job.tasks:
                self.job.tasks[key].finished = True


class JobBoard:
    """The back-office's runs in progress (kept in memory; the run store keeps results)."""

    def __init__(self, settings: Settings, runner: Runner = run_reconciliation) -> None:
        self.settings = settings
        self.runner = runner
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()

    def start(self, request: ReconcileRequest) -> Job:
        job = Job(uuid.uuid4().hex[:12], request.channel, request.day.isoformat())
        with self._lock:
            self._jobs[job.id] = job
        worker = threading.Thread(target=self._run, args=(job, request), daemon=True)
        worker.start()
        return job

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise NotFoundError(f"no upload job {job_id}")
        return job

    def _run(self, job: Job, request: ReconcileRequest) -> None:
        try:
            result = self.runner(request, self.settings, _JobObserver(job, self._lock))
        except Exception as exc:  # shown on the page; the run store records it too
            with self._lock:
                job.state, job.error = "failed", f"{type(exc).__name__}: {exc}"
            return
        with self._lock:
            job.state, job.run_id = "done", result.run_id
            job.discrepancies = int(result.summary["discrepancies"])
