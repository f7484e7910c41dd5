"""Engines side by side: the same day on DuckDB and on Spark (and, later, the stream half).

    .venv/bin/python bench/engines.py --rows 10000000

Batch half: one generated WeChat day (a real-format ALL bill and a ledger CSV of N rows,
cached under bench/data/ and shared with bench/batch.py) goes through the whole
``payrecon reconcile`` command twice, each in its own process, one after the other: with
``--engine duckdb`` (the embedded default, default settings) and with ``--engine spark
--spark-master local[2]``. Peak RSS is sampled over the whole process tree, so Spark's
JVM counts. Both runs' outcome rows are then compared: they must be identical.

Stream half (local runtime vs Flink on the same 200k-event stream): not written yet; see
:func:`compare_stream`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from batch import DAY, generate  # noqa: E402 - the sibling benchmark's cached inputs

PAYRECON = str(Path(sys.executable).with_name("payrecon"))
SAMPLE_SECONDS = 0.05
# Spark's defaults otherwise (spark.driver.memory = 1g holds a 10M-row day in local mode).
SPARK_LOCAL = ["--spark-master", "local[2]"]


@dataclass(frozen=True)
class Figures:
    seconds: float
    peak_rss: int
    exit_code: int


def measure(command: list[str], env: dict[str, str]) -> Figures:
    """Run ``command``; wall time and the peak of the summed RSS of its process tree."""
    started = time.perf_counter()
    child = psutil.Popen(command, env=env, stdout=subprocess.DEVNULL)
    peak = 0
    while child.poll() is None:
        peak = max(peak, _tree_rss(child))
        time.sleep(SAMPLE_SECONDS)
    return Figures(time.perf_counter() - started, peak, child.returncode)


def _tree_rss(root: psutil.Process) -> int:
    total = 0
    try:
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):  # ended between listing and reading
            total += process.memory_info().rss
    return total


def identical_outcomes(first: Path, second: Path) -> bool:
    """Both outcome files hold the same rows (as multisets), checked out of core by DuckDB."""
    import duckdb

    con = duckdb.connect(config={"memory_limit": "1GB"})
    a, b = (f"read_parquet('{path}')" for path in (first, second))
    query = "SELECT count(*) FROM (SELECT * FROM {} EXCEPT ALL SELECT * FROM {})"
    extra = con.execute(query.format(a, b)).fetchone()
    missing = con.execute(query.format(b, a)).fetchone()
    return extra == missing == (0,)


# -- batch half: DuckDB vs Spark ---------------------------------------------------------


def compare_batch(rows: int) -> None:
    bill, ledger = generate(rows)
    print(f"batch: {rows:,} rows per side, WeChat ALL bill + ledger CSV, cores: {os.cpu_count()}")
    work = Path(tempfile.mkdtemp(prefix="payrecon-engines-"))
    reconcile = [
        PAYRECON,
        "reconcile",
        "--channel=wechat",
        f"--bill={bill}",
        f"--ledger={ledger}",
        f"--date={DAY}",
        "--json",
        "--no-cases",
    ]
    runs = {
        "duckdb": [*reconcile, f"--out={work / 'duckdb'}", "--engine", "duckdb"],
        "spark": [*reconcile, f"--out={work / 'spark'}", "--engine", "spark", *SPARK_LOCAL],
    }
    figures = {}
    for name, command in runs.items():
        env = {**os.environ, "PAYRECON_HOME": str(work / f"home-{name}")}
        figures[name] = measure(command, env)
    _print_table(figures, "duckdb")
    for name in runs:
        summary = json.loads((work / name / "summary.json").read_text())
        print(f"{name} match+report s: {summary['seconds']}")
    same = identical_outcomes(
        work / "duckdb" / "outcomes.parquet", work / "spark" / "outcomes.parquet"
    )
    print("outcome rows identical:", "yes" if same else "NO")
    print("outputs in", work)


def _print_table(figures: dict[str, Figures], base: str) -> None:
    base_s, base_rss = figures[base].seconds, figures[base].peak_rss
    print(f"{'engine':<10}{'wall s':>10}{'peak RSS MiB':>15}{'time ×':>10}{'RSS ×':>10}")
    for name, f in figures.items():
        print(
            f"{name:<10}{f.seconds:>10.1f}{f.peak_rss / 2**20:>15.0f}"
            f"{f.seconds / base_s:>10.2f}{f.peak_rss / base_rss:>10.2f}   (exit {f.exit_code})"
        )


# -- stream half: local runtime vs Flink -------------------------------------------------


def compare_stream(events: int) -> None:
    """The same stream of ``events`` through ``payrecon stream`` and the Flink job.

    To be written with the Flink job (issue 5, part 3): generate the pay/receipt event
    files once, run the local runtime and ``--runtime flink`` each in its own process
    with :func:`measure`, print the table with :func:`_print_table` (base: the local
    runtime) and check both emitted the same set of (type, order_id).
    """
    print(f"stream: {events:,} events - local runtime vs Flink is not benchmarked yet")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000, help="keys in the batch day")
    parser.add_argument("--events", type=int, default=200_000, help="events in the stream")
    args = parser.parse_args()
    compare_batch(args.rows)
    compare_stream(args.events)


if __name__ == "__main__":
    main()
