"""Riders verifying incidents near them (DESIGN.md §2b): still there / gone while open, fixed / not fixed
within 7 days after resolution; one answer per courier per incident per cycle, only from within 300 m.
Two `not_fixed` answers from different couriers reopen the incident on its grid, in a new cycle."""

from __future__ import annotations

import dataclasses
import datetime as dt

from gridrider.db import workflow as db_workflow
from gridrider.db.members import MemberRow
from gridrider.db.pool import Connection
from gridrider.domain import notifications
from gridrider.domain.geo import haversine_m
from gridrider.errors import Conflict, FieldError, InvalidTransition, NotFound, ValidationFailed

MAX_DISTANCE_M = 300
FIXED_WINDOW = dt.timedelta(days=7)
OPEN_ANSWERS = ("still_there", "gone")
RESOLVED_ANSWERS = ("fixed", "not_fixed")
REOPEN_AFTER_NOT_FIXED = 2


class AlreadyAnswered(Conflict):
    code = "already_answered"


class TooFarAway(ValidationFailed):
    code = "too_far_away"


@dataclasses.dataclass
class Answered:
    distance_m: float
    reopened: bool
    notifications: list[int]


def answers_for(state: str) -> tuple[str, ...]:
    if state in ("unrouted", "dispatched", "accepted"):
        return OPEN_ANSWERS
    if state == "resolved":
        return RESOLVED_ANSWERS
    return ()


INCIDENT_FOR_ANSWER_SQL = """
SELECT id, state, cycle, lat, lon, resolved_at, area_id FROM incidents WHERE id = $1 FOR UPDATE
"""
INSERT_ANSWER_SQL = """
INSERT INTO verifications (incident_id, cycle, member_id, answer, lat, lon, distance_m, answered_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (incident_id, member_id, cycle) DO NOTHING
RETURNING id
"""
NOT_FIXED_COUNT_SQL = """
SELECT count(DISTINCT member_id) FROM verifications WHERE incident_id = $1 AND cycle = $2 AND answer = 'not_fixed'
"""
# NEW_CYCLE_SETS is written for the action statements ($4 = now); $2 and $3 are unused here but typed.
AUTOMATIC_REOPEN_SQL = f"UPDATE incidents i SET {db_workflow.NEW_CYCLE_SETS}, updated_at = $4 " \
                       "WHERE i.id = $1 AND i.state = 'resolved' AND $2::bigint IS NULL AND NOT $3 RETURNING i.*"


async def answer(conn: Connection, *, member: MemberRow, incident_id: int, answer: str, lat: float, lon: float,
                 now: dt.datetime) -> Answered:
    if answer not in OPEN_ANSWERS + RESOLVED_ANSWERS:
        raise ValidationFailed(errors=[FieldError("answer", "invalid", "请选择：还在 / 已消失 / 已修好 / 没修好。")])
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ValidationFailed(errors=[FieldError("lat", "out_of_range", "位置无效。")])
    incident = await conn.fetchrow(INCIDENT_FOR_ANSWER_SQL, incident_id)
    # Riders may verify any incident near them (they find them through /incidents/nearby), so the
    # distance is the scope: an incident they are not near is refused whatever its id.
    if incident is None or incident["state"] in ("merged",):
        raise NotFound()
    distance = haversine_m(lat, lon, incident["lat"], incident["lon"])
    if distance > MAX_DISTANCE_M:
        raise TooFarAway(errors=[FieldError("lat", "too_far_away", f"需要在隐患 {MAX_DISTANCE_M} 米内确认。")])
    allowed = answers_for(incident["state"])
    if incident["state"] == "resolved" and now - incident["resolved_at"] > FIXED_WINDOW:
        allowed = ()
    if answer not in allowed:
        raise InvalidTransition(f"{answer} on a {incident['state']} incident")
    inserted = await conn.fetchval(INSERT_ANSWER_SQL, incident_id, incident["cycle"], member.id, answer, lat, lon,
                                   distance, now)
    if inserted is None:
        raise AlreadyAnswered()
    await db_workflow.insert_event(conn, incident_id=incident_id, cycle=incident["cycle"], kind="verification",
                                   actor_id=member.id, data={"answer": answer, "distance_m": round(distance)}, now=now)
    reopened, recorded = False, []
    if answer == "not_fixed" and \
            await conn.fetchval(NOT_FIXED_COUNT_SQL, incident_id, incident["cycle"]) >= REOPEN_AFTER_NOT_FIXED:
        row = await conn.fetchrow(AUTOMATIC_REOPEN_SQL, incident_id, None, False, now)
        if row is not None:
            reopened = True
            await db_workflow.insert_event(conn, incident_id=incident_id, cycle=row["cycle"], kind="reopen",
                                           actor_id=None, data={"automatic": "two not_fixed answers"}, now=now)
            if row["state"] == "dispatched":
                n = await notifications.record(
                    conn, event=notifications.INCIDENT_REACHED_GRID, incident_id=incident_id,
                    audience=notifications.grid_audience(row["area_id"]),
                    payload={"reason": "reopened", "routed": True}, dedupe_key=None, now=now)
                recorded = [n] if n else []
    return Answered(distance_m=distance, reopened=reopened, notifications=recorded)
