"""The `gridrider` command: up, api, worker, migrate, demo, vapid-keys, apikey, archive, status, bench."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from typing import TYPE_CHECKING

import msgspec

from gridrider.clock import SystemClock
from gridrider.config import Settings, SettingsError, load_settings
from gridrider.logging import configure_logging, get_logger

if TYPE_CHECKING:  # shapely and friends load only for the commands that need them
    from gridrider.domain.area_import import AreaImportReport

log = get_logger("gridrider.cli")


class Runtime(msgspec.Struct, frozen=True):
    """Settings with every URL and secret resolved; the embedded servers kept to stop them later."""

    settings: Settings
    embedded: list


def _load() -> Settings:
    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    return settings


def resolve_runtime(
    settings: Settings, *, allow_embedded: bool, need_secrets: bool = True, need_redis: bool = True
) -> Runtime:
    """Start embedded PostgreSQL/Redis for URLs that are unset, and fill secrets from the data dir."""
    from gridrider.embedded import EmbeddedPostgres, EmbeddedRedis, resolve_secrets

    embedded_db = settings.database_url is None
    if not allow_embedded and (settings.database_url is None or settings.redis_url is None):
        raise SettingsError(
            "DATABASE_URL and REDIS_URL: both must be set for this command; "
            "`gridrider up` starts embedded servers when they are unset"
        )
    started: list = []
    try:
        updates: dict[str, object] = dict(resolve_secrets(settings, generate=embedded_db)) if need_secrets else {}
        if settings.database_url is None:
            server = EmbeddedPostgres(settings.data_dir)
            updates["database_url"] = server.start()
            started.append(server)
        if settings.redis_url is None and need_redis:
            redis = EmbeddedRedis(settings.data_dir)
            updates["redis_url"] = redis.start()
            started.append(redis)
    except BaseException:
        stop_embedded(started)
        raise
    return Runtime(settings=msgspec.structs.replace(settings, **updates), embedded=started)


def stop_embedded(started: Sequence) -> None:
    for server in reversed(started):
        server.stop()


async def _migrate(settings: Settings) -> list[int]:
    from gridrider.db.migrate import migrate_and_seed_defaults
    from gridrider.db.pool import connect

    conn = await connect(settings.database_url)
    try:
        return await migrate_and_seed_defaults(conn)
    finally:
        await conn.close()


async def _demo(settings: Settings) -> str:
    from gridrider.db.pool import connect
    from gridrider.demo import seed_demo

    conn = await connect(settings.database_url)
    try:
        return await seed_demo(conn, settings)
    finally:
        await conn.close()


# ── commands ────────────────────────────────────────────────────────────────────────────────────

def cmd_migrate(args: argparse.Namespace) -> int:
    runtime = resolve_runtime(_load(), allow_embedded=True, need_secrets=False, need_redis=False)
    try:
        applied = asyncio.run(_migrate(runtime.settings))
        print(f"migrations applied: {', '.join(f'{v:04d}' for v in applied) or 'none (up to date)'}")
    finally:
        stop_embedded(runtime.embedded)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    runtime = resolve_runtime(_load(), allow_embedded=True, need_secrets=False, need_redis=False)
    try:
        asyncio.run(_migrate(runtime.settings))
        print(asyncio.run(_demo(runtime.settings)))
    finally:
        stop_embedded(runtime.embedded)
    return 0


def cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

    from gridrider.app import create_app
    from gridrider.metrics import start_metrics_listener

    runtime = resolve_runtime(_load(), allow_embedded=False)
    settings = runtime.settings
    # The API's listener also reads the queue/overdue/delivery gauges from the database (workers' do not:
    # one reader per role is enough for figures of the shared database).
    start_metrics_listener(settings, with_database=True)
    uvicorn.run(
        create_app(settings), host=settings.host, port=settings.port, log_config=None,
        access_log=False, proxy_headers=True, server_header=False, timeout_graceful_shutdown=10,
    )
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from gridrider.jobs.queue import DEFAULT_QUEUE, PHOTOS_QUEUE
    from gridrider.jobs.worker import run_worker
    from gridrider.metrics import start_metrics_listener

    runtime = resolve_runtime(_load(), allow_embedded=False)
    queue = {"default": DEFAULT_QUEUE, "photos": PHOTOS_QUEUE}[args.queue]
    start_metrics_listener(runtime.settings, with_database=False)
    use_uvloop()
    run_worker(runtime.settings, queue=queue)
    return 0


def use_uvloop() -> None:
    """uvloop (installed with uvicorn[standard], which the API already runs on) for the worker's loop too:
    `gridrider bench push` measured ~13% more push deliveries per CPU second with it."""
    import uvloop

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


async def _enrol(settings: Settings, args: argparse.Namespace):
    from gridrider.db.pool import connect
    from gridrider.domain.enrolment import EnrolmentRequest, enrol

    conn = await connect(settings.database_url)
    try:
        async with conn.transaction():
            return await enrol(conn, caller=None, now=SystemClock().now(), secret=settings.session_secret,
                               request=EnrolmentRequest(role=args.role, display_name=args.name, phone=args.phone,
                                                        area_codes=args.area, platform=args.platform))
    finally:
        await conn.close()


def cmd_enrol(args: argparse.Namespace) -> int:
    """Server-side enrolment (the first admin, or any member): prints the code, its link and a QR code."""
    import segno

    from gridrider.api.members import enrolment_url
    from gridrider.clock import format_local
    from gridrider.errors import DomainError

    runtime = resolve_runtime(_load(), allow_embedded=True, need_redis=False)
    try:
        asyncio.run(_migrate(runtime.settings))
        try:
            done = asyncio.run(_enrol(runtime.settings, args))
        except DomainError as exc:
            problems = "; ".join(f"{e.field}: {e.message}" for e in exc.errors) or exc.code
            print(f"gridrider: enrolment refused: {problems}", file=sys.stderr)
            return 2
    finally:
        stop_embedded(runtime.embedded)
    url = enrolment_url(runtime.settings.public_url, done.code)
    print(f"{'re-activated' if done.reactivated else 'enrolled'} member {done.member_id} ({args.role})")
    print(f"code: {done.code}   (valid until {format_local(done.expires_at)};"
          " sign-in also asks for the phone's last 4 digits)")
    print(f"link: {url}")
    segno.make(url, error="m").terminal(compact=True)
    return 0


def cmd_vapid_keys(args: argparse.Namespace) -> int:
    """VAPID key ring: `new` prints a key; `list`, `rotate` and `retire` manage the configured ring.

    The ring lives where the other secrets live: in the data dir's secrets file for the embedded
    default (edited in place), or in GRIDRIDER_VAPID_PRIVATE_KEY / _FILE for a deployment (the new
    ring is printed for the operator to install, then every process is restarted).
    """
    from gridrider.embedded import generate_vapid_private_key_pem

    if args.action == "new":
        print(generate_vapid_private_key_pem(), end="")
        print("# Put this in GRIDRIDER_VAPID_PRIVATE_KEY (or a file named by GRIDRIDER_VAPID_PRIVATE_KEY_FILE).",
              file=sys.stderr)
        return 0
    return asyncio.run(_vapid_ring(args.action))


async def _vapid_ring(action: str) -> int:
    from gridrider.db import notifications as db_notifications
    from gridrider.db.pool import connect
    from gridrider.embedded import generate_vapid_private_key_pem, secret_path
    from gridrider.push.vapid import VapidKeyring, split_pem_blocks

    base = _load()
    from_data_dir = not base.vapid_private_key and base.database_url is None
    runtime = resolve_runtime(base, allow_embedded=True, need_redis=False)
    try:
        settings = runtime.settings
        await _migrate(settings)
        ring = VapidKeyring.from_text(settings.vapid_private_key, settings.vapid_subject)
        conn = await connect(settings.database_url)
        try:
            use = await db_notifications.vapid_key_use(conn)
        finally:
            await conn.close()
        blocks = split_pem_blocks(settings.vapid_private_key)
        if action == "list":
            for key in ring.keys:
                mark = "current" if key is ring.current else "old"
                print(f"{key.id}  {mark:7}  {use.get(key.id, 0):6} subscriptions  {key.application_server_key}")
            unknown = sorted(set(use) - {key.id for key in ring.keys})
            if unknown:
                print(f"# subscriptions signed by keys no longer configured: {', '.join(unknown)}"
                      " (their browsers are asked to subscribe again)")
            return 0
        if action == "rotate":
            new_blocks = [*blocks, generate_vapid_private_key_pem()]
            message = "added a key; it is current for new subscriptions, old ones keep their own key"
        else:  # retire: keep the current key and every key a subscription still uses
            keep = {ring.current.id} | {key_id for key_id, count in use.items() if count}
            new_blocks = [block for block, key in zip(blocks, ring.keys, strict=True) if key.id in keep]
            retired = len(blocks) - len(new_blocks)
            message = f"retired {retired} unused key(s)" if retired else "no key to retire: every key is in use"
        text = "".join(new_blocks)
        if from_data_dir:
            path = secret_path(settings.data_dir, "vapid_private_key")
            tmp = path.with_suffix(".new")
            tmp.write_text(text)
            tmp.chmod(0o600)
            tmp.replace(path)
            print(f"{message} ({path}); restart `gridrider up` to use it")
        else:
            print(text, end="")
            print(f"# {message}: put the ring above in GRIDRIDER_VAPID_PRIVATE_KEY (or its _FILE) and restart"
                  " every API and worker process", file=sys.stderr)
        return 0
    finally:
        stop_embedded(runtime.embedded)


def cmd_calendar(args: argparse.Namespace) -> int:
    """Working-day calendar: `load FILE` (the State Council's arrangement as overrides), `status` (which years
    are known, and by what)."""
    from pathlib import Path

    from gridrider.domain.workdays import CSV_FORMAT, CalendarFileError, parse_calendar_csv

    rows = None
    if args.action == "load":
        if not args.file:
            print(f"gridrider: calendar load needs a FILE of lines {CSV_FORMAT}", file=sys.stderr)
            return 2
        try:
            rows = parse_calendar_csv(Path(args.file).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            print(f"gridrider: calendar file refused: cannot read {args.file}: {exc}", file=sys.stderr)
            return 2
        except CalendarFileError as exc:
            print(f"gridrider: calendar file refused, nothing loaded: {args.file}: {exc}", file=sys.stderr)
            return 2
        if not rows:
            print(f"gridrider: calendar file refused: {args.file} has no days (lines {CSV_FORMAT})",
                  file=sys.stderr)
            return 2
    runtime = resolve_runtime(_load(), allow_embedded=True, need_redis=False)
    try:
        asyncio.run(_migrate(runtime.settings))
        for line in asyncio.run(_calendar(runtime.settings, rows, source=args.source)):
            print(line)
    finally:
        stop_embedded(runtime.embedded)
    return 0


async def _calendar(settings: Settings, rows: list | None, *, source: str) -> list[str]:
    from importlib.metadata import version

    from gridrider.clock import local_day
    from gridrider.db.calendar import save_overrides, work_calendar
    from gridrider.db.pool import connect

    now = SystemClock().now()
    out: list[str] = []
    conn = await connect(settings.database_url)
    try:
        if rows is not None:
            async with conn.transaction():
                count = await save_overrides(conn, rows, source=source, now=now)
            years = sorted({day.year for day, _, _ in rows})
            holidays = sum(1 for _, is_workday, _ in rows if not is_workday)
            out.append(f"loaded {count} days ({holidays} holidays, {count - holidays} working days)"
                       f" for {', '.join(map(str, years))}")
        calendar = await work_calendar(conn)
    finally:
        await conn.close()
    this_year = local_day(now).year
    for year in (this_year, this_year + 1):
        basis = calendar.year_basis(year)
        overrides = calendar.overrides_in_year(year)
        extra = f" + {overrides} override(s)" if overrides and basis == "package" else ""
        if basis == "package":
            out.append(f"{year}: known (chinesecalendar {version('chinesecalendar')}{extra})")
        elif basis == "overrides":
            out.append(f"{year}: known (overrides: {overrides} days loaded)")
        else:
            out.append(f"{year}: NOT known (weekdays only: Monday–Friday)")
    warning = calendar.missing_year_warning(now)
    if warning:
        out.append(f"warning: {warning}")
    return out


def cmd_areas(args: argparse.Namespace) -> int:
    """Area tree: `import FILE.geojson` checks the whole file, then writes it in one transaction (or nothing)."""
    from pathlib import Path

    from gridrider.domain.area_import import AreaFileInvalid, decode_feature_collection
    from gridrider.errors import message_for

    try:
        features = decode_feature_collection(Path(args.file).read_bytes())
    except OSError as exc:
        print(f"gridrider: areas file refused: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    except AreaFileInvalid as exc:
        where = ", ".join(e.field for e in exc.errors) + (f": {exc.detail}" if exc.detail else "")
        print(f"gridrider: areas file refused, nothing imported: {args.file}: "
              f"{message_for(exc.code, 'en')} ({where})", file=sys.stderr)
        return 2
    runtime = resolve_runtime(_load(), allow_embedded=True, need_secrets=False, need_redis=False)
    try:
        asyncio.run(_migrate(runtime.settings))
        report = asyncio.run(_import_areas(runtime.settings, features, dry_run=args.dry_run, strict=args.strict))
    finally:
        stop_embedded(runtime.embedded)
    for line in area_report_lines(report.in_language("en"), args.file):
        print(line)
    return 1 if report.refused else 0


async def _import_areas(settings: Settings, features: list, *, dry_run: bool, strict: bool) -> AreaImportReport:
    from gridrider.db.areas import import_areas
    from gridrider.db.pool import connect

    conn = await connect(settings.database_url)
    try:
        async with conn.transaction():
            return await import_areas(conn, features, now=SystemClock().now(), dry_run=dry_run, strict=strict)
    finally:
        await conn.close()


def area_report_lines(report: AreaImportReport, file: str, listed: int = 20) -> list[str]:
    """An import report for a person at a terminal: what happens to the areas, then every problem."""
    mode = " (dry run: nothing written)" if report.dry_run else ""
    # Until it is applied, the plan is only what would happen.
    verb = {"created": "created", "updated": "updated"} if report.applied else {
        "created": "would create", "updated": "would update"}
    out = [f"areas import {file}: {report.features} features{mode}",
           f"  {verb['created']} {report.created}, {verb['updated']} {report.updated}, unchanged {report.unchanged}; "
           f"{report.untouched} area(s) in the database are not in the file and are left alone"]
    for action in ("created", "updated"):
        changes = [c for c in report.areas if c.action == action]
        for change in changes[:listed]:
            what = f" ({', '.join(change.changed)})" if change.changed else f" ({change.level})"
            out.append(f"  {verb[action]} {change.code}{what}")
        if len(changes) > listed:
            out.append(f"  … and {len(changes) - listed} more")
    out.append(f"problems: {report.errors} error(s), {report.warnings} warning(s)")
    for issue in report.issues:
        where = ", ".join(part for part in (
            issue.area_code, None if issue.feature is None else f"feature {issue.feature}", issue.field) if part)
        extra = ""
        if issue.related_code:
            extra += f" [{issue.related_code}]"
        if issue.area_m2 is not None:
            extra += f" {issue.area_m2:,.0f} m²"
        if issue.location:
            extra += f" near lon {issue.location[0]:.6f}, lat {issue.location[1]:.6f}"
        out.append(f"  {issue.severity:7} {issue.code} ({where}): {issue.message}{extra}")
    if report.issues_omitted:
        out.append(f"  … and {report.issues_omitted} more problem(s)")
    if report.refused:
        why = "errors" if report.errors else "warnings under --strict"
        out.append(f"refused because of {why}: nothing imported")
    elif report.dry_run:
        out.append("would import: run again without --dry-run to apply")
    else:
        out.append("imported" if report.applied else "nothing to change")
    return out


def cmd_apikey(args: argparse.Namespace) -> int:
    """Open311 API keys of city systems: `create --name N --area CODE` (the key is printed once), `list`,
    `revoke NAME`."""
    args.name = args.name or args.key_name
    if args.action in ("create", "revoke") and not args.name:
        print(f"gridrider: apikey {args.action} needs a name", file=sys.stderr)
        return 2
    if args.action == "create" and not args.area:
        print("gridrider: apikey create needs --area CODE (the subtree the key may file in and read)",
              file=sys.stderr)
        return 2
    # The key is stored as a keyed hash under the session secret, as session tokens are: creating needs it.
    runtime = resolve_runtime(_load(), allow_embedded=True, need_secrets=args.action == "create", need_redis=False)
    try:
        asyncio.run(_migrate(runtime.settings))
        return asyncio.run(_apikey(runtime.settings, args))
    finally:
        stop_embedded(runtime.embedded)


async def _apikey(settings: Settings, args: argparse.Namespace) -> int:
    from gridrider.clock import format_local
    from gridrider.db import apikeys as db_apikeys
    from gridrider.db.pool import connect
    from gridrider.open311 import keys

    now = SystemClock().now()
    conn = await connect(settings.database_url)
    try:
        if args.action == "list":
            rows = await db_apikeys.list_keys(conn)
            for row in rows:
                state = f"revoked {format_local(row.revoked_at, 'en')}" if row.revoked_at else "live"
                created_at = format_local(row.created_at, "en")
                print(f"{row.name}  area {row.area_code}  {row.key_prefix}…  created {created_at}  {state}"
                      f"  member {row.member_id}")
            if not rows:
                print("no API keys")
            return 0
        try:
            async with conn.transaction():
                if args.action == "create":
                    created = await keys.create_key(conn, name=args.name, area_code=args.area,
                                                    secret=settings.session_secret, now=now)
                else:
                    row, was_live = await keys.revoke_key(conn, name=args.name, now=now)
        except keys.ApiKeyError as exc:
            print(f"gridrider: apikey {args.action} refused: {exc}", file=sys.stderr)
            return 1
    finally:
        await conn.close()
    if args.action == "create":
        print(f"created API key {created.row.name} for area {created.row.area_code}"
              f" (files as system member {created.row.member_id})")
        print(f"key: {created.key}")
        print("This is the only time the key is shown; store it in the city system now.")
    elif was_live:
        print(f"revoked API key {row.name}; its requests now get 403")
    else:
        print(f"API key {row.name} was already revoked")
    return 0


def cmd_archive(args: argparse.Namespace) -> int:
    """Archive finished incidents now (the daily job does the same), or with --dry-run say what would move."""
    runtime = resolve_runtime(_load(), allow_embedded=True, need_secrets=False, need_redis=False)
    try:
        asyncio.run(_migrate(runtime.settings))
        return asyncio.run(_archive(runtime.settings, dry_run=args.dry_run))
    finally:
        stop_embedded(runtime.embedded)


async def _archive(settings: Settings, *, dry_run: bool) -> int:
    from gridrider.db.pool import create_pool
    from gridrider.jobs.archive import ArchiveBusy, archive_incidents_now, report_lines

    pool = await create_pool(settings.database_url, min_size=1, max_size=1)
    try:
        run = await archive_incidents_now(pool, settings, SystemClock().now(), dry_run=dry_run)
    except ArchiveBusy:
        print("gridrider: archive refused: another process is archiving now", file=sys.stderr)
        return 1
    finally:
        await pool.close()
    for line in report_lines(run):
        print(line)
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    """Queues, dead jobs, overdue incidents and whether Redis answers. Exit 0: healthy; 1: dead jobs present,
    or PostgreSQL or Redis does not answer (a cron or probe can alert on it); 2: a setting is wrong."""
    # The servers of a running deployment: starting embedded ones here would inspect an empty database.
    runtime = resolve_runtime(_load(), allow_embedded=False, need_secrets=False)
    lines, healthy = asyncio.run(_status(runtime.settings))
    for line in lines:
        print(line)
    return 0 if healthy else 1


def _age(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h" if seconds < 172_800 else f"{seconds // 86_400}d"


async def _status(settings: Settings) -> tuple[list[str], bool]:
    import datetime as dt

    from redis.asyncio import Redis

    from gridrider.config import redact_url
    from gridrider.metrics import JOB_STATES, dead_jobs, open_probe_connection, overdue_counts, queue_rows

    out: list[str] = []
    problems: list[str] = []
    redis = Redis.from_url(settings.redis_url, socket_connect_timeout=2, socket_timeout=2)
    try:
        await redis.ping()
        out.append(f"redis: answers ({redact_url(settings.redis_url)})")
    except Exception as exc:  # any failure is the answer: Redis is not usable
        out.append(f"redis: NOT ANSWERING ({redact_url(settings.redis_url)}: {type(exc).__name__})")
        problems.append("redis not answering")
    finally:
        await redis.aclose()
    try:
        conn = await open_probe_connection(settings.database_url, timeout_s=5)
    except Exception as exc:  # refused, timed out, bad password: all "unreachable" to an operator
        out.append(f"database: UNREACHABLE ({redact_url(settings.database_url)}: {type(exc).__name__}: {exc})")
        problems.append("database unreachable")
        return [*out, f"status: UNHEALTHY ({'; '.join(problems)})"], False
    try:
        rows, dead, overdue = await queue_rows(conn), await dead_jobs(conn, 10), await overdue_counts(conn)
    finally:
        await conn.close()
    out.append("database: answers")
    by_kind: dict[str, dict[str, tuple[int, float]]] = {}
    for row in rows:
        by_kind.setdefault(row.kind, {})[row.state] = (row.jobs, row.oldest_s)
    out.append("queues (oldest: waiting since due, pending or retry):")
    if not by_kind:
        out.append("  empty")
    else:
        out.append(f"  {'kind':<24}{''.join(f'{s:>9}' for s in JOB_STATES)}  oldest")
        for kind, states in sorted(by_kind.items()):
            waiting = [states[s][1] for s in ("pending", "retry") if s in states]
            counts = "".join(f"{states.get(s, (0, 0))[0]:>9}" for s in JOB_STATES)
            out.append(f"  {kind:<24}{counts}  {_age(max(waiting)) if waiting else '-'}")
    dead_total = sum(row.jobs for row in rows if row.state == "dead")
    if dead_total:
        problems.append(f"{dead_total} dead job(s)")
        out.append(f"dead jobs ({len(dead)} most recent of {dead_total}):")
        for job in dead:
            error = (job["last_error"] or "").strip().splitlines()
            died = job["updated_at"].astimezone(dt.UTC)
            out.append(f"  #{job['id']} {job['kind']} attempts={job['attempts']} died={died:%Y-%m-%d %H:%M}Z"
                       f"  {error[0][:160] if error else '(no error recorded)'}")
    else:
        out.append("dead jobs: none")
    out.append("overdue incidents: " + ", ".join(f"{stage} {count}" for stage, count in overdue.items()))
    out.append(f"status: UNHEALTHY ({'; '.join(problems)})" if problems else "status: healthy")
    return out, not problems


def cmd_bench(args: argparse.Namespace) -> int:
    from gridrider.bench import run_bench

    return run_bench(args.name, args.rest)


def _wait_ready(url: str, children: list[subprocess.Popen], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(child.poll() is not None for child in children):
            return False
        with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/readyz", timeout=1) as reply:  # noqa: S310
            if reply.status == 200:
                return True
        time.sleep(0.2)
    return False


def cmd_up(args: argparse.Namespace) -> int:
    """Migrate, optionally seed the demo, then run the API and the workers until Ctrl-C."""
    from gridrider.jobs.registry import queues_in_use

    started_at = time.monotonic()
    settings = _load()
    runtime = resolve_runtime(settings, allow_embedded=True)
    settings = runtime.settings
    children: list[subprocess.Popen] = []
    stopping = False

    def stop(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    try:
        asyncio.run(_migrate(settings))
        if args.demo:
            print(asyncio.run(_demo(settings)), flush=True)
        env = {**os.environ, "DATABASE_URL": settings.database_url, "REDIS_URL": settings.redis_url,
               "GRIDRIDER_DATA_DIR": str(settings.data_dir)}
        base = [sys.executable, "-m", "gridrider"]
        children.append(subprocess.Popen([*base, "api"], env=env))  # noqa: S603
        for offset, queue in enumerate(queues_in_use(), start=1):
            queue_arg = queue.rpartition(":")[2]
            # One box, one metrics port per process: the API has GRIDRIDER_METRICS_PORT, workers the next ones.
            worker_env = {**env, "GRIDRIDER_METRICS_PORT": str(settings.metrics_port + offset)} \
                if settings.metrics_port else env
            children.append(subprocess.Popen([*base, "worker", "--queue", queue_arg], env=worker_env))  # noqa: S603
        local_url = f"http://{settings.host}:{settings.port}"
        if _wait_ready(local_url, children, timeout_s=120):
            print(f"\n  gridrider is up: {settings.public_url}   (ready in {time.monotonic() - started_at:.1f} s;"
                  " Ctrl-C stops everything)\n", flush=True)
        elif not stopping:
            log.error("up.not_ready", url=local_url)
            return 1
        while not stopping:
            if any(child.poll() is not None for child in children):
                log.error("up.child_exited", codes=[c.returncode for c in children])
                return 1
            time.sleep(0.2)
        return 0
    finally:
        _stop_children(children)
        stop_embedded(runtime.embedded)
        print("gridrider stopped.", flush=True)


def _stop_children(children: list[subprocess.Popen]) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for child in children:
        try:
            child.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gridrider", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="migrate, then run API and workers (embedded databases if URLs are unset)")
    up.add_argument("--demo", action="store_true", help="seed the Zhangwu demo data into an empty database")
    up.set_defaults(run=cmd_up)
    sub.add_parser("api", help="run the HTTP API").set_defaults(run=cmd_api)
    worker = sub.add_parser("worker", help="run an arq worker")
    worker.add_argument("--queue", choices=("default", "photos"), default="default")
    worker.set_defaults(run=cmd_worker)
    sub.add_parser("migrate", help="apply pending database migrations").set_defaults(run=cmd_migrate)
    sub.add_parser("demo", help="seed demo data into an empty database").set_defaults(run=cmd_demo)
    enrol = sub.add_parser("enrol", help="enrol a member from the server: prints code, link and QR code")
    enrol.add_argument("--role", required=True, choices=("admin", "supervisor", "grid_member", "courier"))
    enrol.add_argument("--name", required=True, help="display name, e.g. 城南社区 赵书记")
    enrol.add_argument("--phone", required=True, help="mainland mobile number; one phone is one member")
    enrol.add_argument("--area", action="append", default=[], help="area code (repeat for several)")
    enrol.add_argument("--platform", choices=("meituan", "eleme", "sf", "jd", "other"), help="couriers: platform")
    enrol.set_defaults(run=cmd_enrol)
    vapid = sub.add_parser("vapid-keys", help="VAPID keys: new (print one), list, rotate, retire")
    vapid.add_argument("action", nargs="?", default="new", choices=["new", "list", "rotate", "retire"])
    vapid.set_defaults(run=cmd_vapid_keys)
    calendar = sub.add_parser("calendar", help="working-day calendar: load FILE (official holidays), status")
    calendar.add_argument("action", choices=["load", "status"])
    calendar.add_argument("file", nargs="?", help="load: lines YYYY-MM-DD,workday|holiday[,note]")
    calendar.add_argument("--source", default="admin", help="load: where the days come from (stored per day)")
    calendar.set_defaults(run=cmd_calendar)
    areas = sub.add_parser("areas", help="area tree: import FILE.geojson (checked in full before anything is written)")
    areas.add_argument("action", choices=["import"])
    areas.add_argument("file", help="GeoJSON FeatureCollection: properties code, level, parent, name_zh, name_en")
    areas.add_argument("--dry-run", action="store_true", help="check and report only; write nothing")
    areas.add_argument("--strict", action="store_true", help="refuse on warnings too (grid overlaps, gaps)")
    areas.set_defaults(run=cmd_areas)
    apikey = sub.add_parser("apikey", help="Open311 API keys of city systems: create, list, revoke")
    apikey.add_argument("action", choices=["create", "list", "revoke"])
    apikey.add_argument("key_name", nargs="?", help="revoke: the key's name")
    apikey.add_argument("--name", help="create: a unique name, e.g. 12345-hotline")
    apikey.add_argument("--area", help="create: area code whose subtree the key files in and reads")
    apikey.set_defaults(run=cmd_apikey)
    archive = sub.add_parser("archive", help="move finished incidents past GRIDRIDER_ARCHIVE_AFTER_DAYS to the archive")
    archive.add_argument("--dry-run", action="store_true", help="print what would move and what stays; write nothing")
    archive.set_defaults(run=cmd_archive)
    sub.add_parser("status", help="queues, dead jobs, overdue incidents, Redis; exit 1 when unhealthy"
                   ).set_defaults(run=cmd_status)
    bench = sub.add_parser("bench", help="run a benchmark and print its figures")
    bench.add_argument("name")
    bench.add_argument("rest", nargs=argparse.REMAINDER)
    bench.set_defaults(run=cmd_bench)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except SettingsError as exc:
        print(f"gridrider: setting error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
