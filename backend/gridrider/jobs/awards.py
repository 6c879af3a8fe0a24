"""Paying an incident's points after a report joins it or its photos finish, in a job of its own.

Not inside process_report or normalise_photos: those hold the report's row lock, and paying takes the
incident's points lock (domain/points.py), which an accept holds while it reads the report rows — the two
waited on each other, a deadlock the fault suite (tests/faults) saw. A job of its own takes the points lock
first, like every other payer. Paying is idempotent, so a duplicate run pays nothing twice.
"""

from __future__ import annotations

from gridrider.domain import points
from gridrider.jobs.queue import Tx
from gridrider.jobs.runner import JobCall


async def enqueue_award(tx: Tx, *, incident_id: int, report_id: int, after: str) -> None:
    """`after` names what made the award due ('merged', 'photos'): one job per cause, never one for both —
    the merge's job may run before the photos are done and pay nothing, so the photos' own must still run."""
    await tx.add_job("award_points", {"incident_id": incident_id},
                     dedupe_key=f"{after}:report:{report_id}:incident:{incident_id}")


async def award_points(call: JobCall) -> str:
    incident_id = call.payload["incident_id"]
    await points.award_ready_reports(call.tx.conn, incident_id=incident_id, now=call.services.clock.now())
    return f"incident {incident_id} settled"
