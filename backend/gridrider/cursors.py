"""Opaque page cursors: msgspec JSON in unpadded base64url, one codec for every paged list.

What comes back decoded is only shaped like a cursor: each caller checks it holds values it could have
made (aware times, bigint ids, ...) before any reaches SQL, and answers anything else with a 422 on its
cursor parameter. Decoding raises ValueError/TypeError (bad base64, bad values) or msgspec's errors.
"""

from __future__ import annotations

import base64
from typing import Any

import msgspec


def encode_cursor(value: Any) -> str:
    return base64.urlsafe_b64encode(msgspec.json.encode(value)).decode().rstrip("=")


def decode_cursor(cursor: str, type: Any = Any) -> Any:
    return msgspec.json.decode(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)), type=type)
