"""run_reconciliation: bills + ledger + suspense pool -> outcomes, summary, reports.

Everything is written to a staging folder beside ``--out`` and renamed into place only
when the run has succeeded and its accounting invariant holds: a failed or interrupted
run leaves no partial outputs, and a re-run replaces the previous one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import date
from functools import partial
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from payrecon.bills.base import BillParser, FooterCheck
from payrecon.bills.registry import bill_parser
from payrecon.config import Settings
from payrecon.core.outcomes import Outcome
from payrecon.core.schema import CANONICAL, QUARANTINE
from payrecon.engines.base import Engine, Relation, create_engine
from payrecon.engines.definition import MatchDefinition
from payrecon.errors import BillDateError, DuplicateBillError, InputError, InvariantError, Location
from payrecon.ledger import open_ledger
from payrecon.service.cases import sync_run_cases
from payrecon.service.outputs import OutcomeReader
from payrecon.service.progress import Observer, SilentObserver
from payrecon.service.runstore import RunStore


@dataclass(frozen=True)
class ReconcileRequest:
    channel: str
    bills: tuple[Path, ...]
    ledger: str
    day: date
    out: Path
    engine: str | None = None  # None: the configured engine (settings.engine.name)
    xlsx: bool = False
    # Open cases for the discrepancies (when the config enables the case store).
    cases: bool = True


@dataclass(frozen=True)
class RunResult:
    run_id: str
    out: Path
    summary: dict[str, Any]
    # What the run did to the case store (None: cases were not opened).
    cases: dict[str, Any] | None = None

    @property
    def clean(self) -> bool:
        """No discrepancy and no quarantined row (carried-over records are still waiting)."""
        return bool(self.summary["discrepancies"] == 0 and self.summary["quarantined"] == 0)


@dataclass
class _Counts:
    rows: int = 0
    footers: list[dict[str, Any]] = field(default_factory=list)


def run_reconciliation(
    request: ReconcileRequest, settings: Settings, observer: Observer | None = None
) -> RunResult:
    """Reconcile one channel's bills against the ledger for one accounting day."""
    _check_bills(request.bills)
    run = _Run(request, settings, observer or SilentObserver())
    run.store.start(run.run_id, request.channel, request.day, run.engine)
    try:
        run.staging.mkdir(parents=True)
        summary = run.execute()
        run.store.save_pool(request.channel, request.day, run.staging / "pool.parquet")
        _publish(run.staging, request.out)
    except BaseException as exc:
        run.store.fail(run.run_id, f"{type(exc).__name__}: {exc}")
        shutil.rmtree(run.staging, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(run.workdir, ignore_errors=True)
    run.store.finish(run.run_id, request.out, summary)
    cases = None
    if request.cases and settings.cases.enabled:
        # After publishing: the outputs stand even if the case store is down, and a
        # re-run (idempotent) brings the cases in line later.
        cases = sync_run_cases(
            settings,
            request.out / "outcomes.parquet",
            run_id=run.run_id,
            channel=request.channel,
            day=request.day,
            observer=run.observer,
        )
    return RunResult(run.run_id, request.out, summary, cases)


class _Run:
    """One run's state: where it stages, what it has counted."""

    def __init__(self, request: ReconcileRequest, settings: Settings, observer: Observer) -> None:
        self.request = request
        self.settings = settings
        self.observer = observer
        self.engine = request.engine or settings.engine.name
        self.store = RunStore(settings.home)
        self.run_id = f"{request.channel}-{request.day:%Y%m%d}-{uuid.uuid4().hex[:8]}"
        self.staging = request.out.parent / f".{request.out.name}.staging-{self.run_id}"
        self.workdir = settings.temp_directory / self.run_id
        self.channel = _Counts()
        self.ledger_rows = 0
        self.quarantined = 0

    def execute(self) -> dict[str, Any]:
        started = time.monotonic()
        pool_day, pool = self.store.pool_before(self.request.channel, self.request.day)
        outcomes_file = self.staging / "outcomes.parquet"
        engine_settings = self.settings.engine
        with create_engine(self.engine, settings=engine_settings, workdir=self.workdir) as engine:
            engine.load("pool", pool.to_reader())
            self._load_inputs(engine)
            self.observer.task("match", "matching", None, "steps")
            engine.match(
                MatchDefinition(self.settings.match.rules(), self.request.day), outcomes_file
            )
            self.observer.done("match")
        summary = self._report(outcomes_file, pool)
        summary["pool"]["from"] = pool_day.isoformat() if pool_day else None
        summary["seconds"] = round(time.monotonic() - started, 3)
        text = json.dumps(summary, indent=2, ensure_ascii=False) + "\n"
        (self.staging / "summary.json").write_text(text, encoding="utf-8")
        return summary

    def _load_inputs(self, engine: Engine) -> None:
        """Load the bills and the ledger at the same time: each keeps about a core busy.

        When one side fails the other is told to stop at its next batch, and that first
        real error is raised.
        """
        stop = threading.Event()
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="payrecon-load") as threads:
            channel = threads.submit(
                _load_channel,
                engine,
                self.request,
                self.settings,
                self.observer,
                self.channel,
                stop,
            )
            ledger = threads.submit(
                _load_ledger,
                engine,
                self.request,
                self.settings,
                self.observer,
                self.staging,
                stop,
            )
            futures: list[Future[Any]] = [channel, ledger]
            try:
                for future in as_completed(futures):
                    if future.exception() is not None:
                        stop.set()
            except BaseException:
                stop.set()
                raise
        for future in futures:
            error = future.exception()
            if error is not None and not isinstance(error, _Stopped):
                raise error
        self.ledger_rows, self.quarantined = ledger.result()

    def _report(self, outcomes_file: Path, pool: pa.Table) -> dict[str, Any]:
        self.observer.task("report", "writing reports", None, "steps")
        reader = OutcomeReader(outcomes_file, self.settings.engine)
        try:
            outcomes = reader.by_outcome()
            rows_in = {
                "ledger": self.ledger_rows,
                "channel": self.channel.rows,
                "pool": pool.num_rows,
            }
            _check_accounting(rows_in, reader.records_per_side(), pool)
            reader.write_discrepancies_csv(self.staging / "discrepancies.csv")
            if self.request.xlsx:
                reader.write_xlsx(self.staging / "discrepancies.xlsx")
            pool_out = reader.write_pool(self.staging / "pool.parquet")
        finally:
            reader.close()
        self.observer.done("report")
        return self._summary(outcomes, rows_in, pool_out)

    def _summary(
        self, outcomes: dict[str, dict[str, int]], rows_in: dict[str, int], pool_out: int
    ) -> dict[str, Any]:
        discrepancies = sum(v["count"] for k, v in outcomes.items() if Outcome(k).is_discrepancy)
        footers = self.channel.footers
        return {
            "run_id": self.run_id,
            "channel": self.request.channel,
            "date": self.request.day.isoformat(),
            "engine": self.engine,
            "outcomes": outcomes,
            "rows_in": rows_in,
            "quarantined": self.quarantined,
            "discrepancies": discrepancies,
            "footer": "ok" if all(f["status"] == "ok" for f in footers) else "none",
            "bills": footers,
            "pool": {"from": None, "carried_out": pool_out},
        }


