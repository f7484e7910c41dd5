"""The ``payrecon`` command line. Errors become exit codes here, and only here.

Exit codes: 0 all matched (or the command succeeded), 1 discrepancies or quarantined
rows found, 2 usage, configuration or input error, 130 interrupted. Progress and logs go
to stderr; with ``--json`` / ``--summary-json`` stdout carries exactly one JSON document.
"""

from __future__ import annotations

import json
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from datetime import date
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, TextIO, TypeVar, cast
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.text import Text
from typer.exceptions import Abort, TyperException

from payrecon.config import Settings, load_settings
from payrecon.core.rules import check_timezone
from payrecon.errors import ConfigError, InputError, InvariantError, Location, PayreconError
from payrecon.service.reconcile import ReconcileRequest, RunResult, run_reconciliation
from payrecon.ui import RichObserver, outcome_table

if TYPE_CHECKING:
    from payrecon.core.stream import StreamOutput
    from payrecon.stream.sinks import Sink

_SinkT = TypeVar("_SinkT", bound="Sink[Any]")


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


_DURATION = re.compile(r"([0-9]+)(ms|s|m)")
_MS_PER = {"ms": 1, "s": 1000, "m": 60_000}


def parse_duration_ms(text: str, option: str = "duration") -> int:
    """``500ms``, ``5s`` or ``2m`` in milliseconds; anything else is a ConfigError."""
    found = _DURATION.fullmatch(text.strip())
    if found is None:
        raise ConfigError(f"{option}: {text!r} is not a duration like 500ms, 5s or 2m")
    return int(found.group(1)) * _MS_PER[found.group(2)]


def _open_input(path: str, stack: ExitStack) -> tuple[Iterable[str], str]:
    """The lines of ``path`` (``-`` is stdin) and the name to show for it."""
    if path == "-":
        return _lines(sys.stdin, "<stdin>"), "<stdin>"
    try:
        file = stack.enter_context(Path(path).open(encoding="utf-8"))  # noqa: SIM115
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    return _lines(file, path), path


def _lines(file: TextIO, source: str) -> Iterator[str]:
    """The file's lines; undecodable bytes are an input error naming the line."""
    number = 1
    try:
        for line in file:
            yield line
            number += 1
    except UnicodeDecodeError as exc:
        raise InputError("not UTF-8 text", Location(source, number)) from exc


def _file_sink(make: Callable[[Path], _SinkT], path: Path, stack: ExitStack) -> _SinkT:
    """Open a file sink and close it with ``stack``."""
    try:
        sink = make(path)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from exc
    stack.callback(sink.close)
    return sink


@app.command("stream")
def stream_command(
    pay: Annotated[str, typer.Option(help="pay events file (- for stdin)")],
    receipt: Annotated[str, typer.Option(help="receipt events file (- for stdin)")],
    receipt_timeout: Annotated[str, typer.Option(help="how long a pay waits")] = "5s",
    pay_timeout: Annotated[str, typer.Option(help="how long a receipt waits")] = "3s",
    out_of_orderness: Annotated[str, typer.Option(help="allowed event-time lag")] = "0s",
    time_unit: Annotated[str, typer.Option(help="unit of the timestamps: s or ms")] = "s",
    jsonl: Annotated[Path | None, typer.Option(help="append outputs as JSON lines")] = None,
    dead_letter: Annotated[
        Path | None, typer.Option(help="append undecodable lines as JSON lines")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="no output lines on stdout")] = False,
    timezone: Annotated[str, typer.Option(help="zone of the times shown on stdout")] = (
        "Asia/Shanghai"
    ),
) -> int:
    """Match bounded pay and receipt event files as a stream (real-time matching preview)."""
    from payrecon.core.stream import MatcherConfig
    from payrecon.stream.events import EventFormat
    from payrecon.stream.runtime import run_bounded
    from payrecon.stream.sinks import DeadLetterSink, JsonLinesSink, StdoutSink

    if pay == "-" and receipt == "-":
        raise ConfigError("only one of --pay and --receipt can be read from stdin (-)")
    config = MatcherConfig(
        receipt_timeout_ms=parse_duration_ms(receipt_timeout, "--receipt-timeout"),
        pay_timeout_ms=parse_duration_ms(pay_timeout, "--pay-timeout"),
        out_of_orderness_ms=parse_duration_ms(out_of_orderness, "--out-of-orderness"),
    )
    fmt = EventFormat(time_unit=cast(Literal["s", "ms"], time_unit))  # EventFormat checks it
    with ExitStack() as stack:
        pay_lines, pay_source = _open_input(pay, stack)
        receipt_lines, receipt_source = _open_input(receipt, stack)
        shown = ZoneInfo(check_timezone(timezone, "--timezone"))
        sinks: list[Sink[StreamOutput]] = [] if quiet else [StdoutSink(sys.stdout, shown)]
        if jsonl is not None:
            sinks.append(_file_sink(JsonLinesSink, jsonl, stack))
        dead = None if dead_letter is None else _file_sink(DeadLetterSink, dead_letter, stack)
        stats = run_bounded(
            pay_lines,
            receipt_lines,
            fmt=fmt,
            config=config,
            sinks=sinks,
            dead_letters=dead,
            pay_source=pay_source,
            receipt_source=receipt_source,
            clock=lambda: time.time_ns() // 1_000_000,
        )
    stderr.print(Text(f"stream: {stats.summary()}"), highlight=False, soft_wrap=True)
    return Exit.OK if stats.clean else Exit.DIFFERENCES


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
