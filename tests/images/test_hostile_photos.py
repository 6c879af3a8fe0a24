"""Every hostile photo of the generated corpus (hostile_corpus.py) through intake and through the worker.

- Intake: POST /api/v1/reports with the photo, through the real app over PostgreSQL and Redis: a 201,
  or a 4xx whose machine code is one the item allows, never a 500; a refused photo leaves nothing.
- Worker: `normalise` in the photo job's own sandbox (`jobs.photos.SandboxHolder`, so the memory, CPU
  and wall-clock limits the job has): a clean derivative, or PhotoFailed with a reason the item
  allows. Never `decoder_crashed` (a crash), nor `timeout` or `cpu_limit` (a hang): the sandbox's own
  limits end a hang and say so, so nothing here is timed by the test.
- The job: every photo intake accepted goes through `normalise_photos` on a real worker and ends
  `ready` with clean stored derivatives or `failed` with the same reason.

Derivatives are checked on their bytes (no payload of any item, no metadata segment, nothing after
EOI) and through Pillow's reading of them (no EXIF, ICC, XMP or comment in `info`/`getexif`).
"""

from __future__ import annotations

import asyncio
import io

import pytest
from PIL import Image

from gridrider.images.pipeline import DISPLAY_MAX_PX, MAX_JPEG_SCANS, THUMB_MAX_PX, PhotoFailed, normalise
from gridrider.images.sandbox import PhotoSandbox
from gridrider.jobs.queue import PHOTOS_QUEUE
from tests.api.test_reports import files, meta
from tests.images.hostile_corpus import (
    ACCEPTED,
    READY,
    Hostile,
    after_soi,
    assert_clean_derivative,
    corpus,
    jpeg_segment,
    many_scans_jpeg,
    scene,
)
from tests.images.test_pipeline import jpeg_bytes
from tests.jobs.conftest import run_burst

GRID = "ZW-ZWZ-C02-G02"
CORPUS = corpus()
# A hang or a crash is never an acceptable answer, whatever an item allows.
NEVER = {"timeout", "cpu_limit", "decoder_crashed"}
MAGIC_TYPES = {b"\xff\xd8\xff": "image/jpeg", b"\x89PNG\r\n\x1a\n": "image/png", b"RIFF": "image/webp"}


def by_name(items: tuple[Hostile, ...]) -> list:
    return [pytest.param(item, id=item.name) for item in items]


def type_by_magic(data: bytes) -> str:
    return next(kind for magic, kind in MAGIC_TYPES.items() if data.startswith(magic))


def test_the_corpus_covers_every_family_and_allows_no_hang() -> None:
    families = {item.name.split("/")[0] for item in CORPUS}
    assert families >= {"bomb", "truncated", "magic", "polyglot", "mode", "line", "animated", "exif",
                        "orientation", "icc", "progressive"}
    assert len({item.name for item in CORPUS}) == len(CORPUS)
    for item in CORPUS:
        assert item.worker and not item.worker & NEVER, item.name
        assert item.intake and all(code == ACCEPTED or code.startswith("photo_") for code in item.intake), item.name


# ── intake, through the real API ─────────────────────────────────────────────────────────────────


@pytest.fixture
async def courier(login):
    return await login("courier", "13966661212", [GRID])


async def post_photo(client, clock, caller, item: Hostile):
    parts = [*files(meta(clock)), ("photo", (item.filename, item.data, item.content_type))]
    return await client.post("/api/v1/reports", headers=caller.headers, files=parts)


FAMILIES = sorted({item.name.split("/")[0] for item in CORPUS})


async def intake_outcome(client, db, clock, courier, settings, item: Hostile) -> str:
    """ACCEPTED or the 4xx's code, after checking what was (or was not) stored."""
    blobs = settings.data_dir / "blobs"
    stored_before = (await db.fetchval("SELECT count(*) FROM photos"), sorted(blobs.rglob("*")))
    reply = await post_photo(client, clock, courier, item)
    assert reply.status_code < 500, reply.text
    if reply.status_code == 201:
        photo = await db.fetchrow("SELECT content_type, original_key, state FROM photos WHERE id = $1",
                                  reply.json()["photos"][0]["id"])
        # The bytes decided the type, never the name or declared type (which lie in the magic/ items).
        assert photo["content_type"] == type_by_magic(item.data)
        assert photo["state"] == "pending"
        assert (blobs / photo["original_key"]).read_bytes() == item.data
        return ACCEPTED
    body = reply.json()
    assert 400 <= reply.status_code < 500 and reply.headers["content-type"].startswith("application/problem+json")
    assert [(e["field"], e["code"]) for e in body["errors"]] == [("photo[0]", body["code"])]
    assert "Traceback" not in reply.text and "object at 0x" not in reply.text
    assert (await db.fetchval("SELECT count(*) FROM photos"), sorted(blobs.rglob("*"))) == stored_before
    return body["code"]


