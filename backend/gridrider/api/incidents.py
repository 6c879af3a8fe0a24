"""Incidents: the inbox of a grid team or supervisor, one incident in full, riders' nearby view, actions."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from gridrider.api.auth import roles, scope_paths
from gridrider.api.problems import msgspec_field_error
from gridrider.api.reports import MAX_REPORT_BODY, _read_upload, store_photos
from gridrider.api.schemas import RowId
from gridrider.cursors import decode_cursor, encode_cursor
from gridrider.db import incident_views
from gridrider.db import reports as db_reports
from gridrider.db.calendar import work_calendar
from gridrider.db.members import MemberRow
from gridrider.domain import gaming, incident_actions, verification
from gridrider.domain.geo import cell_of, haversine_m
from gridrider.domain.incident_actions import ActionBody
from gridrider.domain.incidents import cells_within
from gridrider.domain.members import mask_phone
from gridrider.domain.workflow import ACTIONS
from gridrider.errors import FieldError, NotFound, ValidationFailed
from gridrider.images.urls import signed_photo_path
from gridrider.jobs.notify import enqueue_notify
from gridrider.jobs.queue import Tx
from gridrider.services import Services

MAX_PAGE = 50
NEARBY_RADIUS_M = 300
STATES = ("unrouted", "dispatched", "accepted", "resolved", "closed", "rejected", "merged")


class IncidentSummary(msgspec.Struct, frozen=True):
    """What the inbox and the full view both show of an incident."""

    id: int
    category: str
    category_zh: str
    category_en: str
    life_safety: bool
    state: str
    cycle: int
    lat: float
    lon: float
    report_count: int
    area_code: str | None
    area_zh: str | None
    stage_due_at: dt.datetime | None
    seconds_left: int | None  # negative once overdue
    complex_state: str
    complex_reason: str | None
    reject_reason: str | None
    appeal_state: str


class IncidentItem(IncidentSummary, frozen=True):
    overdue: bool

    @classmethod
    def of(cls, r: dict[str, Any], now: dt.datetime) -> IncidentItem:
        """An inbox row (db/incident_views.LIST_COLUMNS) as the inbox and the GeoJSON feed show it."""
        return cls(
            id=r["id"], category=r["category"], category_zh=r["category_zh"], category_en=r["category_en"],
            life_safety=r["life_safety"], state=r["state"], cycle=r["cycle"], lat=r["lat"], lon=r["lon"],
            report_count=r["report_count"], area_code=r["area_code"], area_zh=r["area_zh"],
            stage_due_at=r["stage_due_at"], seconds_left=_seconds_left(r["stage_due_at"], now),
            complex_state=r["complex_state"], complex_reason=r["complex_reason"], reject_reason=r["reject_reason"],
            appeal_state=r["appeal_state"], overdue=r["overdue"])


class IncidentPage(msgspec.Struct, frozen=True):
    items: list[IncidentItem]
    next_cursor: str | None


class PhotoLink(msgspec.Struct, frozen=True):
    id: int
    role: str  # report | proof
    report_id: int | None
    state: str
    thumb_url: str | None
    display_url: str | None


class ReportView(msgspec.Struct, frozen=True):
    id: int
    reporter: str  # pseudonym
    reporter_phone: str | None  # masked for grid members, whole for supervisors
    captured_at: dt.datetime
    received_at: dt.datetime
    lat: float
    lon: float
    accuracy_m: float
    note: str | None
    flags: list[str]


class EventView(msgspec.Struct, frozen=True):
    cycle: int
    kind: str
    actor: str | None
    data: dict[str, Any]
    occurred_at: dt.datetime


class VerificationView(msgspec.Struct, frozen=True):
    cycle: int
    answer: str
    distance_m: float
    answered_at: dt.datetime
    by: str


class StageView(msgspec.Struct, frozen=True):
    stage: str
    due_at: dt.datetime | None
    done_at: dt.datetime | None
    overdue_at: dt.datetime | None


class IncidentDetail(IncidentSummary, frozen=True):
    merged_into_id: int | None
    stages: list[StageView]
    reports: list[ReportView]
    photos: list[PhotoLink]
    verifications: list[VerificationView]
    events: list[EventView]


class NearbyItem(msgspec.Struct, frozen=True):
    id: int
    category: str
    category_zh: str
    category_en: str
    life_safety: bool
    state: str
    distance_m: int
    # Where it is, for the map link (the rider is within 300 m of it anyway).
    lat: float
    lon: float
    thumb_url: str | None
    # Which answers this rider may give now (still_there/gone while open, fixed/not_fixed after resolution).
    answers: list[str]


class TransferTarget(msgspec.Struct, frozen=True):
    code: str
    name_zh: str
    name_en: str | None
    distance_m: int  # from the incident to the grid's bounding box; 0 when it lies inside it


# Enough nearest grids to hold the right one when a hazard sits on a boundary; any other is typed.
TRANSFER_TARGETS = 12


class VerificationIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    answer: str
    lat: float
    lon: float


def inbox_cursor(row: dict[str, Any]) -> str:
    return encode_cursor([row["life_safety"], row["sort_due"].isoformat(), row["id"]])


def decode_inbox_cursor(cursor: str | None) -> tuple[bool, dt.datetime, int] | None:
    if not cursor:
        return None
    try:
        life, due, last = decode_cursor(cursor)
        due, last = dt.datetime.fromisoformat(due), int(last)
        # Only what _cursor makes: a flag, a time (naive only for 'infinity', which asyncpg reads as
        # datetime.max and writes back as 'infinity') and a bigint id — a bigger one would fail in SQL (a 500).
        if not isinstance(life, bool) or not 0 <= last < 2**63:
            raise ValueError(cursor)
        return life, due, last
    except (ValueError, TypeError, msgspec.DecodeError):
        raise ValidationFailed(errors=[FieldError("cursor", "invalid", "分页参数无效。")]) from None


def _seconds_left(due: dt.datetime | None, now: dt.datetime) -> int | None:
    return int((due - now).total_seconds()) if due else None


def _photo_link(services: Services, photo: dict[str, Any]) -> PhotoLink:
    secret, now = services.settings.url_signing_secret, services.clock.now()
    ready = photo["state"] == "ready"
    return PhotoLink(id=photo["id"], role=photo["role"], report_id=photo["report_id"], state=photo["state"],
                     thumb_url=signed_photo_path(secret, photo["id"], "thumb", now) if ready else None,
                     display_url=signed_photo_path(secret, photo["id"], "display", now) if ready else None)


def _capacity(me: MemberRow) -> str:
    return "grid" if me.role == "grid_member" else "supervisor"


class IncidentController(Controller):
    path = "/api/v1/incidents"

    @get("/", operation_id="listIncidents", opt=roles("grid_member", "supervisor", "admin"))
    async def inbox(
        self, me: NamedDependency[MemberRow], services: NamedDependency[Services],
        # `state` is a name Litestar reserves for the app state, hence the alias.
        states: Annotated[list[str] | None, QueryParameter(name="state", max_items=7)] = None,
        # Patterns as the tables' CHECKs: nothing else can match, and a NUL must not reach PostgreSQL (a 500).
        category: Annotated[str | None, QueryParameter(max_length=64, pattern=r"^[a-z][a-z0-9_]*$")] = None,
        overdue: FromQuery[bool | None] = None, life_safety: FromQuery[bool | None] = None,
        area: Annotated[str | None, QueryParameter(max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]*$")] = None,
        cursor: Annotated[str | None, QueryParameter(max_length=200)] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=MAX_PAGE)] = 20,
        # The supervisors' queues: appeals to decide (appeal=pending) and complex cases (complex=requested).
        appeal: Annotated[str | None, QueryParameter(pattern="^(pending|upheld|dismissed)$")] = None,
        complex_: Annotated[str | None, QueryParameter(name="complex", pattern="^(requested|approved|declined)$")]
        = None,
    ) -> IncidentPage:
        if states and any(s not in STATES for s in states):
            raise ValidationFailed(errors=[FieldError("state", "invalid", "状态筛选无效。")])
        now = services.clock.now()
        if area is not None:
            await scope_paths(services.pool, me, area)  # outside the caller's areas or unknown: 404 area_not_found
        rows = await incident_views.incident_page(
            services.pool, capacity=_capacity(me), member_id=me.id, is_admin=me.role == "admin", limit=limit + 1,
            states=states, category=category, overdue=overdue, life_safety=life_safety, area_code=area,
            after=decode_inbox_cursor(cursor), appeal_state=appeal, complex_state=complex_)
        items = [IncidentItem.of(r, now) for r in rows[:limit]]
        return IncidentPage(items=items, next_cursor=inbox_cursor(rows[limit - 1]) if len(rows) > limit else None)

    @get("/nearby", operation_id="nearbyIncidents", opt=roles("courier"))
    async def nearby(
        self, me: NamedDependency[MemberRow], services: NamedDependency[Services],
        lat: Annotated[float, QueryParameter(ge=-90, le=90)], lon: Annotated[float, QueryParameter(ge=-180, le=180)],
    ) -> list[NearbyItem]:
        now = services.clock.now()
        cells = cells_within(cell_of(lat, lon), NEARBY_RADIUS_M)
        rows = await incident_views.nearby(services.pool, cells=cells,
                                           resolved_since=now - verification.FIXED_WINDOW, member_id=me.id)
        secret = services.settings.url_signing_secret
        found = []
        for r in rows:
            distance = haversine_m(lat, lon, r["lat"], r["lon"])
            if distance > NEARBY_RADIUS_M:
                continue
            thumb = signed_photo_path(secret, r["thumb_photo_id"], "thumb", now) if r["thumb_photo_id"] else None
            found.append(NearbyItem(id=r["id"], category=r["category"], category_zh=r["category_zh"],
                                    category_en=r["category_en"], life_safety=r["life_safety"], state=r["state"],
                                    distance_m=round(distance), lat=round(r["lat"], 6), lon=round(r["lon"], 6),
                                    thumb_url=thumb,
                                    # one answer per rider and cycle: none left once given
                                    answers=[] if r["answered"] else list(verification.answers_for(r["state"]))))
        return sorted(found, key=lambda item: item.distance_m)

    @get("/{incident_id:int}", operation_id="getIncident",
         opt=roles("grid_member", "supervisor", "admin", "courier"))
    async def detail(self, incident_id: RowId, me: NamedDependency[MemberRow],
                     services: NamedDependency[Services]) -> IncidentDetail:
        pool, now = services.pool, services.clock.now()
        if me.role == "courier":
            if not await incident_views.is_reporter(pool, incident_id, me.id):
                raise NotFound()
        elif await incident_actions.Actor(me).visible(pool, incident_id) is None:
            raise NotFound()
        found = await incident_views.incident_detail(pool, incident_id)
        if found is None:
            raise NotFound()
        i = found["incident"]
        supervisor = me.role in ("supervisor", "admin")
        own_only = me.role == "courier"  # a rider sees their own reports, never other riders
        reports = [ReportView(
            id=r["id"], reporter=r["pseudonym"],
            reporter_phone=(r["phone"] if supervisor else mask_phone(r["phone"])) if r["phone"] else None,
            captured_at=r["captured_at"], received_at=r["received_at"], lat=r["lat"], lon=r["lon"],
            accuracy_m=r["accuracy_m"], note=r["note"], flags=list(r["flags"] or []))
            for r in found["reports"] if not own_only or r["reporter_id"] == me.id]
        own_report_ids = {r.id for r in reports}
        photos = [_photo_link(services, p) for p in found["photos"]
                  if not own_only or p["role"] == "proof" or p["report_id"] in own_report_ids]
        stages = [
            StageView("dispatch", i["dispatch_due_at"], i["dispatched_at"], i["dispatch_overdue_at"]),
            StageView("accept", i["accept_due_at"], i["accepted_at"], i["accept_overdue_at"]),
            StageView("resolve", i["resolve_due_at"], i["resolved_at"], i["resolve_overdue_at"]),
        ]
        events = [] if own_only else [EventView(cycle=e["cycle"], kind=e["kind"], actor=e["actor"], data=e["data"],
                                                occurred_at=e["occurred_at"]) for e in found["events"]]
        verifications = [] if own_only else [
            VerificationView(cycle=v["cycle"], answer=v["answer"], distance_m=v["distance_m"],
                             answered_at=v["answered_at"], by=v["pseudonym"]) for v in found["verifications"]]
        return IncidentDetail(
            id=i["id"], category=i["category"], category_zh=i["category_zh"], category_en=i["category_en"],
            life_safety=i["life_safety"], state=i["state"], cycle=i["cycle"], lat=i["lat"], lon=i["lon"],
            area_code=i["area_code"], area_zh=i["area_zh"], report_count=i["report_count"],
            complex_state=i["complex_state"], complex_reason=i["complex_reason"], reject_reason=i["reject_reason"],
            appeal_state=i["appeal_state"], merged_into_id=i["merged_into_id"], stage_due_at=i["stage_due_at"],
            seconds_left=_seconds_left(i["stage_due_at"], now), stages=stages, reports=reports, photos=photos,
            verifications=verifications, events=events)

    @get("/{incident_id:int}/transfer-targets", operation_id="listTransferTargets",
         opt=roles("grid_member", "supervisor", "admin"))
    async def transfer_targets(self, incident_id: RowId, me: NamedDependency[MemberRow],
                               services: NamedDependency[Services]) -> list[TransferTarget]:
        """The grids this incident may be handed to, nearest first: any grid for a grid member, the supervisor's
        own subtree for a supervisor (as the transfer itself checks), never the grid that has it now."""
        rows = await incident_actions.transfer_targets(services.pool, me, incident_id, limit=TRANSFER_TARGETS)
        if rows is None:
            raise NotFound()
        return [TransferTarget(**row) for row in rows]

    @post("/{incident_id:int}/verifications", operation_id="verifyIncident", opt=roles("courier"), status_code=201)
    async def verify(self, incident_id: RowId, me: NamedDependency[MemberRow], services: NamedDependency[Services],
                     tx: NamedDependency[Tx], data: JSONBody[VerificationIn]) -> dict[str, Any]:
        outcome = await verification.answer(tx.conn, member=me, incident_id=incident_id, answer=data.answer,
                                            lat=data.lat, lon=data.lon, now=services.clock.now())
        for notification_id in outcome.notifications:
            await enqueue_notify(tx, notification_id)
        return {"incident_id": incident_id, "answer": data.answer, "distance_m": round(outcome.distance_m),
                "reopened": outcome.reopened}

    @post("/{incident_id:int}/resolve", operation_id="resolveIncident", opt=roles("grid_member"),
          request_max_body_size=MAX_REPORT_BODY, status_code=200)
    async def resolve(self, request: Request[Any, Any, Any], incident_id: RowId, me: NamedDependency[MemberRow],
                      services: NamedDependency[Services], tx: NamedDependency[Tx]) -> dict[str, Any]:
        """Multipart: a `meta` part ({"note": …}) and 1–3 `photo` parts, the proof, checked like report photos."""
        upload = await _read_upload(request)
        # Someone else's (or no) incident is "not found" before the request is judged or anything stored:
        # a proof photo row for an incident that does not exist would otherwise fail its foreign key (a 500).
        if await incident_actions.Actor(me).visible(tx.conn, incident_id) is None:
            raise NotFound()
        try:
            body = msgspec.convert(upload.raw_meta, ActionBody, strict=False) if upload.raw_meta else ActionBody()
        except msgspec.ValidationError as exc:
            raise ValidationFailed(errors=[msgspec_field_error(str(exc), key="meta")]) from None
        if not upload.photos:
            raise ValidationFailed(errors=[FieldError("photo", "required", "请拍一张处理后的照片。")])
        now = services.clock.now()
        keys, sniffed = await store_photos(services, upload.photos, now)
        photo_ids = []
        for position, (key, found, photo) in enumerate(zip(keys, sniffed, upload.photos, strict=True)):
            photo_ids.append(await db_reports.insert_proof_photo(
                tx.conn, incident_id=incident_id, position=position, original_key=key,
                upload_sha256=db_reports.sha256(photo), content_type=found.content_type, size=found.bytes,
                width=found.width, height=found.height, now=now))
        done = await incident_actions.act(tx.conn, action="resolve", caller=me, incident_id=incident_id, body=body,
                                          now=now, proof_photo_ids=photo_ids)
        await tx.add_job("normalise_photos", {"incident_id": incident_id})
        for notification_id in done.notifications:
            await enqueue_notify(tx, notification_id)
        return {"id": incident_id, "state": done.incident["state"], "cycle": done.incident["cycle"],
                "proof_photo_ids": photo_ids}

    @post("/{incident_id:int}/{action:str}", operation_id="actOnIncident",
          opt=roles("grid_member", "supervisor", "admin", "courier"), status_code=200)
    async def act(self, incident_id: RowId, action: FromPath[str], me: NamedDependency[MemberRow],
                  services: NamedDependency[Services], tx: NamedDependency[Tx],
                  data: JSONBody[ActionBody | None] = None) -> dict[str, Any]:
        if action not in ACTIONS or action == "resolve":
            raise NotFound()
        calendar = await work_calendar(tx.conn) if action == "approve_complex" else None
        done = await incident_actions.act(tx.conn, action=action, caller=me, incident_id=incident_id,
                                          body=data or ActionBody(), now=services.clock.now(), calendar=calendar,
                                          pair_collusion=gaming.PairCollusionRule.of(services.settings))
        for notification_id in done.notifications:
            await enqueue_notify(tx, notification_id)
        i = done.incident
        return {"id": i["id"], "state": i["state"], "cycle": i["cycle"], "area_id": i["area_id"],
                "complex_state": i["complex_state"], "appeal_state": i["appeal_state"]}
