"""Signed, expiring photo URLs: `<img>` tags and notification images work without a Bearer header.

The signature is an HMAC over photo id, variant and expiry; expiries are rounded up to the next
whole hour so the same photo keeps the same URL (and the browser's cache) for a while.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import math

VARIANTS = ("thumb", "display")
URL_LIFETIME = dt.timedelta(hours=1)


def _signature(secret: str, photo_id: int, variant: str, expires: int) -> str:
    message = f"photo:{photo_id}:{variant}:{expires}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:32]


def signed_photo_path(secret: str, photo_id: int, variant: str, now: dt.datetime,
                      lifetime: dt.timedelta = URL_LIFETIME) -> str:
    expires = math.ceil((now + lifetime).timestamp() / 3600) * 3600
    return f"/api/v1/photos/{photo_id}/{variant}?exp={expires}&sig={_signature(secret, photo_id, variant, expires)}"


def signature_valid(secret: str, photo_id: int, variant: str, expires: int, signature: str, now: dt.datetime) -> bool:
    if variant not in VARIANTS or expires <= now.timestamp():
        return False
    return hmac.compare_digest(_signature(secret, photo_id, variant, expires), signature)
