"""`gridrider bench merge`: latency of route + merge (`process_report`) when the tables already hold N reports.

Fixed load: the demo town (Zhangwu, ~6×5 km) with N historical reports and the ~N/3 incidents they
belong to, spread over the last 365 days, clustered around hotspots (a fixed seed: every run sees
the same data). Then one new report at a time, inserted pending, and `process_report` run on it in
its own committed transaction, as the worker's job does; latency = acquire → commit of that
transaction. The same kind of samples then runs with 8 concurrent tasks, where reports of one spot
wait for each other's H3-cell advisory locks.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import math
import random
import shutil
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator

import h3
import numpy as np

from gridrider.bench import bench, bench_database, bench_runtime, machine_line, percentile
from gridrider.config import Settings

BENCH_DATABASE = "gridrider_bench_merge"  # with a configured DATABASE_URL: created, used and dropped
SEED = 20260415
DAY_S = 86_400.0
HISTORY_DAYS = 365
M_PER_DEG_LAT = 111_320.0
COURIERS = 500  # bench couriers who wrote the history (reporter_id), a few write most of it
CHUNK_REPORTS = 200_000  # reports generated and copied per transaction

# Share of reports by category, roughly as a town's couriers would see them.
CATEGORY_MIX: dict[str, float] = {
    "garbage_pileup": 0.20, "flying_wire_charging": 0.15, "streetlight_out": 0.12, "blocked_fire_lane": 0.09,
    "illegal_structure": 0.07, "damaged_charging_pile": 0.06, "falling_object_risk": 0.05, "damaged_pole": 0.05,
    "missing_manhole_cover": 0.05, "flooding": 0.04, "exposed_live_wire": 0.03, "road_collapse": 0.01,
    "other": 0.08,
}
HOTSPOTS = 600  # spots where hazards keep coming back (a market, an old compound, a low street)
HOTSPOT_ZIPF = 0.7  # weight of the i-th hotspot ∝ 1 / i^0.7
HOTSPOT_SHARE = 0.75  # incidents at a hotspot; the rest anywhere in the town
HOTSPOT_PRIMARY = 0.6  # a hotspot incident is of the hotspot's own category this often
CORROBORATION_SHARE = 0.6  # new reports measured: this many near an open, recent incident (as ~2/3 of history)
SAMPLE_HOTSPOT_SHARE = 0.85  # the others are new hazards, mostly at hotspots
MEAN_EXTRA_REPORTS = 2.0  # reports per incident = 1 + geometric(mean 2): ~3 on average
NOTES = ("小区门口垃圾堆了三天", "楼道里有电动车充电线", "路灯晚上不亮", "消防通道被车堵住", "井盖松动", "雨后积水很深")

INCIDENT_COLUMNS = (
    "id", "category", "lat", "lon", "cell", "area_id", "state", "report_count", "origin_report_id",
    "first_reporter_id", "last_captured_at", "dispatch_due_at", "dispatched_at", "accept_due_at", "accepted_at",
    "resolved_at", "closed_at", "reached_grid_at", "created_at", "updated_at",
)
REPORT_COLUMNS = (
    "id", "reporter_id", "client_id", "category", "lat", "lon", "accuracy_m", "position_source", "cell",
    "captured_at", "received_at", "queued_for_s", "note", "state", "incident_id", "body_fingerprint", "processed_at",
)
SAMPLE_INSERT_SQL = """
INSERT INTO reports (reporter_id, client_id, category, lat, lon, accuracy_m, position_source, cell, captured_at,
                     received_at, queued_for_s, note, body_fingerprint)
