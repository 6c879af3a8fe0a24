"""`gridrider bench rankings`: rider ranking pages with 100,000 riders and 10 M ledger rows.

Fixed load (a fixed seed: every run sees the same data): the demo town's areas; N riders, each on
one grid, platforms in turn; L ledger rows dated across 2026 (Asia/Shanghai) by reason in the mix a
town would see (corroborations most, then first reports, bonuses, penalties, redemptions), a few
riders writing most of them (rider share ∝ u², u uniform), loaded in time order; R reports over
I = R/2 incidents for the per-rider figures. Rows are generated in SQL (generate_series), 1 M per
statement, so the ranking triggers run as they do in production — once per statement.

Measured: `domain.rankings.rider_ranking` — what `GET /api/v1/rankings/riders` runs — in its
repeatable-read read-only transaction on a pool connection, for the scopes a person asks for.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import random
import time

from gridrider.bench import bench, bench_database, bench_runtime, machine_line, percentile
from gridrider.clock import SHANGHAI

BENCH_DATABASE = "gridrider_bench_rankings"
CHUNK = 1_000_000
YEAR_START = dt.datetime(2026, 1, 1, tzinfo=SHANGHAI)
NOW = dt.datetime(2026, 11, 26, 18, 0, tzinfo=SHANGHAI)

RIDERS_SQL = """
INSERT INTO members (role, display_name, pseudonym, phone, platform, privacy_accepted_at)
SELECT 'courier', '压测骑手 ' || g, 'RK' || lpad(g::text, 7, '0'), '136' || lpad(g::text, 8, '0'),
       (ARRAY['meituan', 'eleme', 'sf', 'jd', 'other'])[1 + g % 5], now()
FROM generate_series(1, $1) AS g
"""
# Each rider on one grid, spread over the town's grids.
RIDER_AREAS_SQL = """
WITH grids AS (SELECT array_agg(id ORDER BY id) AS ids FROM areas WHERE level = 'grid')
INSERT INTO member_areas (member_id, area_id)
SELECT m.id, grids.ids[1 + (m.id * 7919) % cardinality(grids.ids)]
FROM members m, grids WHERE m.role = 'courier' AND m.pseudonym LIKE 'RK%'
"""
# One chunk of ledger rows; $1 chunk size, $2 first source id, $3/$4 rider ids, $5/$6 time range.
LEDGER_SQL = """
INSERT INTO points_ledger (member_id, reason, amount, source_kind, source_id, cycle, counts_toward_cap,
                           counts_toward_ranking, local_day, created_at)
SELECT x.member, k.reason, k.amount, k.kind, $2::bigint + x.g, 1, k.reason <> 'redemption', k.reason <> 'redemption',
       (x.ts AT TIME ZONE 'Asia/Shanghai')::date, x.ts
FROM (SELECT g, $3::bigint + floor(($4::bigint - $3::bigint + 1) * power(random(), 2))::bigint AS member,
             random() AS r,
             $5::timestamptz + random() * ($6::timestamptz - $5::timestamptz) AS ts
      FROM generate_series(1, $1) AS g) x
CROSS JOIN LATERAL (
    SELECT * FROM (VALUES ('first_report', 10, 'incident', 0.30), ('corroboration', 2, 'report', 0.85),
                          ('resolve_bonus', 5, 'incident', 0.95), ('not_a_hazard', -5, 'incident', 0.98),
                          ('redemption', -50, 'redemption', 1.01)) AS v (reason, amount, kind, upto)
    WHERE x.r < v.upto ORDER BY v.upto LIMIT 1
) k
"""
# Incidents for a chunk of reports (two reports each), then the reports, then each incident's origin.
INCIDENTS_SQL = """
INSERT INTO incidents (category, lat, lon, cell, area_id, state, last_captured_at, dispatched_at, accepted_at,
                       resolved_at, closed_at, reject_reason, created_at, updated_at)
SELECT 'garbage_pileup', 42.38 + random() / 100, 122.53 + random() / 100, 617700000000000000 + g % 5000, NULL,
       s.state, x.ts, x.ts, CASE WHEN s.state IN ('accepted', 'resolved', 'closed') THEN x.ts + x.wait END,
       CASE WHEN s.state IN ('resolved', 'closed') THEN x.ts + interval '2 days' END,
       CASE WHEN s.state = 'closed' THEN x.ts + interval '9 days' END,
       CASE WHEN s.state = 'rejected' THEN 'not_a_hazard' END, x.ts, x.ts
FROM (SELECT g, $1::timestamptz + random() * ($2::timestamptz - $1::timestamptz) AS ts, random() AS r,
             random() * interval '3 hours' AS wait
      FROM generate_series(1, $3) AS g) x
