"""The long-lived things a process shares: settings, clock, database pool, Redis, blob store."""

from __future__ import annotations

import dataclasses

from arq.connections import ArqRedis

from gridrider.clock import Clock
from gridrider.config import Settings
from gridrider.db.pool import Pool
from gridrider.images.blobs import BlobStore


@dataclasses.dataclass(frozen=True)
class Services:
    settings: Settings
    clock: Clock
    pool: Pool
    redis: ArqRedis | None
    blobs: BlobStore
