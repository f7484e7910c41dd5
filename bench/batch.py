"""End-to-end batch benchmark: payrecon vs the naive approach vs a hand-written DuckDB query.

    .venv/bin/python bench/batch.py --rows 10000000

Generates (once, cached under bench/data/) a real-format WeChat ALL bill of N rows and
an N-row ledger CSV, then runs, each in its own process, one after the other:

* ``payrecon``: the whole ``payrecon reconcile`` command (parse, footer check, match,
  outcomes, summary, discrepancy CSV, suspense pool);
* ``naive``: both sides parsed into Python dicts keyed by order id, compared,
  discrepancies written - what teams do before they hit the memory wall;
* ``duckdb-sql``: one hand-written DuckDB query over the two CSVs (strip backticks, cast
  amounts, full outer join, classify, write Parquet) - the straightforward-engine reference.

It prints wall time, peak RSS and the ratios measured side by side in this one run.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

HERE = Path(__file__).resolve().parent
DAY = "2026-11-20"


def measure(command: list[str], env: dict[str, str] | None = None) -> tuple[float, int, int]:
    """Run ``command`` in a child that reports its own peak RSS; return (s, bytes, exit)."""
    wrapper = (
        "import resource, subprocess, sys\n"
        "code = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, code)\n"
    )
    started = time.perf_counter()
    output = subprocess.run(
        [sys.executable, "-c", wrapper, *command],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    seconds = time.perf_counter() - started
    peak_kib, code = output.stdout.split()
    return seconds, int(peak_kib) * 1024, int(code)


def generate(rows: int) -> tuple[Path, Path]:
    folder = HERE / "data" / f"wechat-{rows}"
    bill = folder / "wechat_20261120_ALL.csv"
    ledger = folder / "ledger.csv"
    if not (bill.exists() and ledger.exists()):
        subprocess.run(
            [
                str(Path(sys.executable).with_name("payrecon")),
                "generate",
                "--channel=wechat",
                f"--date={DAY}",
                f"--rows={rows}",
                f"--out={folder}",
                "--discrepancy-rate=0.01",
            ],
            check=True,
        )
    return bill, ledger


# -- the naive approach ------------------------------------------------------------------


def _yuan(text: str) -> int:
    return int(Decimal(text) * 100)


def naive(bill: Path, ledger: Path, out: Path) -> None:
    channel: dict[tuple[str, str], tuple[int, str]] = {}
    with bill.open(encoding="utf-8-sig", newline="") as handle:
        rows = csv.reader(handle)
        header = next(rows)
        at = {name: i for i, name in enumerate(header)}
        for row in rows:
            if row[0].startswith("总交易单数"):
                break
            values = [value.removeprefix("`") for value in row]
            if values[at["交易状态"]] == "REFUND":
                key = ("REFUND", values[at["商户退款单号"]])
                channel[key] = (_yuan(values[at["退款金额"]]), values[at["退款状态"]])
            else:
                key = ("PAY", values[at["商户订单号"]])
                channel[key] = (_yuan(values[at["应结订单金额"]]), "SUCCESS")
    book: dict[tuple[str, str], tuple[int, str]] = {}
    with ledger.open(encoding="utf-8", newline="") as handle:
        for record in csv.DictReader(handle):
            book[(record["kind"], record["order_id"])] = (int(record["amount"]), record["status"])
    with out.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["kind", "order_id", "outcome", "ledger_amount", "channel_amount"])
        for key in book.keys() | channel.keys():
            mine, theirs = book.get(key), channel.get(key)
            if mine is None or theirs is None:
                outcome = "MISSING_IN_LEDGER" if mine is None else "MISSING_IN_CHANNEL"
            elif mine[1] != theirs[1]:
                outcome = "STATUS_MISMATCH"
            elif mine[0] != theirs[0]:
                outcome = "AMOUNT_MISMATCH"
            else:
                continue
            writer.writerow([*key, outcome, mine and mine[0], theirs and theirs[0]])


# -- one hand-written DuckDB query -------------------------------------------------------

HANDWRITTEN = """
COPY (
WITH bill AS (
  SELECT * FROM read_csv('{bill}', header = true, all_varchar = true, null_padding = true,
                         strict_mode = false)
  WHERE "交易时间" LIKE '`%'
), channel AS (
  SELECT
    CASE WHEN ltrim("交易状态", '`') = 'REFUND' THEN 'REFUND' ELSE 'PAY' END AS kind,
    CASE WHEN ltrim("交易状态", '`') = 'REFUND' THEN ltrim("商户退款单号", '`')
         ELSE ltrim("商户订单号", '`') END AS order_id,
    CAST(round(CAST(ltrim(CASE WHEN ltrim("交易状态", '`') = 'REFUND' THEN "退款金额"
         ELSE "应结订单金额" END, '`') AS DECIMAL(18, 2)) * 100) AS BIGINT) AS amount
  FROM bill
), ledger AS (
  SELECT kind, order_id, amount, status FROM read_csv('{ledger}', header = true)
)
SELECT coalesce(l.kind, c.kind) AS kind, coalesce(l.order_id, c.order_id) AS order_id,
  CASE WHEN l.order_id IS NULL THEN 'MISSING_IN_LEDGER'
       WHEN c.order_id IS NULL THEN 'MISSING_IN_CHANNEL'
       WHEN l.status NOT IN ('SUCCESS', 'REFUNDED') THEN 'STATUS_MISMATCH'
       WHEN l.amount <> c.amount THEN 'AMOUNT_MISMATCH'
       ELSE 'MATCHED' END AS outcome,
  l.amount AS ledger_amount, c.amount AS channel_amount
FROM ledger l FULL OUTER JOIN channel c ON l.kind = c.kind AND l.order_id = c.order_id
) TO '{out}' (FORMAT parquet)
"""


def handwritten(bill: Path, ledger: Path, out: Path) -> None:
    import duckdb

    duckdb.connect().execute(HANDWRITTEN.format(bill=bill, ledger=ledger, out=out)).fetchall()


# -- orchestration -----------------------------------------------------------------------


def compare(rows: int) -> None:
    bill, ledger = generate(rows)
    size = bill.stat().st_size + ledger.stat().st_size
    print(f"inputs: {rows:,} rows per side, {size / 2**30:.2f} GiB of CSV")
    work = Path(tempfile.mkdtemp(prefix="payrecon-bench-"))
    env = {**os.environ, "PAYRECON_HOME": str(work / "home")}
    payrecon = [
        str(Path(sys.executable).with_name("payrecon")),
        "reconcile",
        "--channel=wechat",
        f"--bill={bill}",
        f"--ledger={ledger}",
        f"--date={DAY}",
        f"--out={work / 'payrecon'}",
        "--json",
    ]
    runs = {
        "payrecon": payrecon,
        "duckdb-sql": [
            sys.executable,
            __file__,
            "--run",
            "duckdb-sql",
            str(bill),
            str(ledger),
            str(work / "handwritten.parquet"),
        ],
        "naive": [
            sys.executable,
            __file__,
            "--run",
            "naive",
            str(bill),
            str(ledger),
            str(work / "naive.csv"),
        ],
    }
    figures = {name: measure(command, env) for name, command in runs.items()}
    base_s, base_rss, _ = figures["payrecon"]
    print(f"{'approach':<12}{'wall s':>10}{'peak RSS MiB':>15}{'time ×':>10}{'RSS ×':>10}")
    for name, (seconds, rss, code) in figures.items():
        print(
            f"{name:<12}{seconds:>10.1f}{rss / 2**20:>15.0f}"
            f"{seconds / base_s:>10.2f}{rss / base_rss:>10.2f}   (exit {code})"
        )
    summary = json.loads((work / "payrecon" / "summary.json").read_text())
    print("payrecon outcomes:", {k: v["count"] for k, v in summary["outcomes"].items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--run", choices=["naive", "duckdb-sql"])
    parser.add_argument("paths", nargs="*", type=Path)
    args = parser.parse_args()
    if args.run == "naive":
        naive(*args.paths)
    elif args.run == "duckdb-sql":
        handwritten(*args.paths)
    else:
        compare(args.rows)


if __name__ == "__main__":
    main()
