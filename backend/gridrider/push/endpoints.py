"""Which push subscriptions the sender may ever use (DESIGN.md §5, §8: no user-supplied URL reaches inward).

A browser hands us an endpoint URL and two keys. The endpoint is accepted only as `https://` on port
443 of a known push service, named by host name — no userinfo, no IP literal in any spelling, no
look-alike host. This is the first of two gates: the sender also refuses any address that is not
public when it connects (push/network.py), so a known name that resolves inward still goes nowhere.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
import socket
from collections.abc import Iterable

import msgspec
from cryptography.hazmat.primitives.asymmetric import ec

from gridrider.errors import PushSubscriptionRejected

MAX_ENDPOINT_CHARS = 1024  # FCM's are ~190 characters, WNS's ~400; anything longer is not a push service's
_HOST_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_FORBIDDEN_CHARS = re.compile(r"[\s\\\x00-\x1f\x7f]")


class SubscriptionKeys(msgspec.Struct, forbid_unknown_fields=False):
    p256dh: str
    auth: str


class SubscriptionIn(msgspec.Struct, forbid_unknown_fields=False):
    """A browser's `PushSubscription.toJSON()` (expirationTime and future fields are ignored)."""

    endpoint: str
    keys: SubscriptionKeys


class CheckedSubscription(msgspec.Struct, frozen=True):
    endpoint: str
    host: str
    p256dh: bytes  # 65-byte uncompressed P-256 point
    auth: bytes  # 16 bytes


def host_allowed(host: str, allowed: Iterable[str]) -> bool:
    """Exact name, or a subdomain of a "*.domain" entry — matched on whole labels, so a look-alike
    such as fcm.googleapis.com.evil.example or evilpush.apple.com never matches."""
    for entry in allowed:
        if entry.startswith("*."):
            if host.endswith(entry[1:]):
                return True
        elif host == entry:
            return True
    return False


def _is_ip_literal(host: str) -> bool:
    if host.startswith("[") or ":" in host:
        return True  # IPv6 (including ::ffff:127.0.0.1, the IPv6-mapped IPv4 form)
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    try:
        # inet_aton accepts what URL parsers and resolvers also accept: 2130706433, 0x7f.1, 0177.0.0.1, 127.1.
        socket.inet_aton(host)
        return True
    except OSError:
        pass
    # A name whose last label is all digits (or hex) is read as an address by some resolvers.
    last = host.rstrip(".").rsplit(".", 1)[-1]
    return bool(re.fullmatch(r"(0x[0-9a-f]*|[0-9]+)", last))


def check_endpoint(endpoint: str, allowed_hosts: Iterable[str]) -> str:
    """The endpoint's host if the sender may use it; otherwise PushSubscriptionRejected with the reason."""
    if len(endpoint) > MAX_ENDPOINT_CHARS:
        raise PushSubscriptionRejected("push_endpoint_too_long")
    if _FORBIDDEN_CHARS.search(endpoint):
        raise PushSubscriptionRejected("push_endpoint_malformed", "whitespace, backslash or control character")
    scheme, sep, rest = endpoint.partition("://")
    if not sep:
        raise PushSubscriptionRejected("push_endpoint_malformed", "no scheme")
    if scheme.lower() != "https":
        raise PushSubscriptionRejected("push_endpoint_not_https")
    # The authority ends at the first "/", "?" or "#"; anything after it is path, never a host.
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if "@" in authority:
        raise PushSubscriptionRejected("push_endpoint_userinfo")
    if "#" in rest:
        raise PushSubscriptionRejected("push_endpoint_malformed", "fragment")
    if not rest[len(authority):].startswith("/"):
        raise PushSubscriptionRejected("push_endpoint_malformed", "no path")
    host, port = authority, ""
    if authority.startswith("["):
        raise PushSubscriptionRejected("push_endpoint_ip_literal")
    if ":" in authority:
        host, _, port = authority.rpartition(":")
    if port and port != "443":
        raise PushSubscriptionRejected("push_endpoint_port")
    host = host.lower()
    if not host or "%" in host:
        raise PushSubscriptionRejected("push_endpoint_malformed", "host")
    if _is_ip_literal(host):
        raise PushSubscriptionRejected("push_endpoint_ip_literal")
    labels = host.split(".")
    if len(labels) < 2 or not all(_HOST_LABEL.match(label) for label in labels):
        # Also refuses a trailing dot, empty labels and non-ASCII (IDN) spellings of a host.
        raise PushSubscriptionRejected("push_endpoint_malformed", "host")
    if not host_allowed(host, allowed_hosts):
        raise PushSubscriptionRejected("push_endpoint_host_not_allowed")
    return host


def _b64url(value: str) -> bytes | None:
    if not re.fullmatch(r"[A-Za-z0-9_-]+={0,2}", value or ""):
        return None
    try:
        return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        return None


def check_keys(p256dh: str, auth: str) -> tuple[bytes, bytes]:
    point = _b64url(p256dh)
    if point is None or len(point) != 65 or point[0] != 4:
        raise PushSubscriptionRejected("push_key_invalid")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)  # on the curve, not the identity
    except ValueError:
        raise PushSubscriptionRejected("push_key_invalid") from None
    secret = _b64url(auth)
    if secret is None or len(secret) != 16:
        raise PushSubscriptionRejected("push_auth_invalid")
    return point, secret


def check_subscription(subscription: SubscriptionIn, allowed_hosts: Iterable[str]) -> CheckedSubscription:
    host = check_endpoint(subscription.endpoint, allowed_hosts)
    point, secret = check_keys(subscription.keys.p256dh, subscription.keys.auth)
    return CheckedSubscription(endpoint=subscription.endpoint, host=host, p256dh=point, auth=secret)


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
