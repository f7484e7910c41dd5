"""Load on the back-office's case queue: 1M cases in PostgreSQL, 20 concurrent clients.

    apt-get install -y wrk     # Debian's wrk, the load tool (or: --tool python, slower)
    .venv/bin/python bench/web_load.py --cases 1000000 --clients 20 --duration 15

Creates the database ``payrecon_bench`` on the local PostgreSQL (``--admin-url``), migrates
it with the same code as ``payrecon db upgrade``, fills it with one INSERT … SELECT over
``generate_series`` (1M cases in well under a minute) and VACUUM ANALYZEs it. Then it
starts ``payrecon serve --workers N`` on a free port, checks every scenario once, and
drives each with ``wrk`` (``--clients`` connections, closed loop, ``--duration`` seconds
after a short warm-up), printing p50/p95/p99 and requests/s. The API is called with a
bearer token, the pages with a session cookie, as a browser would.

``--keep`` leaves the database for the next run (which then reuses it when it has the
asked-for number of cases). ``--baseline SRC`` first serves the same database with the
``payrecon`` package found in ``SRC`` (e.g. a ``git worktree`` of an older commit; the
database is migrated down to that code's newest revision and back up afterwards) and
prints both columns side by side: before and after, measured in one run.

``--breakdown`` adds where one request's time goes (single client, in-process): the SQL
alone, the case-store read (SQL + building rows), and the whole request (login check,
query, serialising or rendering), each the median of ``--samples`` calls.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
SCENARIOS = {
    "api default queue": ("api", "/api/cases?per_page=50"),
    "api channel+status+amount": (
        "api",
        "/api/cases?channel=wechat&state=OPEN&min_stake=10000&max_stake=1000000&per_page=50",
    ),
    "api by stake desc": ("api", "/api/cases?sort=stake&desc=true&per_page=50"),
    "api page 200": ("api", "/api/cases?page=200&per_page=50"),
    "page /cases": ("page", "/cases"),
    "page channel+amount": ("page", "/cases?channel=alipay&min_amount=100.00&sort=stake&desc=true"),
}
# wrk: report the percentiles and counts as one JSON line when the run is done.
WRK_REPORT = """
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK {"requests": %d, "seconds": %.6f, "p50": %d, "p95": %d, "p99": %d, "max": %d,'
    .. ' "errors": %d, "non2xx": %d}\\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50),
    latency:percentile(95), latency:percentile(99), latency.max,
    e.connect + e.read + e.write + e.timeout, e.status))
