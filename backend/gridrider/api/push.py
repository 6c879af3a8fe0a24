"""Web Push subscriptions of the signed-in member, and the VAPID key browsers subscribe with."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import JSONBody, QueryParameter

from gridrider.api.auth import ANY_MEMBER, roles
from gridrider.api.ratelimit import Limit, RateLimiter
from gridrider.api.schemas import RowId
from gridrider.db import notifications as db_notifications
from gridrider.db.members import MemberRow
from gridrider.db.notifications import SubscriptionRow
from gridrider.errors import NotFound, RateLimited
from gridrider.jobs.queue import Tx
from gridrider.logging import get_logger
from gridrider.push import SUBSCRIPTIONS_PER_MEMBER, PushRuntime
from gridrider.push.endpoints import MAX_ENDPOINT_CHARS, SubscriptionIn, check_subscription
from gridrider.services import Services

log = get_logger(__name__)

# A browser re-subscribes a few times a day at most; more is a script, not a phone.
SUBSCRIBE = Limit(name="push_subscribe", limit=30, window_s=3600)


class PushKeyOut(msgspec.Struct, frozen=True):
    key_id: str
    application_server_key: str  # base64url, for PushManager.subscribe({applicationServerKey})


class SubscriptionOut(msgspec.Struct, frozen=True):
    id: int
    endpoint: str
    vapid_key_id: str
    key_is_current: bool  # False → the app should subscribe again with GET /push/key's key
    needs_resubscribe: bool  # the push service refused this subscription (400/401/403)
    user_agent: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
    last_ok_at: dt.datetime | None

    @classmethod
    def of(cls, row: SubscriptionRow, current_key_id: str) -> SubscriptionOut:
        return cls(id=row.id, endpoint=row.endpoint, vapid_key_id=row.vapid_key_id,
                   key_is_current=row.vapid_key_id == current_key_id,
                   needs_resubscribe=row.needs_resubscribe_at is not None, user_agent=row.user_agent,
                   created_at=row.created_at, updated_at=row.updated_at, last_ok_at=row.last_ok_at)


def _push(services: Services) -> PushRuntime:
    assert services.push is not None
    return services.push


class PushController(Controller):
    path = "/api/v1/push"
    opt = roles(*ANY_MEMBER)

    @get("/key", operation_id="getPushKey")
    async def key(self, services: NamedDependency[Services]) -> PushKeyOut:
        current = _push(services).keyring.current
        return PushKeyOut(key_id=current.id, application_server_key=current.application_server_key)

    @post("/subscriptions", operation_id="subscribePush", status_code=201)
    async def subscribe(self, request: Request[Any, Any, Any], tx: NamedDependency[Tx],
                        me: NamedDependency[MemberRow], services: NamedDependency[Services],
                        limiter: NamedDependency[RateLimiter],
                        data: JSONBody[SubscriptionIn]) -> Response[SubscriptionOut]:
        push = _push(services)
        checked = check_subscription(data, push.allowed_hosts)
        now = services.clock.now()
        decision = await limiter.hit(SUBSCRIBE, f"member:{me.id}", now=now.timestamp())
        if not decision.allowed:
            raise RateLimited(decision.retry_after_s)
        current = push.keyring.current
        user_agent = (request.headers.get("user-agent") or "")[:300] or None
        row, inserted, previous_member = await db_notifications.upsert_subscription(
            tx.conn, member_id=me.id, endpoint=checked.endpoint, p256dh=checked.p256dh, auth=checked.auth,
            vapid_key_id=current.id, user_agent=user_agent, now=now, keep_per_member=SUBSCRIPTIONS_PER_MEMBER)
        if previous_member is not None:
            # One browser, another sign-in: its alerts follow whoever signed in last.
            log.info("push.subscription_moved", subscription_id=row.id, from_member=previous_member, to_member=me.id)
        return Response(SubscriptionOut.of(row, current.id), status_code=201 if inserted else 200)

    @get("/subscriptions", operation_id="listPushSubscriptions")
    async def mine(self, me: NamedDependency[MemberRow], services: NamedDependency[Services]) -> list[SubscriptionOut]:
        current = _push(services).keyring.current.id
        return [SubscriptionOut.of(row, current) for row in await db_notifications.subscriptions_of(services.pool,
                                                                                                    me.id)]

    @delete("/subscriptions/{subscription_id:int}", operation_id="deletePushSubscription", status_code=204)
    async def remove(self, subscription_id: RowId, me: NamedDependency[MemberRow],
                     services: NamedDependency[Services]) -> None:
        # Scoped by the caller in SQL: someone else's subscription is "not found", never a hint it exists.
        if not await db_notifications.delete_own_subscription(services.pool, member_id=me.id,
                                                              subscription_id=subscription_id):
            raise NotFound()

    @delete("/subscriptions", operation_id="deletePushSubscriptionByEndpoint", status_code=204)
    async def remove_by_endpoint(
        self, me: NamedDependency[MemberRow], services: NamedDependency[Services],
        endpoint: Annotated[str, QueryParameter(min_length=1, max_length=MAX_ENDPOINT_CHARS, pattern=r"^[^\x00]+$")],
    ) -> None:
        if not await db_notifications.delete_own_subscription(services.pool, member_id=me.id, endpoint=endpoint):
            raise NotFound()