VALUES ($1, $2, $3, $4, $5, 12.0, 'gps', $6, $7, $8, 0, NULL, $9)
RETURNING id
"""


class Category:
    def __init__(self, code: str, radius_m: int, window: dt.timedelta, life_safety: bool) -> None:
        self.code, self.radius_m, self.window_s, self.life_safety = code, radius_m, window.total_seconds(), life_safety


class Town:
    """The town polygon, its hotspots and the category mix; the history and the samples both draw from it."""

    def __init__(self, shapes: list, categories: list[Category], index) -> None:
        import shapely
        from shapely.geometry import shape
        from shapely.strtree import STRtree

        self.index = index
        town = next(a for a in shapes if a.level == "street")
        self.polygon = shape(town.polygon)
        shapely.prepare(self.polygon)
        self.min_lon, self.min_lat, self.max_lon, self.max_lat = self.polygon.bounds
        self.m_per_deg_lon = M_PER_DEG_LAT * math.cos(math.radians((self.min_lat + self.max_lat) / 2))
        grids = [a for a in shapes if a.level == "grid"]
        self.grid_ids = np.array([a.id for a in grids])
        self.grid_sizes = np.array([a.area_m2 for a in grids])
        self.grid_tree = STRtree([shape(a.polygon) for a in grids])

        self.categories = [c for c in categories if c.code in CATEGORY_MIX]
        mix = np.array([CATEGORY_MIX[c.code] for c in self.categories])
        self.mix = mix / mix.sum()
        self.radius_m = np.array([c.radius_m for c in self.categories], dtype=float)
        self.window_s = np.array([c.window_s for c in self.categories])
        self.life_safety = np.array([c.life_safety for c in self.categories])
        self.codes = [c.code for c in self.categories]

        rng = np.random.default_rng(SEED)
        self.hot_lat, self.hot_lon = self.uniform_points(rng, HOTSPOTS)
        self.hot_sigma_m = np.clip(rng.lognormal(math.log(50.0), 0.5, HOTSPOTS), 15.0, 200.0)
        weights = 1.0 / np.arange(1, HOTSPOTS + 1) ** HOTSPOT_ZIPF
        self.hot_p = weights / weights.sum()
        self.hot_category = rng.choice(len(self.categories), size=HOTSPOTS, p=self.mix)

    def uniform_points(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """n points uniform over the town polygon (drawn in its bbox, those outside dropped)."""
        import shapely

        lats, lons, have = [], [], 0
        while have < n:
            lat = rng.uniform(self.min_lat, self.max_lat, 2 * (n - have) + 16)
            lon = rng.uniform(self.min_lon, self.max_lon, lat.size)
            inside = shapely.contains_xy(self.polygon, lon, lat)
            lats.append(lat[inside])
            lons.append(lon[inside])
            have += int(inside.sum())
        return np.concatenate(lats)[:n], np.concatenate(lons)[:n]

    def hazards(self, rng: np.random.Generator, n: int, hotspot_share: float) -> tuple[np.ndarray, ...]:
        """(lat, lon, category index, hotspot index or -1) of n hazards."""
        at_hotspot = rng.random(n) < hotspot_share
        hot = rng.choice(HOTSPOTS, size=n, p=self.hot_p)
        sigma = self.hot_sigma_m[hot]
        bg_lat, bg_lon = self.uniform_points(rng, n)
        lat = np.where(at_hotspot, self.hot_lat[hot] + rng.normal(0.0, 1.0, n) * sigma / M_PER_DEG_LAT, bg_lat)
        lon = np.where(at_hotspot, self.hot_lon[hot] + rng.normal(0.0, 1.0, n) * sigma / self.m_per_deg_lon, bg_lon)
        mixed = rng.choice(len(self.categories), size=n, p=self.mix)
        own = rng.random(n) < HOTSPOT_PRIMARY
        category = np.where(at_hotspot & own, self.hot_category[hot], mixed)
        return lat, lon, category, np.where(at_hotspot, hot, -1)

    def route(self, lat: np.ndarray, lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(area_id, routed) per point, as `AreaIndex.route` decides; the common case vectorised."""
        import shapely

        point_idx, grid_idx = self.grid_tree.query(shapely.points(lon, lat), predicate="intersects")
        order = np.lexsort((self.grid_sizes[grid_idx], point_idx))  # per point, smallest grid first
        first_points, first = np.unique(point_idx[order], return_index=True)
        area = np.full(lat.size, -1, dtype=np.int64)
        area[first_points] = self.grid_ids[grid_idx[order][first]]
        routed = area >= 0
        for i in np.flatnonzero(~routed):  # gaps, the lake, outside the town: the full rules
            route = self.index.route(float(lat[i]), float(lon[i]))
            routed[i] = route.grid_id is not None
            area[i] = route.grid_id if routed[i] else (route.owner_area_id or -1)
        return area, routed


def _cells(lat: list[float], lon: list[float]) -> list[int]:
    to_int, to_cell = h3.str_to_int, h3.latlng_to_cell
    return [to_int(to_cell(a, b, 9)) for a, b in zip(lat, lon, strict=True)]


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _ts(seconds: float) -> dt.datetime | None:
    return None if seconds != seconds else _EPOCH + dt.timedelta(seconds=seconds)  # NaN → NULL


