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
from datetime import date
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, cast
from zoneinfo import ZoneInfo

import typer
from rich.console import Console
from rich.text import Text
from typer.exceptions import Abort, TyperException

from payrecon.config import Settings, load_settings
from payrecon.core.rules import check_timezone
from payrecon.errors import ConfigError, InvariantError, PayreconError
from payrecon.service.reconcile import ReconcileRequest, RunResult, run_reconciliation
from payrecon.ui import RichObserver, outcome_table

if TYPE_CHECKING:
    from payrecon.stream.launch import StreamRequest
    from payrecon.stream.runtime import JobResult
    from payrecon.stream.signals import StopFlag


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
    engine: Annotated[
        Literal["duckdb", "spark"] | None,
        typer.Option(help="match engine (default: engine.name in the config, else duckdb)"),
    ] = None,
    spark_master: Annotated[
        str | None,
        typer.Option(help="Spark master: local[*] (default), spark://…, yarn, sc://… (Connect)"),
    ] = None,
    spark_conf: Annotated[
        list[str] | None, typer.Option(help="Spark setting KEY=VALUE (repeatable)")
    ] = None,
    xlsx: Annotated[bool, typer.Option("--xlsx", help="also write discrepancies.xlsx")] = False,
    no_cases: Annotated[
        bool, typer.Option("--no-cases", help="do not open cases in the case store")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
) -> int:
    """Reconcile one channel's bills against the ledger for one accounting day."""
    settings = _with_engine(_settings(config), engine, spark_master, spark_conf or [])
    request = ReconcileRequest(
        channel=channel,
        bills=tuple(bill),
        ledger=ledger,
        day=_day(day),
        out=out,
        engine=settings.engine.name,
        xlsx=xlsx,
        cases=not no_cases,
    )
    with RichObserver(stderr) as observer:
        result = run_reconciliation(request, settings, observer)
    _show(result, as_json)
    return Exit.OK if result.clean else Exit.DIFFERENCES


def _with_engine(
    settings: Settings, name: str | None, spark_master: str | None, spark_conf: list[str]
) -> Settings:
    """The settings with the engine chosen on the command line."""
    engine = settings.engine
    update: dict[str, Any] = {"name": name or engine.name}
    if update["name"] != "spark" and (spark_master or spark_conf):
        raise ConfigError("--spark-master and --spark-conf need --engine spark")
    if spark_master:
        update["spark_master"] = spark_master
    if spark_conf:
        update["spark_conf"] = {**engine.spark_conf, **_spark_conf(spark_conf)}
    return settings.model_copy(update={"engine": engine.model_copy(update=update)})


def _spark_conf(pairs: list[str]) -> dict[str, str]:
    conf: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--spark-conf: {pair!r} is not KEY=VALUE")
        conf[key.strip()] = value.strip()
    return conf


