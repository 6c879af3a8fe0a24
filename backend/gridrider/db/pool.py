"""asyncpg pool with JSON codecs through msgspec."""

from __future__ import annotations

import asyncpg
import msgspec

Connection = asyncpg.Connection
Pool = asyncpg.Pool

_encode = msgspec.json.encode
_decode = msgspec.json.decode


def _encode_text(value: object) -> str:
    return _encode(value).decode()


async def init_connection(conn: asyncpg.Connection) -> None:
    # Python objects in, Python objects out, for json and jsonb alike; msgspec is the one JSON codec.
    for typename in ("json", "jsonb"):
        await conn.set_type_codec(typename, encoder=_encode_text, decoder=_decode, schema="pg_catalog")


async def create_pool(dsn: str, *, min_size: int = 1, max_size: int = 10, **kwargs: object) -> asyncpg.Pool:
    return await asyncpg.create_pool(
        dsn, min_size=min_size, max_size=max_size, init=init_connection,
        server_settings={"application_name": "gridrider"}, **kwargs,
    )


async def connect(dsn: str, **kwargs: object) -> asyncpg.Connection:
    conn = await asyncpg.connect(dsn, server_settings={"application_name": "gridrider"}, **kwargs)
    await init_connection(conn)
    return conn