class History:
    """Generates the historical incidents and reports chunk by chunk, ids assigned here."""

    def __init__(self, town: Town, now: dt.datetime, couriers: list[int], with_origin: bool) -> None:
        self.town, self.now_s, self.with_origin = town, now.timestamp(), with_origin
        self.rng = np.random.default_rng(SEED + 1)
        self.bytes_rng = random.Random(SEED + 2)
        self.couriers = np.array(couriers)
        weights = 1.0 / np.arange(1, len(couriers) + 1) ** 0.8
        self.courier_p = weights / weights.sum()
        self.next_incident, self.next_report = 1, 1
        self.python_s = 0.0
        self.states: Counter[str] = Counter()

    def chunk(self, reports: int) -> tuple[list[tuple], list[tuple]]:
        began = time.perf_counter()
        try:
            return self._chunk(reports)
        finally:
            self.python_s += time.perf_counter() - began

    def _chunk(self, reports: int) -> tuple[list[tuple], list[tuple]]:
        rng, town, now = self.rng, self.town, self.now_s
        guess = reports // 2 + 64  # enough incidents to reach `reports` (mean 3 each)
        counts = rng.geometric(1.0 / (1.0 + MEAN_EXTRA_REPORTS), guess)  # ≥ 1, mean 3
        ends = np.cumsum(counts)
        n = min(int(np.searchsorted(ends, reports)) + 1, guess)
        counts, ends = counts[:n], ends[:n]
        if ends[-1] > reports:
            counts[-1] -= ends[-1] - reports
            ends[-1] = reports
        starts = ends - counts
        total = int(ends[-1])

        # Incidents: where, what, when the first report was taken.
        lat, lon, cat, _ = town.hazards(rng, n, HOTSPOT_SHARE)
        t0 = np.minimum(now - rng.random(n) * HISTORY_DAYS * DAY_S, now - 600.0)
        # Reports: the first at the origin; the others nearby, within the category's window (≤ 2 days).
        inc = np.repeat(np.arange(n), counts)
        first = np.zeros(total, dtype=bool)
        first[starts] = True
        span = np.minimum(town.window_s[cat], 2 * DAY_S)[inc]
        captured = np.where(first, t0[inc], t0[inc] + rng.random(total) ** 2 * span)
        captured = np.minimum(captured, now - 60.0)
        jitter = np.where(first, 0.0, 0.35 * town.radius_m[cat][inc])
        r_lat = lat[inc] + rng.normal(0.0, 1.0, total) * jitter / M_PER_DEG_LAT
        r_lon = lon[inc] + rng.normal(0.0, 1.0, total) * jitter / town.m_per_deg_lon
        offline = rng.random(total) < 0.12
        queued = np.where(offline, rng.exponential(1200.0, total), rng.uniform(1.0, 15.0, total))
        received = captured + queued
        processed = received + rng.uniform(0.5, 3.0, total)
        last_captured = np.maximum.reduceat(captured, starts)
        reporter = rng.choice(self.couriers, size=total, p=self.courier_p)
        source = rng.choice(3, size=total, p=[0.85, 0.12, 0.03])
        accuracy = np.where(source == 0, rng.uniform(3.0, 25.0, total), rng.uniform(30.0, 300.0, total))
        noted = rng.random(total) < 0.2
        note_pick = rng.integers(0, len(NOTES), total)

        # Lifecycle: routed at creation (or dispatched by a supervisor later), accepted, resolved,
        # closed 7 days after; recent incidents are mostly still open, old ones mostly closed.
        created = processed[starts]
        area, routed = town.route(lat, lon)
        life = town.life_safety[cat]
        dispatched = np.where(routed, created, created + rng.uniform(600.0, 12 * 3600.0, n))
        accept_due = dispatched + np.where(life, 3600.0, DAY_S)
        accepted = dispatched + np.clip(rng.lognormal(math.log(7200.0), 1.0, n), 120.0, 30 * 3600.0)
        resolved = np.maximum(accepted + rng.lognormal(math.log(DAY_S), 0.8, n), last_captured + 600.0)
        closed = resolved + 7 * DAY_S
        age = now - last_captured
        p_open = np.where(age < 3 * DAY_S, 0.7, np.where(age < 30 * DAY_S, 0.2, 0.0865))
        open_ = (rng.random(n) < p_open) | (resolved > now)
        want_accepted = rng.random(n) < 0.5
        nan = np.full(n, np.nan)
        state = np.where(
            open_,
            np.where(dispatched > now, "unrouted",
                     np.where(want_accepted & (accepted <= now), "accepted", "dispatched")),
            np.where(closed <= now, "closed", "resolved"),
        )
        dispatched = np.where(state == "unrouted", nan, dispatched)
        accept_due = np.where(state == "unrouted", nan, accept_due)
        accepted = np.where(np.isin(state, ["unrouted", "dispatched"]), nan, accepted)
        resolved = np.where(np.isin(state, ["resolved", "closed"]), resolved, nan)
        closed = np.where(state == "closed", closed, nan)
        updated = np.fmax.reduce([created, dispatched, accepted, resolved, closed, processed[ends - 1]])
        self.states.update(state.tolist())

        # Rows, ids assigned in order; cells from the exact points (H3 resolution 9, as intake does).
        inc_base, rep_base = self.next_incident, self.next_report
        self.next_incident, self.next_report = inc_base + n, rep_base + total
        r_lat_l, r_lon_l = r_lat.tolist(), r_lon.tolist()
        cells = _cells(r_lat_l, r_lon_l)
        codes = town.codes
        reporter_l = reporter.tolist()
        starts_l = starts.tolist()
        incidents = [
            (inc_base + i, codes[c], la, lo, cells[s], a if a >= 0 else None, st, k,
             rep_base + s if self.with_origin else None, reporter_l[s], _ts(lc), _ts(cr + DAY_S), _ts(di), _ts(ad),
             _ts(ac), _ts(rs), _ts(cl), _ts(di), _ts(cr), _ts(up))
            for i, (c, la, lo, s, a, st, k, lc, cr, di, ad, ac, rs, cl, up) in enumerate(zip(
                cat.tolist(), lat.tolist(), lon.tolist(), starts_l, area.tolist(), state.tolist(), counts.tolist(),
                last_captured.tolist(), created.tolist(), dispatched.tolist(), accept_due.tolist(),
                accepted.tolist(), resolved.tolist(), closed.tolist(), updated.tolist(), strict=True))
        ]
        sources = ("gps", "network", "manual")
        randbytes, getrandbits = self.bytes_rng.randbytes, self.bytes_rng.getrandbits
        inc_codes = [codes[c] for c in cat.tolist()]
        inc_l = inc.tolist()
        reports_rows = [
            (rep_base + j, reporter_l[j], uuid.UUID(int=getrandbits(128)), inc_codes[i], r_lat_l[j], r_lon_l[j],
             acc if src < 2 else None, sources[src], cells[j], _ts(ca), _ts(re), int(q), NOTES[nt] if nd else None,
             "processed", inc_base + i, randbytes(32), _ts(pr))
            for j, (i, acc, src, ca, re, q, nd, nt, pr) in enumerate(zip(
                inc_l, accuracy.tolist(), source.tolist(), captured.tolist(), received.tolist(), queued.tolist(),
                noted.tolist(), note_pick.tolist(), processed.tolist(), strict=True))
        ]
        return incidents, reports_rows