end
"""


# -- the database ---------------------------------------------------------------------------


def _seed_sql(count: int) -> str:
    """One statement making ``count`` cases with the shape a busy store has.

    Channels and outcomes uniform; states: 6/11 OPEN, the rest spread over the others
    (about 30 % done); stake log-normal (median 29.81 yuan, a long tail to millions) via
    Box-Muller, since PostgreSQL 15 has no ``random_normal``; run days over 60 days.
    """
    return f"""
    INSERT INTO cases (fingerprint, source, channel, merchant_id, run_day, kind, order_id,
                       outcome, stake, currency, severity, state, assignee, due_at,
                       created_at, updated_at, version)
    SELECT md5(n::text), 'batch', (ARRAY['wechat', 'alipay', 'unionpay'])[1 + n % 3],
           '1601959334', DATE '2026-10-01' + (n % 60), 'PAY', 'S' || lpad(n::text, 12, '0'),
           (ARRAY['AMOUNT_MISMATCH', 'MISSING_IN_LEDGER', 'MISSING_IN_CHANNEL',
                  'STATUS_MISMATCH'])[1 + (random() * 3.999)::int % 4],
           s.stake, 'CNY',
           CASE WHEN s.stake >= 1000000 THEN 'critical' WHEN s.stake >= 100000 THEN 'high'
                WHEN s.stake >= 10000 THEN 'medium' ELSE 'low' END,
           s.state,
           CASE WHEN s.state = 'OPEN' THEN NULL
                ELSE (ARRAY['alice', 'carol'])[1 + n % 2] END,
           o.opened + make_interval(hours => (ARRAY[4, 24, 48, 72])[1 + (n / 7) % 4]),
           o.opened, o.opened, 1
    FROM generate_series(1, {count}) AS n,
         LATERAL (SELECT TIMESTAMPTZ '2026-10-01 00:00+00'
                         + make_interval(mins => n % 86400) AS opened) AS o,
         LATERAL (SELECT greatest(1, least(10000000000, exp(8 + 2 * sqrt(-2 * ln(1 - random()))
                                       * cos(2 * pi() * random()))))::bigint AS stake,
                         (ARRAY['OPEN', 'OPEN', 'OPEN', 'OPEN', 'OPEN', 'OPEN', 'ASSIGNED',
                                'IN_PROGRESS', 'PENDING_APPROVAL', 'RESOLVED', 'CLOSED',
                                'PARKED', 'REOPENED'])[1 + (random() * 12.999)::int % 13]
                         AS state
                  WHERE n > 0) AS s
    """


def database(admin: str, name: str, count: int) -> str:
    """The bench database with ``count`` cases, migrated to this code's head; its URL."""
    from payrecon.cases.service import BackOffice, CaseService
    from payrecon.cases.store import CaseStore
    from payrecon.core.workflow import Actor, Role

    with psycopg.connect(admin, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    server = psycopg.conninfo.conninfo_to_dict(admin)
    plain = f"postgresql://{server.get('user', 'postgres')}@{server.get('host', '127.0.0.1')}"
    plain += f":{server.get('port', 5432)}/{name}"
    url = plain.replace("postgresql://", "postgresql+psycopg://", 1)
    with CaseStore(url) as store:
        before, after = store.upgrade()  # what `payrecon db upgrade` does
        if before != after:
            print(f"migrated {name}: {before} -> {after}", file=sys.stderr)
        service = CaseService(store)
        for user, role in (("root", Role.ADMIN), ("alice", Role.OPERATOR)):
            if user not in {u["name"] for u in service.users()}:
                service.add_user(user, role)
        BackOffice(service).set_password("alice", "bench-alice-1", by=Actor.system())
    with psycopg.connect(plain, autocommit=True) as conn:
        have = conn.execute("SELECT count(*) FROM cases").fetchone()
        if have is None or have[0] != count:
            began = time.perf_counter()
            conn.execute("TRUNCATE cases RESTART IDENTITY CASCADE")
            conn.execute(_seed_sql(count))
            conn.execute("VACUUM ANALYZE cases")
            took = time.perf_counter() - began
            print(f"seeded {count:,} cases in {took:.1f}s", file=sys.stderr)
    return url


def migrate(url: str, revision: str) -> None:
    """Move the database to ``revision`` (up or down) with this code's migrations."""
    from alembic import command
    from alembic.config import Config
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine

    from payrecon.cases.store import MIGRATIONS

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            heads = ScriptDirectory.from_config(config)
            current = connection.exec_driver_sql("SELECT version_num FROM alembic_version")
            now = current.scalar_one()
            if now == revision:
                return
            ahead = revision in {r.revision for r in heads.iterate_revisions(now, "base")}
            (command.downgrade if ahead else command.upgrade)(config, revision)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.exec_driver_sql("VACUUM ANALYZE cases")
    finally:
        engine.dispose()


def head_of(src: Path) -> str:
    """The newest migration of the ``payrecon`` package under ``src``."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(src / "payrecon" / "cases" / "migrations"))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


def credentials(url: str) -> dict[str, str]:
    """Headers for the API (a bearer token of root) and for pages (alice's session cookie)."""
    from payrecon.cases.service import CaseService
    from payrecon.cases.store import CaseStore
    from payrecon.config import load_settings
    from payrecon.core.workflow import Actor
    from payrecon.web.security import SESSION_COOKIE, SessionSigner
    from payrecon.web.tokens import TokenStore

    with CaseStore(url) as store:
        token = TokenStore(CaseService(store)).issue("root", "bench", by=Actor.system())[1]
    # The server signs with the same (development) key: this is what /login would set.
    signer = SessionSigner(load_settings().web.secret_key, 3600)
    return {
        "api": f"Authorization: Bearer {token}",
        "page": f"Cookie: {SESSION_COOKIE}={signer.new('alice')[1]}",
    }


# -- the server -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def server(url: str, workers: int | None, src: Path | None, home: Path) -> Iterator[str]:
    """``payrecon serve`` in its own process (from ``src`` when given); yields its base URL."""
    port = free_port()
    env = os.environ | {"PAYRECON_CASES__URL": url, "PAYRECON_HOME": str(home)}
    if src is not None:
        env["PYTHONPATH"] = str(src)
    command = [sys.executable, "-m", "payrecon", "serve", "--port", str(port)]
    if workers is not None:
        command += ["--workers", str(workers)]
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            if process.poll() is not None:
                raise SystemExit(
                    f"payrecon serve failed:\n{process.stderr and process.stderr.read()}"
                )
            try:
                httpx.get(f"{base}/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        yield base
    finally:
        process.terminate()
        process.wait()


# -- the load -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figures:
    p50: float
    p95: float
    p99: float
    rate: float
    requests: int
    errors: int


def check(base: str, path: str, header: str) -> None:
    """One request, before the load: the scenario answers 200 with cases in it."""
    name, _, value = header.partition(": ")
    answer = httpx.get(base + path, headers={name: value}, timeout=60, follow_redirects=False)
    answer.raise_for_status()
    if path.startswith("/api/"):
        body = answer.json()
        assert body["cases"] and body["total"] > 0, body
    else:
        assert 'data-testid="case-link"' in answer.text, answer.text[:500]


def wrk(base: str, path: str, header: str, clients: int, seconds: int, script: Path) -> Figures:
    threads = str(min(2, clients))
    command = ["wrk", "-t", threads, "-c", str(clients), "-H", header, "-s", str(script)]
    subprocess.run(  # warm-up: connections, caches, the planner
        [*command, "-d", "2s", base + path], check=True, capture_output=True, text=True
    )
    done = subprocess.run(
        [*command, "-d", f"{seconds}s", "--timeout", "10s", base + path],
        check=True,
        capture_output=True,
        text=True,
    )
    line = next(x for x in done.stdout.splitlines() if x.startswith("WRK "))
    got = json.loads(line[4:])
    return Figures(
        got["p50"] / 1000,
        got["p95"] / 1000,
        got["p99"] / 1000,
        got["requests"] / got["seconds"],
        got["requests"],
        got["errors"] + got["non2xx"],
    )


def python_load(base: str, path: str, header: str, clients: int, seconds: int) -> Figures:
    """The same closed loop with asyncio + httpx (when wrk is missing; costs more CPU)."""
    name, _, value = header.partition(": ")

    async def run(length: float) -> tuple[list[float], int]:
        latencies: list[float] = []
        errors = 0
        stop = time.perf_counter() + length

        async def client() -> None:
            nonlocal errors
            async with httpx.AsyncClient(base_url=base, headers={name: value}, timeout=30) as h:
                while time.perf_counter() < stop:
                    began = time.perf_counter()
                    answer = await h.get(path)
                    latencies.append(time.perf_counter() - began)
                    errors += answer.status_code >= 400

        await asyncio.gather(*(client() for _ in range(clients)))
        return latencies, errors

    asyncio.run(run(2))
    began = time.perf_counter()
    got, errors = asyncio.run(run(seconds))
    cuts = statistics.quantiles(got, n=100)
    took = time.perf_counter() - began
    return Figures(
        1000 * cuts[49], 1000 * cuts[94], 1000 * cuts[98], len(got) / took, len(got), errors
    )


def measure(
    base: str, headers: dict[str, str], args: argparse.Namespace, script: Path
) -> dict[str, Figures]:
    figures = {}
    for name in args.scenarios:
        kind, path = SCENARIOS[name]
        check(base, path, headers[kind])
        if args.tool == "wrk":
            figures[name] = wrk(base, path, headers[kind], args.clients, args.duration, script)
        else:
            figures[name] = python_load(base, path, headers[kind], args.clients, args.duration)
        got = figures[name]
        print(
            f"  {name:<28} p50 {got.p50:7.1f}  p95 {got.p95:7.1f}  p99 {got.p99:7.1f} ms"
            f"  {got.rate:6.0f} req/s  ({got.requests} requests, {got.errors} errors)",
            file=sys.stderr,
        )
    return figures


# -- where the time goes --------------------------------------------------------------------


def breakdown(url: str, home: Path, scenarios: list[str], samples: int) -> None:
    """Single client, in-process: the SQL alone, the case-store read, the whole request."""
    from sqlalchemy import event

    from payrecon.config import load_settings
    from payrecon.web.app import create_app
    from payrecon.web.queue import QueueQuery

    def median_ms(call: Callable[[], object]) -> float:
        for _ in range(5):
            call()
        took = []
        for _ in range(samples):
            began = time.perf_counter()
            call()
            took.append(time.perf_counter() - began)
        return 1000 * statistics.median(took)

    os.environ["PAYRECON_CASES__URL"] = url
    os.environ["PAYRECON_HOME"] = str(home)
    app = create_app(load_settings())
    web = app.state.web
    headers = credentials(url)
    transport = httpx.ASGITransport(app=app)
    client = httpx.AsyncClient(transport=transport, base_url="http://bench")
    loop = asyncio.new_event_loop()
    plain = url.replace("postgresql+psycopg://", "postgresql://", 1)
    print(f"\n{'one request, single client (median ms)':<40} {'SQL':>6} {'read':>6} {'request':>8}")
    with psycopg.connect(plain, autocommit=True) as conn:
        for scenario in scenarios:
            kind, path = SCENARIOS[scenario]
            params = httpx.URL(path).params
            given: dict[str, Any] = {
                k: params.get_list(k) if k == "state" else v for k, v in params.items()
            }
            for bound in ("min", "max"):
                if f"{bound}_amount" in given:  # the page's yuan field, as the route parses it
                    given[f"{bound}_stake"] = round(100 * float(given.pop(f"{bound}_amount")))
            query = QueueQuery.model_validate(given)

            def read(q: QueueQuery = query) -> object:
                return web.office.queue(
                    q.filter(), sort=q.sort, descending=q.desc, limit=q.per_page, offset=q.offset
                )

            sent: list[tuple[str, Any]] = []

            def capture(
                _c: Any, _cur: Any, statement: str, bound: Any, *_: Any, to: list[Any] = sent
            ) -> None:
                to.append((statement, bound))

            event.listen(web.service.store.engine, "before_cursor_execute", capture)
            read()
            event.remove(web.service.store.engine, "before_cursor_execute", capture)

            def sql(statements: list[tuple[str, Any]] = sent) -> None:
                for statement, bound in statements:
                    conn.execute(statement, bound).fetchall()

            header = headers[kind]

            def request(path: str = path, header: str = header) -> None:
                name, _, value = header.partition(": ")
                answer = loop.run_until_complete(client.get(path, headers={name: value}))
                answer.raise_for_status()

            print(
                f"  {scenario:<38} {median_ms(sql):6.2f} {median_ms(read):6.2f}"
                f" {median_ms(request):8.2f}"
            )
    loop.run_until_complete(client.aclose())
    loop.close()


# -- main -----------------------------------------------------------------------------------


def table(columns: dict[str, dict[str, Figures]]) -> None:
    """The figures as a Markdown table, one group of columns per server."""
    head = "| scenario |"
    rule = "|---|"
    for label in columns:
        head += f" {label} p50 | p95 | p99 ms | req/s |"
        rule += "---:|---:|---:|---:|"
    print(head)
    print(rule)
    first = next(iter(columns.values()))
    for scenario in first:
        line = f"| {scenario} |"
        for figures in columns.values():
            got = figures[scenario]
            line += f" {got.p50:.0f} | {got.p95:.0f} | {got.p99:.0f} | {got.rate:.0f} |"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--duration", type=int, default=15, help="seconds per scenario")
    parser.add_argument("--workers", type=int, default=None, help="serve --workers")
    parser.add_argument("--tool", choices=("wrk", "python"), default="wrk")
    parser.add_argument("--admin-url", default=ADMIN_URL)
    parser.add_argument("--database", default="payrecon_bench")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument("--baseline", type=Path, help="src folder of the code to compare with")
    parser.add_argument("--breakdown", action="store_true")
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--scenarios", nargs="+", choices=list(SCENARIOS), default=list(SCENARIOS))
    args = parser.parse_args()
    if args.tool == "wrk" and shutil.which("wrk") is None:
        raise SystemExit("wrk not found: apt-get install -y wrk (Debian), or pass --tool python")
    url = database(args.admin_url, args.database, args.cases)
    headers = credentials(url)
    columns: dict[str, dict[str, Figures]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        script = Path(scratch) / "report.lua"
        script.write_text(WRK_REPORT)
        home = Path(scratch) / "home"
        try:
            if args.baseline:
                migrate(url, head_of(args.baseline))
                print(f"baseline ({args.baseline}, one process):", file=sys.stderr)
                with server(url, None, args.baseline, home) as base:
                    columns["before"] = measure(base, headers, args, script)
                migrate(url, head_of(Path(__file__).parents[1] / "src"))
            label = f"workers={args.workers or 'default'}"
            print(f"this code ({label}):", file=sys.stderr)
            with server(url, args.workers, None, home) as base:
                label = "after" if args.baseline else "now"
                columns[label] = measure(base, headers, args, script)
            where = f"{args.clients} clients ({args.tool}), {os.cpu_count()} CPUs"
            print(f"\n{args.cases:,} cases, {where}")
            table(columns)
            if args.breakdown:
                breakdown(url, home, args.scenarios, args.samples)
        finally:
            if not args.keep:
                with psycopg.connect(args.admin_url, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')


if __name__ == "__main__":
    main()
