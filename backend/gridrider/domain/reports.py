"""Report intake rules (DESIGN.md §2 step 2, §8): idempotency first, then validation that flags rather
than refuses wherever a real hazard could otherwise be turned away."""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import uuid
from typing import Any, Literal

import msgspec

from gridrider.errors import DomainError, FieldError, ValidationFailed

MAX_PHOTOS = 3
MAX_NOTE_CHARS = 500
MAX_ACCURACY_M = 2000.0
COARSE_ACCURACY_M = 200.0
FUTURE_TOLERANCE = dt.timedelta(minutes=2)
MAX_AGE = dt.timedelta(days=30)
OLD_AGE = dt.timedelta(days=7)
MAX_QUEUED_S = 31 * 24 * 3600


class ClientIdReused(DomainError):
    status, code = 422, "client_id_reused"


class ReportMeta(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The `meta` part of a report upload, as the phone sends it."""

    client_id: uuid.UUID
    category: str
    lat: float
    lon: float
    position_source: Literal["gps", "network"]
    captured_at: dt.datetime
    accuracy_m: float | None = None
    note: str | None = None
    queued_for_s: int | None = None


def client_id_of(raw: Any) -> uuid.UUID:
    """The client_id, read before anything else is validated (idempotency comes first)."""
    value = raw.get("client_id") if isinstance(raw, dict) else None
    if value is None:
        raise ValidationFailed(errors=[FieldError("client_id", "required", "缺少 client_id。")])
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise ValidationFailed(errors=[FieldError("client_id", "invalid", "client_id 必须是 UUID。")]) from None


def _canonical_number(value: Any) -> Any:
    if isinstance(value, bool):
        return repr(value)
    if isinstance(value, int | float):
        try:
            return float(value)
        except OverflowError:  # an integer with hundreds of digits: not a coordinate, but not a 500
            return repr(value)
    return repr(value)


def _canonical_time(value: Any) -> str:
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return repr(value)
        if parsed.tzinfo is not None:
            return parsed.astimezone(dt.UTC).isoformat()
    return repr(value)


def body_fingerprint(raw: dict[str, Any], photo_sha256s: list[bytes]) -> bytes:
    """What decides whether a replay 'differs': exactly these fields and the ordered photo hashes.

    Per-send values (queued_for_s) are left out; numbers and instants are compared by value, so
    42.38 and 42.380, or 10:00+08:00 and 02:00Z, are the same report.
    """
    canonical = [
        repr(raw.get("category")),
        _canonical_number(raw.get("lat")),
        _canonical_number(raw.get("lon")),
        _canonical_number(raw.get("accuracy_m")),
        repr(raw.get("position_source")),
        _canonical_time(raw.get("captured_at")),
        repr(raw.get("note")),
        [h.hex() for h in photo_sha256s],
    ]
    return hashlib.sha256(msgspec.json.encode(canonical)).digest()


class CategoryInfo(msgspec.Struct, frozen=True):
    code: str
    enabled: bool
    life_safety: bool


def validate_meta(meta: ReportMeta, *, category: CategoryInfo | None, now: dt.datetime) -> list[str]:
    """Refuse what cannot be a real report; return flags for what is doubtful but accepted."""
    errors: list[FieldError] = []
    flags: list[str] = []
    if not (math.isfinite(meta.lat) and -90 <= meta.lat <= 90):
        errors.append(FieldError("lat", "out_of_range", "纬度必须在 -90 到 90 之间。"))
    if not (math.isfinite(meta.lon) and -180 <= meta.lon <= 180):
        errors.append(FieldError("lon", "out_of_range", "经度必须在 -180 到 180 之间。"))
    if meta.accuracy_m is None:
        flags.append("coarse_position")
    elif not (math.isfinite(meta.accuracy_m) and 0 <= meta.accuracy_m <= MAX_ACCURACY_M):
        errors.append(FieldError("accuracy_m", "out_of_range", "定位精度超过 2000 米，请重新定位。"))
    elif meta.accuracy_m > COARSE_ACCURACY_M:
        flags.append("coarse_position")
    if meta.captured_at.tzinfo is None:
        errors.append(FieldError("captured_at", "timezone_required", "拍摄时间需要带时区。"))
    elif meta.captured_at > now + FUTURE_TOLERANCE:
        errors.append(FieldError("captured_at", "in_the_future", "拍摄时间晚于当前时间，请检查手机时间。"))
    elif meta.captured_at < now - MAX_AGE:
        errors.append(FieldError("captured_at", "too_old", "拍摄时间超过 30 天，无法上报。"))
    elif meta.captured_at < now - OLD_AGE:
        flags.append("old_capture")
    if category is None:
        errors.append(FieldError("category", "unknown_category", "未知的隐患类别。"))
    elif not category.enabled:
        errors.append(FieldError("category", "category_disabled", "该隐患类别已停用。"))
    if meta.note is not None and len(meta.note) > MAX_NOTE_CHARS:
        errors.append(FieldError("note", "too_long", "备注不能超过 500 字。"))
    if meta.note is not None and "\x00" in meta.note:
        errors.append(FieldError("note", "invalid_character", "备注含有无效字符。"))
    if meta.queued_for_s is not None and not 0 <= meta.queued_for_s <= MAX_QUEUED_S:
        errors.append(FieldError("queued_for_s", "out_of_range", "queued_for_s 超出范围。"))
    if errors:
        raise ValidationFailed(errors=errors)
    return flags
