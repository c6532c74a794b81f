"""A per-driver token bucket in Redis, tagged like the driver's directory key."""

from __future__ import annotations

import uuid

import redis

from geo.index import load_script


class PingRateLimiter:
    def __init__(self, client: redis.Redis, *, rate_per_s: float, burst: int,
                 prefix: str = "rh") -> None:
        self._bucket = client.register_script(load_script("token_bucket"))
        self._rate, self._burst, self._prefix = rate_per_s, burst, prefix

    def allow(self, driver_id: uuid.UUID, *, now_ms: int) -> bool:
        key = f"{self._prefix}:rl:{{{driver_id.hex}}}"
        return bool(self._bucket(keys=[key], args=[self._rate, self._burst, now_ms]))
