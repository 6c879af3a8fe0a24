"""The Litestar application factory."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

from litestar import Litestar, Router
from litestar.datastructures import MutableScopeHeaders
from litestar.di import Provide
from litestar.exceptions import NotFoundException
from litestar.openapi import OpenAPIConfig
from litestar.static_files import create_static_files_router
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from redis.asyncio import Redis

from gridrider import __version__
from gridrider.api.areas import AreaController
from gridrider.api.auth import PUBLIC, access_guard, provide_me
from gridrider.api.calendar import CalendarController
from gridrider.api.categories import CategoryController
from gridrider.api.channels import ChannelController
from gridrider.api.dashboard import DashboardController
from gridrider.api.deps import provide_limiter, provide_read_pool, provide_services, provide_tx
from gridrider.api.events import EventController
from gridrider.api.exports import ExportController
from gridrider.api.health import HealthController
from gridrider.api.incidents import IncidentController
from gridrider.api.media import MediaController
from gridrider.api.members import EnrolmentController, MeController, MemberController, SessionController
from gridrider.api.open311 import IncidentGeoJsonController, Open311Controller
from gridrider.api.points import PointsController
from gridrider.api.problems import EXCEPTION_HANDLERS
from gridrider.api.push import PushController
from gridrider.api.rankings import RankingController
from gridrider.api.ratelimit import RateLimiter
from gridrider.api.reports import ReportController
from gridrider.api.review import ReviewController
from gridrider.api.rewards import RewardController
from gridrider.api.webhooks import WebhookController
from gridrider.clock import Clock, SystemClock
from gridrider.config import Settings
from gridrider.db.pool import create_pool
from gridrider.images.blobs import BlobStore, build_blob_store
from gridrider.jobs.queue import arq_redis
from gridrider.metrics import http_metrics
from gridrider.push import build_push
from gridrider.push.network import PushNetwork
from gridrider.services import Services

PWA_DIR = Path(__file__).resolve().parents[2] / "pwa"
API_CONTROLLERS = [
    HealthController, EnrolmentController, SessionController, MeController, MemberController, CategoryController,
    ReportController, MediaController, PushController, IncidentController, PointsController,
    CalendarController, EventController, ChannelController, WebhookController,
    RewardController, ReviewController, RankingController, DashboardController, ExportController,
    AreaController, Open311Controller, IncidentGeoJsonController,
]

# The PWA's pages and files only (API responses are JSON and never rendered): scripts and styles from
# our own origin, no inline script or style, no plugins, no framing; photos come from /api/v1/photos
# (same origin) and local previews are blob: URLs. Trusted Types turns any innerHTML-style sink into an
# error, so "user text is rendered as text" is enforced by the browser, not only by review; the one
# policy allowed (pwa/js/app.js) vouches for a single script URL, the service worker's.
PWA_CSP = "; ".join((
    "default-src 'self'", "script-src 'self'", "style-src 'self'", "img-src 'self' blob:", "connect-src 'self'",
    "worker-src 'self'", "manifest-src 'self'", "object-src 'none'", "base-uri 'none'", "form-action 'self'",
    "frame-ancestors 'none'", "require-trusted-types-for 'script'", "trusted-types gridrider-sw",
))
PWA_HEADERS = {
    "content-security-policy": PWA_CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",  # a tap on a map link tells AMap nothing about where it came from
    "permissions-policy": "geolocation=(self), camera=(self), microphone=()",
    # Revalidate every shell file (an ETag round trip): the service worker, not the HTTP cache, keeps the
    # app working offline, and a stale sw.js or index.html would delay an update.
    "cache-control": "no-cache",
}


def pwa_headers(app: ASGIApp) -> ASGIApp:
    """Security headers on everything the static PWA router answers (its files and its 404s)."""

    async def with_headers(scope: Scope, receive: Receive, send: Send) -> None:
        if "\x00" in scope.get("path", ""):
            # No file has a NUL in its name; the static router would raise "embedded null byte" (a 500).
            raise NotFoundException()
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableScopeHeaders.from_message(message)
                for name, value in PWA_HEADERS.items():
                    headers[name] = value
            await send(message)

        await app(scope, receive, send_with_headers)

    return with_headers


def create_app(
    settings: Settings, *, clock: Clock | None = None, blobs: BlobStore | None = None, pwa_dir: Path = PWA_DIR,
    push_network: PushNetwork | None = None,
) -> Litestar:
    """The API. `push_network` exists for tests only (their local push service's host is allowed)."""
    assert settings.database_url, "resolve the embedded URLs before creating the app"
    push = build_push(settings, push_network)

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        pool = await create_pool(settings.database_url, min_size=1, max_size=settings.api_db_pool_size)
        # min_size=0: nothing connects to the replica before a dashboard or ranking asks, so an API
        # started while the replica is down still takes reports (DESIGN §9: readiness is the primary's).
        replica_pool = await create_pool(settings.database_replica_url, min_size=0,
                                         max_size=max(1, settings.api_db_pool_size // 2)) \
            if settings.database_replica_url else None
        redis = arq_redis(settings.redis_url) if settings.redis_url else None
        stream_redis = Redis.from_url(settings.redis_url, socket_connect_timeout=1.0, max_connections=5000) \
            if settings.redis_url else None
        app.state.services = Services(
            settings=settings, clock=clock or SystemClock(), pool=pool, redis=redis,
            blobs=blobs or build_blob_store(settings), push=push, stream_redis=stream_redis,
            replica_pool=replica_pool,
        )
        app.state.limiter = RateLimiter(redis)
        try:
            yield
        finally:
            if redis is not None:
                await redis.aclose()
            if stream_redis is not None:
                await stream_redis.aclose()
            if replica_pool is not None:
                await replica_pool.close()
            await pool.close()

    static = create_static_files_router(
        path="/", directories=[pwa_dir], html_mode=True, name="pwa", opt=PUBLIC, include_in_schema=False,
        middleware=[pwa_headers],
    )
    openapi = OpenAPIConfig(
        title="gridrider", version=__version__, path="/schema",
        openapi_router=Router(path="/schema", route_handlers=[], opt=PUBLIC),
    ) if settings.publish_schema else None
    return Litestar(
        route_handlers=[*API_CONTROLLERS, static],
        lifespan=[lifespan],
        # Counts and times requests for the internal metrics listener; nothing is served here (DESIGN §8).
        middleware=[http_metrics],
        guards=[access_guard],
        dependencies={
            "services": Provide(provide_services), "tx": Provide(provide_tx), "me": Provide(provide_me),
            "limiter": Provide(provide_limiter), "read_pool": Provide(provide_read_pool),
        },
        exception_handlers=EXCEPTION_HANDLERS,  # type: ignore[arg-type]
        openapi_config=openapi,
        request_max_body_size=settings.max_body_bytes,
        debug=False,
        logging_config=None,  # our own logging (gridrider.logging) is configured by the CLI
    )
