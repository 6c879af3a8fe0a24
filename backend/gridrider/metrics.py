"""Prometheus metrics, served on an internal listener of their own (DESIGN §8: /metrics is not on the public one).

Two kinds of figures:

- Counters and histograms this process increments (HTTP requests, reports received, incidents routed, job
  failures). Each process has its own listener and its own figures; Prometheus sums them across processes.
  `gridrider api` and `gridrider worker` listen on GRIDRIDER_METRICS_HOST:GRIDRIDER_METRICS_PORT (a pod or
  container each, so one port number everywhere); `gridrider up`, all processes on one box, gives the API
  that port and its workers the next ones (9464 API, 9465 default-queue worker, 9466 photo worker).
  GRIDRIDER_METRICS_PORT=0 starts no listener.
- Gauges read from PostgreSQL when scraped (job queues, deliveries, overdue incidents), only in the API's
  listener: they describe the shared database, so every API replica reports the same values — aggregate
  them with max(), not sum(). A scrape never waits long on the database and never fails because of it:
  the query has a short timeout, its answer is cached a few seconds (a scrape storm costs one query), and
  when the database is down those gauges are simply absent while `gridrider_db_collector_up` says 0.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import asyncpg
from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import start_http_server
from prometheus_client.metrics_core import Metric

from gridrider.config import Settings
from gridrider.logging import get_logger

log = get_logger(__name__)

# No `_created` twin series for every counter: Prometheus's text format does not need them, and they would
# double the series a scrape carries.
disable_created_metrics()

# Everything this process counts. Not prometheus_client's global registry: nothing a library registers
# there behind our back ends up on the listener.
PROCESS_REGISTRY = CollectorRegistry(auto_describe=True)
ProcessCollector(registry=PROCESS_REGISTRY)
PlatformCollector(registry=PROCESS_REGISTRY)

HTTP_REQUESTS = Counter(
    "gridrider_http_requests", "HTTP requests answered, by route template (never the raw path) and status.",
    ["method", "route", "status"], registry=PROCESS_REGISTRY,
)
HTTP_LATENCY = Histogram(
    "gridrider_http_request_duration_seconds", "Time from request to the end of the response, by route template.",
    ["method", "route"], registry=PROCESS_REGISTRY,
    # Up to 30 s: a report upload with three 12 MB photos over a weak mobile link is slow but not broken.
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
REPORTS_RECEIVED = Counter(
    "gridrider_reports_received", "Reports committed at intake, by source (app, open311).", ["source"],
    registry=PROCESS_REGISTRY,
)
INCIDENTS_ROUTED = Counter(
    "gridrider_incidents", "Reports routed by the pipeline: into a new incident (created) or merged into an open "
    "one (merged).", ["outcome"], registry=PROCESS_REGISTRY,
)
JOB_FAILURES = Counter(
    "gridrider_job_failures", "Failed job attempts, by kind and what followed: retry (backoff) or dead (gave up).",
    ["kind", "outcome"], registry=PROCESS_REGISTRY,
)

JOB_STATES = ("pending", "running", "retry", "dead")
OVERDUE_STAGES = ("dispatch", "accept", "resolve")

# Per kind and state; "done" rows are left out: they are kept for days and say nothing about backlog.
# Age: since a waiting job became due (a job scheduled for later is not late), since a running one was
# claimed, since a dead one died.
QUEUES_SQL = """
SELECT kind, state, count(*) AS jobs,
       greatest(0, extract(epoch FROM now() - min(CASE WHEN state IN ('pending', 'retry') THEN run_after
                                                       ELSE updated_at END)))::float8 AS oldest_s