class Sample:
    def __init__(self, category: str, lat: float, lon: float, kind: str) -> None:
        self.category, self.lat, self.lon, self.kind = category, lat, lon, kind
        self.cell = h3.str_to_int(h3.latlng_to_cell(lat, lon, 9))


OPEN_RECENT_SQL = """
SELECT i.category, i.lat, i.lon FROM incidents i JOIN categories c ON c.code = i.category
WHERE i.state IN ('unrouted', 'dispatched', 'accepted') AND i.last_captured_at >= $1::timestamptz - c.merge_window
"""


def _samples(town: Town, rng: np.random.Generator, n: int, open_recent: list) -> list[Sample]:
    """New reports: corroborations of open incidents still in their window, else new hazards."""
    lat, lon, cat, hot = town.hazards(rng, n, SAMPLE_HOTSPOT_SHARE)
    out = [Sample(town.codes[c], la, lo, "new hazard at a hotspot" if h >= 0 else "new hazard anywhere")
           for c, la, lo, h in zip(cat.tolist(), lat.tolist(), lon.tolist(), hot.tolist(), strict=True)]
    radius = {code: r for code, r in zip(town.codes, town.radius_m.tolist(), strict=True)}
    corroborate = rng.random(n) < CORROBORATION_SHARE if open_recent else np.zeros(n, dtype=bool)
    for i in np.flatnonzero(corroborate):
        code, la, lo = open_recent[int(rng.integers(len(open_recent)))]
        sigma = 0.35 * radius.get(code, 30.0)  # as the history's corroborating reports
        out[i] = Sample(code, la + rng.normal() * sigma / M_PER_DEG_LAT, lo + rng.normal() * sigma / town.m_per_deg_lon,
                        "corroboration")
    return out


# ── timing of each step of process_report ───────────────────────────────────────────────────────

_DB_STEPS = ("report_for_processing", "lock_cells", "merge_candidates", "recurrence_candidates", "absorb_report",
             "insert_incident", "mark_report_processed", "insert_event", "community_of")


class Steps:
    """Wall time of each call process_report makes, by wrapping the module attributes it looks up."""

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = defaultdict(list)

    @contextlib.contextmanager
    def patched(self, index) -> Iterator[None]:
        from gridrider.db import incidents as db_incidents
        from gridrider.domain import incidents as domain

        def wrap_async(name: str, fn):
            async def timed(*args, **kwargs):
                began = time.perf_counter()
                try:
                    return await fn(*args, **kwargs)
                finally:
                    self.times[name].append(time.perf_counter() - began)
            return timed

        def wrap_sync(name: str, fn):
            def timed(*args, **kwargs):
                began = time.perf_counter()
                try:
                    return fn(*args, **kwargs)
                finally:
                    self.times[name].append(time.perf_counter() - began)
            return timed

        saved = {name: getattr(db_incidents, name) for name in _DB_STEPS}
        saved_domain = {name: getattr(domain, name) for name in ("cells_within", "nearest")}
        try:
            for name, fn in saved.items():
                setattr(db_incidents, name, wrap_async(name, fn))
            for name, fn in saved_domain.items():
                setattr(domain, name, wrap_sync(name, fn))
            index.route = wrap_sync("route (AreaIndex)", type(index).route.__get__(index))
            yield
        finally:
            for name, fn in saved.items():
                setattr(db_incidents, name, fn)
            for name, fn in saved_domain.items():
                setattr(domain, name, fn)
            with contextlib.suppress(AttributeError):
                del index.route

    def lines(self, total_s: float, samples: int) -> list[str]:
        out = []
        for name, values in sorted(self.times.items(), key=lambda kv: -sum(kv[1])):
            values.sort()
            out.append(f"  {name:<24} {len(values):>6} calls  mean {sum(values) / len(values) * 1000:7.3f} ms  "
                       f"p50 {percentile(values, 0.5) * 1000:7.3f}  p99 {percentile(values, 0.99) * 1000:7.3f}  "
                       f"max {values[-1] * 1000:7.2f}  {sum(values) / total_s * 100:5.1f} % of the time")
        return out


