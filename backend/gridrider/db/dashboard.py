"""SQL for the supervisors' dashboard (UX.md, Supervisor): one aggregate query per figure.

Every query takes the same parameters:

- `$1` the subtree paths the figures are restricted to (`areas.path LIKE path || '%'`), or NULL for
  everything (an admin without `scope`);
- `$2`, `$3` the range as instants, `[start, end)`: 00:00 Asia/Shanghai of the first day and of the
  day after the last;
- `$4` now, from the injectable clock (never SQL `now()`).

Each query exists in two spellings, scoped and unscoped, chosen in Python: a prepared statement
with `$1 IS NULL OR …` gets a generic plan that cannot drop the branch, while a plain
`area_id = ANY(ARRAY(…))` lets the planner probe `incidents_area_state_idx` with the subtree's ids.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from gridrider.db.pool import Connection

OVERDUE_LIST_LIMIT = 50
HOTSPOT_LIMIT = 20
CHANNELS = ("webpush", "wecom", "sms", "stream")
DELIVERY_STATES = ("sent", "failed", "pending", "gone", "skipped")

# The areas of the subtrees in $1, computed once per statement (an InitPlan), so the incident scan
# becomes an index probe on area_id instead of a join evaluated per incident row.
_IN_SUBTREES = """{alias}.area_id = ANY(ARRAY(
    SELECT a.id FROM areas a WHERE a.path LIKE ANY (SELECT p || '%' FROM unnest($1::text[]) AS p)))"""
# Unscoped: $1 is NULL and still has to be typed, or PostgreSQL cannot prepare the statement.
_EVERYWHERE = "$1::text[] IS NULL"


def _variants(sql: str, alias: str = "i") -> dict[bool, str]:
    """The statement with its `{scope}` spelled for a scoped (True) and an unscoped (False) caller."""
    return {True: sql.replace("{scope}", _IN_SUBTREES.format(alias=alias)),
            False: sql.replace("{scope}", _EVERYWHERE)}


_COHORT = "{scope} AND i.created_at >= $2 AND i.created_at < $3 AND $4::timestamptz IS NOT NULL"

# ── counts by state and by category ──────────────────────────────────────────────────────────────

COUNTS_SQL = _variants(f"""
SELECT GROUPING(i.state) = 1 AS by_category, i.state, i.category, count(*) AS n
FROM incidents i
WHERE {_COHORT}
GROUP BY GROUPING SETS ((i.state), (i.category))
ORDER BY by_category, n DESC, i.state, i.category
""")

# ── stages: on-time shares and median durations ──────────────────────────────────────────────────

# stage → (due column, done column, overdue-mark column, the state an incident waits in during it)
STAGES: dict[str, tuple[str, str, str, str]] = {
    "dispatch": ("dispatch_due_at", "dispatched_at", "dispatch_overdue_at", "unrouted"),
    "accept": ("accept_due_at", "accepted_at", "accept_overdue_at", "dispatched"),
    "resolve": ("resolve_due_at", "resolved_at", "resolve_overdue_at", "accepted"),
}


def judged_sql(due: str, done: str, mark: str, waiting: str) -> str:
    # Finished, marked overdue, or still waiting in the stage past its due time. A stage that ended
    # some other way (rejected or merged before it was done, without an overdue mark) is not judged.
    return (f"i.{due} IS NOT NULL AND (i.{done} IS NOT NULL OR i.{mark} IS NOT NULL "
            f"OR (i.state = '{waiting}' AND i.{due} <= $4))")


def on_time_sql(due: str, done: str, mark: str) -> str:
    # The cron marks a stage only while the incident still waits in it, so a stage finished late
    # between two passes has no mark: compare the times too.
    return f"i.{due} IS NOT NULL AND i.{done} IS NOT NULL AND i.{done} <= i.{due} AND i.{mark} IS NULL"


# duration → (start column, end column, extra condition)
DURATIONS: dict[str, tuple[str, str, str | None]] = {
    # A reopened cycle sets dispatched_at to the reopen time: only the first cycle measures creation→dispatch.
    "creation_to_dispatch": ("created_at", "dispatched_at", "i.cycle = 1"),
    "dispatch_to_accept": ("dispatched_at", "accepted_at", None),
    "accept_to_resolve": ("accepted_at", "resolved_at", None),
}


def _stage_columns() -> str:
    columns = []
    for stage, (due, done, mark, waiting) in STAGES.items():
        columns.append(f"count(*) FILTER (WHERE {judged_sql(due, done, mark, waiting)}) AS {stage}_judged")
        columns.append(f"count(*) FILTER (WHERE {on_time_sql(due, done, mark)}) AS {stage}_on_time")
    for name, (start, end, extra) in DURATIONS.items():
        measured = f"i.{end} >= i.{start}" + (f" AND {extra}" if extra else "")  # NULL ends fail the comparison
        columns.append(f"percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM i.{end} - i.{start})) "
                       f"FILTER (WHERE {measured}) AS {name}_median_s")
        columns.append(f"count(*) FILTER (WHERE {measured}) AS {name}_n")
    return ",\n       ".join(columns)


STAGES_SQL = _variants(f"""
SELECT {_stage_columns()}
FROM incidents i
WHERE {_COHORT}
""")

# ── overdue now (whatever the range) ──────────────────────────────────────────────────────────────

# One branch per stage, each matching its partial index (incidents_*_due_idx); the window count is
# taken before LIMIT, so the total and the first 50 come from one statement.
OVERDUE_SQL = _variants(f"""
SELECT o.id, o.category, a.code AS area_code, o.stage, o.due_at,
       extract(epoch FROM $4::timestamptz - o.due_at)::bigint AS overdue_s, count(*) OVER () AS total
