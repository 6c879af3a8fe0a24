"""VAPID keys: a key ring (rotation without losing subscribers) and the signed header, cached per origin.

GRIDRIDER_VAPID_PRIVATE_KEY holds one or more PEM private keys; the last is current. A browser
subscribes with the current key's public half and the push service then only accepts messages signed
by that key, so every subscription records its key id and is always signed with it — until the
browser re-subscribes (the PWA does that when /push/key names another key). `gridrider vapid-keys
retire` drops keys no subscription uses any more.

The header is `webpush`'s own (ES256 JWT + key); signing costs ~80 µs, so one header per (key,
push-service origin) is reused until an hour before it expires (12 h), as RFC 8292 allows.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import re
import time
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from webpush import WebPush

_PEM_BLOCK = re.compile(r"-----BEGIN (?:EC )?PRIVATE KEY-----.+?-----END (?:EC )?PRIVATE KEY-----", re.S)
JWT_LIFETIME_S = 12 * 3600  # RFC 8292: at most 24 h
JWT_RENEW_BEFORE_S = 3600


class VapidKeyError(ValueError):
    """The configured VAPID key text holds no usable P-256 private key."""


@dataclasses.dataclass(frozen=True)
class _Origin:
    # What webpush's VAPID.get_authorization_header reads from an endpoint (scheme and host → `aud`).
    scheme: str
    host: str


@dataclasses.dataclass(frozen=True)
class VapidKey:
    id: str
    application_server_key: str  # base64url of the uncompressed public point: what the browser subscribes with
    pem: str
    webpush: WebPush = dataclasses.field(repr=False, compare=False)

    def encrypt(self, plaintext: bytes, subscription: Any) -> bytes:
        """aes128gcm for one subscription (anything with `.keys.p256dh` and `.keys.auth`, base64url).

        `WebPush.get` would also sign a new JWT per message; the header is cached per origin instead,
        so only its encryption is used (webpush is pinned in requirements.lock)."""
        return self.webpush._encrypt(plaintext, subscription)


def key_id_of(public_point: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(public_point).digest()[:9]).decode()


def _load_key(pem: str, subscriber: str) -> VapidKey:
    try:
        private = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise VapidKeyError(f"cannot read a VAPID private key: {exc}") from None
    if not isinstance(private, ec.EllipticCurvePrivateKey) or private.curve.name != "secp256r1":
        raise VapidKeyError("a VAPID key must be a P-256 (prime256v1) EC key")
    public = private.public_key()
    point = public.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    pkcs8 = private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption())
    public_pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    # One WebPush per key and subject, never given per-call overrides (it would keep them as state).
    webpush = WebPush(private_key=pkcs8, public_key=public_pem, subscriber=subscriber, expiration=JWT_LIFETIME_S)
    return VapidKey(id=key_id_of(point), application_server_key=base64.urlsafe_b64encode(point).rstrip(b"=").decode(),
                    pem=pkcs8.decode(), webpush=webpush)


def split_pem_blocks(text: str) -> list[str]:
    return [block.strip() + "\n" for block in _PEM_BLOCK.findall(text or "")]


class VapidKeyring:
    def __init__(self, keys: list[VapidKey]) -> None:
        if not keys:
            raise VapidKeyError("no VAPID private key configured")
        self.keys = keys
        self._by_id = {key.id: key for key in keys}
        self._headers: dict[tuple[str, str], tuple[str, float]] = {}

    @classmethod
    def from_text(cls, pem_text: str, subject: str) -> VapidKeyring:
        # webpush writes the claim as f"mailto:{subscriber}"; the setting is already a mailto: address.
        subscriber = subject.removeprefix("mailto:")
        keys: list[VapidKey] = []
        for block in split_pem_blocks(pem_text):
            key = _load_key(block, subscriber)
            if key.id not in {k.id for k in keys}:
                keys.append(key)
        return cls(keys)

    @property
    def current(self) -> VapidKey:
        return self.keys[-1]

    def get(self, key_id: str) -> VapidKey | None:
        return self._by_id.get(key_id)

    def authorization(self, key: VapidKey, origin: str) -> str:
        """`vapid t=<JWT>, k=<key>` for this push service, signed at most once per ~11 hours per origin."""
        cached = self._headers.get((key.id, origin))
        # Wall-clock on purpose: the JWT's `exp` is the push service's wall clock, not a business rule.
        now = time.time()
        if cached is not None and cached[1] > now:
            return cached[0]
        scheme, _, host = origin.partition("://")
        header = key.webpush.vapid.get_authorization_header(
            endpoint=_Origin(scheme, host), subscriber=key.webpush.subscriber, expiration=JWT_LIFETIME_S)
        self._headers[(key.id, origin)] = (header, now + JWT_LIFETIME_S - JWT_RENEW_BEFORE_S)
        return header