# ── the phases ──────────────────────────────────────────────────────────────────────────────────

class Run:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.by_path: dict[str, list[float]] = defaultdict(list)
        self.outcomes: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()
        self.steps = Steps()
        self.wall_s = 0.0


async def _insert_samples(pool, samples: list[Sample], couriers: list[int], now: dt.datetime) -> list[int]:
    rnd = random.Random(SEED + 3)
    captured = now - dt.timedelta(minutes=3)
    ids = []
    async with pool.acquire() as conn:
        for s in samples:
            ids.append(await conn.fetchval(
                SAMPLE_INSERT_SQL, rnd.choice(couriers), uuid.uuid4(), s.category, s.lat, s.lon, s.cell, captured,
                now, rnd.randbytes(32)))
    return ids


async def _process(pool, index, report_id: int, run: Run) -> None:
    from gridrider.clock import SystemClock
    from gridrider.domain.incidents import process_report

    clock = SystemClock()
    began = time.perf_counter()
    try:
        async with pool.acquire() as conn:
            acquired = time.perf_counter()
            async with conn.transaction():
                begun = time.perf_counter()
                outcome = await process_report(conn, report_id=report_id, index=index, now=clock.now())
                body_done = time.perf_counter()
            committed = time.perf_counter()
    except Exception as exc:  # counted and shown; one failed sample should not hide the others
        run.errors[type(exc).__name__] += 1
        return
    run.latencies.append(committed - began)
    run.steps.times["(pool acquire)"].append(acquired - began)
    run.steps.times["(BEGIN)"].append(begun - acquired)
    run.steps.times["(COMMIT)"].append(committed - body_done)
    if outcome is None:
        run.outcomes["nothing to do"] += 1
    elif outcome.merged:
        run.outcomes["merged"] += 1
        run.by_path["merged"].append(committed - began)
    else:
        run.outcomes[f"new ({outcome.route})"] += 1
        run.by_path["new incident"].append(committed - began)


async def _sequential(pool, index, report_ids: list[int]) -> Run:
    run = Run()
    with run.steps.patched(index):
        began = time.perf_counter()
        for report_id in report_ids:
            await _process(pool, index, report_id, run)
        run.wall_s = time.perf_counter() - began
    return run


async def _concurrent(pool, index, report_ids: list[int], tasks: int) -> Run:
    run = Run()
    queue = iter(report_ids)

    async def worker() -> None:
        for report_id in queue:  # one shared iterator: each task takes the next report
            await _process(pool, index, report_id, run)

    with run.steps.patched(index):
        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(tasks)))
        run.wall_s = time.perf_counter() - began
    return run


def _run_lines(label: str, run: Run, n: int, steps: bool) -> list[str]:
    lat = sorted(run.latencies)
    ms = [v * 1000 for v in lat]
    outcomes = ", ".join(f"{k} {v}" for k, v in run.outcomes.most_common())
    lines = [
        f"{label}: {len(lat)} of {n} reports in {run.wall_s:.1f} s = {len(lat) / run.wall_s:.0f}/s; {outcomes}"
        + (f"; errors: {dict(run.errors)}" if run.errors else ""),
        f"  process_report transaction (acquire → commit): p50 {percentile(ms, 0.5):.2f} ms, "
        f"p90 {percentile(ms, 0.9):.2f} ms, p99 {percentile(ms, 0.99):.2f} ms, "
        f"mean {sum(ms) / max(len(ms), 1):.2f} ms, max {ms[-1] if ms else float('nan'):.2f} ms",
    ]
    for path, values in sorted(run.by_path.items()):
        values = sorted(v * 1000 for v in values)
        lines.append(f"    {path}: {len(values)}, p50 {percentile(values, 0.5):.2f} ms, "
                     f"p99 {percentile(values, 0.99):.2f} ms, mean {sum(values) / len(values):.2f} ms")
    if steps:
        lines.append("  where the time goes (wall time of each call, summed over all samples):")
        lines += run.steps.lines(sum(lat), len(lat))
    elif "lock_cells" in run.steps.times:
        waits = sorted(run.steps.times["lock_cells"])
        lines.append(f"  lock_cells (waiting for other reports' cells): p50 {percentile(waits, 0.5) * 1000:.2f} ms, "
                     f"p99 {percentile(waits, 0.99) * 1000:.2f} ms, max {waits[-1] * 1000:.2f} ms, "
                     f"{sum(waits) / sum(lat) * 100:.0f} % of the time")
    return lines


