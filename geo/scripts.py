"""The index's Lua scripts: loaded once, called by SHA, pipelined per node on Redis Cluster."""

from __future__ import annotations

import asyncio
import hashlib
import threading
import weakref
from collections import defaultdict
from collections.abc import Sequence
from importlib import resources
from typing import Any

import redis
from hiredis import pack_command
from redis.asyncio import Redis as AsyncRedis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster
from redis.exceptions import AskError, MovedError, NoScriptError

REGION_SCRIPTS = frozenset({"place", "evict", "status", "sweep"})
# Scripts that a module command can stand in for, with the same keys, arguments, reply and
# writes (`geo/module`): used when the server has the command, the script otherwise. A call
# refused as an unknown command (a server restarted without the module) never ran: it runs
# again as the script, and so do all calls from then on.
NATIVE = {"search": "RH.SEARCH", "claim": "RH.CLAIM", "place": "RH.PLACE"}
PROBE_KEY = "probe:{native}:at"
NATIVE_KEYS = {"claim": 2}    # keys a command declares, when not one (a probe sends them all)


def load_script(name: str) -> str:
    """A script's source; the region scripts get the shared helpers of `region.lua` first."""
    folder = resources.files("geo").joinpath("lua")
    source = folder.joinpath(f"{name}.lua").read_text()
    if name in REGION_SCRIPTS:
        source = folder.joinpath("region.lua").read_text() + "\n" + source
    return source


AnyRedis = redis.Redis | RedisCluster
AnyAsyncRedis = AsyncRedis | AsyncRedisCluster
Call = tuple[str, list[Any], list[Any]]  # script name (or SADD), keys, args
SADD = "SADD"


