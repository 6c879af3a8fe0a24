"""Enrolment, sign-in and sign-out, the caller's own profile, and supervisors acting on their members."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec
from litestar import Controller, Request, delete, get, post, put
from litestar.di import NamedDependency
from litestar.params import JSONBody

from gridrider.api.auth import ANY_MEMBER, PUBLIC, roles
from gridrider.api.ratelimit import Limit, RateLimiter
from gridrider.api.schemas import MemberOut, RowId
from gridrider.db import members as db_members
from gridrider.db.members import MemberRow
from gridrider.domain import enrolment
from gridrider.domain.enrolment import EnrolmentInvalid, EnrolmentRequest, SignedIn, SignIn
from gridrider.errors import NotFound, RateLimited
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


class SessionOut(msgspec.Struct, frozen=True):
    token: str
    member: MemberOut


class AreasIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    area_codes: list[str]


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
        return EnrolmentOut(member_id=done.member_id, code=done.code, expires_at=done.expires_at,
                            url=enrolment_url(services.settings.public_url, done.code), reactivated=done.reactivated)

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
    async def _member_in_reach(tx: Tx, me: MemberRow, member_id: int) -> MemberRow:
        member = await db_members.member_by_id(tx.conn, member_id)
        if member is None or member.id == me.id or not enrolment.could_enrol(me, member):
            raise NotFound()
        return member

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
