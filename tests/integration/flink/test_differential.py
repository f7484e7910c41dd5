"""Random event streams through the local runtime and through the Flink job: same outputs.

Each stream is one pipeline with its own timeouts, out-of-orderness, idleness, encoding
(JSON with amounts, or CSV) and time unit; all pipelines run as one Flink job in a local
mini-cluster (parallelism 2, so orders are spread over two matcher tasks), paying the
start-up once. The streams are of the kind whose answer depends only on event
timestamps (docs/stream.md): every order has at most one event per side, pay/receipt
gaps stay clear of the timeouts, and each input is out of order only within the allowed
out-of-orderness (the local run proves it: no late event). Sides go missing, and a few
lines are ignored actions or dead letters.
"""

from __future__ import annotations

import io
import json
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from payrecon.core.stream import SIDES, MatcherConfig, Side
from payrecon.stream.events import EventFormat
from payrecon.stream.flink_launch import part_lines, run_flink_job
from payrecon.stream.flink_spec import FlinkJobSpec, FlinkPipeline
from payrecon.stream.launch import StreamRequest, run_stream
from tests.integration.flink.conftest import JOB_TIMEOUT_S

SEEDS = range(6)
ORDERS = 110  # about 200 lines per stream
BASE_S = 1_606_549_000
MARGIN_MS = 1000  # gaps stay this far from a timeout (whole seconds: the s unit too)
SHAPES = (
    "pay first",
    "receipt first",
    "pay only",
    "receipt only",
    "pay, receipt too late",
    "receipt, pay too late",
)


@dataclass(frozen=True)
class Stream:
    """One generated stream: lines per side and how to read them."""

    config: MatcherConfig
    fmt: EventFormat
    pay: list[str]
    receipt: list[str]


def _line(side: Side, order: str, ts_ms: int, amount: int | None, fmt: EventFormat) -> str:
    ts = ts_ms // 1000 if fmt.time_unit == "s" else ts_ms
    if fmt.encoding == "csv":
        return f"7,pay,{order},{ts}" if side == "pay" else f"{order},wechat,{ts}"
    record: dict[str, Any] = {"orId": order, "timestamp": ts}
    record.update({"userId": 7, "action": "pay"} if side == "pay" else {"payChannel": "alipay"})
    if amount is not None:
        record["amount"] = amount
    return json.dumps(record)


def _gap(rng: random.Random, shape: str, config: MatcherConfig) -> int:
    """Event-time distance from the first side to the second, clear of the timeouts."""
    receipt_first = shape.startswith("receipt")
    timeout = config.pay_timeout_ms if receipt_first else config.receipt_timeout_ms
    if shape.endswith("too late"):
        return timeout + MARGIN_MS + rng.randrange(0, 4000, 1000)
    return rng.randrange(0, timeout - MARGIN_MS, 1000) if timeout > MARGIN_MS else 0


def generate(seed: int) -> Stream:
    rng = random.Random(seed)
    config = MatcherConfig(
        receipt_timeout_ms=rng.choice((2000, 5000, 8000)),
        pay_timeout_ms=rng.choice((1000, 3000)),
        out_of_orderness_ms=rng.choice((0, 1000, 3000)),
        idle_timeout_ms=rng.choice((None, 30_000)),
    )
    encoding = "json" if seed % 2 == 0 else "csv"
    fmt = EventFormat(
        amount_field="amount" if encoding == "json" else None,
        time_unit=rng.choice(("s", "ms")),
        encoding=encoding,
    )
    events: dict[Side, list[tuple[int, str]]] = {"pay": [], "receipt": []}
    clock = BASE_S * 1000
    for n in range(ORDERS):
        clock += rng.randrange(0, 3000, 1000)
        shape = rng.choice(SHAPES)
        first: Side = "receipt" if shape.startswith("receipt") else "pay"
        second: Side = "pay" if first == "receipt" else "receipt"
        present = {"pay only": ("pay",), "receipt only": ("receipt",)}.get(shape, SIDES)
        times = (clock, clock + _gap(rng, shape, config))
        amounts = rng.choice(((100, 100), (100, 90), (None, 100), (None, None)))
        for side, ts, amount in zip((first, second), times, amounts, strict=True):
            if side in present:
                events[side].append((ts, _line(side, f"order-{seed}-{n}", ts, amount, fmt)))
    ignored = (
        "7,create,x,1" if encoding == "csv" else '{"action": "create", "orId": "x", "timestamp": 1}'
    )
    dead = ("not,an,event,at,all", '{"orId": "y", "timestamp": 1.5}')
    return Stream(
        config,
        fmt,
        _with(rng, _arrival(rng, events["pay"], config), [ignored] * 3),
        _with(rng, _arrival(rng, events["receipt"], config), list(dead)),
    )


