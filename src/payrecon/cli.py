"""The ``payrecon`` command line. Errors become exit codes here, and only here.

Exit codes: 0 all matched (or the command succeeded), 1 discrepancies or quarantined
rows found, 2 usage, configuration or input error, 130 interrupted. Progress and logs go
to stderr; with ``--json`` / ``--summary-json`` stdout carries exactly one JSON document.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from datetime import date
from enum import IntEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text
from typer.exceptions import Abort, TyperException

from payrecon.config import Settings, load_settings
from payrecon.errors import InvariantError, PayreconError
from payrecon.service.reconcile import ReconcileRequest, RunResult, run_reconciliation
from payrecon.ui import RichObserver, outcome_table


class Exit(IntEnum):
    OK = 0
    DIFFERENCES = 1
    USAGE = 2
    INTERRUPTED = 130


app = typer.Typer(
    name="payrecon",
    help="Payment reconciliation (对账): channel bills against the internal ledger.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
stderr = Console(stderr=True)
stdout = Console()

ConfigOption = Annotated[
    Path | None, typer.Option("--config", help="payrecon.toml (default: ./payrecon.toml)")
]


def _settings(config: Path | None) -> Settings:
    return load_settings(config)


def _day(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise typer.BadParameter(f"{value!r} is not a date (YYYY-MM-DD)") from exc


@app.command()
def reconcile(
    channel: Annotated[str, typer.Option(help="wechat, alipay, or a channel from the config")],
    bill: Annotated[list[Path], typer.Option(help="channel bill file (repeatable)")],
    ledger: Annotated[str, typer.Option(help="ledger file (.csv/.parquet) or database URL")],
    day: Annotated[str, typer.Option("--date", help="accounting day, YYYY-MM-DD")],
    out: Annotated[Path, typer.Option(help="output folder (replaced atomically)")],
    config: ConfigOption = None,
    engine: Annotated[str, typer.Option(help="match engine")] = "duckdb",
    xlsx: Annotated[bool, typer.Option("--xlsx", help="also write discrepancies.xlsx")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
) -> int:
    """Reconcile one channel's bills against the ledger for one accounting day."""
    settings = _settings(config)
    request = ReconcileRequest(
        channel=channel,
        bills=tuple(bill),
        ledger=ledger,
        day=_day(day),
        out=out,
        engine=engine,
        xlsx=xlsx,
    )
    with RichObserver(stderr) as observer:
        result = run_reconciliation(request, settings, observer)
    _show(result, as_json)
    return Exit.OK if result.clean else Exit.DIFFERENCES


def _show(result: RunResult, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(result.summary, ensure_ascii=False) + "\n")
        return
    stdout.print(outcome_table(result.summary))
    stdout.print(f"outputs in [bold]{result.out}[/bold]")


@app.command()
def parse(
    channel: Annotated[str, typer.Option(help="wechat, alipay, or a channel from the config")],
    file: Annotated[Path, typer.Argument(help="bill file")],
    out: Annotated[Path | None, typer.Option(help="write canonical records as Parquet")] = None,
    summary_json: Annotated[
        bool, typer.Option("--summary-json", help="print rows, totals by kind and footer as JSON")
    ] = False,
    config: ConfigOption = None,
) -> int:
    """Parse one bill into canonical records and check its footer."""
    from payrecon.service.parse import parse_bill

    settings = _settings(config)
    with RichObserver(stderr) as observer:
        summary = parse_bill(channel, file, settings, out=out, observer=observer)
    if summary_json:
        sys.stdout.write(json.dumps(summary, ensure_ascii=False) + "\n")
    else:
        stdout.print_json(data=summary)
    return Exit.OK


@app.command()
def generate(
    channel: Annotated[str, typer.Option(help="wechat or alipay")],
    day: Annotated[str, typer.Option("--date", help="accounting day, YYYY-MM-DD")],
    rows: Annotated[int, typer.Option(min=0, help="keys (payments and refunds) in the day")],
    out: Annotated[Path, typer.Option(help="output folder")],
    seed: Annotated[int, typer.Option(help="random seed")] = 0,
    discrepancy_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="share of keys given a discrepancy")
    ] = 0.01,
) -> int:
    """Write a bill in the channel's real format, a ledger and the expected outcomes."""
    from payrecon.service.demo import generate_with_progress

    if channel not in ("wechat", "alipay"):
        raise typer.BadParameter(
            "the generator writes wechat or alipay bills", param_hint="--channel"
        )
    with RichObserver(stderr) as observer:
        made = generate_with_progress(
            channel, _day(day), rows, out, seed, discrepancy_rate, observer
        )
    for path in (*made.bills, made.ledger, made.truth):
        stderr.print(f"wrote {path}")
    return Exit.OK


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="folder for the demo's files")] = Path("demo-out"),
    rows: Annotated[int, typer.Option(min=200, help="keys per channel")] = 50_000,
    config: ConfigOption = None,
) -> int:
    """Generate a realistic day for WeChat and Alipay, reconcile both, show the summary."""
    from payrecon.service.demo import run_demo

    settings = _settings(config)
    with RichObserver(stderr) as observer:
        results = run_demo(out, rows, settings, observer)
    for result in results:
        stdout.print(outcome_table(result.summary))
    stdout.print(
        f"\nOutputs are under [bold]{out}[/bold] (outcomes.parquet, summary.json,"
        " discrepancies.csv). Reconcile your own files with:"
    )
    stdout.print(
        "  payrecon reconcile --channel wechat --bill BILL.csv --ledger LEDGER.csv"
        " --date YYYY-MM-DD --out DIR",
        soft_wrap=True,
    )
    return Exit.OK


def exit_code(exc: BaseException) -> int:
    """The one mapping from errors to exit codes (and what the user is told)."""
    if isinstance(exc, KeyboardInterrupt | Abort):
        return _interrupted()
    if isinstance(exc, TyperException):  # usage errors: bad option, missing argument
        show = getattr(exc, "show", None)
        if show:
            show(file=sys.stderr)
        else:
            stderr.print(
                Text.assemble(("error", "red"), f": {exc.format_message()}"), soft_wrap=True
            )
        return Exit.USAGE
    if isinstance(exc, InvariantError):
        stderr.print(
            Text.assemble(("internal error", "red"), f": {exc} (please report this)"),
            soft_wrap=True,
        )
        return Exit.USAGE
    if isinstance(exc, PayreconError):
        # soft_wrap: one line, so a long file name is never folded (logs, grep).
        stderr.print(Text.assemble(("error", "red"), f": {exc}"), highlight=False, soft_wrap=True)
        return Exit.USAGE
    raise exc


def _interrupted() -> int:
    stderr.print(Text("interrupted: no outputs were written", style="yellow"))
    return Exit.INTERRUPTED


def _terminate(signum: int, frame: object) -> None:
    # A scheduler's SIGTERM unwinds like Ctrl-C: staging is removed, nothing is published.
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Entry point: run the command and turn its outcome into an exit code."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    try:
        result: Any = app(args=argv, standalone_mode=False)
    except SystemExit as exc:
        return int(exc.code or 0) if not isinstance(exc.code, str) else Exit.USAGE
    except BaseException as exc:
        return exit_code(exc)
    # Typer turns Ctrl-C into the exit code 130 itself (without raising).
    if result == Exit.INTERRUPTED:
        return _interrupted()
    return int(result) if isinstance(result, int) else Exit.OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
