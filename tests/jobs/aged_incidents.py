"""Incidents with every row that hangs off them, stamped with the test clock's time; retention and archive tests
let them age by moving the clock."""

from __future__ import annotations

import dataclasses
import hashlib
import uuid

from gridrider.clock import ManualClock, local_day
from gridrider.images.blobs import BlobStore, new_blob_key
from tests.factories import make_member, make_report

# How each archived table's rows are named in `Made.rows` (and read back from both schemas).
ROW_KEYS = {"escalations": "incident_id, cycle, stage, level", "open311_requests": "report_id"}
TABLES = ("incidents", "reports", "photos", "notifications", "deliveries", "incident_events", "verifications",
          "escalations", "flags", "open311_requests")


@dataclasses.dataclass
class Made:
    incident: int
    rows: dict[str, set] = dataclasses.field(default_factory=lambda: {t: set() for t in TABLES})
    blob_keys: list[str] = dataclasses.field(default_factory=list)

    def add(self, table: str, key) -> None:
        self.rows[table].add(key)


async def row_keys(db, schema: str, table: str) -> set:
    columns = ROW_KEYS.get(table, "id")
    rows = await db.fetch(f"SELECT {columns} FROM {schema}.{table}")  # names from the constants above
    return {tuple(r.values()) if len(r) > 1 else r[0] for r in rows}


async def make_photo_with_blobs(db, blobs: BlobStore, clock: ManualClock, made: Made, *, report_id: int | None = None,
                                incident_id: int | None = None) -> int:
    """A ready photo (original, display, thumbnail) whose three blobs exist."""
    now = clock.now()
    keys = [new_blob_key("orig", now, "jpg"), new_blob_key("display", now, "webp"), new_blob_key("thumb", now, "jpg")]
    for key in keys:
        await blobs.put(key, b"\xff\xd8\xff " + key.encode())
    photo = await db.fetchval(
        """INSERT INTO photos (report_id, incident_id, role, original_key, upload_sha256, content_type, bytes, width,
                               height, display_key, display_type, thumb_key, state, dhash, created_at, processed_at)
           VALUES ($1, $2, $3, $4, $5, 'image/jpeg', 1000, 640, 480, $6, 'image/webp', $7, 'ready', 42, $8, $8)
           RETURNING id""",
        report_id, incident_id, "report" if report_id else "proof", keys[0], hashlib.sha256(keys[0].encode()).digest(),
        keys[1], keys[2], now)
    made.add("photos", photo)
    made.blob_keys.extend(keys)
    return photo


async def make_incident(db, clock: ManualClock, blobs: BlobStore, *, reporter: int, state: str = "closed",
                        area_id: int | None = None, merged_into: int | None = None, recurrence_of: int | None = None,
                        flag_state: str = "cleared", api_key_id: int | None = None) -> Made:
    """An incident in `state` as of now, with two reports (photos, idempotency keys), a proof photo, audit
    events, a verification, an escalation, a notification and its deliveries, a flag and a ledger row."""
    now = clock.now()
    first = await make_report(db, clock, reporter_id=reporter)
    incident = await db.fetchval(
        """INSERT INTO incidents (category, lat, lon, cell, area_id, state, origin_report_id, last_captured_at,
                                  dispatched_at, resolved_at, closed_at, reject_reason, merged_into_id,
                                  recurrence_of_id, first_reporter_id, created_at, updated_at)
           SELECT r.category, r.lat, r.lon, r.cell, $2, $3::text, r.id, r.captured_at, $4,
                  CASE WHEN $3::text IN ('resolved', 'closed') THEN $4::timestamptz END,
                  CASE WHEN $3::text = 'closed' THEN $4::timestamptz END,
                  CASE WHEN $3::text = 'rejected' THEN 'not_a_hazard' END, $5, $6, r.reporter_id, $4, $4
           FROM reports r WHERE r.id = $1 RETURNING id""",
        first, area_id, state, now, merged_into, recurrence_of)
    made = Made(incident)
    made.add("incidents", incident)
    other_rider = await make_member(db)
    second = await make_report(db, clock, reporter_id=other_rider)
    for report in (first, second):
        made.add("reports", report)
        await db.execute("UPDATE reports SET incident_id = $1, state = 'processed', processed_at = $3 WHERE id = $2",
                         incident, report, now)
        await db.execute("""INSERT INTO report_keys (reporter_id, client_id, report_id, created_at)
                            SELECT reporter_id, client_id, id, received_at FROM reports WHERE id = $1""", report)
        await make_photo_with_blobs(db, blobs, clock, made, report_id=report)
    if state in ("resolved", "closed"):
        await make_photo_with_blobs(db, blobs, clock, made, incident_id=incident)
    for kind in ("created", state):
        made.add("incident_events", await db.fetchval(
            "INSERT INTO incident_events (incident_id, cycle, kind, occurred_at) VALUES ($1, 1, $2, $3) RETURNING id",
            incident, kind, now))
    made.add("verifications", await db.fetchval(
        """INSERT INTO verifications (incident_id, cycle, member_id, answer, lat, lon, distance_m, answered_at)
           VALUES ($1, 1, $2, 'still_there', 42.38, 122.53, 12, $3) RETURNING id""", incident, other_rider, now))
    await db.execute("""INSERT INTO escalations (incident_id, cycle, stage, level, sent_at)
                        VALUES ($1, 1, 'accept', 1, $2)""", incident, now)
    made.add("escalations", (incident, 1, "accept", 1))
    notification = await db.fetchval(
        """INSERT INTO notifications (event, incident_id, audience, dedupe_key, created_at)
           VALUES ('reached_grid', $1, '{}', $2, $3) RETURNING id""", incident, f"test:{uuid.uuid4()}", now)
    made.add("notifications", notification)
    for channel, target in (("stream", str(reporter)), ("sms", str(other_rider))):
        made.add("deliveries", await db.fetchval(
            """INSERT INTO deliveries (notification_id, channel, target, member_id, state, created_at)
               VALUES ($1, $2, $3, $4, 'sent', $5) RETURNING id""", notification, channel, target, reporter, now))
    made.add("flags", await db.fetchval(
        """INSERT INTO flags (kind, member_id, report_id, incident_id, state, decided_at, created_at)
           VALUES ('burst', $1, $2, $3, $4, CASE WHEN $4::text <> 'open' THEN $5::timestamptz END, $5) RETURNING id""",
        other_rider, second, incident, flag_state, now))
    if api_key_id is not None:
        await db.execute("""INSERT INTO open311_requests (report_id, api_key_id, token, created_at)
                            VALUES ($1, $2, $3, $4)""", second, api_key_id, uuid.uuid4().hex, now)
        made.add("open311_requests", second)
    await db.execute(
        """INSERT INTO points_ledger (member_id, reason, amount, source_kind, source_id, cycle, counts_toward_cap,
                                      counts_toward_ranking, local_day, created_at)
           VALUES ($1, 'first_report', 8, 'incident', $2, 1, true, true, $3, $4)""",
        reporter, incident, local_day(now), now)
    return made
