"""Enrolment and sign-in: counties select their riders; a code plus the phone's last four digits lets them in."""

from __future__ import annotations

import datetime as dt

import msgspec

from gridrider.db import areas as db_areas
from gridrider.db import members as db_members
from gridrider.db.areas import AreaRef
from gridrider.db.members import MemberRow
from gridrider.db.pool import Connection
from gridrider.domain.members import (
    AREA_LEVELS_FOR_ROLE,
    PLATFORMS,
    may_enrol,
    new_pseudonym,
    normalise_phone,
    within_subtrees,
)
from gridrider.domain.secrets import keyed_hash, new_enrolment_code, new_session_token, normalise_code
from gridrider.errors import DomainError, FieldError, NotFound, ValidationFailed

ENROLMENT_LIFETIME = dt.timedelta(days=14)
MAX_FAILED_ATTEMPTS = 5
SESSION_LIFETIME = dt.timedelta(days=90)


class EnrolmentInvalid(DomainError):
    """Unknown code or wrong digits: one answer for both, so codes cannot be probed."""

    status, code = 401, "enrolment_invalid"


class EnrolmentExpired(DomainError):
    status, code = 410, "enrolment_expired"


class EnrolmentUsed(DomainError):
    status, code = 410, "enrolment_used"


class EnrolmentLocked(DomainError):
    status, code = 423, "enrolment_locked"


class PrivacyNoticeRequired(DomainError):
    status, code = 409, "privacy_notice_required"


class EnrolmentRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    role: str
    display_name: str
    phone: str
    area_codes: list[str]
    platform: str | None = None


class Enrolled(msgspec.Struct, frozen=True):
    member_id: int
    code: str
    expires_at: dt.datetime
    reactivated: bool


def _validate(request: EnrolmentRequest) -> str:
    errors: list[FieldError] = []
    phone = normalise_phone(request.phone)
    if phone is None:
        errors.append(FieldError("phone", "invalid_phone", "请输入 11 位手机号码。"))
    name = request.display_name.strip()
    if not 1 <= len(name) <= 40 or "\x00" in name:
        errors.append(FieldError("display_name", "invalid_length", "姓名需为 1 到 40 个字。"))
    if request.role not in AREA_LEVELS_FOR_ROLE:
        errors.append(FieldError("role", "invalid_role", "不支持的角色。"))
    if request.role == "courier" and request.platform not in PLATFORMS:
        errors.append(FieldError("platform", "invalid_platform", "请选择骑手所在平台。"))
    if request.platform is not None and request.platform not in PLATFORMS:
        errors.append(FieldError("platform", "invalid_platform", "不支持的平台。"))
    if errors:
        raise ValidationFailed(errors=errors)
    assert phone is not None
    return phone


async def enrol(
    conn: Connection, *, caller: MemberRow | None, request: EnrolmentRequest, now: dt.datetime, secret: str,
) -> Enrolled:
    """Make a one-time code for a new member, or for the existing member with that phone.

    `caller` None is the trusted server CLI. Anything outside what the caller could enrol — an area
    outside their subtree, the phone of a member they could not enrol — is a foreign object: 404.
    """
    phone = _validate(request)
    if caller is not None and not may_enrol(caller.role, request.role):
        raise NotFound()
    areas = await resolve_areas(conn, caller=caller, role=request.role, codes=request.area_codes)
    existing = await db_members.member_by_phone(conn, phone)
    if existing is not None:
        if caller is not None and not could_enrol(caller, existing):
            raise NotFound()
        await db_members.reactivate_member(conn, existing.id, role=request.role,
                                           display_name=request.display_name.strip(), platform=request.platform)
        member_id = existing.id
    else:
        member_id = await db_members.insert_member(
            conn, role=request.role, display_name=request.display_name.strip(), pseudonym=new_pseudonym(request.role),
            phone=phone, platform=request.platform,
        )
    area_ids = [a.id for a in areas]
    await db_members.replace_member_areas(conn, member_id, area_ids)
    code = new_enrolment_code()
    expires_at = now + ENROLMENT_LIFETIME
    await db_members.insert_enrolment(
        conn, code_hash=keyed_hash(secret, code), member_id=member_id, role=request.role, area_ids=area_ids,
        created_by=caller.id if caller else None, now=now, expires_at=expires_at,
    )
    return Enrolled(member_id=member_id, code=code, expires_at=expires_at, reactivated=existing is not None)