CROSS JOIN LATERAL (SELECT CASE WHEN x.r < 0.15 THEN 'dispatched' WHEN x.r < 0.25 THEN 'rejected'
                                WHEN x.r < 0.35 THEN 'accepted' WHEN x.r < 0.55 THEN 'resolved'
                                ELSE 'closed' END AS state) s
RETURNING id
"""
REPORTS_SQL = """
INSERT INTO reports (reporter_id, client_id, category, lat, lon, accuracy_m, position_source, cell, captured_at,
                     received_at, state, incident_id, body_fingerprint, processed_at)
SELECT $3::bigint + floor(($4::bigint - $3::bigint + 1) * power(random(), 2))::bigint, gen_random_uuid(),
       'garbage_pileup', i.lat, i.lon, 8, 'gps', i.cell, i.created_at - s.lag, i.created_at + s.lag, 'processed', i.id,
       sha256(convert_to(i.id || '/' || s.n, 'UTF8')), i.created_at + s.lag
FROM incidents i
CROSS JOIN LATERAL (VALUES (1, interval '0'), (2, interval '7 minutes')) AS s (n, lag)
WHERE i.id BETWEEN $1 AND $2
"""
ORIGINS_SQL = """
UPDATE incidents i SET origin_report_id = r.first, report_count = r.n
FROM (SELECT incident_id, min(id) AS first, count(*) AS n FROM reports
      WHERE incident_id BETWEEN $1 AND $2 GROUP BY incident_id) r
