"""Retention (DESIGN §8): photos of long-finished incidents, long-deactivated members, the audit floor."""

import asyncio
import os
import sys

import pytest

from gridrider.clock import local_day
from gridrider.config import SettingsError, load_settings
from gridrider.images.urls import signed_photo_path
from gridrider.jobs.maintenance import schedule_maintenance
from tests.factories import make_member, make_report
from tests.jobs.aged_incidents import make_incident
from tests.jobs.conftest import run_burst


def blob_exists(settings, key: str) -> bool:
    return (settings.data_dir / "blobs" / key).exists()


async def run_daily_jobs(services, settings, clock) -> dict[str, str]:
    """What the worker's cron does once a day: schedule, then run everything due."""
    await schedule_maintenance(services)
    await run_burst(settings, clock)
    rows = await services.pool.fetch(
        "SELECT DISTINCT ON (kind) kind, state FROM jobs ORDER BY kind, id DESC")
    return {r["kind"]: r["state"] for r in rows}


# ── photos ──────────────────────────────────────────────────────────────────────────────────────────

async def test_photos_of_an_incident_closed_past_the_retention_lose_their_blobs(services, settings, clock, db):
    rider = await make_member(db)
    old = await make_incident(db, clock, services.blobs, reporter=rider, state="closed")
    still_open = await make_incident(db, clock, services.blobs, reporter=rider, state="dispatched")
    rejected = await make_incident(db, clock, services.blobs, reporter=rider, state="rejected")
    clock.advance(days=300)
    recent = await make_incident(db, clock, services.blobs, reporter=rider, state="closed")

    clock.advance(days=64)  # old: closed 364 days ago
    await run_daily_jobs(services, settings, clock)
    assert await db.fetchval("SELECT count(*) FROM photos WHERE state = 'purged'") == 0

    clock.advance(days=2)  # old: 366 days; recent: 66 days
    states = await run_daily_jobs(services, settings, clock)
    assert states["purge_photos"] == "done"

    for made in (old, rejected):  # rejected for good (no appeal pending) counts as finished too
        assert not any(blob_exists(settings, key) for key in made.blob_keys)
        rows = await db.fetch("SELECT state, purged_at FROM photos WHERE id = ANY($1::bigint[])",
                              list(made.rows["photos"]))
        assert {(r["state"], r["purged_at"]) for r in rows} == {("purged", clock.now())}
    for made in (still_open, recent):
        assert all(blob_exists(settings, key) for key in made.blob_keys)
        assert await db.fetchval("SELECT count(*) FROM photos WHERE id = ANY($1::bigint[]) AND state = 'ready'",
                                 list(made.rows["photos"])) == len(made.rows["photos"])
    # The rows, the reports and their keys stay: a rider still sees that the report had photos.
    assert await db.fetchval("SELECT count(*) FROM photos") == sum(
        len(m.rows["photos"]) for m in (old, still_open, rejected, recent))


async def test_a_second_purge_changes_nothing_and_the_sweep_keeps_what_is_still_referenced(services, settings,
                                                                                            clock, db):
    rider = await make_member(db)
    await make_incident(db, clock, services.blobs, reporter=rider, state="closed")
    kept = await make_incident(db, clock, services.blobs, reporter=rider, state="dispatched")
    clock.advance(days=380)
    await run_daily_jobs(services, settings, clock)
    purged = await db.fetch("SELECT id, purged_at FROM photos WHERE state = 'purged' ORDER BY id")
    assert len(purged) == 3

    clock.advance(days=1)
    await run_daily_jobs(services, settings, clock)
    assert await db.fetch("SELECT id, purged_at FROM photos WHERE state = 'purged' ORDER BY id") == purged
    assert [r["state"] for r in await db.fetch("SELECT state FROM jobs WHERE kind = 'purge_photos'")] == ["done"] * 2
    # The hourly orphan sweep ran both times: blobs of photos still in use are referenced, so they stay.
    assert all(blob_exists(settings, key) for key in kept.blob_keys)


