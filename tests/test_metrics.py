"""The Prometheus listener: its own port, the families an operator alerts on, route templates as labels,
never on the API's port, and a scrape that still answers while PostgreSQL is down."""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.request

import msgspec
import pytest
from prometheus_client.parser import text_string_to_metric_families

from gridrider.jobs.queue import transaction
from gridrider.metrics import DatabaseCollector, start_metrics_listener
from tests.api.test_incidents import GRID, HERE, incident_of, post_report
from tests.jobs.conftest import run_burst, test_kinds  # noqa: F401  (a fixture, used by its name)

FAMILIES = (
    "gridrider_http_requests", "gridrider_http_request_duration_seconds", "gridrider_reports_received",
    "gridrider_incidents", "gridrider_job_failures", "gridrider_jobs", "gridrider_job_oldest_age_seconds",
    "gridrider_deliveries", "gridrider_incidents_overdue", "gridrider_db_collector_up",
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def scrape_text(port: int) -> tuple[int, str]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        return reply.status, reply.read().decode()


async def scrape(settings, *, with_database: bool = True) -> tuple[int, set[str], dict]:
    """Start a listener as `gridrider api` does, scrape it once (off the event loop), stop it."""
    listener = start_metrics_listener(msgspec.structs.replace(settings, metrics_port=free_port()),
                                      with_database=with_database)
    assert listener is not None
    try:
        status, text = await asyncio.to_thread(scrape_text, listener.port)
    finally:
        listener.close()
    samples: dict[tuple[str, tuple], float] = {}
    families = set()
    for family in text_string_to_metric_families(text):
        families.add(family.name)
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return status, families, samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
async def courier(login):
    return await login("courier", "13966660000", [GRID])


@pytest.mark.usefixtures("test_kinds")  # probe job kinds, one of which always fails
async def test_the_listener_serves_every_family_after_a_request_and_processed_jobs(
        client, courier, settings, clock, db, redis):
    _, _, before = await scrape(settings)
    report_id = await post_report(client, clock, courier, HERE)
    async with transaction(db, clock, redis, max_attempts=1) as tx:
        await tx.add_job("probe_fail", max_attempts=1)  # dies at its first failure
    await run_burst(settings, clock)
    incident_id = await incident_of(client, courier, report_id)
    assert (await client.get(f"/api/v1/incidents/{incident_id}", headers=courier.headers)).status_code in (200, 404)
    async with transaction(db, clock, redis, max_attempts=5) as tx:
        await tx.add_job("probe_record", delay_s=3600)  # waits: a pending row for the queue gauges

    status, families, after = await scrape(settings)
    assert status == 200
    assert set(FAMILIES) <= families, set(FAMILIES) - families

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert grew("gridrider_reports_received_total", source="app") == 1
    assert grew("gridrider_incidents_total", outcome="created") == 1
    assert grew("gridrider_job_failures_total", kind="probe_fail", outcome="dead") == 1
    assert grew("gridrider_http_requests_total", method="POST", route="/api/v1/reports", status="201") == 1
    assert grew("gridrider_http_request_duration_seconds_count", method="POST", route="/api/v1/reports") == 1
    assert value(after, "gridrider_jobs", kind="probe_fail", state="dead") == 1
    assert value(after, "gridrider_jobs", kind="probe_record", state="pending") == 1
    assert value(after, "gridrider_job_oldest_age_seconds", kind="probe_fail", state="dead") >= 0
    assert {stage for (name, labels) in after if name == "gridrider_incidents_overdue"
            for key, stage in labels if key == "stage"} == {"dispatch", "accept", "resolve"}
    assert value(after, "gridrider_db_collector_up") == 1

    # Route labels are templates (Litestar's, without the :int converter): ids never become label values.
    routes = {dict(labels)["route"] for (name, labels) in after if name == "gridrider_http_requests_total"}
    assert "/api/v1/incidents/{incident_id}" in routes
    assert "/api/v1/reports/{report_id}" in routes
    assert not [r for r in routes if any(part.isdigit() for part in r.split("/"))], routes


async def test_deliveries_are_grouped_by_channel_and_outcome(settings, db):
    notification = await db.fetchval("INSERT INTO notifications (event, audience) VALUES ('test', '{}') RETURNING id")
    for target, state in (("a", "sent"), ("b", "sent"), ("c", "failed")):
        await db.execute("INSERT INTO deliveries (notification_id, channel, target, state) "
                         "VALUES ($1, 'wecom', $2, $3)", notification, target, state)
    _, _, samples = await scrape(settings)
    assert value(samples, "gridrider_deliveries", channel="wecom", outcome="sent") == 2
    assert value(samples, "gridrider_deliveries", channel="wecom", outcome="failed") == 1


async def test_metrics_are_not_served_by_the_api(client):
    for path in ("/metrics", "/metrics/", "/api/v1/metrics"):
        reply = await client.get(path)
        assert reply.status_code == 404, path
        assert "gridrider_http_requests" not in reply.text


async def test_a_database_that_is_down_leaves_the_scrape_answering_without_its_gauges(settings):
    down = msgspec.structs.replace(settings, database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/none")
    started = time.monotonic()
    status, families, samples = await scrape(down)
    assert status == 200
    assert time.monotonic() - started < 5  # the connect attempt is bounded, the scrape does not hang
    assert value(samples, "gridrider_db_collector_up") == 0
    assert not families & {"gridrider_jobs", "gridrider_job_oldest_age_seconds", "gridrider_incidents_overdue",
                           "gridrider_deliveries"}
    # This process's own figures are still there.
    assert {"gridrider_http_requests", "gridrider_job_failures", "process_cpu_seconds"} <= families


def test_database_reads_are_cached_between_scrapes(monkeypatch):
    collector = DatabaseCollector("postgresql://postgres@127.0.0.1:1/none", ttl_s=60)
    reads = []

    async def counted_query():
        reads.append(1)
        return []

    monkeypatch.setattr(collector, "_query", counted_query)
    for _ in range(5):  # a scrape storm
        assert [m.name for m in collector.collect()] == ["gridrider_db_collector_up"]
    assert len(reads) == 1


def test_a_metrics_port_of_zero_starts_no_listener(settings):
    assert start_metrics_listener(msgspec.structs.replace(settings, metrics_port=0), with_database=True) is None
