"""POST requests: a city system's service request becomes a report of its key's system member and goes
through the ordinary pipeline (route → merge → notify), so a hotline call and a rider's report of
the same hazard end in one incident.

The order follows report intake (DESIGN.md §2 step 2): the key, then the idempotency record — a
retry with the same `attribute[client_id]` gets the same token before any other check, rate limit
included — then the rate limit, validation, the service, the key's area, and one transaction for
the report, its Open311 record and its `process_report` job.

`media_url` is recorded and never fetched. The caller's personal fields (email, names, phone,
device and account ids) are checked for size and dropped: the city system keeps its callers'
details, and nothing here needs them.
"""

from __future__ import annotations

import hashlib
import math
import re
import secrets
import uuid
from typing import Any
from urllib.parse import urlsplit

import msgspec

from gridrider.api.ratelimit import Limit, RateLimiter
from gridrider.db import open311 as db_open311
from gridrider.db import reports as db_reports
from gridrider.db.apikeys import ApiKeyRow
from gridrider.db.pool import Connection
from gridrider.domain.geo import cell_of
from gridrider.domain.reports import MAX_NOTE_CHARS
from gridrider.errors import FieldError, RateLimited
from gridrider.jobs.queue import transaction_on
from gridrider.metrics import REPORTS_RECEIVED
from gridrider.open311.errors import BadRequest, ClientIdReused, OutsideKeyArea, ServiceNotFound
from gridrider.open311.keys import within_area
from gridrider.open311.services import CLIENT_ID_ATTRIBUTE
from gridrider.services import Services

# A hotline position is an operator's pin on a map from what the caller said: about a street's width.
HOTLINE_ACCURACY_M = 100.0
MAX_DESCRIPTION = 4000  # the spec's limit
MAX_CLIENT_REF = 100
# Fixed namespace: the same attribute[client_id] from the same key always maps to the same report key.
CLIENT_ID_NAMESPACE = uuid.UUID("6f1b0c5e-3a8e-4d0f-9a51-0d3c1c2f3110")
_ATTRIBUTE = re.compile(r"^attribute\[([A-Za-z0-9_.-]{1,64})\](\[\])?$")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
MAX_FIELDS = 60

# field → most characters accepted
_LIMITS = {
    "api_key": 100, "jurisdiction_id": 200, "service_code": 64, "lat": 40, "long": 40,
    "address_string": 500, "address_id": 100, "description": MAX_DESCRIPTION, "media_url": 2000,
    "email": 254, "device_id": 200, "account_id": 200, "first_name": 100, "last_name": 100, "phone": 40,
}
_MULTILINE = {"description", "address_string"}


class RequestForm(msgspec.Struct, frozen=True):
    fields: dict[str, str]
    attributes: dict[str, list[str]]

    def get(self, name: str) -> str | None:
        value = self.fields.get(name, "")
        return value if value.strip() else None  # the spec: empty means absent

    @property
    def client_ref(self) -> str | None:
        values = self.attributes.get(CLIENT_ID_ATTRIBUTE, [])
        return values[0] if values and values[0].strip() else None


class ValidRequest(msgspec.Struct, frozen=True):
    service_code: str
    lat: float
    lon: float
    description: str | None
    address_string: str | None
    address_id: str | None
    media_url: str | None


class Filed(msgspec.Struct, frozen=True):
    token: str
    created: bool  # False: a retry answered with the first request's token


def intake_limit(per_hour: int) -> Limit:
    return Limit(name="open311_intake", limit=per_hour, window_s=3600)


def read_form(items: list[tuple[str, Any]]) -> RequestForm:
    """The form's fields, refusing files, unknown or repeated fields, oversized and control-character values."""
    if len(items) > MAX_FIELDS:
        raise BadRequest("body", "too_large", "字段太多。")
    fields: dict[str, str] = {}
    attributes: dict[str, list[str]] = {}
    errors: list[FieldError] = []
    for name, value in items:
        shown = name[:80]
        if not isinstance(value, str):
            errors.append(FieldError(shown, "invalid", f"{shown} 不能是文件；媒体请用 media_url 给出链接。"))
            continue
        if (attribute := _ATTRIBUTE.match(name)) is not None:
            if len(value) > 200 or _CONTROL.search(value):
                errors.append(FieldError(shown, "invalid", f"{shown} 的值无效。"))
            attributes.setdefault(attribute.group(1), []).append(value)
            continue
        if name not in _LIMITS:
            errors.append(FieldError(shown, "unknown_field", f"不支持的字段 {shown}。"))
        elif name in fields:
            errors.append(FieldError(name, "duplicate", f"{name} 只能出现一次。"))
        elif len(value) > _LIMITS[name]:
            errors.append(FieldError(name, "too_long", f"{name} 太长。"))
        elif _CONTROL.search(value) or (name not in _MULTILINE and ("\n" in value or "\r" in value)):
            errors.append(FieldError(name, "invalid_character", f"{name} 含有无效字符。"))
        else:
            fields[name] = value
    client_refs = attributes.get(CLIENT_ID_ATTRIBUTE, [])
    field = f"attribute[{CLIENT_ID_ATTRIBUTE}]"
    if len(client_refs) > 1:
        errors.append(FieldError(field, "duplicate", f"{field} 只能出现一次。"))
    elif client_refs and len(client_refs[0]) > MAX_CLIENT_REF:
        errors.append(FieldError(field, "too_long", f"{field} 最多 {MAX_CLIENT_REF} 个字符。"))
    if errors:
        raise BadRequest.of(errors)
    return RequestForm(fields=fields, attributes=attributes)


def _number(raw: str | None) -> Any:
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return raw


