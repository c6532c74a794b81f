"""Where the tests' real services come from: environment URLs, else testcontainers, else a hint."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

import pytest

HINT = ("no test services: run `make services-test` (ridehail services up with the test URLs "
        "of the Makefile), or export DATABASE_URL, REDIS_URL and KAFKA_BOOTSTRAP_SERVERS")
NAMES = ("DATABASE_URL", "REDIS_URL", "KAFKA_BOOTSTRAP_SERVERS")
SCRIPTS, WITH_MODULE = "scripts", "module"
# `@ON_BOTH` runs a test that takes the `redis_client` fixture (or the `index` built on it) on
# the test Redis, where the index runs its Lua scripts, and on the one that loads its module.
ON_BOTH = pytest.mark.parametrize("redis_client", [SCRIPTS, WITH_MODULE], indirect=True)


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


@contextmanager
def service_urls() -> Iterator[dict[str, str]]:
    """Yield the three URLs the tests use."""
    if all(os.environ.get(name) for name in NAMES):
        yield {name: os.environ[name] for name in NAMES}
        return
    if not _docker_answers():
        pytest.exit(HINT, returncode=3)
    from testcontainers.kafka import KafkaContainer  # noqa: PLC0415 - only with Docker
    from testcontainers.postgres import PostgresContainer  # noqa: PLC0415
    from testcontainers.redis import RedisContainer  # noqa: PLC0415

    with ExitStack() as stack:
        pg = stack.enter_context(PostgresContainer("postgis/postgis:15-3.4", driver="psycopg2"))
        rd = stack.enter_context(RedisContainer("redis:7"))
        kafka = stack.enter_context(KafkaContainer())
        yield {
            "DATABASE_URL": pg.get_connection_url(),
            "REDIS_URL": f"redis://{rd.get_container_host_ip()}:{rd.get_exposed_port(6379)}/0",
            "KAFKA_BOOTSTRAP_SERVERS": kafka.get_bootstrap_server(),
        }


def local_url(name: str, what: str, where: str) -> str:
    """A test service that only `make services-test` starts here (no testcontainer stands in
    for it): its URL from the environment, else stop naming the command."""
    url = os.environ.get(name)
    if not url:
        pytest.exit(f"no test {what}: run `make services-test` (it starts one on {where}), "
                    f"or export {name}", returncode=3)
    return url


def cluster_url() -> str:
    """The Redis Cluster the cluster tests run the index on."""
    return local_url("REDIS_CLUSTER_URL", "Redis Cluster", "127.0.0.1:7100-7102")


def module_url() -> str:
    """A single Redis with the index's module loaded (`geo.module`)."""
    return local_url("REDIS_MODULE_URL", "Redis with the index's module",
                     "127.0.0.1:7200")
