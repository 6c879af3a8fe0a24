"""Carrying out one §2b action: the scoped transition, its event, its points and whom it alerts.

Every action is one UPDATE whose WHERE holds the allowed states *and* the caller's scope, so a
member of grid A acting on grid B's incident changes nothing (and is told 404), and two grid members
accepting at once cannot both win (the second finds the state changed: 409).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

import msgspec

from gridrider.db import workflow as db_workflow
from gridrider.db.members import MemberRow
from gridrider.db.pool import Connection, Pool
from gridrider.domain import gaming, notifications, points
from gridrider.domain.workdays import WorkCalendar
from gridrider.domain.workflow import (
    MAX_GRID_TRANSFERS_PER_CYCLE,
    REJECT_REASONS,
    TRANSITIONS,
    allowed_states,
    capacities_of,
)
from gridrider.errors import Conflict, FieldError, Forbidden, InvalidTransition, NotFound, ValidationFailed

RESOLVE_WITHIN = dt.timedelta(days=7)
MAX_TEXT = 500


class TransferLimitReached(Conflict):
    code = "transfer_limit_reached"


class ActionBody(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    reason: str | None = None  # reject: a reason code; complex/appeal/dismiss: free text
    note: str | None = None
    grid_code: str | None = None  # dispatch, transfer
    target_incident_id: int | None = None  # merge


@dataclasses.dataclass
class Done:
    incident: dict[str, Any]
    notifications: list[int] = dataclasses.field(default_factory=list)


def _text(value: str | None, field: str, *, required: bool) -> str | None:
    value = (value or "").replace("\x00", "").strip()
    if not value:
        if required:
            raise ValidationFailed(errors=[FieldError(field, "required", f"请填写 {field}。")])
        return None
    if len(value) > MAX_TEXT:
        raise ValidationFailed(errors=[FieldError(field, "too_long", f"{field} 不能超过 {MAX_TEXT} 字。")])
    return value


class Actor:
    def __init__(self, member: MemberRow) -> None:
        self.member = member
        self.is_admin = member.role == "admin"

    async def visible(self, conn: Connection, incident_id: int) -> dict[str, Any] | None:
        return await db_workflow.visible_incident(conn, incident_id, member_id=self.member.id,
                                                  is_admin=self.is_admin,
                                                  capacities=list(capacities_of(self.member.role)))


async def _transition(conn: Connection, actor: Actor, action: str, incident_id: int, now: dt.datetime, *,
                      sets: str, params: list[Any] | None = None,
                      extra: dict[str, str] | None = None) -> dict[str, Any]:
    capacities = allowed_states(action, actor.member.role)
    if not capacities:
        raise Forbidden(f"a {actor.member.role} cannot {action}")
    conditions = {capacity: (extra or {}).get(capacity, "") for capacity in capacities}
    sql, _ = db_workflow.scoped_update_sql(sets, conditions, first_free=5 + len(params or []))
    args = [incident_id, actor.member.id, actor.is_admin, now, *(params or []),
            *(sorted(states) for states in capacities.values())]
    row = await conn.fetchrow(sql, *args)
    if row is not None:
        return dict(row)
    current = await actor.visible(conn, incident_id)
    if current is None:
        raise NotFound()
    if action == "transfer" and "grid" in capacities and current["state"] == "dispatched" \
            and current["transfers_this_cycle"] >= MAX_GRID_TRANSFERS_PER_CYCLE:
        raise TransferLimitReached()
    raise InvalidTransition(f"{action} from {current['state']}")


async def _event(conn: Connection, incident: dict[str, Any], kind: str, actor: Actor | None, now: dt.datetime,
                 **data: Any) -> None:
    await db_workflow.insert_event(conn, incident_id=incident["id"], cycle=incident["cycle"], kind=kind,
                                   actor_id=actor.member.id if actor else None,
                                   data={k: v for k, v in data.items() if v is not None}, now=now)


async def _to_grid(conn: Connection, incident: dict[str, Any], reason: str, now: dt.datetime) -> list[int]:
    if incident["state"] != "dispatched":
        return []
    recorded = await notifications.record(
        conn, event=notifications.INCIDENT_REACHED_GRID, incident_id=incident["id"],
        audience=notifications.grid_audience(incident["area_id"]), payload={"reason": reason, "routed": True},
        dedupe_key=None, now=now)
    return [recorded] if recorded else []


async def _to_reporters(conn: Connection, incident_id: int, event: str, payload: dict[str, Any],
                        now: dt.datetime, *, reporters: list[int] | None = None) -> list[int]:
    members = reporters if reporters is not None else await db_workflow.courier_reporters(conn, incident_id)
    if not members:
        return []
    recorded = await notifications.record(conn, event=event, incident_id=incident_id,
                                          audience=notifications.members_audience(members), payload=payload,
                                          dedupe_key=None, now=now)
    return [recorded] if recorded else []


async def act(conn: Connection, *, action: str, caller: MemberRow, incident_id: int, body: ActionBody,
              now: dt.datetime, calendar: WorkCalendar | None = None,
              proof_photo_ids: list[int] | None = None,
              pair_collusion: gaming.PairCollusionRule = gaming.DEFAULT_PAIR_COLLUSION) -> Done:
    """Carry out `action`; the caller's transaction enqueues `notify` for the returned notifications.

    `pair_collusion`: the anti-gaming thresholds an accept is judged by (gaming.PairCollusionRule.of(settings)).
    """
    if action not in TRANSITIONS:
        raise NotFound()
    if not allowed_states(action, caller.role):
        raise Forbidden(f"a {caller.role} cannot {action}")
    actor = Actor(caller)
    # Someone else's incident is "not found" before anything about the request is judged.
    if await actor.visible(conn, incident_id) is None:
        raise NotFound()
    handler = _HANDLERS[action]
    return await handler(conn, actor, incident_id, body, now, calendar=calendar, proof_photo_ids=proof_photo_ids,
                         pair_collusion=pair_collusion)


async def _dispatch(conn, actor, incident_id, body, now, **_):
    grid = await _grid(conn, actor, body, within_scope=True)
    incident = await _transition(
        conn, actor, "dispatch", incident_id, now, params=[grid],
        sets=f"state = 'dispatched', area_id = $5, dispatched_at = $4, reached_grid_at = $4, "
             f"accept_due_at = {db_workflow.ACCEPT_DUE}")
    await _event(conn, incident, "dispatch", actor, now, grid_id=grid)
    return Done(incident, await _to_grid(conn, incident, "dispatched", now))


async def _grid(conn, actor: Actor, body: ActionBody, *, within_scope: bool) -> int:
    code = (body.grid_code or "").strip()
    if not code:
        raise ValidationFailed(errors=[FieldError("grid_code", "required", "请选择网格。")])
    grid = await db_workflow.grid_id_for(conn, code[:64], member_id=actor.member.id, is_admin=actor.is_admin,
                                         within_scope=within_scope)
    if grid is None:
        raise ValidationFailed(errors=[FieldError("grid_code", "invalid", "找不到该网格，或不在你的管辖范围内。")])
    return grid


async def _accept(conn, actor, incident_id, body, now, pair_collusion=gaming.DEFAULT_PAIR_COLLUSION, **_):
    incident = await _transition(conn, actor, "accept", incident_id, now, params=[now + RESOLVE_WITHIN],
                                 sets="state = 'accepted', accepted_at = $4, resolve_due_at = $5")
    await _event(conn, incident, "accept", actor, now)
    # After the event (this accept is one of those counted) and before points, so a flag raised here
    # withholds what this accept pays; the accept itself stands whatever the verdict.
    await gaming.detect_pair_collusion(conn, incident_id=incident_id, grid_member_id=actor.member.id, now=now,
                                       rule=pair_collusion)
    await points.on_accept(conn, incident_id=incident_id, now=now)
    return Done(incident, await _to_reporters(conn, incident_id, notifications.REPORT_ACCEPTED, {}, now))


def _transfers_anywhere(actor: Actor) -> bool:
    """A grid member hands over to any grid (the right one may be outside their own), an admin too; a
    supervisor only within their subtree."""
    return actor.member.role == "grid_member" or actor.is_admin


async def transfer_targets(conn: Connection | Pool, caller: MemberRow, incident_id: int, *,
                           limit: int) -> list[dict[str, Any]] | None:
    """The grids nearest the incident that the caller may transfer it to; None when they cannot see it."""
    actor = Actor(caller)
    if await actor.visible(conn, incident_id) is None:
        return None
    return await db_workflow.transfer_targets(conn, incident_id, member_id=caller.id,
                                              anywhere=_transfers_anywhere(actor), limit=limit)


async def _transfer(conn, actor, incident_id, body, now, **_):
    # Only the rule of _transfers_anywhere decides where it may go. The accept deadline does not move.
    grid = await _grid(conn, actor, body, within_scope=not _transfers_anywhere(actor))
    incident = await _transition(
        conn, actor, "transfer", incident_id, now, params=[grid],
        sets="area_id = $5, reached_grid_at = $4, transfers_this_cycle = i.transfers_this_cycle + 1",
        extra={"grid": f"i.transfers_this_cycle < {MAX_GRID_TRANSFERS_PER_CYCLE} AND i.area_id <> $5",
               "supervisor": "i.area_id <> $5"})
    await _event(conn, incident, "transfer", actor, now, grid_id=grid, note=_text(body.note, "note", required=False))
    return Done(incident, await _to_grid(conn, incident, "transferred", now))


async def _request_complex(conn, actor, incident_id, body, now, **_):
    reason = _text(body.reason, "reason", required=True)
    incident = await _transition(conn, actor, "request_complex", incident_id, now, params=[reason],
                                 sets="complex_state = 'requested', complex_reason = $5",
                                 extra={"grid": "i.complex_state IN ('none', 'declined')"})
    await _event(conn, incident, "request_complex", actor, now, reason=reason)
    return Done(incident)


async def _approve_complex(conn, actor, incident_id, body, now, calendar: WorkCalendar | None = None, **_):
    current = await actor.visible(conn, incident_id)
    if current is None:
        raise NotFound()
    if current["accepted_at"] is None:
        raise InvalidTransition("not accepted")
    assert calendar is not None, "approve_complex needs the working-day calendar"
    due = calendar.complex_resolve_due(current["accepted_at"])
    # Approval clears the resolve stage's overdue mark; escalations already sent stay in the history.
    incident = await _transition(
        conn, actor, "approve_complex", incident_id, now, params=[due, current["accepted_at"]],
        sets="complex_state = 'approved', resolve_due_at = $5, resolve_overdue_at = NULL",
        extra={"supervisor": "i.complex_state = 'requested' AND i.accepted_at = $6"})
    await _event(conn, incident, "approve_complex", actor, now, resolve_due_at=due.isoformat())
    return Done(incident)


async def _decline_complex(conn, actor, incident_id, body, now, **_):
    incident = await _transition(conn, actor, "decline_complex", incident_id, now, sets="complex_state = 'declined'",
                                 extra={"supervisor": "i.complex_state = 'requested'"})
    await _event(conn, incident, "decline_complex", actor, now, reason=_text(body.reason, "reason", required=False))
    return Done(incident)


async def _resolve(conn, actor, incident_id, body, now, proof_photo_ids: list[int] | None = None, **_):
    note = _text(body.note, "note", required=False)
    incident = await _transition(conn, actor, "resolve", incident_id, now, sets="state = 'resolved', resolved_at = $4")
    await _event(conn, incident, "resolve", actor, now, note=note, proof_photo_ids=proof_photo_ids or None)
    await points.on_resolve(conn, incident_id=incident_id, now=now)
    photo = (proof_photo_ids or [None])[0]
    reporters = await db_workflow.courier_reporters(conn, incident_id)
    first = incident["first_reporter_id"]
    recorded = await _to_reporters(conn, incident_id, notifications.REPORT_RESOLVED,
                                   {"photo_id": photo, "points": points.RESOLVE_BONUS}, now,
                                   reporters=[m for m in reporters if m == first])
    recorded += await _to_reporters(conn, incident_id, notifications.REPORT_RESOLVED, {"photo_id": photo}, now,
                                    reporters=[m for m in reporters if m != first])
    return Done(incident, recorded)


async def _reject(conn, actor, incident_id, body, now, **_):
    if body.reason not in REJECT_REASONS:
        raise ValidationFailed(errors=[FieldError("reason", "invalid", "请选择退回原因。")])
    note = _text(body.note, "note", required=False)
    incident = await _transition(conn, actor, "reject", incident_id, now, params=[body.reason],
                                 sets="state = 'rejected', reject_reason = $5")
    await _event(conn, incident, "reject", actor, now, reason=body.reason, note=note)
    await points.on_reject(conn, incident_id=incident_id, reason=body.reason, now=now)
    return Done(incident, await _to_reporters(conn, incident_id, notifications.REPORT_REJECTED,
                                              {"reason": body.reason, "note": note}, now))


async def _merge(conn, actor, incident_id, body, now, **_):
    target_id = body.target_incident_id
    if target_id is None or target_id == incident_id or not 0 < target_id < 2**63:
        raise ValidationFailed(errors=[FieldError("target_incident_id", "invalid", "请选择要合并到的另一条隐患。")])
    # Both rows locked in id order: A→B and B→A at once serialise, and the second finds its source merged.
    await db_workflow.lock_in_id_order(conn, [incident_id, target_id])
    target = await actor.visible(conn, target_id)
    source = await actor.visible(conn, incident_id)
    if source is None:
        raise NotFound()
    if target is None or target["state"] not in ("unrouted", "dispatched", "accepted") \
            or target["category"] != source["category"]:
        raise ValidationFailed(errors=[FieldError("target_incident_id", "invalid",
                                                  "只能合并到你能看到的、同类的未办结隐患。")])
    reporters = await db_workflow.courier_reporters(conn, incident_id)
    incident = await _transition(conn, actor, "merge", incident_id, now, params=[target_id],
                                 sets="state = 'merged', merged_into_id = $5")
    await conn.execute(db_workflow.MOVE_REPORTS_SQL, incident_id, target_id)
    await conn.execute(db_workflow.ADD_REPORT_COUNT_SQL, target_id, source["report_count"],
                       source["last_captured_at"], now)
    await _event(conn, incident, "merge", actor, now, into=target_id)
    await db_workflow.insert_event(conn, incident_id=target_id, cycle=target["cycle"], kind="merged_in",
                                   actor_id=actor.member.id, data={"from": incident_id}, now=now)
    await points.award_ready_reports(conn, incident_id=target_id, now=now)
    return Done(incident, await _to_reporters(conn, target_id, notifications.REPORT_MERGED, {}, now,
                                              reporters=reporters))


async def _reopen(conn, actor, incident_id, body, now, **_):
    incident = await _transition(conn, actor, "reopen", incident_id, now, sets=db_workflow.NEW_CYCLE_SETS)
    await _event(conn, incident, "reopen", actor, now, note=_text(body.note, "note", required=False))
    return Done(incident, await _to_grid(conn, incident, "reopened", now))


async def _appeal(conn, actor, incident_id, body, now, **_):
    reason = _text(body.reason, "reason", required=False)
    incident = await _transition(conn, actor, "appeal", incident_id, now, sets="appeal_state = 'pending'",
                                 extra={"first_reporter": "i.appeal_state = 'none'"})
    await _event(conn, incident, "appeal", actor, now, reason=reason)
    return Done(incident)


async def _uphold_appeal(conn, actor, incident_id, body, now, **_):
    incident = await _transition(conn, actor, "uphold_appeal", incident_id, now, sets=db_workflow.NEW_CYCLE_SETS,
                                 extra={"supervisor": "i.appeal_state = 'pending'"})
    await _event(conn, incident, "uphold_appeal", actor, now, reason=_text(body.reason, "reason", required=False))
    await points.on_appeal_upheld(conn, incident_id=incident_id, cycle=incident["cycle"] - 1, now=now)
    return Done(incident, await _to_grid(conn, incident, "appeal_upheld", now))


async def _dismiss_appeal(conn, actor, incident_id, body, now, **_):
    reason = _text(body.reason, "reason", required=True)
    incident = await _transition(conn, actor, "dismiss_appeal", incident_id, now, sets="appeal_state = 'dismissed'",
                                 extra={"supervisor": "i.appeal_state = 'pending'"})
    await _event(conn, incident, "dismiss_appeal", actor, now, reason=reason)
    return Done(incident)


_HANDLERS = {
    "dispatch": _dispatch, "accept": _accept, "transfer": _transfer, "request_complex": _request_complex,
    "approve_complex": _approve_complex, "decline_complex": _decline_complex, "resolve": _resolve,
    "reject": _reject, "merge": _merge, "reopen": _reopen, "appeal": _appeal, "uphold_appeal": _uphold_appeal,
    "dismiss_appeal": _dismiss_appeal,
}
assert set(_HANDLERS) == set(TRANSITIONS)
