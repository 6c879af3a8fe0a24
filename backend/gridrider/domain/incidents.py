"""From a received report to an incident the right grid team sees (DESIGN.md §2 step 3, §2c).

Route → merge → notify, in one transaction, safe to run twice: a report already processed is left
alone, and concurrent reports of one hazard serialise on advisory locks of the (category, H3 cell)
pairs their merge radius touches, so they end in exactly one incident.
"""

from __future__ import annotations

import datetime as dt
import math

import h3
import msgspec

from gridrider.db import incidents as db_incidents
from gridrider.db.incidents import Candidate, ReportToProcess
from gridrider.db.pool import Connection
from gridrider.domain import notifications
from gridrider.domain.geo import haversine_m
from gridrider.domain.routing import AreaIndex, Route

DISPATCH_WITHIN = dt.timedelta(hours=24)
ACCEPT_WITHIN = dt.timedelta(hours=24)
ACCEPT_WITHIN_LIFE_SAFETY = dt.timedelta(hours=1)
RECURRENCE_WINDOW = dt.timedelta(days=7)
# A resolution-9 cell's edges are ~174 m long on average and no shorter than ~0.8× that; the ring
# count below makes the disk cover every point within the merge radius of the report's cell.
_MIN_EDGE_M = 0.8 * h3.average_hexagon_edge_length(9, unit="m")


class Outcome(msgspec.Struct, frozen=True):
    incident_id: int
    merged: bool  # True: absorbed into an open incident; False: a new incident
    route: str | None = None  # for new incidents: inside | overlap | gap | unrouted
    notification_ids: tuple[int, ...] = ()  # recorded here; the caller enqueues their `notify` jobs


def cells_within(cell: int, radius_m: float) -> list[int]:
    rings = 1 + math.floor(radius_m / (math.sqrt(3) * _MIN_EDGE_M))
    return sorted(h3.str_to_int(c) for c in h3.grid_disk(h3.int_to_str(cell), rings))


def nearest(report: ReportToProcess, candidates: list[Candidate]) -> Candidate | None:
    """The candidate whose origin is nearest, if within the category's radius (ties: the oldest)."""
    best: tuple[float, int, Candidate] | None = None
    for candidate in candidates:
        distance = haversine_m(report.lat, report.lon, candidate.lat, candidate.lon)
        if distance <= report.merge_radius_m and (best is None or (distance, candidate.id) < best[:2]):
            best = (distance, candidate.id, candidate)
    return best[2] if best else None


async def process_report(conn: Connection, *, report_id: int, index: AreaIndex, now: dt.datetime,
                         merge: bool = True) -> Outcome | None:
    """Route and merge one report; None when there is nothing to do (gone, or already processed).

    `merge=False` is the minimal path taken after `process_report` died: a new incident, no merging,
    because a hazard is never dropped.
    """
    report = await db_incidents.report_for_processing(conn, report_id)
    if report is None or report.state == "processed":
        return None
    cells = cells_within(report.cell, report.merge_radius_m)
    await db_incidents.lock_cells(conn, cells, report.category)
    if merge:
        candidates = await db_incidents.merge_candidates(
            conn, category=report.category, cells=cells, captured_at=report.captured_at, window=report.merge_window,
        )
        target = nearest(report, candidates)
        # None also when the candidate closed since the query: then this report starts a new incident.
        cycle = await db_incidents.absorb_report(conn, target.id, captured_at=report.captured_at, now=now) \
            if target is not None else None
        if target is not None and cycle is not None:
            await db_incidents.mark_report_processed(conn, report.id, target.id, now)
            await db_incidents.insert_event(conn, incident_id=target.id, cycle=cycle, kind="report_merged",
                                            actor_id=report.reporter_id, data={"report_id": report.id}, now=now)
            return Outcome(incident_id=target.id, merged=True)
    recurrence = nearest(report, await db_incidents.recurrence_candidates(
        conn, category=report.category, cells=cells, resolved_since=now - RECURRENCE_WINDOW))
    route = index.route(report.lat, report.lon)
    incident_id = await _new_incident(conn, report, route, recurrence, now)
    await db_incidents.mark_report_processed(conn, report.id, incident_id, now)
    notified = await _notify_new_incident(conn, report, route, incident_id, now)
    return Outcome(incident_id=incident_id, merged=False, route=route.how, notification_ids=tuple(notified))


async def _new_incident(conn: Connection, report: ReportToProcess, route: Route, recurrence: Candidate | None,
                        now: dt.datetime) -> int:
    routed = route.grid_id is not None
    accept_within = ACCEPT_WITHIN_LIFE_SAFETY if report.life_safety else ACCEPT_WITHIN
    incident_id = await db_incidents.insert_incident(
        conn, category=report.category, lat=report.lat, lon=report.lon, cell=report.cell,
        # Routed: the grid. Unrouted: the area whose supervisors must dispatch it.
        area_id=route.grid_id if routed else route.owner_area_id,
        state="dispatched" if routed else "unrouted", origin_report_id=report.id,
        recurrence_of_id=recurrence.id if recurrence else None, last_captured_at=report.captured_at,
        # Routed at creation, the dispatch stage is met at once (DESIGN.md §2c).
        dispatch_due_at=now + DISPATCH_WITHIN, dispatched_at=now if routed else None,
        accept_due_at=now + accept_within if routed else None, reached_grid_at=now if routed else None, now=now,
    )
    await db_incidents.insert_event(
        conn, incident_id=incident_id, cycle=1, kind="created", actor_id=report.reporter_id,
        data={"report_id": report.id, "route": route.how, "area_id": route.grid_id or route.owner_area_id,
              "recurrence_of": recurrence.id if recurrence else None}, now=now,
    )
    return incident_id


async def _notify_new_incident(conn: Connection, report: ReportToProcess, route: Route, incident_id: int,
                               now: dt.datetime) -> list[int]:
    """Record who must hear of it; the caller enqueues their `notify` jobs in this transaction."""
    payload = {"reason": "created", "routed": route.grid_id is not None}
    recorded: list[int | None] = []
    if route.grid_id is not None:
        recorded.append(await notifications.record(
            conn, event=notifications.INCIDENT_REACHED_GRID, incident_id=incident_id,
            audience=notifications.grid_audience(route.grid_id), payload=payload,
            dedupe_key=f"incident:{incident_id}:cycle:1:reached_grid", now=now))
    elif route.owner_area_id is not None:
        recorded.append(await notifications.record(
            conn, event=notifications.INCIDENT_UNROUTED, incident_id=incident_id,
            audience=notifications.supervisors_audience(route.owner_area_id), payload=payload,
            dedupe_key=f"incident:{incident_id}:unrouted", now=now))
    if report.life_safety:
        area = route.grid_id or route.owner_area_id
        community = await db_incidents.community_of(conn, area) if area else None
        if community is not None:
            recorded.append(await notifications.record(
                conn, event=notifications.LIFE_SAFETY_CREATED, incident_id=incident_id,
                audience=notifications.supervisors_audience(community), payload=payload,
                dedupe_key=f"incident:{incident_id}:life_safety", now=now))
    return [n for n in recorded if n is not None]
