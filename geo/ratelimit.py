"""A per-driver token bucket in Redis, tagged like the driver's directory key."""

from __future__ import annotations

import uuid

import redis
from redis.asyncio import Redis as AsyncRedis

from geo.index import Call, Scripts


class PingRateLimiter:
    def __init__(self, client: redis.Redis, *, rate_per_s: float, burst: int,
                 prefix: str = "rh") -> None:
        self._scripts = Scripts(client, ("token_bucket",))
        self._rate, self._burst, self._prefix = rate_per_s, burst, prefix

    def _call(self, driver_id: uuid.UUID, now_ms: int) -> Call:
        return ("token_bucket", [f"{self._prefix}:rl:{{{driver_id.hex}}}"],
                [self._rate, self._burst, now_ms])

    async def allow_async(self, driver_id: uuid.UUID, *, now_ms: int,
                          aclient: AsyncRedis) -> bool:
        calls = [self._call(driver_id, now_ms)]
        return bool((await self._scripts.run_calls_async(aclient, calls))[0])