def _show(result: RunResult, as_json: bool) -> None:
    if as_json:
        document = {**result.summary, "cases": result.cases}
        sys.stdout.write(json.dumps(document, ensure_ascii=False) + "\n")
        return
    stdout.print(outcome_table(result.summary))
    stdout.print(f"outputs in [bold]{result.out}[/bold]")
    if result.cases is not None:
        c = result.cases
        stdout.print(
            f"cases: {c['opened']} opened, {c['reopened']} reopened, {c['closed']} closed,"
            f" {c['unchanged']} unchanged (payrecon cases list --open)"
        )


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
    channel: Annotated[str, typer.Option(help="wechat, alipay, unionpay, stripe, paypal or adyen")],
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

    if channel not in ("wechat", "alipay", "unionpay", "stripe", "paypal", "adyen"):
        raise typer.BadParameter(
            "the generator writes wechat, alipay, unionpay, stripe, paypal or adyen bills",
            param_hint="--channel",
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
    stdout.print("Browse the cases: payrecon serve (log in as alice / demo-alice)", soft_wrap=True)
    return Exit.OK


_DURATION = re.compile(r"([0-9]+)(ms|s|m)")
_MS_PER = {"ms": 1, "s": 1000, "m": 60_000}


def parse_duration_ms(text: str, option: str = "duration") -> int:
    """``500ms``, ``5s`` or ``2m`` in milliseconds; anything else is a ConfigError."""
    found = _DURATION.fullmatch(text.strip())
    if found is None:
        raise ConfigError(f"{option}: {text!r} is not a duration like 500ms, 5s or 2m")
    return int(found.group(1)) * _MS_PER[found.group(2)]


def _optional_duration_ms(text: str, option: str) -> int | None:
    """A duration, or None for ``off``."""
    return None if text.strip() == "off" else parse_duration_ms(text, option)


def _stream_sinks(sinks: list[str] | None, jsonl: Path | None, quiet: bool) -> tuple[str, ...]:
    """The sink specs: stdout unless ``--quiet``, then ``--sink``s, then ``--jsonl``."""
    specs = [] if quiet else ["stdout"]
    specs += sinks or []
    if jsonl is not None:
        specs.append(f"jsonl:{jsonl}")
    return tuple(specs)


def _kafka_options(pairs: list[str] | None) -> dict[str, str]:
    """``KEY=VALUE`` texts as librdkafka settings."""
    options: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--kafka-option: {pair!r} is not KEY=VALUE")
        options[key.strip()] = value.strip()
    return options


def _stream_outcome(result: JobResult, stop: StopFlag) -> int:
    """Tell what the job did on stderr; the exit code."""
    notes: list[str] = []
    if result.already_finished:
        notes.append(f"checkpoint {result.checkpoint} is of a finished run; nothing to do")
    elif result.resumed_from is not None:
        notes.append(f"resumed from checkpoint {result.resumed_from}")
    notes.append(result.stats.summary())
    if result.stopped:
        name = signal.Signals(stop.signal).name if stop.signal else "request"
        saved = f"checkpoint {result.checkpoint} written" if result.checkpoint else "no checkpoint"
        notes.append(f"stopped by {name}; sinks flushed, {saved}")
    for note in notes:
        stderr.print(Text(f"stream: {note}"), highlight=False, soft_wrap=True)
    if result.stopped:
        # SystemExit, not a returned 130: main() would add "no outputs were written",
        # which is wrong here (the outputs are flushed and checkpointed).
        raise SystemExit(Exit.INTERRUPTED)
    return Exit.OK if result.stats.clean else Exit.DIFFERENCES


_SOURCE_HELP = "FILE, file:FILE, - (stdin), tcp://HOST:PORT or kafka://BOOTSTRAP/TOPIC?group=G"


@app.command("stream")
def stream_command(
    pay: Annotated[str, typer.Option(help=f"pay events: {_SOURCE_HELP}")],
    receipt: Annotated[str, typer.Option(help=f"receipt events: {_SOURCE_HELP}")],
    receipt_timeout: Annotated[str, typer.Option(help="how long a pay waits")] = "5s",
    pay_timeout: Annotated[str, typer.Option(help="how long a receipt waits")] = "3s",
    out_of_orderness: Annotated[str, typer.Option(help="allowed event-time lag")] = "0s",
    idle_timeout: Annotated[
        str, typer.Option(help="silence after which an input stops holding back the watermark")
    ] = "30s",
    time_unit: Annotated[str, typer.Option(help="unit of the timestamps: s or ms")] = "s",
    event_format: Annotated[str, typer.Option("--format", help="auto, json or csv lines")] = (
        "auto"
    ),
    follow: Annotated[
        bool, typer.Option("--follow", help="tail growing files, reconnect TCP: never end")
    ] = False,
    sink: Annotated[
        list[str] | None,
        typer.Option(help="stdout, jsonl:PATH, kafka://BOOTSTRAP/TOPIC, webhook:URL (repeat)"),
    ] = None,
    jsonl: Annotated[Path | None, typer.Option(help="append outputs as JSON lines")] = None,
    dead_letter: Annotated[
        Path | None, typer.Option(help="append undecodable lines as JSON lines")
    ] = None,
    checkpoint: Annotated[
        Path | None, typer.Option(help="SQLite checkpoint file: resume from it, save to it")
    ] = None,
    checkpoint_interval: Annotated[str, typer.Option(help="time between checkpoints")] = "5s",
    kafka_option: Annotated[
        list[str] | None, typer.Option(help="librdkafka KEY=VALUE for Kafka (repeatable)")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="no output lines on stdout")] = False,
    timezone: Annotated[str, typer.Option(help="zone of the times shown on stdout")] = (
        "Asia/Shanghai"
    ),
    runtime: Annotated[
        str, typer.Option(help="local, or flink: a local Flink mini-cluster (make flink-env)")
    ] = "local",
    flink_jar: Annotated[
        list[Path] | None, typer.Option(help="a jar for --runtime flink, e.g. Kafka's (repeat)")
    ] = None,
    log_every: Annotated[
        str, typer.Option(help="a stderr line with events/s, pending orders, watermark lag")
    ] = "10s",
    metrics_port: Annotated[
        int | None,
        typer.Option(min=0, max=65535, help="serve Prometheus metrics on this port"),
    ] = None,
    metrics_host: Annotated[str, typer.Option(help="address of the metrics endpoint")] = (
        "127.0.0.1"
    ),
) -> int:
    """Match pay and receipt events as a stream (files, stdin, TCP, Kafka); see docs/stream.md.

    Durations: 500ms, 5s or 2m (--idle-timeout also takes off).
    Exit codes: 0 all matched, 1 alerts or dead letters, 2 usage, config or input
    error, 130 stopped by a signal (after flushing the sinks and a final checkpoint).
    """
    from payrecon.core.stream import MatcherConfig
    from payrecon.stream.events import EventFormat
    from payrecon.stream.launch import StreamRequest, run_stream
    from payrecon.stream.signals import stop_on_signals

    if runtime not in ("local", "flink"):
        raise ConfigError(f"--runtime: {runtime!r} is not local or flink")
    config = MatcherConfig(
        receipt_timeout_ms=parse_duration_ms(receipt_timeout, "--receipt-timeout"),
        pay_timeout_ms=parse_duration_ms(pay_timeout, "--pay-timeout"),
        out_of_orderness_ms=parse_duration_ms(out_of_orderness, "--out-of-orderness"),
        idle_timeout_ms=_optional_duration_ms(idle_timeout, "--idle-timeout"),
    )
    fmt = EventFormat(  # EventFormat checks both values
        time_unit=cast(Literal["s", "ms"], time_unit),
        encoding=cast(Literal["json", "csv", "auto"], event_format),
    )
    request = StreamRequest(
        pay=pay,
        receipt=receipt,
        config=config,
        fmt=fmt,
        sinks=_stream_sinks(sink, jsonl, quiet),
        dead_letter=dead_letter,
        follow=follow,
        checkpoint=checkpoint,
        checkpoint_interval_ms=parse_duration_ms(checkpoint_interval, "--checkpoint-interval"),
        kafka_options=_kafka_options(kafka_option),
        timezone=ZoneInfo(check_timezone(timezone, "--timezone")),
        log_every_ms=_optional_duration_ms(log_every, "--log-every"),
        metrics_address=None if metrics_port is None else (metrics_host, metrics_port),
    )
    if runtime == "flink":
        if metrics_port is not None:
            raise ConfigError(
                "--metrics-port is for the local runtime; Flink reports its own metrics"
                " (web UI, metric reporters): see docs/deploy-flink.md"
            )
        return _stream_on_flink(request, flink_jar or [])
    with stop_on_signals() as stop:
        result = run_stream(
            request, stdin=sys.stdin, stdout=sys.stdout, stop=stop, log=_stderr_line
        )
    return _stream_outcome(result, stop)