# -- channel side ------------------------------------------------------------------------


def _load_channel(
    engine: Engine,
    request: ReconcileRequest,
    settings: Settings,
    observer: Observer,
    counts: _Counts,
    stop: threading.Event,
) -> None:
    def batches() -> Iterator[pa.RecordBatch]:
        for path in request.bills:
            key = f"bill:{path}"
            observer.task(key, f"parsing {path.name}", path.stat().st_size, "bytes")
            parser = bill_parser(request.channel, path, settings, partial(observer.advance, key))
            for batch in parser.batches():
                _check_bill_date(batch, request.day)
                counts.rows += batch.num_rows
                yield batch
            counts.footers.append(_footer_entry(parser, parser.footer))
            observer.done(key)

    _load(engine, "channel", batches(), stop)


def _footer_entry(parser: BillParser, footer: FooterCheck | None) -> dict[str, Any]:
    footer = footer or FooterCheck("none")
    return {
        "source": parser.source,
        "status": footer.status,
        "declared": footer.declared,
        "counted": footer.counted,
    }


def _check_bill_date(batch: pa.RecordBatch, day: date) -> None:
    """A bill row dated another day means the wrong file was given (exit 2, not a diff)."""
    other = pc.not_equal(batch.column("bill_date"), pa.scalar(day, pa.date32()))
    hits = pc.indices_nonzero(pc.fill_null(other, True))
    if len(hits):
        row = batch.slice(hits[0].as_py(), 1).to_pylist()[0]
        raise BillDateError(
            f"row is dated {row['bill_date']}, but the run is for {day}: is this the bill of"
            " another day?",
            Location(row["source"], row["line_no"], "txn_time"),
        )


