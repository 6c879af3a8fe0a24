"""Signed-in callers for API tests: the demo hierarchy, and members enrolled and signed in for real."""

from __future__ import annotations

import msgspec
import pytest

from gridrider.demo import seed_demo
from gridrider.domain.enrolment import EnrolmentRequest, enrol


class Caller(msgspec.Struct):
    member_id: int
    token: str
    phone: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
async def demo(db, settings):
    """The Zhangwu demo: areas and the demo members (county/street/community supervisors, grid members…)."""
    async with db.acquire() as conn:
        await seed_demo(conn, settings)


async def issue_code(db, settings, clock, *, role: str, phone: str, areas: list[str], platform: str | None = None,
                     name: str = "测试") -> str:
    """A code made by the trusted CLI path (no caller): the way an admin's first account starts."""
    async with db.acquire() as conn, conn.transaction():
        done = await enrol(conn, caller=None, now=clock.now(), secret=settings.session_secret,
                           request=EnrolmentRequest(role=role, display_name=name, phone=phone, area_codes=areas,
                                                    platform=platform))
    return done.code


async def sign_in(client, code: str, phone: str) -> Caller:
    reply = await client.post("/api/v1/sessions", json={"code": code, "phone_last4": phone[-4:],
                                                        "accept_privacy": True})
    assert reply.status_code == 201, reply.text
    body = reply.json()
    return Caller(member_id=body["member"]["id"], token=body["token"], phone=phone)


@pytest.fixture
def login(client, db, settings, clock, demo):
    """login(role, phone, areas) → a Caller signed in through the real API."""

    async def make(role: str, phone: str, areas: list[str], platform: str | None = None) -> Caller:
        if role == "courier" and platform is None:
            platform = "meituan"
        code = await issue_code(db, settings, clock, role=role, phone=phone, areas=areas, platform=platform)
        return await sign_in(client, code, phone)

    return make


@pytest.fixture
async def admin(db, settings, clock, client, demo) -> Caller:
    """The demo admin, its code made by the server-side path (`gridrider enrol`), as in real life."""
    code = await issue_code(db, settings, clock, role="admin", phone="13800000001", areas=[])
    return await sign_in(client, code, "13800000001")