FROM (
    SELECT i.id, i.category, i.area_id, 'dispatch' AS stage, i.dispatch_due_at AS due_at FROM incidents i
    WHERE i.state = 'unrouted' AND i.dispatch_due_at <= $4 AND {{scope}}
    UNION ALL
    SELECT i.id, i.category, i.area_id, 'accept', i.accept_due_at FROM incidents i
    WHERE i.state = 'dispatched' AND i.accept_due_at <= $4 AND {{scope}}
    UNION ALL
    SELECT i.id, i.category, i.area_id, 'resolve', i.resolve_due_at FROM incidents i
    WHERE i.state = 'accepted' AND i.resolve_due_at <= $4 AND {{scope}}
) o
LEFT JOIN areas a ON a.id = o.area_id
WHERE $2::timestamptz IS NOT NULL AND $3::timestamptz IS NOT NULL
ORDER BY o.due_at, o.id
LIMIT {OVERDUE_LIST_LIMIT}
""")

# ── hotspots and recurrences by H3 cell ──────────────────────────────────────────────────────────

# Both rankings from one pass over the cells: a row comes back when it is in either top list.
CELLS_SQL = _variants(f"""
WITH per_cell AS (
    SELECT i.cell, count(*) AS incidents, count(*) FILTER (WHERE i.recurrence_of_id IS NOT NULL) AS recurrences
    FROM incidents i
    WHERE {_COHORT} AND i.state <> 'merged'
    GROUP BY i.cell
), ranked AS (
    SELECT per_cell.*,
           row_number() OVER (ORDER BY incidents DESC, cell) AS hot_rank,
           row_number() OVER (ORDER BY recurrences DESC, cell) AS recurrence_rank
    FROM per_cell
)
SELECT cell, incidents, recurrences, hot_rank, recurrence_rank
FROM ranked
WHERE hot_rank <= {HOTSPOT_LIMIT} OR (recurrences > 0 AND recurrence_rank <= {HOTSPOT_LIMIT})
ORDER BY hot_rank
""")

# ── riders ───────────────────────────────────────────────────────────────────────────────────────

# Scoped through the incident a report is linked to; unscoped also counts reports not processed yet.
_RIDERS = """
SELECT GROUPING(m.platform) = 1 AS total_row, m.platform,
       count(DISTINCT r.reporter_id) AS riders, count(*) AS reports
FROM reports r
JOIN members m ON m.id = r.reporter_id
{join}
WHERE m.role = 'courier' AND r.received_at >= $2 AND r.received_at < $3 AND $4::timestamptz IS NOT NULL
  AND {scope}