# -- ledger side -------------------------------------------------------------------------


def _load_ledger(
    engine: Engine,
    request: ReconcileRequest,
    settings: Settings,
    observer: Observer,
    staging: Path,
    stop: threading.Event,
) -> tuple[int, int]:
    reader = open_ledger(
        request.ledger,
        settings.ledger,
        channel=request.channel,
        day=request.day,
        channel_timezone=settings.match.timezone,
    )
    quarantined = 0
    with pq.ParquetWriter(staging / "quarantine.parquet", QUARANTINE) as bad_rows:

        def batches() -> Iterator[pa.RecordBatch]:
            nonlocal quarantined
            observer.task("ledger", f"reading ledger {reader.source}", None)
            for batch in reader.batches():
                if batch.quarantined.num_rows:
                    bad_rows.write_batch(batch.quarantined)
                    quarantined += batch.quarantined.num_rows
                observer.advance("ledger", batch.records.num_rows + batch.quarantined.num_rows)
                yield batch.records
            observer.done("ledger")

        rows = _load(engine, "ledger", batches(), stop)
    return rows, quarantined


# -- shared ------------------------------------------------------------------------------


class _Stopped(Exception):
    """A load ended early because the other side of the run failed."""


def _load(
    engine: Engine, relation: Relation, batches: Iterator[pa.RecordBatch], stop: threading.Event
) -> int:
    """Stream ``batches`` into the engine, re-raising payrecon's own error, not the engine's.

    Engines pull from Python generators inside native code and report a failure there as
    their own exception type; the original error (with its file, line and field) is kept
    and raised again once the engine returns.
    """
    failure: list[BaseException] = []

    def pull() -> Iterator[pa.RecordBatch]:
        try:
            for batch in batches:
                if stop.is_set():
                    raise _Stopped(relation)
                yield batch if batch.schema == CANONICAL else batch.cast(CANONICAL)
        except BaseException as exc:
            failure.append(exc)
            raise

    try:
        return engine.load(relation, pa.RecordBatchReader.from_batches(CANONICAL, pull()))
    except BaseException:
        if failure:
            raise failure[0] from None
        raise


def _check_accounting(rows_in: dict[str, int], accounted: dict[str, int], pool: pa.Table) -> None:
    """Every record in lands in exactly one outcome row (the summary proves it)."""
    pool_sides = pool.column("side").to_pylist() if pool.num_rows else []
    expected = {
        "ledger": rows_in["ledger"] + pool_sides.count("ledger"),
        "channel": rows_in["channel"] + pool_sides.count("channel"),
    }
    if expected != accounted:
        raise InvariantError(f"records in {expected} but outcome rows account for {accounted}")


def _check_bills(bills: tuple[Path, ...]) -> None:
    seen: dict[str, Path] = {}
    for path in bills:
        if not path.is_file():
            raise InputError("bill file does not exist", Location(str(path)))
        fingerprint = _fingerprint(path)
        if fingerprint in seen:
            raise DuplicateBillError(
                f"same content as {seen[fingerprint]}: the bill was given twice",
                Location(str(path)),
            )
        seen[fingerprint] = path


def _fingerprint(path: Path, edge: int = 1 << 20) -> str:
    """Size plus the hash of the first and last MiB: cheap, and equal for copied files."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as handle:
        digest.update(handle.read(edge))
        if size > edge:
            handle.seek(max(edge, size - edge))
            digest.update(handle.read(edge))
    return digest.hexdigest()


def _publish(staging: Path, out: Path) -> None:
    """Replace ``out`` by ``staging`` with renames, so readers never see a half-written run."""
    previous = out.parent / f".{out.name}.previous-{uuid.uuid4().hex[:8]}"
    if out.exists():
        os.replace(out, previous)
    os.replace(staging, out)
    shutil.rmtree(previous, ignore_errors=True)