async def resolve_areas(conn: Connection, *, caller: MemberRow | None, role: str, codes: list[str]) -> list[AreaRef]:
    """The areas a member of `role` is to work in; any not in the caller's subtree is a 404."""
    codes = [code.replace("\x00", "") for code in codes]
    if role == "admin" and not codes:
        return []
    if not 1 <= len(codes) <= 20 or len(set(codes)) != len(codes):
        raise ValidationFailed(errors=[FieldError("area_codes", "invalid_areas", "请选择 1 到 20 个不重复的区域。")])
    subtrees = None if caller is None or caller.role == "admin" else list(caller.area_paths)
    areas = await db_areas.areas_in_subtrees(conn, codes, subtrees)
    if len(areas) != len(codes):
        raise NotFound()
    if any(a.level not in AREA_LEVELS_FOR_ROLE[role] for a in areas):
        raise ValidationFailed(errors=[FieldError("area_codes", "wrong_area_level", "该角色不能分配到这一级区域。")])
    return areas


def could_enrol(caller: MemberRow, member: MemberRow) -> bool:
    """Whether the caller could have enrolled this existing member: their role, inside the caller's subtree."""
    if not may_enrol(caller.role, member.role):
        return False
    if caller.role == "admin":
        return True
    return bool(member.area_paths) and all(within_subtrees(p, list(caller.area_paths)) for p in member.area_paths)


class SignIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    code: str
    phone_last4: str
    accept_privacy: bool = False
    device: str | None = None


class SignedIn(msgspec.Struct, frozen=True):
    token: str
    member_id: int


async def sign_in(conn: Connection, request: SignIn, *, now: dt.datetime, secret: str) -> SignedIn | EnrolmentInvalid:
    """Redeem a code once. Wrong digits are counted toward the code's lock in this same transaction
    (the enrolment row is locked FOR UPDATE), and the error is RETURNED so the caller commits the
    count before answering: concurrent guesses then queue on the row and see each other's tries."""
    if len(request.code) > 40 or len(request.phone_last4) != 4 or not request.phone_last4.isascii() \
            or not request.phone_last4.isdigit():
        raise EnrolmentInvalid()
    enrolment = await db_members.enrolment_by_code_for_update(conn, keyed_hash(secret, normalise_code(request.code)))
    if enrolment is None:
        raise EnrolmentInvalid()
    if enrolment.locked_at is not None:
        raise EnrolmentLocked()
    if enrolment.used_at is not None:
        raise EnrolmentUsed()
    if enrolment.expires_at <= now or enrolment.superseded_at is not None:
        raise EnrolmentExpired()
    if not enrolment.phone or enrolment.phone[-4:] != request.phone_last4:
        await db_members.record_failed_attempt(conn, enrolment.id, lock_after=MAX_FAILED_ATTEMPTS, now=now)
        return EnrolmentInvalid()
    if enrolment.status != "active":
        raise EnrolmentExpired()  # the member was deactivated after this code was made
    member = await db_members.member_by_id(conn, enrolment.member_id)
    assert member is not None
    if member.privacy_accepted_at is None:
        if not request.accept_privacy:
            raise PrivacyNoticeRequired()
        await db_members.accept_privacy(conn, member.id, now)
    await db_members.use_enrolment(conn, enrolment.id, now)
    token = new_session_token()
    device = (request.device or "").replace("\x00", "")[:120] or None
    await db_members.insert_session(conn, member_id=member.id, token_hash=keyed_hash(secret, token), device=device,
                                    now=now, expires_at=now + SESSION_LIFETIME)
    return SignedIn(token=token, member_id=member.id)
