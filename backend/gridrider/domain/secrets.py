"""Opaque tokens and one-time codes: made random, stored only as keyed hashes."""

from __future__ import annotations

import hashlib
import hmac
import secrets

# No 0/O/1/I/L: codes are typed from paper and read aloud over the phone.
_CODE_ALPHABET = "23456789ABCDEFGHJKMNPQRSTUVWXYZ"


def new_session_token() -> str:
    return secrets.token_urlsafe(32)


def new_enrolment_code() -> str:
    """12 characters in groups of four (~59 bits); useless without the phone's last four digits."""
    raw = "".join(secrets.choice(_CODE_ALPHABET) for _ in range(12))
    return f"{raw[:4]}-{raw[4:8]}-{raw[8:]}"


def normalise_code(code: str) -> str:
    raw = "".join(ch for ch in code.upper() if ch.isalnum())
    return f"{raw[:4]}-{raw[4:8]}-{raw[8:]}" if len(raw) == 12 else raw


def keyed_hash(secret: str, value: str) -> bytes:
    """HMAC-SHA256: a stolen database alone cannot turn stored hashes back into working tokens."""
    return hmac.new(secret.encode(), value.encode(), hashlib.sha256).digest()
