"""What a Redis call raises when the server is gone, in one place for every caller that carries on without it.

redis-py's own errors, the socket's, a timeout — and, under uvloop, a RuntimeError for a write on a transport
the lost server had closed (the fault suite's soak saw that reach a rider as a 500 from the rate limiter).
"""

from __future__ import annotations

from redis.exceptions import RedisError

REDIS_TROUBLE: tuple[type[BaseException], ...] = (RedisError, OSError, TimeoutError, RuntimeError)
