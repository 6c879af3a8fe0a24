"""SQL for `area_webhooks`: each area's group-robot webhook, stored only as an AES-GCM ciphertext.

The key is derived (HKDF-SHA256) from the session secret, so a copy of the database alone yields no
URL. Each row has its own random nonce, and the area id and channel are the associated data: a
ciphertext copied to another area's row does not decrypt there (`WebhookUnreadable`), so nobody
with write access to the table can redirect one group's alerts into another's chat.
"""

from __future__ import annotations

import datetime as dt
import os

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from gridrider.channels.wecom import check_webhook_url
from gridrider.db.pool import Connection

HKDF_INFO = b"gridrider area webhooks v1"
NONCE_BYTES = 12
CHANNEL_WECOM = "wecom"

UPSERT_SQL = """
INSERT INTO area_webhooks (area_id, channel, ciphertext, key_hint, updated_by, updated_at)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (area_id) DO UPDATE
SET channel = EXCLUDED.channel, ciphertext = EXCLUDED.ciphertext, key_hint = EXCLUDED.key_hint,
    updated_by = EXCLUDED.updated_by, updated_at = EXCLUDED.updated_at
RETURNING area_id, (SELECT code FROM areas WHERE id = $1) AS area_code, channel, key_hint, updated_by, updated_at
"""
CIPHERTEXT_SQL = "SELECT channel, ciphertext FROM area_webhooks WHERE area_id = $1"
INFO_SQL = """
SELECT w.area_id, a.code AS area_code, w.channel, w.key_hint, w.updated_by, w.updated_at
FROM area_webhooks w JOIN areas a ON a.id = w.area_id
WHERE w.area_id = $1
"""
DELETE_SQL = "DELETE FROM area_webhooks WHERE area_id = $1"
ALL_SQL = """
SELECT w.area_id, a.code AS area_code, w.channel, w.key_hint, w.updated_by, w.updated_at
FROM area_webhooks w JOIN areas a ON a.id = w.area_id
ORDER BY a.path
"""


class WebhookUnreadable(Exception):
    """The stored ciphertext does not decrypt for this area: moved from another row, or the session secret changed."""


class WebhookInfo(msgspec.Struct, frozen=True):
    """Everything about an area's webhook that is not secret."""

    area_id: int
    area_code: str
    channel: str
    key_hint: str  # the robot key's last 4 characters
    updated_by: int | None
    updated_at: dt.datetime


def _aead(secret: str) -> AESGCM:
    if not secret:
        raise ValueError("area webhooks need the session secret to derive their key")
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=HKDF_INFO).derive(secret.encode())
    return AESGCM(key)


def _associated_data(area_id: int, channel: str) -> bytes:
    return f"area_webhooks:{int(area_id)}:{channel}".encode()


def encrypt_url(url: str, *, area_id: int, channel: str, secret: str) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    return nonce + _aead(secret).encrypt(nonce, url.encode(), _associated_data(area_id, channel))


def decrypt_url(blob: bytes, *, area_id: int, channel: str, secret: str) -> str:
    nonce, sealed = bytes(blob[:NONCE_BYTES]), bytes(blob[NONCE_BYTES:])
    try:
        return _aead(secret).decrypt(nonce, sealed, _associated_data(area_id, channel)).decode()
    except (InvalidTag, ValueError) as exc:
        raise WebhookUnreadable(f"area {area_id}: stored webhook does not decrypt") from exc


async def set_webhook(conn: Connection, *, area_id: int, url: str, secret: str, actor_id: int | None,
                      now: dt.datetime) -> WebhookInfo:
    """Store (or replace) the area's WeCom robot; the URL must be WeCom's exact form (WeComWebhookInvalid)."""
    webhook = check_webhook_url(url)
    blob = encrypt_url(webhook.url, area_id=area_id, channel=CHANNEL_WECOM, secret=secret)
    row = await conn.fetchrow(UPSERT_SQL, area_id, CHANNEL_WECOM, blob, webhook.key_hint, actor_id, now)
    return WebhookInfo(**row)


async def webhook_for(conn: Connection, area_id: int, secret: str) -> str | None:
    """The area's webhook URL in clear (to send with), None if none is set; WebhookUnreadable if it does not
    decrypt. Never log what this returns."""
    row = await conn.fetchrow(CIPHERTEXT_SQL, area_id)
    if row is None:
        return None
    return decrypt_url(row["ciphertext"], area_id=area_id, channel=row["channel"], secret=secret)


async def webhook_info(conn: Connection, area_id: int) -> WebhookInfo | None:
    row = await conn.fetchrow(INFO_SQL, area_id)
    return WebhookInfo(**row) if row is not None else None


async def delete_webhook(conn: Connection, *, area_id: int) -> bool:
    """Forget the area's webhook (a supervisor removed it, or WeCom said it is gone); True if one was set."""
    return await conn.execute(DELETE_SQL, area_id) == "DELETE 1"


async def areas_with_webhooks(conn: Connection) -> list[WebhookInfo]:
    """Every area that has a robot, without URLs."""
    return [WebhookInfo(**row) for row in await conn.fetch(ALL_SQL)]