WHERE i.id = r.incident_id
"""


class Scenario:
    def __init__(self, label: str, period: str, at: str, scopes: list[list[str] | None], *, platform: str | None = None,
                 me: list[int] | None = None, pages: int = 1) -> None:
        self.label, self.period, self.at, self.scopes = label, period, at, scopes
        self.platform, self.me, self.pages = platform, me, pages


async def _first_refresh(conn) -> None:
    """The report-figures cron's first pass over everyone, then one after a minute's worth of change."""
    from gridrider.domain.rankings import refresh_report_figures

    began = time.perf_counter()
    await conn.execute("VACUUM (ANALYZE) reports")
    async with conn.transaction():
        riders = await refresh_report_figures(conn, now=NOW)
    full_s = time.perf_counter() - began
    # A minute's worth of change: 300 incidents changing state (their riders are recomputed).
    await conn.execute("UPDATE incidents SET updated_at = $1 WHERE id IN (SELECT id FROM incidents ORDER BY random() "
                       "LIMIT 300)", NOW + dt.timedelta(minutes=1))
    newest = await conn.fetchval("SELECT max(id) FROM incidents")
    await conn.execute("UPDATE reports SET received_at = $2 WHERE id IN (SELECT id FROM reports WHERE incident_id > $1 "
                       "- 100)", newest, NOW + dt.timedelta(minutes=1))
    incremental_began = time.perf_counter()
    async with conn.transaction():
        changed = await refresh_report_figures(conn, now=NOW + dt.timedelta(minutes=7))
    incremental_s = time.perf_counter() - incremental_began
    print(f"report figures refresh (the cron): first pass {riders:,} riders in {full_s:.1f} s; "
          f"a pass after a minute's change ({changed:,} riders) {incremental_s * 1000:.0f} ms", flush=True)
    await conn.execute("VACUUM (ANALYZE) rider_report_stats")


async def _load(conn, args: argparse.Namespace) -> tuple[int, int, list[str]]:
    await conn.execute("SELECT setseed(0.20261126)")
    began = time.perf_counter()
    await conn.execute(RIDERS_SQL, args.riders)
    first, last = await conn.fetchrow("SELECT min(id), max(id) FROM members WHERE pseudonym LIKE 'RK%'")
    await conn.execute(RIDER_AREAS_SQL)
    grids = await conn.fetchval(
        "SELECT count(DISTINCT area_id) FROM member_areas WHERE member_id BETWEEN $1 AND $2", first, last)
    print(f"  riders: {args.riders:,} on {grids} grids ({time.perf_counter() - began:.1f} s)", flush=True)
    began = time.perf_counter()
    # In time order, as a ledger grows: chunk k holds the k-th slice of the year.
    chunks = max(1, -(-args.ledger // CHUNK))
    span = (NOW - YEAR_START) / chunks
    for k, offset in enumerate(range(0, args.ledger, CHUNK)):
        n = min(CHUNK, args.ledger - offset)
        chunk_began = time.perf_counter()
        await conn.execute(LEDGER_SQL, n, offset, first, last, YEAR_START + k * span, YEAR_START + (k + 1) * span)
        print(f"  ledger rows {offset + n:,} / {args.ledger:,} ({time.perf_counter() - chunk_began:.1f} s, "
              f"ranking triggers included)", flush=True)
    ledger_s = time.perf_counter() - began
    began = time.perf_counter()
    incidents = args.reports // 2
    for offset in range(0, incidents, CHUNK // 2):
        n = min(CHUNK // 2, incidents - offset)
        ids = [r["id"] for r in await conn.fetch(INCIDENTS_SQL, YEAR_START, NOW, n)]
        await conn.execute(REPORTS_SQL, min(ids), max(ids), first, last)
        await conn.execute(ORIGINS_SQL, min(ids), max(ids))
    reports_s = time.perf_counter() - began
    await _first_refresh(conn)
    began = time.perf_counter()
    for table in ("rider_report_stats", "points_ledger", "ranking_totals", "incidents", "members", "member_areas"):
        await conn.execute(f"VACUUM (ANALYZE) {table}")
    vacuum_s = time.perf_counter() - began
    print(f"generated: ledger {args.ledger:,} rows in {ledger_s:.0f} s ({args.ledger / ledger_s:,.0f} rows/s "
          f"with the ranking triggers); {args.reports:,} reports / {incidents:,} incidents in {reports_s:.0f} s; "
          f"VACUUM ANALYZE {vacuum_s:.0f} s", flush=True)
    sizes = {t: await conn.fetchval("SELECT pg_total_relation_size($1::regclass)", t)
             for t in ("points_ledger", "ranking_totals", "rider_report_stats", "reports", "incidents")}
    totals = await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE period = '2026-11') AS month, count(*) FILTER (WHERE period = '2026') AS year,"
        " count(*) AS all_rows FROM ranking_totals")
    print("disk: " + ", ".join(f"{t} {v / 1e6:,.0f} MB" for t, v in sizes.items())
          + f", database {await conn.fetchval('SELECT pg_database_size(current_database())') / 1e9:.2f} GB; "
          f"ranking_totals rows: {totals['all_rows']:,} (November {totals['month']:,} riders, 2026 "
          f"{totals['year']:,})", flush=True)
    paths = {r["level"]: r["paths"] for r in await conn.fetch(
        "SELECT level, array_agg(path ORDER BY path) AS paths FROM areas GROUP BY level")}
    return first, last, [*paths["community"], *paths["grid"]]


async def _generate(conn, settings, args: argparse.Namespace) -> tuple[int, int, list[str]]:
    from gridrider.demo import seed_demo

    await seed_demo(conn, settings)
    print(f"load: PostgreSQL {await conn.fetchval('SHOW server_version')} "
          f"(shared_buffers {await conn.fetchval('SHOW shared_buffers')}); demo town areas; "
          f"{args.riders:,} riders, {args.ledger:,} ledger rows over 2026, {args.reports:,} reports", flush=True)
    return await _load(conn, args)


async def _sample(pool, scenario: Scenario, rng: random.Random) -> float:
    from gridrider.domain import rankings

    scope = rng.choice(scenario.scopes)
    me = rng.choice(scenario.me) if scenario.me else None
    period = rankings.period_of(scenario.period, scenario.at, NOW)
    began = time.perf_counter()
    async with pool.acquire() as conn, conn.transaction(isolation="repeatable_read", readonly=True):
        after = None
        for _ in range(scenario.pages):
            result = await rankings.rider_ranking(conn, period=period, scope=scope, platform=scenario.platform,
                                                  after=after, limit=50, me_id=me)
            after = result.next_cursor
    return (time.perf_counter() - began) * 1000


async def _measure(settings, args: argparse.Namespace) -> int:
    from gridrider.db.pool import connect, create_pool

    conn = await connect(settings.database_url)
    try:
        if args.reuse and await conn.fetchval("SELECT count(*) > 0 FROM points_ledger"):
            print(f"load: reusing database {BENCH_DATABASE} as an earlier --keep run left it", flush=True)
            first, last = await conn.fetchrow("SELECT min(id), max(id) FROM members WHERE pseudonym LIKE 'RK%'")
            small_scopes = [r["path"] for r in await conn.fetch(
                "SELECT path FROM areas WHERE level IN ('community', 'grid') ORDER BY path")]
            if not await conn.fetchval("SELECT count(*) > 0 FROM rider_report_stats"):
                await _first_refresh(conn)
        else:
            first, last, small_scopes = await _generate(conn, settings, args)
        county = [await conn.fetchval("SELECT path FROM areas WHERE level = 'county'")]
        communities = [[p] for p in small_scopes if p.count("/") == 3]
        grids = [[p] for p in small_scopes if p.count("/") == 4]
        rider_grids = {r["member_id"]: [r["path"]] for r in await conn.fetch(
            "SELECT ma.member_id, a.path FROM member_areas ma JOIN areas a ON a.id = ma.area_id "
            "WHERE ma.member_id BETWEEN $1 AND $2 AND ma.member_id % 97 = 0", first, last)}
    finally:
        await conn.close()

    rng = random.Random(20261126)
    riders = list(rider_grids)
    scenarios = [
        Scenario("county (all riders), month, page 1", "month", "2026-11", [county]),
        Scenario("admin, no scope, month, page 1", "month", "2026-11", [None]),
        Scenario("county, year, page 1", "year", "2026", [county]),
        Scenario("county, quarter, platform filter", "quarter", "2026-Q4", [county], platform="eleme"),
        Scenario("county, month, pages 1–10 (cursor)", "month", "2026-11", [county], pages=10),
        Scenario("a community, month", "month", "2026-11", communities),
        Scenario("a grid, month", "month", "2026-11", grids),
        Scenario("a rider: county with own row, month", "month", "2026-11", [county], me=riders),
    ]
    pool = await create_pool(settings.database_url, min_size=args.concurrency, max_size=args.concurrency)
    worst = 0.0
    try:
        print(f"measured: rider_ranking (the endpoint's queries), {args.samples} samples per line after "
              f"{args.warmup} warm-up, {args.concurrency} concurrent callers", flush=True)
        for scenario in scenarios:
            for _ in range(args.warmup):
                await _sample(pool, scenario, rng)
            latencies: list[float] = []

            async def caller(n: int, scenario: Scenario = scenario, latencies: list[float] = latencies) -> None:
                for _ in range(n):
                    latencies.append(await _sample(pool, scenario, rng))

            began = time.perf_counter()
            share = args.samples // args.concurrency
            await asyncio.gather(*(caller(share) for _ in range(args.concurrency)))
            wall = time.perf_counter() - began
            latencies.sort()
            p95 = percentile(latencies, 0.95)
            if "pages 1–10" not in scenario.label:
                worst = max(worst, p95)
            print(f"  {scenario.label:<44} p50 {percentile(latencies, 0.5):6.1f} ms  p95 {p95:6.1f} ms  "
                  f"max {latencies[-1]:6.1f} ms  ({len(latencies) / wall:,.0f}/s)", flush=True)
        async with pool.acquire() as conn:
            from gridrider.db import rankings as db_rankings

            median = await conn.fetchval("SELECT percentile_disc(0.5) WITHIN GROUP (ORDER BY points) "
                                         "FROM ranking_totals WHERE period = '2026-11' AND ranked")
            plan = await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + db_rankings.ABOVE_SQL, "2026-11", None, None,
                                    median)
            print(f"plan of a median rider's rank (riders above {median} points, the county's every rider):")
            for row in plan:
                print("  " + row[0])
    finally:
        await pool.close()
    print(f"goal p95 ≤ 50 ms for a page: worst single-page p95 {worst:.1f} ms → "
          f"{'met' if worst <= 50 else 'NOT met'}")
    return 0


@bench("rankings")
def bench_rankings(argv: list[str]) -> int:
    from gridrider.cli import _migrate

    parser = argparse.ArgumentParser(prog="gridrider bench rankings")
    parser.add_argument("--riders", type=int, default=100_000)
    parser.add_argument("--ledger", type=int, default=10_000_000, help="ledger rows")
    parser.add_argument("--reports", type=int, default=2_000_000, help="reports (two per incident)")
    parser.add_argument("--samples", type=int, default=400, help="requests measured per scenario")
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=1, help="concurrent callers (1: latency alone)")
    parser.add_argument("--keep", action="store_true", help="keep the data (data dir or database) afterwards")
    parser.add_argument("--reuse", action="store_true",
                        help="measure again on the database a --keep run left (configured server only)")
    args = parser.parse_args(argv)
    if min(args.riders, args.ledger, args.reports, args.samples, args.concurrency) < 1 or args.warmup < 0:
        parser.error("counts must be positive")

    with bench_runtime(prefix="gridrider-bench-rankings-", need_redis=False, keep=args.keep) as runtime, \
            bench_database(runtime, BENCH_DATABASE, keep=args.keep or args.reuse, reuse=args.reuse) as settings:
        print(machine_line(), flush=True)
        began = time.perf_counter()
        asyncio.run(_migrate(settings))
        print(f"setup: migrated ({time.perf_counter() - began:.1f} s)", flush=True)
        return asyncio.run(_measure(settings, args))
