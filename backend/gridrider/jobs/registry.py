"""Every job kind the workers run: kind → handler (and what to do when it dies)."""

from __future__ import annotations

import dataclasses

from gridrider.jobs import archive, awards, maintenance, notify, photos, pipeline, retention, wecom
from gridrider.jobs.queue import DEFAULT_QUEUE, queue_for
from gridrider.jobs.runner import DeadHandler, Handler


@dataclasses.dataclass(frozen=True)
class JobKind:
    handler: Handler
    on_dead: DeadHandler | None = None
    lease_s: int | None = None  # None → the GRIDRIDER_JOB_LEASE_S default


JOB_KINDS: dict[str, JobKind] = {
    "prune_jobs": JobKind(maintenance.prune_jobs),
    "sweep_orphan_blobs": JobKind(maintenance.sweep_orphan_blobs),
    # Daily retention and archiving: long runs, cut into batches that commit on their own.
    "purge_photos": JobKind(retention.purge_photos, lease_s=retention.LONG_JOB_LEASE_S),
    "pseudonymise_members": JobKind(retention.pseudonymise_members),
    "archive_incidents": JobKind(archive.archive_incidents, lease_s=retention.LONG_JOB_LEASE_S),
    "process_report": JobKind(pipeline.process_report, on_dead=pipeline.on_process_report_dead),
    # Its own attempts are many: it is the last resort for a report whose processing kept failing.
    "route_report_minimal": JobKind(pipeline.route_report_minimal),
    "normalise_photos": JobKind(photos.normalise_photos),
    "award_points": JobKind(awards.award_points),
    "notify": JobKind(notify.notify, on_dead=notify.on_notify_dead),
    "wecom_flush": JobKind(wecom.wecom_flush),
}


def queues_in_use() -> list[str]:
    """The default queue (it runs the crons) and every queue some job kind is routed to."""
    return sorted({DEFAULT_QUEUE, *(queue_for(kind) for kind in JOB_KINDS)})