# ── setup and the bulk load ─────────────────────────────────────────────────────────────────────

def _gb(n: float) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.0f} MB"


async def _prepare(conn, settings: Settings) -> tuple[list[int], list[Category], list]:
    from gridrider.db import incidents as db_incidents
    from gridrider.demo import seed_demo

    await seed_demo(conn, settings)
    couriers = [r["id"] for r in await conn.fetch(
        """
        INSERT INTO members (role, display_name, pseudonym, phone, platform, privacy_accepted_at)
        SELECT 'courier', '压测骑手 ' || g, 'BM' || lpad(g::text, 6, '0'), '137' || lpad(g::text, 8, '0'),
               (ARRAY['meituan', 'eleme', 'sf', 'jd'])[1 + g % 4], now()
        FROM generate_series(1, $1) AS g
        RETURNING id
        """, COURIERS)]
    categories = [Category(r["code"], r["merge_radius_m"], r["merge_window"], r["life_safety"]) for r in
                  await conn.fetch("SELECT code, merge_radius_m, merge_window, life_safety FROM categories")]
    return couriers, categories, await db_incidents.area_shapes(conn)


async def _load(conn, history: History, reports: int) -> tuple[float, float]:
    """COPY the history in chunks, generating the next chunk in a thread meanwhile; (wall s, copy s)."""
    began, copy_s, done, incidents_done = time.perf_counter(), 0.0, 0, 0
    step = max(CHUNK_REPORTS, reports // 10)
    next_report = step
    pending = asyncio.create_task(asyncio.to_thread(history.chunk, min(CHUNK_REPORTS, reports)))
    while pending is not None:
        incidents, rows = await pending
        done += len(rows)
        incidents_done += len(incidents)
        pending = (asyncio.create_task(asyncio.to_thread(history.chunk, min(CHUNK_REPORTS, reports - done)))
                   if done < reports else None)
        copy_began = time.perf_counter()
        async with conn.transaction():
            await conn.copy_records_to_table("incidents", records=incidents, columns=INCIDENT_COLUMNS)
            await conn.copy_records_to_table("reports", records=rows, columns=REPORT_COLUMNS)
        copy_s += time.perf_counter() - copy_began
        if done >= next_report or done == reports:
            next_report += step
            print(f"  … {done:,} reports, {incidents_done:,} incidents "
                  f"({time.perf_counter() - began:.0f} s)", flush=True)
    for table in ("incidents", "reports"):
        await conn.execute(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
    return time.perf_counter() - began, copy_s


async def _explain(conn, town: Town, categories: dict[str, Category], now: dt.datetime) -> list[str]:
    from gridrider.db.incidents import MERGE_CANDIDATES_SQL, RECURRENCE_CANDIDATES_SQL
    from gridrider.domain.incidents import RECURRENCE_WINDOW, cells_within

    hot = 0  # the busiest hotspot, with its own category
    category = categories[town.codes[int(town.hot_category[hot])]]
    lat, lon = float(town.hot_lat[hot]), float(town.hot_lon[hot])
    cells = cells_within(h3.str_to_int(h3.latlng_to_cell(lat, lon, 9)), category.radius_m)
    lines = [f"EXPLAIN (ANALYZE, BUFFERS) of the merge-candidates query at the busiest hotspot "
             f"({lat:.5f}, {lon:.5f}), {category.code}, radius {category.radius_m} m → {len(cells)} cells, "
             f"window ±{category.window_s / 3600:.0f} h:"]
    window = dt.timedelta(seconds=category.window_s)
    plan = [r[0] for r in await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + MERGE_CANDIDATES_SQL,
                                           category.code, cells, now, window)]
    lines += [f"   {p}" for p in plan]
    lines.append(f" key: {_key_line(plan)}")
    # asyncpg prepares each statement once per connection; after 5 runs PostgreSQL may keep a generic plan.
    cell_list = ",".join(str(c) for c in cells)
    async with conn.transaction():
        await conn.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        await conn.execute("PREPARE bench_merge_candidates(text, bigint[], timestamptz, interval) AS "
                           + MERGE_CANDIDATES_SQL)
        plan = [r[0] for r in await conn.fetch(
            f"EXPLAIN (ANALYZE, BUFFERS) EXECUTE bench_merge_candidates('{category.code}', '{{{cell_list}}}', "
            f"'{now.isoformat()}', '{int(category.window_s)} seconds')")]
        await conn.execute("DEALLOCATE bench_merge_candidates")
    lines.append(f" generic plan (as a prepared statement may end up with): {_key_line(plan)}")
    plan = [r[0] for r in await conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + RECURRENCE_CANDIDATES_SQL,
                                           category.code, cells, now - RECURRENCE_WINDOW)]
    lines.append(f" recurrence-candidates query, same spot: {_key_line(plan)}")
    return lines


