"""Who is calling: Bearer session tokens, and a guard on every route.

Every route declares who may call it in its `opt`: `{"access": "public"}` or `{"roles": {...}}`.
The app-wide guard enforces it; a route with neither is refused to everyone (and a test fails).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from gridrider.db import areas as db_areas
from gridrider.db import members as db_members
from gridrider.db.members import MemberRow
from gridrider.db.pool import Connection, Pool
from gridrider.domain.enrolment import SESSION_LIFETIME
from gridrider.domain.secrets import keyed_hash
from gridrider.errors import Forbidden, NotFound, Unauthorized
from gridrider.services import Services

# Sliding expiry without a write on every request: extend at most once an hour.
SESSION_TOUCH_EVERY = dt.timedelta(hours=1)

PUBLIC: dict[str, Any] = {"access": "public"}
ANY_MEMBER = frozenset({"courier", "grid_member", "supervisor", "admin"})


def roles(*names: str) -> dict[str, Any]:
    return {"roles": frozenset(names)}


def bearer_token(connection: ASGIConnection[Any, Any, Any, Any]) -> str | None:
    header = connection.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def authenticate(connection: ASGIConnection[Any, Any, Any, Any]) -> tuple[MemberRow, int]:
    services: Services = connection.app.state.services
    token = bearer_token(connection)
    if token is None or len(token) > 200:
        raise Unauthorized()
    now = services.clock.now()
    found = await db_members.member_by_session(
        services.pool, keyed_hash(services.settings.session_secret, token), now
    )
    if found is None:
        raise Unauthorized()
    if now - found.last_seen_at >= SESSION_TOUCH_EVERY:
        await db_members.touch_session(services.pool, found.session_id, now=now, expires_at=now + SESSION_LIFETIME)
    return found.member, found.session_id


async def access_guard(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    if handler.opt.get("access") == "public":
        return
    allowed = handler.opt.get("roles")
    member, session_id = await authenticate(connection)
    if not allowed or member.role not in allowed:
        raise Forbidden()
    connection.state.member = member
    connection.state.session_id = session_id


async def provide_me(request: Request[Any, Any, Any]) -> MemberRow:
    """The signed-in member the guard found (only on routes that have roles)."""
    return request.state.member


def subtree_paths(member: MemberRow) -> list[str] | None:
    """The area subtrees a member may see: None (everything) for admins; their own areas otherwise."""
    return None if member.role == "admin" else list(member.area_paths)


class AreaNotFound(NotFound):
    code = "area_not_found"


async def scope_paths(conn: Connection | Pool, member: MemberRow, code: str | None) -> list[str] | None:
    """The subtrees a read covers: the member's own (`subtree_paths`), or with `code` that one area's
    subtree — which must lie inside theirs. Unknown and foreign areas are the same 404, so a scope
    parameter cannot probe which areas exist elsewhere."""
    if code is None:
        return subtree_paths(member)
    # PostgreSQL cannot hold a NUL in text: a code with one is simply unknown (404, not a 500 from the driver).
    found = await db_areas.areas_in_subtrees(conn, [code], subtree_paths(member)) if "\x00" not in code else []
    if not found:
        raise AreaNotFound(f"area {code!r} is unknown or outside the caller's subtree")
    return [found[0].path]
