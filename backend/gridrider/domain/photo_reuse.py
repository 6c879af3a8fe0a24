"""Reused photos: the same picture turning up in another incident (DESIGN.md §2 step 4).

Two riders photographing one hazard end up in one incident and corroborate each other; the same
picture in a different incident within 30 days is a sign of gaming and is flagged for review.
Lookup is multi-index hashing over four 16-bit bands of the 64-bit dHash (migration 0003).
"""

from __future__ import annotations

import datetime as dt
import itertools

from gridrider.db import photos as db_photos
from gridrider.db.pool import Connection
from gridrider.images.pipeline import REUSE_MAX_HAMMING

REUSE_LOOKBACK = dt.timedelta(days=30)
BANDS = 4
BAND_BITS = 16


def _masks_within(radius: int) -> list[int]:
    masks = [0]
    for flipped in range(1, radius + 1):
        for bits in itertools.combinations(range(BAND_BITS), flipped):
            masks.append(sum(1 << b for b in bits))
    return masks


# If two hashes differ in at most T bits, one of the four bands differs in at most T // 4 of them.
_PROBE_MASKS = _masks_within(REUSE_MAX_HAMMING // BANDS)


def band_probes(dhash: int) -> list[list[int]]:
    """For each band (most significant first), every 16-bit value within the per-band radius."""
    probes = []
    for band in range(BANDS):
        value = (dhash >> (BAND_BITS * (BANDS - 1 - band))) & 0xFFFF
        probes.append([value ^ mask for mask in _PROBE_MASKS])
    return probes


async def flag_reused_report_photos(conn: Connection, *, report_id: int, now: dt.datetime) -> int:
    """Flag this report's photos that match a photo of another incident; returns how many were flagged.

    Runs once both the incident and the hashes are known (after whichever job finishes second).
    """
    flagged = 0
    for photo in await db_photos.report_hashed_photos(conn, report_id):
        similar = await db_photos.most_similar_photo(
            conn, dhash=photo.dhash, exclude_incident_id=photo.incident_id, since=now - REUSE_LOOKBACK,
            max_distance=REUSE_MAX_HAMMING, band_probes=band_probes(photo.dhash), role="report",
        )
        if similar is not None:
            await db_photos.flag_reused(conn, photo=photo, report_id=report_id, similar=similar, now=now)
            flagged += 1
    return flagged


async def flag_reused_proof_photos(conn: Connection, *, incident_id: int, now: dt.datetime) -> int:
    """Flag this incident's after-photos that match another incident's after-photo (a team re-using a
    "fixed" picture); returns how many were flagged. Report photos are never compared with proofs."""
    flagged = 0
    for photo_id, dhash in await db_photos.proof_hashed_photos(conn, incident_id):
        similar = await db_photos.most_similar_photo(
            conn, dhash=dhash, exclude_incident_id=incident_id, since=now - REUSE_LOOKBACK,
            max_distance=REUSE_MAX_HAMMING, band_probes=band_probes(dhash), role="proof",
        )
        if similar is not None:
            await db_photos.flag_reused_proof(conn, photo_id=photo_id, incident_id=incident_id, similar=similar,
                                              now=now)
            flagged += 1
    return flagged