async def test_photos_archived_before_their_retention_ends_are_kept_then_purged(settings, clock, db, redis, tmp_path,
                                                                                 vapid_pem):
    from gridrider.images.blobs import LocalBlobStore
    from gridrider.services import Services
    from tests.conftest import make_settings

    # A city that keeps photos longer than incidents stay hot.
    longer = make_settings(settings.data_dir, settings.database_url, settings.redis_url, vapid_pem,
                           photo_retention_days=500)
    services = Services(settings=longer, clock=clock, pool=db, redis=redis,
                        blobs=LocalBlobStore(longer.data_dir / "blobs"))
    rider = await make_member(db)
    made = await make_incident(db, clock, services.blobs, reporter=rider, state="closed")
    clock.advance(days=401)
    await run_daily_jobs(services, longer, clock)
    assert await db.fetchval("SELECT count(*) FROM archive.photos WHERE purged_at IS NULL") == 3
    assert all(blob_exists(longer, key) for key in made.blob_keys)  # the sweep still sees them referenced

    clock.advance(days=100)
    await run_daily_jobs(services, longer, clock)
    assert await db.fetchval("SELECT count(*) FROM archive.photos WHERE state = 'purged'") == 3
    assert not any(blob_exists(longer, key) for key in made.blob_keys)


async def test_a_purged_photo_answers_404_not_500(services, settings, clock, db, client):
    rider = await make_member(db)
    made = await make_incident(db, clock, services.blobs, reporter=rider, state="closed")
    clock.advance(days=366)
    await run_daily_jobs(services, settings, clock)
    photo = min(made.rows["photos"])
    reply = await client.get(signed_photo_path(settings.url_signing_secret, photo, "thumb", clock.now()))
    assert reply.status_code == 404, reply.text


async def test_a_reopened_incident_keeps_its_photos(services, settings, clock, db):
    rider = await make_member(db)
    made = await make_incident(db, clock, services.blobs, reporter=rider, state="closed")
    clock.advance(days=366)
    # A supervisor reopens it the day before the job runs: open again, so never purged.
    await db.execute("UPDATE incidents SET state = 'dispatched', cycle = 2 WHERE id = $1", made.incident)
    await run_daily_jobs(services, settings, clock)
    assert all(blob_exists(settings, key) for key in made.blob_keys)


# ── members ─────────────────────────────────────────────────────────────────────────────────────────

async def _deactivate(db, member: int, when) -> None:
    await db.execute("UPDATE members SET status = 'deactivated', deactivated_at = $2 WHERE id = $1", member, when)


async def _signed_in_with_push(db, member: int, clock) -> None:
    await db.execute(
        """INSERT INTO sessions (member_id, token_hash, device, expires_at) VALUES ($1, $2, 'Redmi 9A', $3)""",
        member, os.urandom(32), clock.now())
    await db.execute(
        """INSERT INTO push_subscriptions (member_id, endpoint, p256dh, auth, vapid_key_id)
           VALUES ($1, $2, $3, $4, 'k1')""",
        member, f"https://updates.push.services.mozilla.com/wpush/v2/{member}", b"\x04" + os.urandom(64),
        os.urandom(16))


async def _member(db, member: int) -> dict:
    return dict(await db.fetchrow(
        """SELECT display_name, phone, status, pseudonym,
                  (SELECT count(*) FROM sessions WHERE member_id = m.id) AS sessions,
                  (SELECT count(*) FROM push_subscriptions WHERE member_id = m.id) AS subscriptions
           FROM members m WHERE id = $1""", member))


