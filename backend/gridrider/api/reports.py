"""Report intake and a courier's own reports (DESIGN.md §2 step 2)."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from typing import Any

import msgspec
from litestar import Controller, Request, Response, get, post
from litestar.datastructures import UploadFile
from litestar.di import NamedDependency
from litestar.exceptions import ClientException
from litestar.params import FromQuery

from gridrider.api.auth import roles
from gridrider.api.problems import msgspec_field_error
from gridrider.api.ratelimit import Limit, RateLimiter
from gridrider.api.schemas import RowId
from gridrider.db import reports as db_reports
from gridrider.db.members import MemberRow
from gridrider.db.pool import Connection
from gridrider.db.reports import ReportRow
from gridrider.domain import points
from gridrider.domain.geo import cell_of
from gridrider.domain.reports import (
    MAX_PHOTOS,
    ClientIdReused,
    ReportMeta,
    body_fingerprint,
    client_id_of,
    validate_meta,
)
from gridrider.errors import DomainError, FieldError, NotFound, RateLimited, ReportArchived, ValidationFailed
from gridrider.images.blobs import new_blob_key
from gridrider.images.sniff import MAX_PHOTO_BYTES, PhotoRejected, SniffedPhoto, sniff_photo
from gridrider.images.urls import signed_photo_path
from gridrider.jobs.queue import transaction_on
from gridrider.metrics import REPORTS_RECEIVED
from gridrider.services import Services

# Generous: a day of offline reports flushed at once passes; a stolen account's flood does not.
REPORT_INTAKE = Limit(name="report_intake", limit=300, window_s=3600)
# Three photos at the cap plus the metadata and multipart framing; larger bodies are refused unread.
MAX_REPORT_BODY = MAX_PHOTOS * MAX_PHOTO_BYTES + 256 * 1024
MAX_META_BYTES = 16 * 1024
MAX_PAGE = 50


class MalformedMultipart(DomainError):
    status, code = 400, "malformed_multipart"


class UnsupportedMediaType(DomainError):
    status, code = 415, "unsupported_media_type"


class TooManyPhotos(DomainError):
    status, code = 422, "too_many_photos"


class PhotoError(DomainError):
    """A photo refused by its header; status and code come from the sniffer."""

    def __init__(self, position: int, rejected: PhotoRejected) -> None:
        super().__init__(rejected.detail, errors=[FieldError(f"photo[{position}]", rejected.code, rejected.detail)])
        self.status = rejected.status  # type: ignore[misc]
        self.code = rejected.code  # type: ignore[misc]


class PhotoOut(msgspec.Struct, frozen=True):
    id: int
    position: int
    state: str  # pending | ready | failed
    thumb_url: str | None = None
    display_url: str | None = None


class ReportOut(msgspec.Struct, frozen=True):
    id: int
    client_id: uuid.UUID
    state: str  # received | processed
    category: str
    lat: float
    lon: float
    accuracy_m: float | None
    position_source: str
    captured_at: dt.datetime
    received_at: dt.datetime
    note: str | None
    flags: list[str]
    photos: list[PhotoOut]
    incident_id: int | None
    incident_state: str | None
    # Points this report earned (ledger rows, net of reversals) and, while its incident is open, what it
    # is expected to earn; None where not worked out (the answers to an upload).
    points_final: int
    points_provisional: int | None


class ReportPage(msgspec.Struct, frozen=True):
    items: list[ReportOut]
    next_cursor: str | None


def report_out(report: ReportRow, services: Services, expected: dict[int, int] | None = None) -> ReportOut:
    """`expected`: provisional points by incident (domain/points.provisional_by_incident); they are shown on
    the rider's earliest report in the incident, where the incident's awards land."""
    secret, now = services.settings.url_signing_secret, services.clock.now()
    photos = [
        PhotoOut(
            id=p.id, position=p.position, state=p.state,
            thumb_url=signed_photo_path(secret, p.id, "thumb", now) if p.state == "ready" else None,
            display_url=signed_photo_path(secret, p.id, "display", now) if p.state == "ready" else None,
        )
        for p in report.photos
    ]
    return ReportOut(
        id=report.id, client_id=report.client_id, state=report.state, category=report.category, lat=report.lat,
        lon=report.lon, accuracy_m=report.accuracy_m, position_source=report.position_source,
        captured_at=report.captured_at, received_at=report.received_at, note=report.note, flags=report.flags,
        photos=photos, incident_id=report.incident_id, incident_state=report.incident_state,
        points_final=report.points_final,
        points_provisional=None if expected is None else (
            expected.get(report.incident_id, 0) if report.earns_incident_points else 0),
    )


class Upload(msgspec.Struct, frozen=True):
    raw_meta: dict[str, Any]
    photos: list[bytes]


async def _read_upload(request: Request[Any, Any, Any]) -> Upload:
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        raise UnsupportedMediaType("send multipart/form-data with a meta part and 0-3 photo parts")
    try:
        form = await request.form()
    except ClientException as exc:
        if exc.status_code == 413:
            raise
        raise MalformedMultipart(str(exc.detail)[:200]) from None
    except (UnicodeDecodeError, LookupError):  # a text part in an unknown or broken charset
        raise MalformedMultipart("a text part could not be decoded") from None
    unknown = sorted({name for name in form if name not in ("meta", "photo")})
    if unknown:
        raise ValidationFailed(errors=[FieldError(name[:40], "unknown_field", f"不支持的字段 {name[:40]}。")
                                       for name in unknown])
    metas = form.getall("meta") if "meta" in form else []
    if not metas:
        raise ValidationFailed(errors=[FieldError("meta", "required", "缺少 meta 部分。")])
    if len(metas) > 1:
        raise ValidationFailed(errors=[FieldError("meta", "duplicate", "meta 部分只能有一个。")])
    meta = metas[0]
    meta_bytes = await meta.read() if isinstance(meta, UploadFile) else str(meta).encode()
    if len(meta_bytes) > MAX_META_BYTES:
        raise ValidationFailed(errors=[FieldError("meta", "too_large", "meta 部分太大。")])
    try:
        raw = msgspec.json.decode(meta_bytes)
    except msgspec.DecodeError:
        raise ValidationFailed(errors=[FieldError("meta", "invalid_json", "meta 不是有效的 JSON。")]) from None
    if not isinstance(raw, dict):
        raise ValidationFailed(errors=[FieldError("meta", "invalid_json", "meta 必须是 JSON 对象。")])
    photos = []
    for part in form.getall("photo") if "photo" in form else []:
        if not isinstance(part, UploadFile):
            raise ValidationFailed(errors=[FieldError("photo", "not_a_file", "photo 必须是文件。")])
        photos.append(await part.read())
    return Upload(raw_meta=raw, photos=photos)


async def store_photos(services: Services, photos: list[bytes], now: dt.datetime,
                       ) -> tuple[list[str], list[SniffedPhoto]]:
    """Check 0–3 uploaded photos by their headers and store their bytes; their blob keys and what was found.

    Bytes go to the blob store before the caller's transaction: if that fails, the orphan sweep
    removes them. Report photos and proof (after) photos both come through here."""
    if len(photos) > MAX_PHOTOS:
        raise TooManyPhotos(errors=[FieldError("photo", "too_many_photos", "最多只能上传 3 张照片。")])
    sniffed: list[SniffedPhoto] = []
    for position, photo in enumerate(photos):
        try:
            sniffed.append(sniff_photo(photo))
        except PhotoRejected as rejected:
            raise PhotoError(position, rejected) from None
    keys = [new_blob_key("orig", now, found.extension) for found in sniffed]
    for key, photo in zip(keys, photos, strict=True):
        await services.blobs.put(key, photo)
    return keys, sniffed


def _parse_meta(raw: dict[str, Any]) -> ReportMeta:
    try:
        return msgspec.convert(raw, ReportMeta, strict=False)
    except msgspec.ValidationError as exc:
        raise ValidationFailed(errors=[msgspec_field_error(str(exc), key="meta")]) from None


class ReportController(Controller):
    path = "/api/v1"

    @post("/reports", operation_id="createReport", opt=roles("courier"), request_max_body_size=MAX_REPORT_BODY)
    async def create(self, request: Request[Any, Any, Any], me: NamedDependency[MemberRow],
                     services: NamedDependency[Services], limiter: NamedDependency[RateLimiter]) -> Response[ReportOut]:
        upload = await _read_upload(request)
        client_id = client_id_of(upload.raw_meta)
        photo_hashes = [hashlib.sha256(photo).digest() for photo in upload.photos]
        fingerprint = body_fingerprint(upload.raw_meta, photo_hashes)
        # One connection for the whole request, taken only once the body is read (a slow 4G upload
        # must not hold a database connection); it sits idle, outside any transaction, during fsync.
        async with services.pool.acquire() as conn:
            # Idempotency first, before validation and rate limits: a phone retrying after days offline
            # gets the report's current state, whatever changed meanwhile.
            existing = await db_reports.report_id_for_key(conn, me.id, client_id)
            if existing is not None:
                return await self._replay(conn, services, me, existing, fingerprint)

            now = services.clock.now()
            category_code = str(upload.raw_meta.get("category", ""))[:64].replace("\x00", "")
            category = await db_reports.category_info(conn, category_code)
            if category is None or not category.life_safety:
                decision = await limiter.hit(REPORT_INTAKE, f"member:{me.id}", now=now.timestamp())
                if not decision.allowed:
                    raise RateLimited(decision.retry_after_s)
            meta = _parse_meta(upload.raw_meta)
            flags = validate_meta(meta, category=category, now=now)
            keys, sniffed = await store_photos(services, upload.photos, now)
            async with transaction_on(conn, services.clock, services.redis,
                                      max_attempts=services.settings.job_max_attempts) as tx:
                report_id = await db_reports.insert_report(
                    conn, reporter_id=me.id, client_id=client_id, category=meta.category, lat=meta.lat,
                    lon=meta.lon, accuracy_m=meta.accuracy_m, position_source=meta.position_source,
                    cell=cell_of(meta.lat, meta.lon), captured_at=meta.captured_at, received_at=now,
                    queued_for_s=meta.queued_for_s, note=meta.note, flags=flags, body_fingerprint=fingerprint,
                )
                if report_id is not None:
                    for position, (key, found, digest) in enumerate(zip(keys, sniffed, photo_hashes, strict=True)):
                        await db_reports.insert_photo(
                            conn, report_id=report_id, position=position, original_key=key, upload_sha256=digest,
                            content_type=found.content_type, size=found.bytes, width=found.width,
                            height=found.height, now=now,
                        )
                    await tx.add_job("process_report", {"report_id": report_id})
                    if sniffed:
                        await tx.add_job("normalise_photos", {"report_id": report_id})
            if report_id is None:
                # An identical request committed first (the phone retried while we worked): a replay.
                for key in keys:
                    await services.blobs.delete(key)
                winner = await db_reports.report_id_for_key(conn, me.id, client_id)
                assert winner is not None
                return await self._replay(conn, services, me, winner, fingerprint)
            REPORTS_RECEIVED.labels("app").inc()  # committed above: a replay or a rollback never counts
            report = await db_reports.own_report(conn, report_id, me.id)
        assert report is not None
        return Response(report_out(report, services), status_code=201)

    @staticmethod
    async def _replay(conn: Connection, services: Services, me: MemberRow, report_id: int,
                      fingerprint: bytes) -> Response[ReportOut]:
        report = await db_reports.own_report(conn, report_id, me.id)
        if report is None:
            # The key outlives its report (report_keys are kept forever; jobs/archive.py moves old
            # reports out of the hot tables): a replay that old gets a clear answer, not a 500.
            raise ReportArchived(f"report {report_id} of client_id replay is archived")
        if report.body_fingerprint != fingerprint:
            raise ClientIdReused()
        return Response(report_out(report, services), status_code=200)

    @get("/reports/{report_id:int}", operation_id="getReport", opt=roles("courier"))
    async def get_report(self, me: NamedDependency[MemberRow], services: NamedDependency[Services],
                         report_id: RowId) -> ReportOut:
        report = await db_reports.own_report(services.pool, report_id, me.id)
        if report is None:
            raise NotFound()
        return report_out(report, services, await points.provisional_by_incident(services.pool, member_id=me.id))

    @get("/me/reports", operation_id="listMyReports", opt=roles("courier"))
    async def my_reports(self, me: NamedDependency[MemberRow], services: NamedDependency[Services],
                         cursor: FromQuery[str | None] = None, limit: FromQuery[int] = 20) -> ReportPage:
        before_id = _decode_cursor(cursor)
        size = max(1, min(limit, MAX_PAGE))
        rows = await db_reports.own_reports_page(services.pool, me.id, before_id=before_id, limit=size + 1)
        expected = await points.provisional_by_incident(services.pool, member_id=me.id)
        items = [report_out(r, services, expected) for r in rows[:size]]
        next_cursor = str(rows[size - 1].id) if len(rows) > size else None
        return ReportPage(items=items, next_cursor=next_cursor)


def _decode_cursor(cursor: str | None) -> int | None:
    if cursor is None or cursor == "":
        return None
    if not (cursor.isascii() and cursor.isdigit()) or len(cursor) > 18:
        raise ValidationFailed(errors=[FieldError("cursor", "invalid", "无效的分页标记。")])
    return int(cursor)