def _key_line(plan: list[str]) -> str:
    """The scan that reads the index, what it returned, what the filter threw away, buffers and time."""
    scans = [p.strip().removeprefix("->  ") for p in plan if " on incidents" in p]
    index = next((s for s in scans if "Index" in s), scans[0] if scans else "?")
    top = plan[0].strip()
    removed = next((p.strip() for p in plan if "Rows Removed by Filter" in p), "Rows Removed by Filter: 0")
    buffers = next((p.strip() for p in plan if p.strip().startswith("Buffers:")), "")
    total = next((p.strip() for p in plan if p.startswith("Execution Time")), "")
    returned = top[top.rfind("rows="):].split()[0] if "actual" in top else "?"
    return f"{index}; result {returned}; {removed}; {buffers}; {total}"


async def _main(settings: Settings, args: argparse.Namespace, data_dir: str | None) -> int:
    from gridrider.db.pool import connect, create_pool
    from gridrider.jobs.pipeline import AREA_INDEX

    conn = await connect(settings.database_url)
    try:
        version = await conn.fetchval("SHOW server_version")
        shared = await conn.fetchval("SHOW shared_buffers")
        max_wal = await conn.fetchval("SHOW max_wal_size")
        couriers, categories, shapes = await _prepare(conn, settings)
        index = await AREA_INDEX.current(conn)
        town = Town(shapes, categories, index)
        by_code = {c.code: c for c in categories}
        where = "embedded, throw-away data dir" if data_dir else f"configured, database {BENCH_DATABASE}"
        print(f"load: PostgreSQL {version} ({where}; shared_buffers {shared}); demo town 彰武镇, {len(shapes)} areas; "
              f"{args.reports:,} historical reports over {HISTORY_DAYS} days, ~3 per incident, {HOTSPOTS} hotspots "
              f"({HOTSPOT_SHARE:.0%} of incidents), {COURIERS} couriers; samples {CORROBORATION_SHARE:.0%} "
              f"near open incidents, the rest new hazards ({SAMPLE_HOTSPOT_SHARE:.0%} at hotspots); "
              f"{args.warmup} warm-up + {args.samples} measured one at a time, then {args.samples} more "
              f"with {args.concurrency} concurrent tasks (asyncpg pool of {args.concurrency})", flush=True)
        if data_dir:
            free = shutil.disk_usage(data_dir).free
            print(f"disk: {_gb(free)} free where the data dir is ({data_dir})")

        try:  # FK triggers off for the load when allowed: rows are consistent by construction (checked below)
            await conn.execute("SET session_replication_role = replica")
            replica = True
        except Exception:  # not a superuser: keep the foreign keys; incidents then keep origin_report_id NULL
            replica = False
        size_before = await conn.fetchval("SELECT pg_database_size(current_database())")
        now = dt.datetime.now(dt.UTC)
        history = History(town, now, couriers, with_origin=replica)
        fks = ("FK triggers skipped (session_replication_role = replica), checked afterwards" if replica
               else "FK triggers on, origin_report_id left NULL")
        print(f"generating: Python (numpy, h3) → COPY in chunks of {CHUNK_REPORTS:,} reports; {fks}", flush=True)
        load_s, copy_s = await _load(conn, history, args.reports)
        check_s = 0.0
        if replica:
            await conn.execute("SET session_replication_role = DEFAULT")
            began = time.perf_counter()
            orphans = await conn.fetchval(
                "SELECT (SELECT count(*) FROM reports r WHERE NOT EXISTS (SELECT 1 FROM incidents i"
                " WHERE i.id = r.incident_id)) + (SELECT count(*) FROM incidents i WHERE NOT EXISTS"
                " (SELECT 1 FROM reports r WHERE r.id = i.origin_report_id))")
            check_s = time.perf_counter() - began
            if orphans:
                print(f"error: {orphans} rows break a foreign key")
                return 1
        began = time.perf_counter()
        await conn.execute("VACUUM (ANALYZE) incidents")
        await conn.execute("VACUUM (ANALYZE) reports")
        vacuum_s = time.perf_counter() - began
        n_incidents = history.next_incident - 1
        sizes = {t: await conn.fetchval("SELECT pg_total_relation_size($1::regclass)", t)
                 for t in ("reports", "incidents")}
        heap = {t: await conn.fetchval("SELECT pg_relation_size($1::regclass)", t) for t in ("reports", "incidents")}
        db_size = await conn.fetchval("SELECT pg_database_size(current_database())")
        open_states = sum(v for k, v in history.states.items() if k in ("unrouted", "dispatched", "accepted"))
        states = ", ".join(f"{k} {v / n_incidents:.1%}" for k, v in history.states.most_common())
        print(f"generated {args.reports:,} reports, {n_incidents:,} incidents ({args.reports / n_incidents:.2f} "
              f"reports each; {states}; open {open_states:,}) in {load_s:.1f} s "
              f"(Python {history.python_s:.1f} s in a thread, COPY {copy_s:.1f} s, overlapped; "
              f"{args.reports / load_s:,.0f} reports/s)"
              + (f"; FK check {check_s:.1f} s" if replica else "") + f"; VACUUM ANALYZE {vacuum_s:.1f} s")
        print(f"sizes: reports {_gb(sizes['reports'])} (heap {_gb(heap['reports'])}), incidents "
              f"{_gb(sizes['incidents'])} (heap {_gb(heap['incidents'])}), database {_gb(db_size)}", flush=True)
        per_report = (db_size - size_before) / args.reports
        per_report_s = (load_s + check_s + vacuum_s) / args.reports
        print(f"10 M reports (optional, outside make test): ~{_gb(per_report * 10_000_000)} of database plus "
              f"max_wal_size {max_wal} of WAL while loading, and ≳{per_report_s * 1e7 / 60:.0f} min to generate "
              f"(linear from this run; index inserts slow down once indexes outgrow memory): "
              f"gridrider bench merge --reports 10000000", flush=True)

        pool = await create_pool(settings.database_url, min_size=args.concurrency, max_size=args.concurrency)
        try:
            rng = np.random.default_rng(SEED + 4)
            open_recent = [tuple(r) for r in await conn.fetch(OPEN_RECENT_SQL, dt.datetime.now(dt.UTC))]
            warm = _samples(town, rng, args.warmup, open_recent)
            measured = _samples(town, rng, args.samples, open_recent)
            concurrent = _samples(town, rng, args.samples, open_recent)
            print(f"samples: {len(open_recent):,} open incidents are still within their merge window; measured "
                  f"reports: {', '.join(f'{k} {v}' for k, v in Counter(s.kind for s in measured).most_common())}",
                  flush=True)
            await _sequential(pool, index, await _insert_samples(pool, warm, couriers, dt.datetime.now(dt.UTC)))
            seq = await _sequential(pool, index, await _insert_samples(pool, measured, couriers,
                                                                       dt.datetime.now(dt.UTC)))
            for line in _run_lines("one at a time", seq, len(measured), steps=True):
                print(line)
            con = await _concurrent(pool, index, await _insert_samples(pool, concurrent, couriers,
                                                                         dt.datetime.now(dt.UTC)), args.concurrency)
            for line in _run_lines(f"{args.concurrency} concurrent tasks (another {len(concurrent)} reports drawn "
                                   f"the same way)", con, len(concurrent), steps=False):
                print(line)
            print(f"  throughput {len(con.latencies) / con.wall_s:.0f}/s vs {len(seq.latencies) / seq.wall_s:.0f}/s "
                  f"one at a time")
            async with pool.acquire() as explain_conn:
                for line in await _explain(explain_conn, town, by_code, dt.datetime.now(dt.UTC)):
                    print(line)
        finally:
            await pool.close()
        return 0 if not seq.errors and not con.errors else 1
    finally:
        await conn.close()