GROUP BY GROUPING SETS ((m.platform), ())
ORDER BY total_row DESC, reports DESC, m.platform NULLS LAST
"""
RIDERS_SQL = {
    True: _variants(_RIDERS.replace("{join}", "JOIN incidents i ON i.id = r.incident_id"))[True],
    False: _variants(_RIDERS.replace("{join}", ""))[False],
}

# ── alert deliveries per channel ─────────────────────────────────────────────────────────────────

_DELIVERIES = f"""
SELECT d.channel, {", ".join(f"count(*) FILTER (WHERE d.state = '{s}') AS {s}" for s in DELIVERY_STATES)}
FROM deliveries d
JOIN notifications n ON n.id = d.notification_id
{{join}}
WHERE n.created_at >= $2 AND n.created_at < $3 AND $4::timestamptz IS NOT NULL AND {{scope}}
GROUP BY d.channel
ORDER BY d.channel
"""
DELIVERIES_SQL = {
    True: _variants(_DELIVERIES.replace("{join}", "JOIN incidents i ON i.id = n.incident_id"))[True],
    False: _variants(_DELIVERIES.replace("{join}", ""))[False],
}


# ── rows ─────────────────────────────────────────────────────────────────────────────────────────


class StageRow(msgspec.Struct, frozen=True):
    judged: int
    on_time: int


class DurationRow(msgspec.Struct, frozen=True):
    median_s: float | None
    n: int


class OverdueRow(msgspec.Struct, frozen=True):
    id: int
    category: str
    area_code: str | None
    stage: str
    due_at: dt.datetime
    overdue_s: int


class CellRow(msgspec.Struct, frozen=True):
    cell: int
    incidents: int
    recurrences: int
    hot_rank: int
    recurrence_rank: int


class PlatformRow(msgspec.Struct, frozen=True):
    platform: str | None
    riders: int
    reports: int


class ChannelRow(msgspec.Struct, frozen=True):
    channel: str
    sent: int
    failed: int
    pending: int
    gone: int
    skipped: int


class Figures(msgspec.Struct, frozen=True):
    by_state: dict[str, int]
    by_category: dict[str, int]
    stages: dict[str, StageRow]
    durations: dict[str, DurationRow]
    overdue_total: int
    overdue: list[OverdueRow]
    cells: list[CellRow]
    active_riders: int
    platforms: list[PlatformRow]
    channels: list[ChannelRow]


async def counts(conn: Connection, args: tuple[Any, ...]) -> tuple[dict[str, int], dict[str, int]]:
    """(incidents by state, incidents by category), largest first."""
    by_state: dict[str, int] = {}
    by_category: dict[str, int] = {}
    for r in await conn.fetch(COUNTS_SQL[args[0] is not None], *args):
        if r["by_category"]:
            by_category[r["category"]] = r["n"]
        else:
            by_state[r["state"]] = r["n"]
    return by_state, by_category


async def stages(conn: Connection, args: tuple[Any, ...]) -> tuple[dict[str, StageRow], dict[str, DurationRow]]:
    r = await conn.fetchrow(STAGES_SQL[args[0] is not None], *args)
    judged = {s: StageRow(judged=r[f"{s}_judged"], on_time=r[f"{s}_on_time"]) for s in STAGES}
    durations = {d: DurationRow(median_s=r[f"{d}_median_s"], n=r[f"{d}_n"]) for d in DURATIONS}
    return judged, durations


async def overdue(conn: Connection, args: tuple[Any, ...]) -> tuple[int, list[OverdueRow]]:
    rows = await conn.fetch(OVERDUE_SQL[args[0] is not None], *args)
    total = rows[0]["total"] if rows else 0
    return total, [OverdueRow(**{k: v for k, v in r.items() if k != "total"}) for r in rows]


async def cells(conn: Connection, args: tuple[Any, ...]) -> list[CellRow]:
    return [CellRow(**r) for r in await conn.fetch(CELLS_SQL[args[0] is not None], *args)]


async def riders(conn: Connection, args: tuple[Any, ...]) -> tuple[int, list[PlatformRow]]:
    """(distinct couriers, per platform); the grand-total row is the first one."""
    rows = await conn.fetch(RIDERS_SQL[args[0] is not None], *args)
    active = rows[0]["riders"] if rows and rows[0]["total_row"] else 0
    platforms = [PlatformRow(platform=r["platform"], riders=r["riders"], reports=r["reports"])
                 for r in rows if not r["total_row"]]
    return active, platforms


async def channels(conn: Connection, args: tuple[Any, ...]) -> list[ChannelRow]:
    """Every channel, with zeros for those nothing went through."""
    found = {r["channel"]: ChannelRow(**r) for r in await conn.fetch(DELIVERIES_SQL[args[0] is not None], *args)}
    return [found.get(c) or ChannelRow(channel=c, sent=0, failed=0, pending=0, gone=0, skipped=0) for c in CHANNELS]


async def figures(conn: Connection, *, paths: list[str] | None, start: dt.datetime, end: dt.datetime,
                  now: dt.datetime) -> Figures:
    """Every figure of the dashboard, read on one connection (the caller holds one snapshot)."""
    args = (paths, start, end, now)
    by_state, by_category = await counts(conn, args)
    judged, durations = await stages(conn, args)
    overdue_total, overdue_rows = await overdue(conn, args)
    cell_rows = await cells(conn, args)
    active, platforms = await riders(conn, args)
    channel_rows = await channels(conn, args)
    return Figures(by_state=by_state, by_category=by_category, stages=judged, durations=durations,
                   overdue_total=overdue_total, overdue=overdue_rows, cells=cell_rows, active_riders=active,
                   platforms=platforms, channels=channel_rows)