# One test per family rather than per item: each test signs a courier in on a fresh database (a few
# seconds here), and the failure message names every item that answered otherwise.
@pytest.mark.parametrize("family", FAMILIES)
async def test_intake_answers_201_or_a_4xx_with_a_code(client, db, clock, courier, settings, family: str) -> None:
    wrong = []
    for item in CORPUS:
        if item.name.split("/")[0] == family:
            outcome = await intake_outcome(client, db, clock, courier, settings, item)
            if outcome not in item.intake:
                wrong.append((item.name, outcome, sorted(item.intake)))
    assert wrong == []


# ── the worker's decode-and-rebuild, in the photo job's sandbox ──────────────────────────────────


async def normalised_in(box: PhotoSandbox, data: bytes) -> str:
    """READY after checking both derivatives, else the failure's reason."""
    try:
        result = await box.normalise(data)
    except PhotoFailed as caught:
        failure = caught
    else:
        failure = None
    if failure is not None:
        assert failure.reason not in NEVER, f"{failure} (limits: {box.cpu_seconds} s CPU, {box.timeout_s:g} s wall)"
        return failure.reason
    assert result.display_type == "image/jpeg"
    assert_clean_derivative(result.display, DISPLAY_MAX_PX)
    assert_clean_derivative(result.thumb, THUMB_MAX_PX)
    assert (result.width, result.height) == decoded_size(result.display)
    return READY


def decoded_size(data: bytes) -> tuple[int, int]:
    with Image.open(io.BytesIO(data)) as image:
        return image.size


@pytest.mark.parametrize("item", by_name(CORPUS))
async def test_worker_makes_a_clean_derivative_or_fails_cleanly(job_sandbox: PhotoSandbox, item: Hostile) -> None:
    started = job_sandbox.lanes_started
    outcome = await normalised_in(job_sandbox, item.data)
    assert outcome in item.worker, f"{outcome}, expected one of {sorted(item.worker)} {item.why}"
    # Failing a photo is the photo's business: the decoder process lives on (a crash would need a new one).
    assert job_sandbox.lanes_started == started


async def test_the_job_marks_each_accepted_photo_ready_with_clean_blobs_or_failed_with_its_reason(
    client, db, clock, courier, settings,
) -> None:
    accepted = [item for item in CORPUS if ACCEPTED in item.intake]
    uploaded: dict[int, Hostile] = {}
    for item in accepted:
        reply = await post_photo(client, clock, courier, item)
        if reply.status_code == 201:
            uploaded[reply.json()["photos"][0]["id"]] = item
    assert len(uploaded) >= len(accepted) // 2  # most of them: the truncated ones may be refused at the door
    await run_burst(settings, clock, queue=PHOTOS_QUEUE)
    rows = await db.fetch("SELECT id, state, failure_reason, display_key, thumb_key FROM photos")
    assert {row["id"] for row in rows} == set(uploaded)
    blobs = settings.data_dir / "blobs"
    wrong = []
    for row in rows:
        item = uploaded[row["id"]]
        if row["state"] == "ready":
            assert_clean_derivative((blobs / row["display_key"]).read_bytes(), DISPLAY_MAX_PX)
            assert_clean_derivative((blobs / row["thumb_key"]).read_bytes(), THUMB_MAX_PX)
            outcome = READY
        else:
            assert row["state"] == "failed" and row["failure_reason"], (item.name, dict(row))
            outcome = row["failure_reason"]
        if outcome not in item.worker or outcome in NEVER:
            wrong.append((item.name, outcome, sorted(item.worker)))
    assert wrong == []


# ── the scan limit (pipeline.MAX_JPEG_SCANS), found by this corpus ───────────────────────────────


def test_the_scan_limit_counts_the_first_image_only_and_not_bytes_inside_segments() -> None:
    at_limit = many_scans_jpeg(64, 48, MAX_JPEG_SCANS - 1)  # a DC scan and MAX-1 AC scans
    normalise(at_limit)
    with pytest.raises(PhotoFailed) as failed:
        normalise(many_scans_jpeg(64, 48, MAX_JPEG_SCANS))
    assert (failed.value.reason, failed.value.detail) == ("undecodable", f"JPEG of more than {MAX_JPEG_SCANS} scans")
    # SOS markers inside an APP segment, and scans of a second image after EOI (MPO, motion photos),
    # are not scans libjpeg decodes for this photo.
    noise = b"\xff\xda\x00\x02" * 5000
    photo = jpeg_bytes(scene(), quality=80)
    normalise(after_soi(photo, jpeg_segment(0xEF, noise[:60000])))
    normalise(photo + b"\xff\xd8" + noise)


async def test_a_20000_scan_jpeg_is_refused_before_decoding_in_the_sandbox(job_sandbox: PhotoSandbox) -> None:
    # 20,000 scans over 49 MP took the decoder past the 20 s CPU limit before the limit; now refused
    # before libjpeg starts. Several at once, as a rider's report may carry three.
    item = next(item for item in CORPUS if item.name == "progressive/jpeg-20000-scans-7000x7000")
    outcomes = await asyncio.gather(*(normalised_in(job_sandbox, item.data) for _ in range(3)))
    assert outcomes == ["undecodable"] * 3