async def test_deactivated_members_are_pseudonymised_after_the_period_not_before(services, settings, clock, db):
    early, late, active = [await make_member(db) for _ in range(3)]
    for member in (early, late, active):
        await _signed_in_with_push(db, member, clock)
    report = await make_report(db, clock, reporter_id=early)
    await db.execute(
        """INSERT INTO points_ledger (member_id, reason, amount, source_kind, source_id, counts_toward_cap,
                                      counts_toward_ranking, local_day, created_at)
           VALUES ($1, 'adjustment', 5, 'decision', 1, false, true, $2, $3)""",
        early, local_day(clock.now()), clock.now())
    await _deactivate(db, early, clock.now())
    clock.advance(days=100)
    await _deactivate(db, late, clock.now())
    before = {m: await _member(db, m) for m in (early, late, active)}

    clock.advance(days=79)  # early: deactivated 179 days ago
    await run_daily_jobs(services, settings, clock)
    assert {m: await _member(db, m) for m in (early, late, active)} == before

    clock.advance(days=2)  # early: 181 days; late: 81 days
    states = await run_daily_jobs(services, settings, clock)
    assert states["pseudonymise_members"] == "done"
    gone = await _member(db, early)
    assert gone == {"display_name": None, "phone": None, "status": "pseudonymised",
                    "pseudonym": before[early]["pseudonym"], "sessions": 0, "subscriptions": 0}
    assert await _member(db, late) == before[late]
    assert await _member(db, active) == before[active]
    # What they did stays, under the pseudonym: the report and the ledger.
    assert await db.fetchval("SELECT reporter_id FROM reports WHERE id = $1", report) == early
    assert await db.fetchval("SELECT sum(amount) FROM points_ledger WHERE member_id = $1", early) == 5

    clock.advance(days=1)
    await run_daily_jobs(services, settings, clock)  # nothing more to do, and no error doing it
    assert await db.fetchval("SELECT count(*) FROM members WHERE status = 'pseudonymised'") == 1
    assert await db.fetchval("SELECT count(*) FROM jobs WHERE kind = 'pseudonymise_members' AND state = 'done'") == 3


async def test_a_member_re_enrolled_in_time_is_left_alone(services, settings, clock, db):
    member = await make_member(db)
    await _deactivate(db, member, clock.now())
    clock.advance(days=170)
    await db.execute("UPDATE members SET status = 'active', deactivated_at = NULL WHERE id = $1", member)
    clock.advance(days=20)
    await run_daily_jobs(services, settings, clock)
    assert (await _member(db, member))["status"] == "active"


# ── the audit floor ─────────────────────────────────────────────────────────────────────────────────

@pytest.mark.parametrize("env", [{"GRIDRIDER_AUDIT_RETENTION_DAYS": "90"}, {"GRIDRIDER_AUDIT_RETENTION_DAYS": "182"}])
def test_an_audit_retention_under_six_months_is_refused(env):
    with pytest.raises(SettingsError) as caught:
        load_settings(env)
    assert str(caught.value).startswith("GRIDRIDER_AUDIT_RETENTION_DAYS: must be at least 183")


def test_the_audit_floor_holds_for_settings_made_in_code_too():
    with pytest.raises(SettingsError, match="GRIDRIDER_AUDIT_RETENTION_DAYS"):
        load_settings({}, audit_retention_days=30)
    assert load_settings({"GRIDRIDER_AUDIT_RETENTION_DAYS": "183"}).audit_retention_days == 183


async def test_a_process_refuses_to_start_with_a_short_audit_retention(tmp_path):
    env = {**os.environ, "GRIDRIDER_AUDIT_RETENTION_DAYS": "100", "GRIDRIDER_DATA_DIR": str(tmp_path)}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "gridrider", "worker", env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode == 2
    assert err.decode().strip().splitlines() == [
        "gridrider: setting error: GRIDRIDER_AUDIT_RETENTION_DAYS: must be at least 183 (audit events are kept "
        "at least 6 months), got 100"]


@pytest.mark.parametrize(("name", "value"), [("GRIDRIDER_PHOTO_RETENTION_DAYS", "7"),
                                             ("GRIDRIDER_ARCHIVE_AFTER_DAYS", "0"),
                                             ("GRIDRIDER_MEMBER_RETENTION_DAYS", "soon")])
def test_other_retention_settings_are_checked(name, value):
    with pytest.raises(SettingsError) as caught:
        load_settings({name: value})
    assert str(caught.value).startswith(name)