def fingerprint(form: RequestForm) -> bytes:
    """What decides whether a retry 'differs': what was asked, where, and the media link; numbers by value."""
    canonical = [form.get("service_code"), _number(form.get("lat")), _number(form.get("long")),
                 form.get("description"), form.get("address_string"), form.get("address_id"), form.get("media_url")]
    return hashlib.sha256(msgspec.json.encode([repr(part) for part in canonical])).digest()


def _coordinate(form: RequestForm, name: str, bound: float) -> tuple[float | None, FieldError | None]:
    raw = form.get(name)
    if raw is None:
        return None, FieldError(name, "location_required", "需要 lat 和 long。")
    try:
        value = float(raw)
    except ValueError:
        return None, FieldError(name, "invalid", f"{name} 须为数字。")
    if not (math.isfinite(value) and -bound <= value <= bound):
        return None, FieldError(name, "out_of_range", f"{name} 须在 -{bound:g} 到 {bound:g} 之间。")
    return value, None


def _media_url(raw: str | None) -> tuple[str | None, FieldError | None]:
    if raw is None:
        return None, None
    refused = FieldError("media_url", "media_url_invalid", "media_url 必须是 http 或 https 链接。")
    try:
        parts = urlsplit(raw)
        host = parts.hostname
    except ValueError:  # a malformed IPv6 literal or port
        return None, refused
    # Checked as text only: the link is recorded for people to follow, never fetched from here.
    if parts.scheme not in ("http", "https") or not host or " " in raw:
        return None, refused
    return raw, None


def validate(form: RequestForm) -> ValidRequest:
    errors: list[FieldError] = []
    code = form.get("service_code")
    if code is None:
        errors.append(FieldError("service_code", "required", "缺少 service_code。"))
    lat, lat_error = _coordinate(form, "lat", 90)
    lon, lon_error = _coordinate(form, "long", 180)
    errors += [e for e in (lat_error, lon_error) if e is not None]
    media_url, media_error = _media_url(form.get("media_url"))
    if media_error is not None:
        errors.append(media_error)
    description = form.get("description")
    if description is not None and not description.strip():
        description = None
    if errors:
        raise BadRequest.of(errors)
    assert code is not None and lat is not None and lon is not None
    return ValidRequest(service_code=code, lat=lat, lon=lon, description=description,
                        address_string=form.get("address_string"), address_id=form.get("address_id"),
                        media_url=media_url)


def note_of(request: ValidRequest) -> str | None:
    """What the grid team reads: the description and the address as said, within a report note's 500 characters."""
    parts = [p.strip() for p in (request.description,) if p and p.strip()]
    if request.address_string and request.address_string.strip():
        parts.append(f"地址：{request.address_string.strip()}")
    note = "\n".join(parts)
    if not note:
        return None
    return note if len(note) <= MAX_NOTE_CHARS else note[:MAX_NOTE_CHARS - 1] + "…"


def client_id_of(ref: str | None) -> uuid.UUID:
    """The report key: derived from the caller's own id (so a retry finds it), else fresh (no idempotency)."""
    return uuid.uuid5(CLIENT_ID_NAMESPACE, ref) if ref else uuid.uuid4()


async def _replay(conn: Connection, report_id: int, digest: bytes) -> Filed:
    filed = await db_open311.filed_request(conn, report_id)
    if filed is None or filed.body_fingerprint != digest:
        raise ClientIdReused()
    return Filed(token=filed.token, created=False)


async def submit(conn: Connection, services: Services, limiter: RateLimiter, key: ApiKeyRow,
                 form: RequestForm) -> Filed:
    """File `form` as a report of the key's system member; its token, and whether it is new."""
    client_id = client_id_of(form.client_ref)
    digest = fingerprint(form)
    if form.client_ref is not None:
        existing = await db_reports.report_id_for_key(conn, key.member_id, client_id)
        if existing is not None:
            return await _replay(conn, existing, digest)

    now = services.clock.now()
    category = await db_reports.category_info(conn, form.get("service_code") or "")
    if category is None or not category.life_safety:  # a missing manhole cover is never turned away
        decision = await limiter.hit(intake_limit(services.settings.open311_requests_per_hour), f"apikey:{key.id}",
                                     now=now.timestamp())
        if not decision.allowed:
            raise RateLimited(decision.retry_after_s)
    request = validate(form)
    if category is None or not category.enabled:
        raise ServiceNotFound()
    if not await within_area(conn, key, request.lat, request.lon):
        raise OutsideKeyArea()

    token = secrets.token_urlsafe(18)
    async with transaction_on(conn, services.clock, services.redis,
                              max_attempts=services.settings.job_max_attempts) as tx:
        report_id = await db_reports.insert_report(
            conn, reporter_id=key.member_id, client_id=client_id, category=request.service_code, lat=request.lat,
            lon=request.lon, accuracy_m=HOTLINE_ACCURACY_M, position_source="hotline",
            cell=cell_of(request.lat, request.lon), captured_at=now, received_at=now, queued_for_s=None,
            note=note_of(request), flags=[], body_fingerprint=digest,
        )
        if report_id is not None:
            await db_open311.insert_request(
                conn, report_id=report_id, api_key_id=key.id, token=token, client_ref=form.client_ref,
                description=request.description, address_string=request.address_string,
                address_id=request.address_id, media_url=request.media_url, now=now)
            await tx.add_job("process_report", {"report_id": report_id})
    if report_id is None:
        # The same request committed first (the city system retried while we worked): a replay.
        winner = await db_reports.report_id_for_key(conn, key.member_id, client_id)
        assert winner is not None
        return await _replay(conn, winner, digest)
    REPORTS_RECEIVED.labels("open311").inc()  # committed above: a replay or a rollback never counts
    return Filed(token=token, created=True)
