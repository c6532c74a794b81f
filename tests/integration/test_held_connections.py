"""The ping path's held asyncio connections (`geo.scripts.HeldConnections`) on real Redis:
reused, reopened when the server dropped them, in step after an error reply, and a timeout
that gives up (no replay of a write that may have run)."""

from __future__ import annotations

import asyncio
import struct
import time
import uuid
from collections.abc import Awaitable, Callable

import pytest
import redis
from redis.asyncio import Redis as AsyncRedis

from core.products import Product
from core.settings import Settings
from geo.index import RedisDriverIndex
from geo.records import Outcome, PositionUpdate
from geo.scripts import SADD, Scripts
from simulations.rides import offset
from tests.integration.index_helpers import CENTRE, T0, this_dbs_clients


def run(settings: Settings, body: Callable[[AsyncRedis], Awaitable[None]],
        index: RedisDriverIndex | None = None, socket_timeout: float = 5) -> None:
    async def main() -> None:
        aclient = AsyncRedis.from_url(settings.redis_url, socket_timeout=socket_timeout)
        try:
            await body(aclient)
        finally:
            if index is not None:
                await index.aclose(aclient)
            await aclient.aclose()
    asyncio.run(main())


async def closed(client: redis.Redis, ids: set[int]) -> bool:
    """Whether the server has let go of the connections `ids` (within a second)."""
    for _ in range(50):
        if not ids & set(this_dbs_clients(client)):
            return True
        await asyncio.sleep(0.02)
    return False


def tokens_left(client: redis.Redis, index: RedisDriverIndex, driver: uuid.UUID) -> float:
    raw = client.hget(index.directory_key(driver), driver.bytes + b"rl")
    assert isinstance(raw, bytes)
    return float(struct.unpack("<dd", raw)[0])


def test_pings_reuse_one_held_connection_and_run_once_after_the_server_drops_it(
        index: RedisDriverIndex, redis_client: redis.Redis, settings: Settings) -> None:
    driver = uuid.uuid4()
    index.go_online(driver, Product.ECONOMY, now_ms=T0)
    burst = settings.ping_rate_burst
    track = [offset(CENTRE, 0, 30 * i) for i in range(20)]

    async def body(aclient: AsyncRedis) -> None:
        step = 0

        async def ping() -> Outcome:
            nonlocal step
            step += 1
            at = T0 + 1000 * step
            done = await index.ingest_async([PositionUpdate(driver, track[step], at)], aclient,
                                            charge=[driver], now_ms=T0)   # no refill
            return done.results[0].outcome

        assert await ping() is Outcome.APPLIED
        opened = set(this_dbs_clients(redis_client))
        for _ in range(5):
            assert await ping() is Outcome.APPLIED
        assert set(this_dbs_clients(redis_client)) == opened    # the same connections
        # Every connection of this database dropped, as by a restart or the server's idle
        # timeout: the next ping runs once, on a new connection. Run twice, its claim would
        # take two tokens.
        assert all(redis_client.client_kill_filter(_id=str(c)) == 1 for c in opened)
        assert await ping() is Outcome.APPLIED
        assert tokens_left(redis_client, index, driver) == burst - step
        # A restarted server lost the scripts: loaded again, the ping runs once.
        redis_client.script_flush()
        assert await ping() is Outcome.APPLIED
        assert tokens_left(redis_client, index, driver) == burst - step
        state = index.get(driver)
        assert state is not None and state.ts_ms == T0 + 1000 * step

    run(settings, body, index)


def test_an_error_reply_is_raised_and_leaves_the_connection_in_step(
        redis_client: redis.Redis, settings: Settings) -> None:
    scripts = Scripts(redis_client, ())
    redis_client.set("held:string", "not a set")

    async def body(aclient: AsyncRedis) -> None:
        with pytest.raises(redis.ResponseError, match="WRONGTYPE"):
            await scripts.run_calls_async(aclient, [(SADD, ["held:string"], ["a"]),
                                                    (SADD, ["held:set"], ["a", "b"])])
        assert redis_client.smembers("held:set") == {b"a", b"b"}   # the batch ran on
        opened = set(this_dbs_clients(redis_client))
        # The next round trip reads its own replies, not the ones before, on the same
        # connection.
        assert await scripts.run_calls_async(aclient, [(SADD, ["held:set"], ["c"]),
                                                       (SADD, ["held:set"], ["c", "d", "e"])]) \
            == [1, 2]
        assert set(this_dbs_clients(redis_client)) == opened
        await scripts.aclose(aclient)        # closes what it holds
        assert await closed(redis_client, opened)

    run(settings, body)


def test_a_round_trip_past_the_socket_timeout_raises_and_drops_its_connection(
        redis_client: redis.Redis, settings: Settings) -> None:
    """A reply later than the client's socket timeout gives redis-py's TimeoutError (503 at
    the API), not a replay; the connection, whose reply may still come, is dropped, and the
    next round trip works on a new one."""
    scripts = Scripts(redis_client, ())

    async def body(aclient: AsyncRedis) -> None:
        assert await scripts.run_calls_async(aclient, [(SADD, ["held:set"], ["a"])]) == [1]
        opened = set(this_dbs_clients(redis_client))
        redis_client.execute_command("CLIENT", "PAUSE", 800, "WRITE")
        started = time.monotonic()
        with pytest.raises(redis.TimeoutError):
            await scripts.run_calls_async(aclient, [(SADD, ["held:set"], ["b"])])
        assert time.monotonic() - started < 0.7
        await asyncio.sleep(0.9)
        assert await closed(redis_client, opened)         # that connection was dropped
        # Its own reply (a late reply to the paused call would read 1).
        assert await scripts.run_calls_async(aclient, [(SADD, ["held:set"], ["c", "d"])]) \
            == [2]
        await scripts.aclose(aclient)

    run(settings, body, socket_timeout=0.3)
