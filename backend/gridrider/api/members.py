"""Enrolment, sign-in and sign-out, the caller's own profile, and supervisors acting on their members.

`GET /api/v1/members?role=&status=&q=&area=&cursor=&limit=` (supervisor, admin): the members with an
area in the caller's subtree (admins: everyone), newest first, `limit` (1–100, default 50) a page.
- `area`: only members with an area inside that area's subtree; it must lie inside the caller's
  (unknown or foreign: 404 `area_not_found`, as every scope parameter).
- `role`, `status`: exact filters. `q`: a piece of the pseudonym or name (case-insensitive, `%` and
  `_` literal); four or more digits also match the end of the phone (riders quote their last four).
  A shorter run of digits is not matched against phones, so `q=1` does not list everyone.
- Phones whole, as the single-member endpoint shows them to supervisors and admins. `area_codes`
  lists only the member's areas inside the caller's subtree (areas elsewhere are not theirs to see);
  `manageable` says whether the caller may act on the member (the endpoints below answer 404 otherwise:
  a member with an area outside the subtree, the caller themselves, another supervisor).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import msgspec
import segno
from litestar import Controller, Request, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter

from gridrider.api.auth import ANY_MEMBER, PUBLIC, roles, scope_paths, subtree_paths
from gridrider.api.ratelimit import Limit, RateLimiter
from gridrider.api.schemas import MemberOut, RowId
from gridrider.db import members as db_members
from gridrider.db.members import MemberRow
from gridrider.domain import enrolment
from gridrider.domain.enrolment import EnrolmentInvalid, EnrolmentRequest, SignedIn, SignIn
from gridrider.domain.members import ROLES, within_subtrees
from gridrider.errors import FieldError, NotFound, RateLimited, ValidationFailed, message_for
from gridrider.jobs.queue import Tx
from gridrider.services import Services

# Nobody is signed in yet, so sign-in FAILURES are limited per address. Only failures count: a depot
# of riders behind one carrier NAT signing in at once must all get in. The per-address check is a
# peek, so a burst of concurrent guesses can overshoot it a little — each code still locks after 5
# wrong tries, counted under its row lock, so guessing stays bounded per code.
SIGN_IN_FAILURES = Limit(name="sign_in_failures", limit=30, window_s=600)

PRIVACY_NOTICE = {
    "zh-CN": ("gridrider 只保存你上报时的位置、时间、照片和备注，用于把隐患转给负责的网格处理；"
              "不记录你的行驶轨迹。网格员只能看到你的化名和打码的手机号。照片中的人脸和车牌不会公开。"
              "账号停用后，个人信息在保留期满后会被匿名化。"),
    "en": ("gridrider keeps only the position, time, photos and note of each report you send, to pass the "
           "hazard to the grid team in charge; it never records your route. Grid members see only your "
           "pseudonym and a masked phone number. Photos are never published. After your account is closed, "
           "your personal data is pseudonymised once the retention period ends."),
}


class EnrolmentOut(msgspec.Struct, frozen=True):
    member_id: int
    code: str
    url: str
    expires_at: dt.datetime
    reactivated: bool
    # The link's QR code as rows of '1' (dark) and '0' modules, quiet zone not included: the app draws
    # it as SVG itself (no markup from the server to insert, no QR library in the browser).
    qr: list[str]


def qr_rows(url: str) -> list[str]:
    return ["".join("1" if module else "0" for module in row) for row in segno.make(url, error="m").matrix]


class SessionOut(msgspec.Struct, frozen=True):
    token: str
    member: MemberOut


class AreasIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    area_codes: list[str]


class MemberListItem(msgspec.Struct, frozen=True):
    id: int
    role: str
    display_name: str | None
    pseudonym: str
    phone: str | None
    platform: str | None
    status: str
    area_codes: list[str]  # those inside the caller's subtree
    last_seen_at: dt.datetime | None  # the latest use of any session; None: never signed in
    created_at: dt.datetime
    manageable: bool  # whether the caller may deactivate, re-area, revoke or re-enrol this member


class MemberPage(msgspec.Struct, frozen=True):
    items: list[MemberListItem]
    next_cursor: str | None


MEMBER_PAGE_MAX = 100
MEMBER_STATUSES = ("active", "deactivated", "pseudonymised")
SEARCH_MAX_CHARS = 40
PHONE_DIGITS_MIN = 4  # fewer digits would match a large share of all phones


def _invalid(field: str, code: str) -> ValidationFailed:
    # The field error carries the code, so the API edge gives its text in the caller's language.
    return ValidationFailed(errors=[FieldError(field, code, message_for(code, "zh-CN"))])


def _search(q: str | None) -> tuple[str | None, str | None]:
    """`q` as (text matched in pseudonym and name, digits matched at the end of the phone)."""
    if q is None or not q.strip():
        return None, None
    text = q.strip()
    # Control characters match no name; NUL would even fail inside PostgreSQL (a 500, not a 422).
    if len(text) > SEARCH_MAX_CHARS or any(ord(ch) < 32 or ord(ch) == 127 for ch in text):
        raise _invalid("q", "member_search_invalid")
    digits = text if text.isascii() and text.isdigit() and len(text) >= PHONE_DIGITS_MIN else None
    return text, digits


def _member_cursor(cursor: str | None) -> int | None:
    """The id a page ended at; only what MemberPage.next_cursor holds (a positive bigint) is accepted."""
    if not cursor:
        return None
    if not (cursor.isascii() and cursor.isdigit()) or len(cursor) > 18 or int(cursor) < 1:
        raise _invalid("cursor", "cursor_invalid")
    return int(cursor)


class PrivacyNoticeOut(msgspec.Struct, frozen=True):
    text_zh: str
    text_en: str


def enrolment_url(public_url: str, code: str) -> str:
    # The code alone does not sign anyone in (the phone's last four digits are asked), so a URL may carry it.
    return f"{public_url}/#/enrol/{code}"


def _client_address(request: Request[Any, Any, Any]) -> str:
    return request.client.host if request.client else "unknown"


class EnrolmentController(Controller):
    path = "/api/v1"

    @post("/enrolments", operation_id="createEnrolment", opt=roles("admin", "supervisor"), status_code=201)
    async def create(self, tx: NamedDependency[Tx], me: NamedDependency[MemberRow],
                     services: NamedDependency[Services], data: JSONBody[EnrolmentRequest]) -> EnrolmentOut:
        done = await enrolment.enrol(tx.conn, caller=me, request=data, now=services.clock.now(),
                                     secret=services.settings.session_secret)
        url = enrolment_url(services.settings.public_url, done.code)
        return EnrolmentOut(member_id=done.member_id, code=done.code, expires_at=done.expires_at, url=url,
                            reactivated=done.reactivated, qr=qr_rows(url))

    @get("/privacy-notice", operation_id="getPrivacyNotice", opt=PUBLIC)
    async def privacy_notice(self) -> PrivacyNoticeOut:
        return PrivacyNoticeOut(text_zh=PRIVACY_NOTICE["zh-CN"], text_en=PRIVACY_NOTICE["en"])


class SessionController(Controller):
    path = "/api/v1/sessions"

    @post("/", operation_id="signIn", opt=PUBLIC, status_code=201)
    async def sign_in(self, request: Request[Any, Any, Any], services: NamedDependency[Services],
                      limiter: NamedDependency[RateLimiter], data: JSONBody[SignIn]) -> SessionOut:
        now = services.clock.now()
        address = f"ip:{_client_address(request)}"
        budget = await limiter.peek(SIGN_IN_FAILURES, address, now=now.timestamp())
        if not budget.allowed:
            raise RateLimited(budget.retry_after_s)
        try:
            async with services.pool.acquire() as conn, conn.transaction():
                outcome = await enrolment.sign_in(conn, data, now=now, secret=services.settings.session_secret)
                member = await db_members.member_by_id(conn, outcome.member_id) \
                    if isinstance(outcome, SignedIn) else None
        except EnrolmentInvalid:
            await limiter.hit(SIGN_IN_FAILURES, address, now=now.timestamp())
            raise
        if not isinstance(outcome, SignedIn):
            # A wrong try: committed above (it counts toward the code's lock) before answering.
            await limiter.hit(SIGN_IN_FAILURES, address, now=now.timestamp())
            raise outcome
        signed = outcome
        assert member is not None
        return SessionOut(token=signed.token, member=MemberOut.of(member, phone=member.phone))

    @delete("/current", operation_id="signOut", opt=roles(*ANY_MEMBER), status_code=204)
    async def sign_out(self, request: Request[Any, Any, Any], tx: NamedDependency[Tx],
                       services: NamedDependency[Services]) -> None:
        await db_members.revoke_session(tx.conn, request.state.session_id, services.clock.now())


class MeController(Controller):
    path = "/api/v1/me"

    @get("/", operation_id="getMe", opt=roles(*ANY_MEMBER))
    async def me(self, me: NamedDependency[MemberRow]) -> MemberOut:
        return MemberOut.of(me, phone=me.phone)


class MemberController(Controller):
    """What a supervisor (or admin) may do to a member of their subtree; anyone else's member is a 404."""

    path = "/api/v1/members"

    @staticmethod
    def _in_reach(me: MemberRow, member: MemberRow) -> bool:
        return member.id != me.id and enrolment.could_enrol(me, member)

    @classmethod
    async def _member_in_reach(cls, tx: Tx, me: MemberRow, member_id: int) -> MemberRow:
        member = await db_members.member_by_id(tx.conn, member_id)
        if member is None or not cls._in_reach(me, member):
            raise NotFound()
        return member

    @classmethod
    def _list_item(cls, me: MemberRow, visible: list[str] | None, row: db_members.MemberListed) -> MemberListItem:
        m = row.member
        return MemberListItem(
            id=m.id, role=m.role, display_name=m.display_name, pseudonym=m.pseudonym, phone=m.phone,
            platform=m.platform, status=m.status,
            area_codes=[code for path, code in zip(m.area_paths, m.area_codes, strict=True)
                        if within_subtrees(path, visible)],
            last_seen_at=row.last_seen_at, created_at=row.created_at, manageable=cls._in_reach(me, m),
        )

    @get("/", operation_id="listMembers", opt=roles("admin", "supervisor"))
    async def list_members(
        self, tx: NamedDependency[Tx], me: NamedDependency[MemberRow],
        role: Annotated[str | None, QueryParameter(max_length=20)] = None,
        status: Annotated[str | None, QueryParameter(max_length=20)] = None,
        q: Annotated[str | None, QueryParameter(max_length=200)] = None,
        area: Annotated[str | None, QueryParameter(max_length=64)] = None,
        cursor: Annotated[str | None, QueryParameter(max_length=40)] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=MEMBER_PAGE_MAX)] = 50,
    ) -> MemberPage:
        if role is not None and role not in ROLES:
            raise _invalid("role", "member_role_invalid")
        if status is not None and status not in MEMBER_STATUSES:
            raise _invalid("status", "member_status_invalid")
        text, digits = _search(q)
        before_id = _member_cursor(cursor)
        visible = subtree_paths(me)
        within = await scope_paths(tx.conn, me, area)
        rows = await db_members.list_members(tx.conn, db_members.MemberListQuery(
            within_paths=within, role=role, status=status, text=text, phone_suffix=digits, before_id=before_id,
            limit=limit + 1))
        items = [self._list_item(me, visible, row) for row in rows[:limit]]
        return MemberPage(items=items, next_cursor=str(rows[limit - 1].member.id) if len(rows) > limit else None)

    @get("/{member_id:int}", operation_id="getMember", opt=roles("admin", "supervisor"))
    async def get_member(self, tx: NamedDependency[Tx], me: NamedDependency[MemberRow],
                         member_id: RowId) -> MemberOut:
        member = await self._member_in_reach(tx, me, member_id)
        return MemberOut.of(member, phone=member.phone)  # supervisors see full numbers of their own people

    @post("/{member_id:int}/revoke-sessions", operation_id="revokeMemberSessions", opt=roles("admin", "supervisor"),
          status_code=200)
    async def revoke_sessions(self, tx: NamedDependency[Tx], me: NamedDependency[MemberRow],
                              services: NamedDependency[Services], member_id: RowId) -> dict[str, int]:
        member = await self._member_in_reach(tx, me, member_id)
        return {"revoked": await db_members.revoke_all_sessions(tx.conn, member.id, services.clock.now())}

    @post("/{member_id:int}/deactivate", operation_id="deactivateMember", opt=roles("admin", "supervisor"),
          status_code=200)
    async def deactivate(self, tx: NamedDependency[Tx], me: NamedDependency[MemberRow],
                         services: NamedDependency[Services], member_id: RowId) -> MemberOut:
        member = await self._member_in_reach(tx, me, member_id)
        now = services.clock.now()
        await db_members.deactivate_member(tx.conn, member.id, now)
        await db_members.revoke_all_sessions(tx.conn, member.id, now)
        updated = await db_members.member_by_id(tx.conn, member.id)
        assert updated is not None
        return MemberOut.of(updated, phone=updated.phone)

    @put("/{member_id:int}/areas", operation_id="setMemberAreas", opt=roles("admin", "supervisor"))
    async def set_areas(self, tx: NamedDependency[Tx], me: NamedDependency[MemberRow], member_id: RowId,
                        data: JSONBody[AreasIn]) -> MemberOut:
        member = await self._member_in_reach(tx, me, member_id)
        areas = await enrolment.resolve_areas(tx.conn, caller=me, role=member.role, codes=data.area_codes)
        await db_members.replace_member_areas(tx.conn, member.id, [a.id for a in areas])
        updated = await db_members.member_by_id(tx.conn, member.id)
        assert updated is not None
        return MemberOut.of(updated, phone=updated.phone)