def _arrival(rng: random.Random, events: list[tuple[int, str]], config: MatcherConfig) -> list[str]:
    """Out of order within the allowance: sorted by ts + a random delay up to the allowance,
    so each event is at most ``out_of_orderness`` behind the largest seen before it."""
    delay = config.out_of_orderness_ms
    keyed = sorted((ts + rng.randint(0, delay), i, line) for i, (ts, line) in enumerate(events))
    return [line for _, _, line in keyed]


def _with(rng: random.Random, lines: list[str], extra: list[str]) -> list[str]:
    """``lines`` with ``extra`` lines (ignored actions, dead letters) put in at random."""
    lines = list(lines)
    for line in extra:
        lines.insert(rng.randrange(len(lines) + 1), line)
    return lines


def _write(folder: Path, stream: Stream) -> tuple[Path, Path]:
    folder.mkdir(parents=True)
    pay, receipt = folder / "pay.txt", folder / "receipt.txt"
    pay.write_text("".join(line + "\n" for line in stream.pay), encoding="utf-8")
    receipt.write_text("".join(line + "\n" for line in stream.receipt), encoding="utf-8")
    return pay, receipt


def _local(pay: Path, receipt: Path, stream: Stream, out: Path) -> tuple[list[Any], list[Any]]:
    request = StreamRequest(
        pay=str(pay),
        receipt=str(receipt),
        config=stream.config,
        fmt=stream.fmt,
        sinks=(f"jsonl:{out / 'local.jsonl'}",),
        dead_letter=out / "local-dead.jsonl",
    )
    result = run_stream(request, stdin=io.StringIO(), stdout=io.StringIO(), stop=lambda: False)
    assert result.finished
    assert result.stats.late_events == 0, "the generator made late events"
    return _read(out / "local.jsonl"), _read(out / "local-dead.jsonl")


def _read(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _freeze(records: list[dict[str, Any]]) -> Counter[str]:
    return Counter(json.dumps(record, sort_keys=True) for record in records)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory, flink_env: Path) -> list[dict[str, Any]]:
    """Every stream through both runtimes: one local run each, one Flink job for all."""
    root = tmp_path_factory.mktemp("differential")
    results, pipelines = [], []
    for seed in SEEDS:
        stream = generate(seed)
        folder = root / f"stream-{seed}"
        pay, receipt = _write(folder, stream)
        outputs, dead = _local(pay, receipt, stream, folder)
        results.append({"seed": seed, "local": outputs, "local_dead": dead, "folder": folder})
        pipelines.append(
            FlinkPipeline(
                pay=str(pay),
                receipt=str(receipt),
                sinks=(f"dir:{folder / 'flink'}",),
                dead_letters=f"dir:{folder / 'flink-dead'}",
                config=stream.config,
                fmt=stream.fmt,
            )
        )
    spec = FlinkJobSpec(
        tuple(pipelines),
        job_name="differential",
        parallelism=2,
        checkpoint_interval_ms=None,
        python_executable=str(flink_env),
        watermark_interval_ms=1,  # Flink's 200 ms would hold every timer until the end
    )
    run_flink_job(spec, root, python=flink_env, timeout_s=JOB_TIMEOUT_S)
    for result in results:
        folder = result["folder"]
        result["flink"] = [json.loads(line) for line in part_lines(folder / "flink")]
        result["flink_dead"] = [json.loads(line) for line in part_lines(folder / "flink-dead")]
    return results


@pytest.mark.parametrize("seed", SEEDS)
def test_the_same_type_and_order_pairs(runs: list[dict[str, Any]], seed: int) -> None:
    run = runs[seed]
    local = {(o["type"], o["order_id"]) for o in run["local"]}
    flink = {(o["type"], o["order_id"]) for o in run["flink"]}
    assert flink == local
    assert len(run["flink"]) == len(run["local"])  # nothing emitted twice either


@pytest.mark.parametrize("seed", SEEDS)
def test_the_same_records_and_alert_ids(runs: list[dict[str, Any]], seed: int) -> None:
    run = runs[seed]
    assert _freeze(run["flink"]) == _freeze(run["local"])


@pytest.mark.parametrize("seed", SEEDS)
def test_the_same_dead_letters(runs: list[dict[str, Any]], seed: int) -> None:
    run = runs[seed]
    assert len(run["local_dead"]) == 2
    assert _freeze(run["flink_dead"]) == _freeze(run["local_dead"])


def test_the_streams_reach_every_branch(runs: list[dict[str, Any]]) -> None:
    kinds = Counter(o["type"] for run in runs for o in run["local"])
    assert set(kinds) == {"matched", "amount_mismatch", "unmatched_pay", "unmatched_receipt"}
    sizes = [len(generate(seed).pay) + len(generate(seed).receipt) for seed in SEEDS]
    assert all(170 <= size <= 260 for size in sizes), sizes