FROM jobs
WHERE state IN ('pending', 'running', 'retry', 'dead')
GROUP BY kind, state
ORDER BY kind, state
"""

# The dashboard's definition of "overdue now": still waiting in the stage past its due time. One branch per
# stage so each can use its partial due-time index.
OVERDUE_SQL = """
SELECT 'dispatch' AS stage, count(*) AS incidents FROM incidents WHERE state = 'unrouted' AND dispatch_due_at <= now()
UNION ALL
SELECT 'accept', count(*) FROM incidents WHERE state = 'dispatched' AND accept_due_at <= now()
UNION ALL
SELECT 'resolve', count(*) FROM incidents WHERE state = 'accepted' AND resolve_due_at <= now()
"""

DELIVERIES_SQL = "SELECT channel, state, count(*) AS deliveries FROM deliveries GROUP BY channel, state"

DEAD_JOBS_SQL = """
SELECT id, kind, attempts, updated_at, last_error FROM jobs WHERE state = 'dead' ORDER BY updated_at DESC, id DESC
LIMIT $1
"""


@dataclass(frozen=True)
class QueueRow:
    kind: str
    state: str
    jobs: int
    oldest_s: float


async def open_probe_connection(database_url: str, *, timeout_s: float) -> asyncpg.Connection:
    """A short-lived connection whose every statement gives up after `timeout_s` (server side too)."""
    return await asyncpg.connect(
        database_url, timeout=timeout_s, command_timeout=timeout_s,
        server_settings={"application_name": "gridrider-metrics",
                         "statement_timeout": str(int(timeout_s * 1000))},
    )


async def queue_rows(conn: asyncpg.Connection) -> list[QueueRow]:
    return [QueueRow(r["kind"], r["state"], r["jobs"], r["oldest_s"]) for r in await conn.fetch(QUEUES_SQL)]


async def overdue_counts(conn: asyncpg.Connection) -> dict[str, int]:
    return {r["stage"]: r["incidents"] for r in await conn.fetch(OVERDUE_SQL)}


async def delivery_counts(conn: asyncpg.Connection) -> dict[tuple[str, str], int]:
    return {(r["channel"], r["state"]): r["deliveries"] for r in await conn.fetch(DELIVERIES_SQL)}


async def dead_jobs(conn: asyncpg.Connection, limit: int = 10) -> list[Any]:
    return list(await conn.fetch(DEAD_JOBS_SQL, limit))


class DatabaseCollector:
    """Scrape-time gauges from PostgreSQL, cached `ttl_s` and given up on after `timeout_s`."""

    def __init__(self, database_url: str, *, timeout_s: float = 2.0, ttl_s: float = 5.0) -> None:
        self._url = database_url
        self._timeout_s = timeout_s
        self._ttl_s = ttl_s
        # The exposition server answers each scrape on its own thread: one query at a time, the others reuse it.
        self._lock = threading.Lock()
        self._cached: tuple[float, list[Metric]] | None = None

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            if self._cached is None or time.monotonic() - self._cached[0] >= self._ttl_s:
                # A failure is cached too: during an outage a scrape storm must not queue up connect attempts.
                self._cached = (time.monotonic(), self._read())
            metrics = self._cached[1]
        yield from metrics

    def _read(self) -> list[Metric]:
        up = GaugeMetricFamily("gridrider_db_collector_up",
                               "1 when the last scrape-time database read worked; 0: the database gauges are absent.")
        try:
            # This thread has no event loop of its own; a fresh one per read (at most one per ttl_s).
            metrics = asyncio.run(self._query())
        except Exception as exc:  # fail soft: the scrape still answers, without the database's figures
            log.warning("metrics.db_unavailable", error=f"{type(exc).__name__}: {exc}"[:300])
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        return [*metrics, up]

    async def _query(self) -> list[Metric]:
        conn = await open_probe_connection(self._url, timeout_s=self._timeout_s)
        try:
            queues, overdue, deliveries = await queue_rows(conn), await overdue_counts(conn), \
                await delivery_counts(conn)
        finally:
            await conn.close()
        depth = GaugeMetricFamily("gridrider_jobs", "Job rows by kind and state (pending, running, retry, dead).",
                                  labels=["kind", "state"])
        age = GaugeMetricFamily("gridrider_job_oldest_age_seconds",
                                "Age of the oldest job by kind and state: waiting since due, running since "
                                "claimed, dead since it died.", labels=["kind", "state"])
        for row in queues:
            depth.add_metric([row.kind, row.state], row.jobs)
            age.add_metric([row.kind, row.state], row.oldest_s)
        late = GaugeMetricFamily("gridrider_incidents_overdue", "Incidents waiting in a stage past its due time.",
                                 labels=["stage"])
        for stage in OVERDUE_STAGES:
            late.add_metric([stage], overdue.get(stage, 0))
        sent = GaugeMetricFamily("gridrider_deliveries", "Delivery rows by channel and outcome (pending, sent, "
                                 "failed, gone, skipped).", labels=["channel", "outcome"])
        for (channel, state), count in sorted(deliveries.items()):
            sent.add_metric([channel, state], count)
        return [depth, age, late, sent]


class _Forward:
    """Lets one listener expose the process-wide registry next to collectors of its own."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._registry = registry

    def collect(self) -> Iterator[Metric]:
        return self._registry.collect()


@dataclass
class MetricsListener:
    server: Any
    thread: threading.Thread

    @property
    def port(self) -> int:
        return self.server.server_port

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def listener_registry(database_url: str | None) -> CollectorRegistry:
    # auto_describe off: the database collector is not run at registration (the database may be down then).
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Forward(PROCESS_REGISTRY))  # type: ignore[arg-type]
    if database_url:
        registry.register(DatabaseCollector(database_url))  # type: ignore[arg-type]
    return registry


def start_metrics_listener(settings: Settings, *, with_database: bool) -> MetricsListener | None:
    """Serve this process's metrics on GRIDRIDER_METRICS_HOST:PORT (a daemon thread), or nothing when the port is 0.

    A port that cannot be bound is logged, not fatal: hazard reports matter more than their metrics, and the
    scraper's `up == 0` shows the gap.
    """
    port = settings.metrics_port
    if port == 0:
        return None
    registry = listener_registry(settings.database_url if with_database else None)
    try:
        server, thread = start_http_server(port, addr=settings.metrics_host, registry=registry)
    except OSError as exc:
        log.error("metrics.listen_failed", host=settings.metrics_host, port=port, error=str(exc))
        return None
    listener = MetricsListener(server, thread)
    log.info("metrics.listening", host=settings.metrics_host, port=listener.port)
    return listener


def _route_of(scope: Scope) -> str:
    # Litestar sets the matched route's template after routing ("/api/v1/incidents/{incident_id:int}"):
    # bounded label values, and no ids or tokens from the raw path.
    return scope.get("path_template") or "<unmatched>"


def http_metrics(app: ASGIApp) -> ASGIApp:
    """Litestar middleware: count each HTTP request and time it, by method, route template and status."""

    async def measured(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # if the app dies before answering, the server answers 500

        async def send_noting_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, send_noting_status)
        finally:
            method, route = scope["method"], _route_of(scope)
            HTTP_REQUESTS.labels(method, route, str(status)).inc()
            HTTP_LATENCY.labels(method, route).observe(time.perf_counter() - started)

    return measured
