"""The long-lived things a process shares: settings, clock, database pools, Redis, blob store, push."""

from __future__ import annotations

import dataclasses
from typing import Any

from arq.connections import ArqRedis
from redis.asyncio import Redis

from gridrider.clock import Clock
from gridrider.config import Settings
from gridrider.db.pool import Pool
from gridrider.images.blobs import BlobStore
from gridrider.push import PushRuntime


@dataclasses.dataclass(frozen=True)
class Services:
    settings: Settings
    clock: Clock
    pool: Pool
    redis: ArqRedis | None
    blobs: BlobStore
    # Web Push keys, sender and network; None where a process sends nothing (tests of other parts).
    push: PushRuntime | None = None
    # The API's own Redis client for live-stream subscriptions: each open app holds one connection,
    # so they never take the job queue's pool (and its 2 s read timeout) from intake.
    stream_redis: Redis | None = None
    # SMS provider (channels/sms.py); None when GRIDRIDER_SMS_PROVIDER=none.
    sms: Any = None
    # WeCom group robot client (channels/wecom.py); areas without a stored webhook are skipped.
    wecom: Any = None
    # The read replica's pool (DATABASE_REPLICA_URL); None when there is none. Use `read_pool`, not this.
    replica_pool: Pool | None = None

    @property
    def read_pool(self) -> Pool:
        """Where reads that may lag behind the primary go (api/deps.provide_read_pool says which): the
        replica when one is configured, else the primary."""
        return self.replica_pool if self.replica_pool is not None else self.pool
