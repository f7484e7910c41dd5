"""Load on the back-office's case queue: 1M cases in PostgreSQL, 20 concurrent clients.

    .venv/bin/python bench/web_load.py --cases 1000000 --clients 20 --requests 2000

Seeds a fresh schema with COPY, starts ``payrecon serve`` on it (a separate process),
then drives the queue API and the queue page with an asyncio/httpx loop and prints
p50/p99 latency per scenario. Drops the schema afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import psycopg

from payrecon.cases.service import CaseService
from payrecon.cases.store import CaseStore
from payrecon.core.workflow import Actor, Role
from payrecon.web.tokens import TokenStore

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/payrecon_test"
PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/payrecon_test"
OUTCOMES = ("AMOUNT_MISMATCH", "MISSING_IN_LEDGER", "MISSING_IN_CHANNEL", "STATUS_MISMATCH")
STATES = ("OPEN",) * 6 + ("ASSIGNED", "IN_PROGRESS", "PENDING_APPROVAL", "RESOLVED", "CLOSED")
SEVERITY = ((1_000_000, "critical"), (100_000, "high"), (10_000, "medium"), (0, "low"))
COLUMNS = (
    "fingerprint, source, channel, merchant_id, run_day, kind, order_id, outcome, stake,"
    " currency, severity, state, assignee, due_at, created_at, updated_at, version"
)
SCENARIOS = {
    "api default queue": "/api/cases?per_page=50",
    "api filtered": "/api/cases?channel=wechat&outcome=AMOUNT_MISMATCH&per_page=50",
    "api by stake desc": "/api/cases?sort=stake&desc=true&per_page=50",
    "api deep page": "/api/cases?page=200&per_page=50",
    "page /cases": "/cases",
    "page filtered": "/cases?channel=alipay&min_amount=100.00&sort=stake&desc=true",
}


def rows(count: int, seed: int = 7) -> Iterator[tuple[object, ...]]:
    rng = random.Random(seed)
    start = datetime(2026, 10, 1, tzinfo=UTC)
    for n in range(count):
        stake = int(rng.lognormvariate(8, 2))
        severity = next(name for floor, name in SEVERITY if stake >= floor)
        day = date(2026, 10, 1) + timedelta(days=n % 60)
        state = rng.choice(STATES)
        opened = start + timedelta(minutes=n % 86_400)
        yield (
            uuid.uuid4().hex,
            "batch",
            rng.choice(("wechat", "alipay", "unionpay")),
            "1601959334",
            day,
            "PAY",
            f"S{n:012d}",
            rng.choice(OUTCOMES),
            stake,
            "CNY",
            severity,
            state,
            None if state == "OPEN" else rng.choice(("alice", "carol")),
            opened + timedelta(hours=rng.choice((4, 24, 48, 72))),
            opened,
            opened,
            1,
        )


def seed(schema: str, count: int) -> str:
    with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    with CaseStore(url) as store:
        store.upgrade()
        service = CaseService(store)
        service.add_user("root", Role.ADMIN)
    began = time.perf_counter()
    with psycopg.connect(PG_ADMIN, options=f"-csearch_path={schema}") as conn:
        with conn.cursor() as cur, cur.copy(f"COPY cases ({COLUMNS}) FROM STDIN") as copy:
            for row in rows(count):
                copy.write_row(row)
        conn.execute("ANALYZE cases")
    print(f"seeded {count:,} cases in {time.perf_counter() - began:.1f}s", file=sys.stderr)
    return url


def token(url: str) -> str:
    with CaseStore(url) as store:
        return TokenStore(CaseService(store)).issue("root", "bench", by=Actor.system())[1]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def drive(base: str, path: str, bearer: str, clients: int, total: int) -> list[float]:
    latencies: list[float] = []
    remaining = iter(range(total))
    headers = {"Authorization": f"Bearer {bearer}"}

    async def client() -> None:
        async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as http:
            for _ in remaining:
                began = time.perf_counter()
                answer = await http.get(path)
                latencies.append(time.perf_counter() - began)
                answer.raise_for_status()

    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--requests", type=int, default=2_000, help="per scenario")
    args = parser.parse_args()
    schema = f"bench_web_{uuid.uuid4().hex[:8]}"
    url = seed(schema, args.cases)
    port = free_port()
    env = os.environ | {"PAYRECON_CASES__URL": url, "PAYRECON_HOME": str(Path(".payrecon-bench"))}
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "payrecon"), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        bearer = token(url)
        print(f"{'scenario':<22} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>8}")
        for name, path in SCENARIOS.items():
            asyncio.run(drive(base, path, bearer, args.clients, args.clients * 2))  # warm up
            began = time.perf_counter()
            got = asyncio.run(drive(base, path, bearer, args.clients, args.requests))
            rate = len(got) / (time.perf_counter() - began)
            cuts = statistics.quantiles(got, n=100)
            print(f"{name:<22} {1000 * cuts[49]:8.1f} {1000 * cuts[98]:8.1f} {rate:8.0f}")
    finally:
        server.terminate()
        server.wait()
        with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


if __name__ == "__main__":
    main()