def _stderr_line(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _stream_on_flink(request: StreamRequest, jars: list[Path]) -> int:
    """``payrecon stream --runtime flink``: the job in a local Flink mini-cluster."""
    from payrecon.stream.flink_launch import run_stream_on_flink

    result = run_stream_on_flink(request, stdout=sys.stdout, jars=jars)
    stderr.print(Text(f"stream: {result.summary()}"), highlight=False, soft_wrap=True)
    return Exit.OK if result.clean else Exit.DIFFERENCES


@app.command("flink-job")
def flink_job_command(
    out: Annotated[Path, typer.Option(help="folder to write (replaced atomically)")],
) -> int:
    """Write what `flink run -py` needs to run the stream matcher on a Flink cluster."""
    from payrecon.stream.flink_package import write_flink_job

    for path in write_flink_job(out):
        stderr.print(Text(f"wrote {path}"), highlight=False, soft_wrap=True)
    stderr.print(Text(f"submit it as {out / 'README.md'} shows"), highlight=False, soft_wrap=True)
    return Exit.OK


@app.command("serve")
def serve_command(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="port to listen on")] = 8000,
    workers: Annotated[
        int | None, typer.Option(min=1, max=64, help="worker processes (default web.workers)")
    ] = None,
    config: ConfigOption = None,
) -> int:
    """Serve the back-office (dashboard, runs, case queue, API) on the configured store."""
    from payrecon.web.serve import serve

    serve(_settings(config), host, port, workers)
    return Exit.OK


@app.command("fetch")
def fetch_command(
    channel: Annotated[str, typer.Option(help="a channel configured under fetch.channels")],
    day: Annotated[str, typer.Option("--date", help="accounting day, YYYY-MM-DD")],
    merchant: Annotated[
        str | None, typer.Option(help="one merchant (default: every configured one)")
    ] = None,
    deadline: Annotated[
        str | None,
        typer.Option(help="retry a bill not published yet this long, e.g. 30m (default: config)"),
    ] = None,
    config: ConfigOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the results as JSON")] = False,
) -> int:
    """Download a day's bills into the content-addressed store (docs/fetch.md).

    Prints each file's path, SHA-256 and new, unchanged or changed.
    Exits 2 on usage, config or fetch errors, including a bill that is
    still not published at the deadline.
    """
    from datetime import timedelta

    from payrecon.fetch.run import fetch_bills

    settings = _settings(config)
    wait = None if deadline is None else parse_duration_ms(deadline, "--deadline")

    def waiting(exc: Exception, seconds: float) -> None:
        stderr.print(Text(f"fetch: {exc}; retrying in {seconds:.0f}s"), soft_wrap=True)

    stored = fetch_bills(
        settings,
        channel,
        _day(day),
        merchant=merchant,
        deadline=None if wait is None else timedelta(milliseconds=wait),
        on_wait=waiting,
    )
    if as_json:
        rows = [bill.as_dict() for bill in stored]
        sys.stdout.write(json.dumps({"bills": rows}, ensure_ascii=False) + "\n")
        return Exit.OK
    for bill in stored:
        note = f"changed (was {bill.previous_sha256})" if bill.changed else bill.status
        sys.stdout.write(f"{bill.path}\t{bill.sha256}\t{note}\n")
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


# The case-store commands use the names above, so they are registered last.
from payrecon.cli_cases import register  # noqa: E402

register(app)