@bench("merge")
def bench_merge(argv: list[str]) -> int:
    from gridrider.cli import _migrate

    parser = argparse.ArgumentParser(prog="gridrider bench merge")
    parser.add_argument("--reports", type=int, default=1_000_000, help="historical reports in the tables")
    parser.add_argument("--samples", type=int, default=2000, help="new reports measured (each run)")
    parser.add_argument("--warmup", type=int, default=200, help="new reports processed first, not measured")
    parser.add_argument("--concurrency", type=int, default=8, help="tasks (and pool size) of the concurrent run")
    parser.add_argument("--keep", action="store_true", help="keep the data (data dir or database) afterwards")
    args = parser.parse_args(argv)
    if args.reports < 1 or args.samples < 1 or args.warmup < 0 or args.concurrency < 1:
        parser.error("--reports, --samples and --concurrency must be positive, --warmup not negative")

    with bench_runtime(prefix="gridrider-bench-merge-", need_redis=False, keep=args.keep) as runtime, \
            bench_database(runtime, BENCH_DATABASE, keep=args.keep) as settings:
        print(machine_line(), flush=True)
        began = time.perf_counter()
        asyncio.run(_migrate(settings))
        print(f"setup: migrated ({time.perf_counter() - began:.1f} s)", flush=True)
        return asyncio.run(_main(settings, args, str(runtime.data_dir) if runtime.data_dir else None))