class Scripts:
    """Lua scripts called by SHA (redis-py's Script objects add a SCRIPT EXISTS round trip to
    every pipeline). Loaded at start-up; reloaded once if Redis lost them (a restart). With
    `native`, a script that a module command of the server can run (`NATIVE`: the search and
    `geo/module`'s RH.SEARCH) is called as that command instead, found when the scripts load."""

    def __init__(self, client: AnyRedis, names: Sequence[str], *, native: bool = True) -> None:
        self._client = client
        self._want_native = native
        self._native: dict[str, str] = {}   # script -> the module command found to run it
        self._sources = {name: load_script(name) for name in names}
        self._shas = {name: hashlib.sha1(src.encode()).hexdigest()
                      for name, src in self._sources.items()}
        self._loaded = False
        self._held = threading.local()    # per thread: a connection of its own (`read`)
        self._held_async: weakref.WeakKeyDictionary[AsyncRedis, HeldConnections] = (
            weakref.WeakKeyDictionary())

    def load(self) -> None:
        for source in self._sources.values():
            self._client.script_load(source)
        self._native = self._find_native() if self._want_native else {}
        self._loaded = True

    def _find_native(self) -> dict[str, str]:
        """The module commands (`NATIVE`) the server has, for the scripts loaded here: each is
        called with its keys and no arguments, which it refuses as such where it exists (an
        unknown command, or one this client may not call, is refused otherwise; a dropped
        connection raises)."""
        refusals: dict[str, redis.ResponseError | None] = {}
        for name, command in self._wanted_native():
            try:
                self._client.execute_command(command, *_probe_keys(name))
                refusals[name] = None
            except redis.ResponseError as e:
                refusals[name] = e
        return _found(refusals)

    async def _find_native_async(self, client: AnyAsyncRedis) -> dict[str, str]:
        refusals: dict[str, redis.ResponseError | None] = {}
        for name, command in self._wanted_native():
            try:
                await client.execute_command(command, *_probe_keys(name))
                refusals[name] = None
            except redis.ResponseError as e:
                refusals[name] = e
        return _found(refusals)

    def _wanted_native(self) -> list[tuple[str, str]]:
        if not self._want_native:
            return []
        return [(name, command) for name, command in NATIVE.items() if name in self._sources]

    @property
    def native(self) -> frozenset[str]:
        """The scripts a module command runs in their place (empty until loaded)."""
        return frozenset(self._native)

    def _command(self, name: str, keys: Sequence[Any], args: Sequence[Any]) -> tuple[Any, ...]:
        command = self._native.get(name)
        if command is not None:
            return (command, *keys, *args)
        return ("EVALSHA", self._shas[name], len(keys), *keys, *args)

    def _to_rerun(self, calls: Sequence[Call], replies: Sequence[Any]) -> list[int]:
        """The calls of a round trip that did not run and can run again: all of them refused
        for want of their script (a restarted Redis lost the scripts), or module commands
        refused as unknown (a server without the module); from then on the scripts run them.
        Any other error reply is raised (the first, as a pipeline raises it). The caller
        loads the scripts again before it reruns them."""
        rerun = []
        for i, ((name, _, _), reply) in enumerate(zip(calls, replies, strict=True)):
            if not isinstance(reply, redis.ResponseError):
                continue
            if isinstance(reply, NoScriptError) or (
                    name in self._native and _unknown_command(reply)):
                rerun.append(i)
            else:
                raise reply
        if any(calls[i][0] in self._native for i in rerun):
            self._want_native = False
        return rerun

    def read(self, name: str, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """`call` for a read-only script, on a single Redis: each thread sends it over a
        connection it holds, skipping the pool's checkout, health check and observability
        wrappers (~25 us of a ~100 us round trip here), packed by hiredis itself (redis-py's
        packing took ~5 us of a search's ~33 us of client work). A call that fails on a
        dropped connection reconnects and runs once more (read-only: running it twice is
        harmless); a module command the server no longer has runs as the script."""
        if isinstance(self._client, RedisCluster):
            return self.call(name, keys, args)
        if not self._loaded:
            self.load()
        conn = getattr(self._held, "conn", None)
        if conn is None:
            pool = self._client.connection_pool
            conn = self._held.conn = pool.connection_class(**pool.connection_kwargs)
        handled: set[str] = set()    # each recovery once: a restarted server may need all three
        while True:
            try:
                return _round_trip(conn, [pack_command(self._command(name, keys, args))])
            except (redis.ConnectionError, redis.TimeoutError):
                if "connection" in handled:
                    raise
                handled.add("connection")
                conn.disconnect()
            except redis.ResponseError as e:      # the scripts lost, or the module
                lost = "scripts" if isinstance(e, NoScriptError) else "module"
                if lost in handled:
                    raise
                self._to_rerun([(name, list(keys), list(args))], [e])   # else it raises
                handled.add(lost)
                self.load()

    def call(self, name: str, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """One script call (routed by its first key on Redis Cluster)."""
        if not self._loaded:
            self.load()
        try:
            return self._client.execute_command(*self._command(name, keys, args))
        except redis.ResponseError as e:      # the scripts lost, or the module
            self._to_rerun([(name, list(keys), list(args))], [e])   # else it raises
        self.load()
        return self._client.execute_command(*self._command(name, keys, args))

    def _queue(self, pipe: Any, calls: Sequence[Call]) -> Any:
        for name, keys, args in calls:
            if name == SADD:
                pipe.sadd(keys[0], *args)
            else:
                pipe.execute_command(*self._command(name, keys, args))
        return pipe

    def run_calls(self, client: AnyRedis, calls: Sequence[Call]) -> list[Any]:
        """One round trip for the calls (one per node on Redis Cluster)."""
        if not self._loaded:
            self.load()
        if isinstance(client, RedisCluster):
            return self._run_on_nodes(client, calls, retry_moved=True)
        return self._pipelined(client, calls)

    def _pipelined(self, client: redis.Redis, calls: Sequence[Call]) -> list[Any]:
        """The calls that did not run for want of their script or module command
        (`_to_rerun`) run once more, after the scripts are loaded again."""
        replies = self._queue(client.pipeline(transaction=False), calls).execute(
            raise_on_error=False)
        rerun = self._to_rerun(calls, replies)
        if rerun:
            self.load()
            again = self._queue(client.pipeline(transaction=False),
                                [calls[i] for i in rerun]).execute()
            for i, reply in zip(rerun, again, strict=True):
                replies[i] = reply
        return replies

    def _run_on_nodes(self, cluster: RedisCluster, calls: Sequence[Call],
                      retry_moved: bool) -> list[Any]:
        """Redis Cluster: redis-py refuses pipelined EVALSHA, so the calls go as one plain
        pipeline per node, each routed by its first key (a call's keys share one slot). A node
        that answers MOVED (slots migrated) has only its own calls rerun, once, after the
        client learns the new slot map."""
        by_node: dict[str, list[int]] = defaultdict(list)
        for i, (_, keys, _) in enumerate(calls):
            by_node[cluster.get_node_from_key(keys[0]).name].append(i)
        replies: list[Any] = [None] * len(calls)
        for name, indexes in by_node.items():
            mine = [calls[i] for i in indexes]
            node = cluster.get_node(node_name=name)
            try:
                got = self._pipelined(cluster.get_redis_connection(node), mine)
            except (MovedError, AskError):
                if not retry_moved:
                    raise
                cluster.nodes_manager.initialize()
                got = self._run_on_nodes(cluster, mine, retry_moved=False)
            for i, reply in zip(indexes, got, strict=True):
                replies[i] = reply
        return replies

    async def run_calls_async(self, client: AnyAsyncRedis, calls: Sequence[Call]) -> list[Any]:
        """One round trip for the calls; on Redis Cluster they go concurrently, each routed
        (and redirected) by the cluster client; on a single Redis, over a held connection
        (`HeldConnections`), which also loads the scripts when Redis lost them."""
        if not self._loaded:
            await self.load_async(client)
        if not isinstance(client, AsyncRedis):    # the cluster client: a slow isinstance
            return list(await asyncio.gather(*(self._call_async(client, c) for c in calls)))
        held = self._held_async.get(client)
        if held is None:
            held = self._held_async[client] = HeldConnections(client)
        replies = await held.round_trip([self._async_command(c) for c in calls])
        rerun = self._to_rerun(calls, replies)
        if rerun:
            await self.load_async(client)
            again = await held.round_trip([self._async_command(calls[i]) for i in rerun],
                                          raise_errors=True)
            for i, reply in zip(rerun, again, strict=True):
                replies[i] = reply
        return replies

    def _async_command(self, call: Call) -> tuple[Any, ...]:
        name, keys, args = call
        return (SADD, keys[0], *args) if name == SADD else self._command(name, keys, args)

    async def aclose(self, client: AnyAsyncRedis) -> None:
        """Close the connections held for `client` (before closing the client itself)."""
        held = self._held_async.pop(client, None) if isinstance(client, AsyncRedis) else None
        if held is not None:
            await held.aclose()

    async def _call_async(self, client: AsyncRedisCluster, call: Call) -> Any:
        name, keys, args = call
        if name == SADD:
            return await client.sadd(keys[0], *args)
        try:
            return await client.execute_command(*self._command(name, keys, args))
        except redis.ResponseError as e:      # the scripts lost, or the module
            self._to_rerun([call], [e])       # else it raises
        await self.load_async(client)
        return await client.execute_command(*self._command(name, keys, args))

    async def load_async(self, client: AnyAsyncRedis) -> None:
        for source in self._sources.values():
            await client.script_load(source)
        self._native = await self._find_native_async(client)
        self._loaded = True


def _round_trip(conn: Any, packed: list[bytes]) -> Any:
    """Send a packed command on a held connection (opened if closed) and read its reply."""
    conn.send_packed_command(packed, check_health=False)
    return conn.read_response()


class HeldConnections:
    """Connections to one asyncio Redis client's server, held outside its pool: the ping
    path's round trips skip the pool's checkout, its retry and observability wrappers, and a
    timeout per send and per reply (one timeout spans the round trip). That took 60-125 us of
    the API process's CPU off a single-ping post here (two round trips), 10-20% of it.

    A connection goes back on the free list after a round trip that read every reply (error
    replies included: each is read, and handed back or raised), and is dropped after any other
    failure (its stream may hold a reply nobody read). A connection taken from the free list
    that is found closed before any reply arrives went stale while idle (Redis restarted, or
    closed it): the server dropped it before the calls reached it, so they run once more on a
    new connection (a `CLIENT KILL` landing between a call and its reply would replay that
    call: the one exception; a claim run twice answers as it did the first time, a ping sent
    again being applied again, and takes a second rate-limit token). Any other failure raises
    redis-py's ConnectionError or TimeoutError (503 at the API): a write that may have run is
    not replayed (the phone's retry of it is: see `claim.lua`)."""

    MAX_IDLE = 256    # connections kept between bursts; a burst beyond opens and closes more

    def __init__(self, client: AsyncRedis) -> None:
        kwargs = dict(client.connection_pool.connection_kwargs)
        self._timeout: float | None = kwargs.pop("socket_timeout", None)
        self._make = lambda: client.connection_pool.connection_class(
            **kwargs, socket_timeout=None)
        self._free: list[Any] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    async def round_trip(self, commands: Sequence[tuple[Any, ...]], *,
                         raise_errors: bool = False) -> list[Any]:
        """The replies, an error reply as its exception (or the first one raised, with
        `raise_errors`)."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:     # connections belong to the loop that opened them
            self._free, self._loop = [], loop
        if self._free:
            try:
                return await self._on(self._free.pop(), commands, True, raise_errors)
            except _Stale:
                pass
        return await self._on(self._make(), commands, False, raise_errors)

    async def _on(self, conn: Any, commands: Sequence[tuple[Any, ...]],
                  stale_ok: bool, raise_errors: bool) -> list[Any]:
        replies: list[Any] = []
        error: redis.ResponseError | None = None
        try:
            async with asyncio.timeout(self._timeout):
                await conn.send_packed_command(conn.pack_commands(commands),
                                               check_health=False)
                for _ in commands:
                    try:
                        replies.append(await conn.read_response())
                    except redis.ResponseError as e:    # the reply is read: carry on
                        error = error or e
                        replies.append(e)
        except BaseException as e:
            await conn.disconnect(nowait=True)
            if stale_ok and not replies and isinstance(e, redis.ConnectionError):
                raise _Stale from e
            if isinstance(e, TimeoutError):
                raise redis.TimeoutError("Timeout on a Redis round trip") from e
            raise
        if len(self._free) < self.MAX_IDLE:
            self._free.append(conn)
        else:
            await conn.disconnect()
        if error is not None and raise_errors:
            raise error
        return replies

    async def aclose(self) -> None:
        free, self._free = self._free, []
        for conn in free:
            await conn.disconnect()


class _Stale(Exception):
    """A held connection found closed before its first reply."""


def _found(refusals: dict[str, redis.ResponseError | None]) -> dict[str, str]:
    """The commands whose probe (`Scripts._find_native`) says they exist: refused for want
    of arguments (or, never seen, not refused)."""
    return {name: NATIVE[name] for name, refusal in refusals.items()
            if refusal is None or "wrong number of arguments" in str(refusal).lower()}


def _unknown_command(error: redis.ResponseError) -> bool:
    reply = str(error).rsplit("of pipeline caused error: ", 1)[-1]   # redis-py's wrapping
    return reply.lower().startswith("unknown command")


def _probe_keys(name: str) -> list[str]:
    return [PROBE_KEY] * NATIVE_KEYS.get(name, 1)
