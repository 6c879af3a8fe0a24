"""A local stand-in for real Web Push services (FCM, Mozilla autopush), speaking the real protocol.

HTTPS on 127.0.0.1 with a certificate for `host_name` from a CA made at start; RFC 8030 requests,
RFC 8292 VAPID (`Authorization: vapid t=…, k=…`), RFC 8291 aes128gcm payloads decrypted like a browser.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import h11
import http_ece
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.tls_stand_in import TlsStandIn

BEHAVIOURS = frozenset({
    "ok", "gone404", "gone410", "too_large", "rate_limited", "error500", "unauthorized401",
    "forbidden403", "bad_request400", "redirect", "slow",
})
MAX_BODY = 4096
TOO_LARGE_PLAINTEXT = 200  # "too_large" refuses plaintexts above this, so one minimal retry succeeds
MAX_VAPID_AHEAD = 24 * 60 * 60
URGENCIES = frozenset({"very-low", "low", "normal", "high"})
TOPIC_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")
READ_LIMIT = 1024 * 1024  # bodies beyond this are not a push request worth reading: close instead


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Received:
    token: str
    endpoint: str
    plaintext: bytes
    json: Any
    headers: dict[str, str]
    claims: dict[str, Any]
    vapid_public_key: str
    arrived_at: float = field(default_factory=time.monotonic)


@dataclass
class Rejected:
    token: str | None
    status: int
    reason: str
    headers: dict[str, str]
    arrived_at: float = field(default_factory=time.monotonic)


@dataclass
class _Subscription:
    token: str
    endpoint: str
    private_key: ec.EllipticCurvePrivateKey
    auth_secret: bytes
    behaviour: str


class _Refusal(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class PushService(TlsStandIn):
    """A push service on 127.0.0.1 over TLS that behaves like FCM/Mozilla for our sender."""

    read_limit = READ_LIMIT
    backlog = 4096

    def __init__(self, host_name: str = "push.gridrider.test") -> None:
        super().__init__(host_name)
        self.origin = f"https://{host_name}"
        self.received: list[Received] = []
        self.rejected: list[Rejected] = []
        self._subscriptions: dict[str, _Subscription] = {}

    def drop_connections(self) -> None:
        """Close every open connection, as a push service does with idle keep-alive ones."""
        for writer in list(self._writers):
            writer.transport.abort()

    # -- subscriptions ------------------------------------------------------------------------------

    def new_subscription(self, behaviour: str = "ok") -> dict[str, Any]:
        """A browser's PushSubscription.toJSON(); the service keeps the keys to decrypt like the browser."""
        self._check_behaviour(behaviour)
        token = secrets.token_urlsafe(24)
        private_key = ec.generate_private_key(ec.SECP256R1())
        auth_secret = secrets.token_bytes(16)
        endpoint = f"{self.origin}/push/{token}"
        self._subscriptions[token] = _Subscription(token, endpoint, private_key, auth_secret, behaviour)
        p256dh = private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {
            "endpoint": endpoint,
            "expirationTime": None,
            "keys": {"p256dh": b64url_encode(p256dh), "auth": b64url_encode(auth_secret)},
        }

    def set_behaviour(self, token_or_endpoint: str, behaviour: str) -> None:
        self._check_behaviour(behaviour)
        self._subscriptions[self._token_of(token_or_endpoint)].behaviour = behaviour

    def messages_for(self, subscription_or_endpoint: dict[str, Any] | str) -> list[Received]:
        token = self._token_of(subscription_or_endpoint)
        return [r for r in self.received if r.token == token]

    async def wait_for(self, count: int, timeout: float = 10.0) -> None:  # noqa: ASYNC109  (the brief's API)
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            if time.monotonic() >= deadline:
                reasons = [f"{r.status} {r.reason}" for r in self.rejected[-5:]]
                raise AssertionError(
                    f"push service: {len(self.received)} of {count} messages after {timeout}s; "
                    f"{self.requests} requests, {len(self.rejected)} rejected (last: {reasons})"
                )
            await asyncio.sleep(0.01)

    @staticmethod
    def _check_behaviour(behaviour: str) -> None:
        if behaviour not in BEHAVIOURS:
            raise ValueError(f"unknown behaviour {behaviour!r}; known: {sorted(BEHAVIOURS)}")

    def _token_of(self, ref: dict[str, Any] | str) -> str:
        endpoint = ref["endpoint"] if isinstance(ref, dict) else ref
        prefix = f"{self.origin}/push/"
        return endpoint.removeprefix(prefix) if endpoint.startswith(prefix) else endpoint

    # -- HTTP ---------------------------------------------------------------------------------------

    async def handle(self, request: h11.Request, body: bytes) -> tuple[int, list[tuple[str, str]], bytes] | None:
        answer = self._handle(request, body)
        return None if answer is None else (*answer, b"")  # "slow" (None): hold the request

    def _handle(self, request: h11.Request, body: bytes) -> tuple[int, list[tuple[str, str]]] | None:
        headers: dict[str, str] = {}
        for name, value in request.headers:
            key = name.decode("latin-1").lower()
            text = value.decode("latin-1")
            headers[key] = f"{headers[key]}, {text}" if key in headers else text
        path = request.target.decode("latin-1").split("?", 1)[0]
        if request.method != b"POST" or not path.startswith("/push/"):
            return 404, []
        sub = self._subscriptions.get(path.removeprefix("/push/"))
        if sub is None:  # like a real service's answer to an expired subscription; not a protocol fault
            return 404, []
        try:
            claims, vapid_key = self._check_vapid(headers.get("authorization", ""))
            self._check_headers(headers, body)
            plaintext = self._decrypt(sub, body)
        except _Refusal as refusal:
            self.rejected.append(Rejected(sub.token, refusal.status, refusal.reason, headers))
            return refusal.status, []
        behaviour = sub.behaviour
        if behaviour == "slow":
            return None
        if behaviour == "too_large" and len(plaintext) > TOO_LARGE_PLAINTEXT:
            return 413, []
        if behaviour in ("ok", "too_large"):
            self.received.append(
                Received(sub.token, sub.endpoint, plaintext, _json_or_none(plaintext), headers, claims, vapid_key)
            )
            return 201, [("location", f"{self.origin}/message/{uuid.uuid4().hex}")]
        if behaviour == "redirect":
            return 307, [("location", f"https://127.0.0.1:{self.port}/push/{sub.token}")]
        if behaviour == "rate_limited":
            return 429, [("retry-after", "3")]
        return {
            "gone404": 404, "gone410": 410, "error500": 500, "unauthorized401": 401,
            "forbidden403": 403, "bad_request400": 400,
        }[behaviour], []

    def _check_vapid(self, authorization: str) -> tuple[dict[str, Any], str]:
        scheme, _, params_text = authorization.strip().partition(" ")
        if scheme.lower() != "vapid":
            raise _Refusal(403, f"Authorization must use the vapid scheme, got {authorization[:40]!r}")
        params: dict[str, str] = {}
        for part in params_text.split(","):
            name, _, value = part.strip().partition("=")
            params[name.strip().lower()] = value.strip()
        token, key_text = params.get("t"), params.get("k")
        if not token or not key_text:
            raise _Refusal(403, "vapid Authorization needs both t= and k=")
        try:
            raw_key = b64url_decode(key_text)
            public_key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw_key)
        except (ValueError, binascii.Error) as exc:
            raise _Refusal(403, f"k= is not a base64url uncompressed P-256 point: {exc}") from exc
        if len(raw_key) != 65 or raw_key[0] != 4:
            raise _Refusal(403, "k= must be an uncompressed P-256 point (65 bytes, 0x04 first)")
        try:
            claims = jwt.decode(
                token, key=public_key, algorithms=["ES256"],
                options={"verify_aud": False, "require": ["aud", "exp", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise _Refusal(403, "VAPID JWT exp is in the past") from exc
        except jwt.InvalidTokenError as exc:
            raise _Refusal(403, f"VAPID JWT invalid: {exc}") from exc
        if claims["aud"] != self.origin:
            raise _Refusal(403, f"VAPID JWT aud {claims['aud']!r} is not the push service origin {self.origin!r}")
        if claims["exp"] > time.time() + MAX_VAPID_AHEAD:
            raise _Refusal(403, "VAPID JWT exp is more than 24 hours ahead")
        sub = claims["sub"]
        if not isinstance(sub, str) or not sub.startswith(("mailto:", "https:")):
            raise _Refusal(403, f"VAPID JWT sub must be a mailto: or https: URI, got {sub!r}")
        return claims, key_text

    @staticmethod
    def _check_headers(headers: dict[str, str], body: bytes) -> None:
        ttl = headers.get("ttl")
        if ttl is None:
            raise _Refusal(400, "TTL header missing")
        if not ttl.strip().isdigit():
            raise _Refusal(400, f"TTL must be an integer >= 0, got {ttl!r}")
        encoding = headers.get("content-encoding")
        if encoding is None or encoding.strip().lower() != "aes128gcm":
            raise _Refusal(415, f"Content-Encoding must be aes128gcm, got {encoding!r}")
        urgency = headers.get("urgency")
        if urgency is not None and urgency.strip() not in URGENCIES:
            raise _Refusal(400, f"Urgency must be one of {sorted(URGENCIES)}, got {urgency!r}")
        topic = headers.get("topic")
        if topic is not None and not TOPIC_RE.fullmatch(topic.strip()):
            raise _Refusal(400, f"Topic must be 1-32 base64url characters, got {topic!r}")
        if len(body) > MAX_BODY:
            raise _Refusal(413, f"body of {len(body)} bytes exceeds {MAX_BODY}")

    @staticmethod
    def _decrypt(sub: _Subscription, body: bytes) -> bytes:
        try:
            return http_ece.decrypt(body, private_key=sub.private_key, auth_secret=sub.auth_secret, version="aes128gcm")
        except Exception as exc:  # http_ece raises ECEException, struct.error, InvalidTag, ValueError…
            raise _Refusal(400, f"payload does not decrypt as aes128gcm for this subscription: {exc!r}") from exc


def _json_or_none(plaintext: bytes) -> Any:
    try:
        return json.loads(plaintext)
    except ValueError:
        return None
