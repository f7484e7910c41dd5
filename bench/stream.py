"""Stream benchmark: the same event stream on the local runtime and on Flink, side by side.

    .venv/bin/python bench/stream.py --events 200000        # needs .venv-flink (make flink-env)

Generates (once, cached under bench/data/) a pay and a receipt JSON-lines file with
``--events`` events in all (about 96% of orders get both sides, 2% only a pay, 2% only a
receipt; receipts 0-2 s after their pay; each input out of order within 500 ms), then runs,
each as its own ``payrecon stream`` process, one after the other:

* ``local``: the local runtime (``--runtime local``), JSON lines in, JSON lines out;
* ``flink``: the same command with ``--runtime flink``: the PyFlink job in a local
  mini-cluster (thread mode, parallelism 1), started from ``.venv-flink``;
* ``flink start-up``: the Flink run on a stream of two events, to tell the fixed cost (JVM,
  mini-cluster, Python workers) from the per-event cost.

Then, in this process, the matcher's own figures: bytes of state per pending order (Python
heap by ``tracemalloc`` and checkpoint JSON, for ``--pending`` orders waiting for their
receipts) and alert latency behind the watermark (processing time from the event that
moves the watermark past a timer to the alert leaving the matcher; sinks then flush within
their 200 ms flush interval). ``--no-flink`` skips the Flink runs.

Peak RSS is the largest sum over the whole process tree (the CLI, the Flink job's Python
and its JVM), sampled every 20 ms. Both runs must write the same outputs; the bench checks.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import subprocess
import sys
import tempfile
import time
import tracemalloc
from dataclasses import dataclass
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
BASE_MS = 1_606_549_000_000
SAMPLE_S = 0.02


@dataclass(frozen=True)
class Run:
    """One measured command."""

    name: str
    seconds: float
    peak_rss: int
    code: int


def generate(events: int, folder: Path) -> tuple[Path, Path]:
    """A pay and a receipt file with ``events`` lines in all (cached)."""
    pay, receipt = folder / "pay.jsonl", folder / "receipt.jsonl"
    if pay.exists() and receipt.exists():
        return pay, receipt
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(4)
    pays: list[tuple[int, str]] = []
    receipts: list[tuple[int, str]] = []
    clock, n = BASE_MS, 0
    while len(pays) + len(receipts) < events:
        clock += rng.randint(0, 10)
        order, kind = f"order{n:09d}", rng.random()
        n += 1
        if kind >= 0.02:  # a pay
            record = {"userId": n % 997, "action": "pay", "orId": order, "timestamp": clock}
            pays.append((clock + rng.randint(0, 500), json.dumps(record)))
        if kind < 0.02 or kind >= 0.04:  # a receipt
            ts = clock + rng.randint(0, 2000)
            record = {"orId": order, "payChannel": "wechat", "timestamp": ts}
            receipts.append((ts + rng.randint(0, 500), json.dumps(record)))
    for path, lines in ((pay, pays), (receipt, receipts)):
        path.write_text("".join(line + "\n" for _, line in sorted(lines)), encoding="utf-8")
    return pay, receipt


def measure(name: str, command: list[str]) -> Run:
    """Run ``command``, sampling the RSS of its whole process tree."""
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    root, peak = psutil.Process(process.pid), 0
    while process.poll() is None:
        peak = max(peak, _tree_rss(root))
        time.sleep(SAMPLE_S)
    seconds = time.perf_counter() - started
    stderr = process.stderr.read().decode() if process.stderr else ""
    if process.returncode not in (0, 1):
        sys.exit(f"{name} failed ({process.returncode}):\n{stderr[-3000:]}")
    return Run(name, seconds, peak, process.returncode)


def _tree_rss(root: psutil.Process) -> int:
    total = 0
    try:
        processes = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):  # it ended meanwhile
            total += process.memory_info().rss
    return total


def stream_command(runtime: str, pay: Path, receipt: Path, out: Path) -> list[str]:
    return [
        str(Path(sys.executable).with_name("payrecon")),
        "stream",
        f"--runtime={runtime}",
        f"--pay={pay}",
        f"--receipt={receipt}",
        "--time-unit=ms",
        "--out-of-orderness=1s",
        "--idle-timeout=off",
        "--quiet",
        f"--jsonl={out}",
    ]


def _same_outputs(left: Path, right: Path) -> bool:
    read = [sorted(path.read_text(encoding="utf-8").splitlines()) for path in (left, right)]
    return read[0] == read[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--pending", type=int, default=100_000)
    parser.add_argument("--no-flink", action="store_true", help="only the local runtime")
    args = parser.parse_args()
    pay, receipt = generate(args.events, HERE / "data" / f"stream-{args.events}")
    with tempfile.TemporaryDirectory(prefix="payrecon-bench-stream-") as tmp:
        work = Path(tmp)
        local = measure("local", stream_command("local", pay, receipt, work / "local.jsonl"))
        outputs = len((work / "local.jsonl").read_text(encoding="utf-8").splitlines())
        if args.no_flink:
            rate = f"{args.events / local.seconds:,.0f}"
            print(f"{args.events} events in, {outputs} outputs")
            print(f"local: {local.seconds:.2f} s, {rate} events/s, peak RSS", end=" ")
            print(f"{local.peak_rss / 2**20:.0f} MB")
        else:
            tiny = generate(2, work / "tiny")
            runs = [
                local,
                measure("flink", stream_command("flink", pay, receipt, work / "flink.jsonl")),
                measure("flink start-up", stream_command("flink", *tiny, work / "tiny.jsonl")),
            ]
            same = _same_outputs(work / "local.jsonl", work / "flink.jsonl")
            report(args.events, runs, outputs, same)
    state_figures(args.pending)
    latency_figures(pay, receipt)


def state_figures(pending: int) -> None:
    """Bytes of matcher state per order waiting for its receipt."""
    from payrecon.core.stream import MatcherConfig, StreamEvent, StreamMatcher

    events = [StreamEvent("pay", f"order{n:012d}", BASE_MS + n) for n in range(pending)]
    matcher = StreamMatcher(MatcherConfig(receipt_timeout_ms=10**12))
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for event in events:
        matcher.process(event, BASE_MS)
    heap = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert matcher.pending_keys == pending
    snapshot = len(json.dumps(matcher.snapshot(), separators=(",", ":")).encode())
    print(
        f"state per pending order ({pending:,} waiting, 14-char order ids): "
        f"{heap / pending:.0f} bytes of Python heap (order id string included),"
        f" {snapshot / pending:.0f} bytes in a checkpoint"
    )


def latency_figures(pay: Path, receipt: Path) -> None:
    """Processing time from the event that passes a timer to the alert, in microseconds."""
    from payrecon.core.stream import MatcherConfig, StreamMatcher
    from payrecon.stream.events import EventDecoder, EventFormat

    fmt = EventFormat(time_unit="ms")
    decoders = {side: EventDecoder(side, fmt, side) for side in ("pay", "receipt")}
    lines = [
        (side, line)
        for pair in zip(*(path.open(encoding="utf-8") for path in (pay, receipt)), strict=False)
        for side, line in zip(("pay", "receipt"), pair, strict=True)
    ]
    events = [decoders[side].decode(line, 0) for side, line in lines]
    matcher = StreamMatcher(MatcherConfig(out_of_orderness_ms=1000))
    latencies: list[int] = []
    for event in events:
        started = time.perf_counter_ns()
        fired = matcher.process(event, BASE_MS)  # type: ignore[arg-type]
        took = time.perf_counter_ns() - started
        latencies += [took for out in fired if out.type.startswith("unmatched")]
    latencies.sort()
    if not latencies:
        return
    p50, p99 = latencies[len(latencies) // 2], latencies[len(latencies) * 99 // 100]
    print(
        f"alert latency behind the watermark ({len(latencies):,} timeouts): p50"
        f" {p50 / 1000:.0f} us, p99 {p99 / 1000:.0f} us, max {latencies[-1] / 1000:.0f} us"
        " in the matcher; + up to 200 ms until the sinks' flush"
    )


def report(events: int, runs: list[Run], outputs: int, same: bool) -> None:
    local, flink, startup = runs
    print(f"{events} events in, {outputs} outputs; local and Flink outputs identical: {same}")
    print(f"{'run':<16}{'wall s':>9}{'events/s':>12}{'peak RSS MB':>13}")
    for run in runs:
        rate = f"{events / run.seconds:,.0f}" if run is not startup else "-"
        print(f"{run.name:<16}{run.seconds:>9.2f}{rate:>12}{run.peak_rss / 2**20:>13.0f}")
    steady = events / max(flink.seconds - startup.seconds, 1e-9)
    print(f"flink without start-up: {steady:,.0f} events/s")
    print(
        f"ratio local/flink: {flink.seconds / local.seconds:.1f}x the events/s"
        f" ({events / local.seconds / steady:.1f}x against Flink without its start-up);"
        f" Flink's peak RSS is {flink.peak_rss / local.peak_rss:.1f}x the local runtime's"
    )
    if not same:
        sys.exit("the local and Flink outputs differ")


if __name__ == "__main__":
    main()
