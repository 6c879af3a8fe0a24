"""normalise_photos: decode each uploaded photo in the sandbox, store display and thumbnail, hash it.

Runs on its own queue (and its own workers), so a slow or hostile photo never delays an alert. A
photo that fails to decode is marked `failed` with its reason; nothing else about its report changes.
"""

from __future__ import annotations

from gridrider.db import photos as db_photos
from gridrider.domain.photo_reuse import flag_reused_proof_photos, flag_reused_report_photos
from gridrider.images.blobs import new_blob_key
from gridrider.images.pipeline import PhotoFailed
from gridrider.images.sandbox import PhotoSandbox
from gridrider.jobs.awards import enqueue_award
from gridrider.jobs.runner import JobCall
from gridrider.logging import get_logger

log = get_logger(__name__)


class SandboxHolder:
    """One warm sandbox per worker process: starting decoder processes costs more than decoding."""

    def __init__(self) -> None:
        self._sandbox: PhotoSandbox | None = None

    def get(self) -> PhotoSandbox:
        if self._sandbox is None:
            self._sandbox = PhotoSandbox()
        return self._sandbox

    async def warm_up(self) -> None:
        """Start the decoder process with the worker (~240 ms), not on the first rider's photo."""
        await self.get().start()

    async def close(self) -> None:
        if self._sandbox is not None:
            await self._sandbox.close()
            self._sandbox = None


SANDBOX = SandboxHolder()


async def normalise_photos(call: JobCall) -> str:
    services, conn = call.services, call.tx.conn
    report_id = call.payload.get("report_id")
    # Proof (after) photos of a resolved incident go through the same decoding; they have no report.
    pending = await (db_photos.pending_photos(conn, report_id) if report_id is not None
                     else db_photos.pending_proof_photos(conn, call.payload["incident_id"]))
    ready = failed = 0
    for photo in pending:
        now = services.clock.now()
        try:
            data = await services.blobs.get(photo.original_key)
            result = await SANDBOX.get().normalise(data)
        except PhotoFailed as failure:
            await db_photos.mark_photo_failed(conn, photo.id, reason=failure.reason, now=now)
            log.info("photos.failed", photo_id=photo.id, reason=failure.reason)
            failed += 1
            continue
        extension = "webp" if result.display_type == "image/webp" else "jpg"
        display_key = new_blob_key("display", now, extension)
        thumb_key = new_blob_key("thumb", now, "jpg")
        await services.blobs.put(display_key, result.display)
        await services.blobs.put(thumb_key, result.thumb)
        await db_photos.mark_photo_ready(
            conn, photo.id, display_key=display_key, display_type=result.display_type, thumb_key=thumb_key,
            width=result.width, height=result.height, dhash=result.dhash, now=now,
        )
        ready += 1
    if report_id is None:
        reused = await flag_reused_proof_photos(conn, incident_id=call.payload["incident_id"],
                                                now=services.clock.now())
        return f"{ready} proof ready, {failed} failed, {reused} flagged reused"
    # Serialise with process_report (which holds this row): whichever commits second sees both the
    # incident and the hashes, so exactly one of them runs the reuse check on complete data.
    await db_photos.lock_report(conn, report_id)
    reused = await flag_reused_report_photos(conn, report_id=report_id, now=services.clock.now())
    # A report whose photos finish after its incident was accepted earns its points now (DESIGN §2d), in a
    # job of its own: this one holds the report's row lock (see jobs/awards.py).
    incident_id = await db_photos.incident_of_report(conn, report_id)
    if incident_id is not None:
        await enqueue_award(call.tx, incident_id=incident_id, report_id=report_id, after="photos")
    return f"{ready} ready, {failed} failed, {reused} flagged reused"
