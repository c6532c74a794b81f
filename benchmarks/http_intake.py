"""HTTP intake: single-ping location posts/s, the real API vs a bare FastAPI parse-only endpoint.

Run: `python -m benchmarks.http_intake`. Both servers run under uvicorn with the same settings
(HTTP_WORKERS workers, default 1) on this machine; `wrk` (installed from Debian when missing)
drives them with the same Lua script: DRIVERS drivers with their own tokens, each ping a few
metres on from the last with a later `recorded_at`, so every real ping is applied to the index.
Each server first takes WARM_S seconds of the same load, unmeasured (the pings of the measured
runs are later still): as in a running API, where a driver posts with the same token every few
seconds for hours, each driver's token has then been verified once and sits in the server's
token cache (a cold start verified a JWT in about half the requests of a 10 s run).
The two servers then take turns, ROUNDS runs of DURATION seconds each, and each figure is the
median of its runs: a slow spell of this shared machine, which moves one run by up to +-30%,
falls on both alike. Beside requests/s, each run's CPU time of the server process per request
(from /proc) is printed: how much work a request costs, whatever the machine's speed.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import redis

from accounts.tokens import Principal, Role, issue_token
from app import services
from app.container import make_index
from benchmarks.city import make_city
from benchmarks.report import Figure, header, median, show
from core.clock import SystemClock, to_ms
from core.products import Product
from core.settings import Settings

DRIVERS = int(os.environ.get("BENCH_HTTP_DRIVERS", "2000"))
WORKERS = os.environ.get("HTTP_WORKERS", "1")
DURATION = os.environ.get("BENCH_HTTP_SECONDS", "5")
ROUNDS = int(os.environ.get("BENCH_HTTP_ROUNDS", "3"))
WARM_S = os.environ.get("BENCH_HTTP_WARM_SECONDS", "6")
CONNECTIONS = os.environ.get("BENCH_HTTP_CONNECTIONS", "32")

LUA = """
tokens = {%(tokens)s}
lats = {%(lats)s}
lngs = {%(lngs)s}
counts = {}
base_ms = %(base_ms)d
i = 0
request = function()
  i = i %% #tokens + 1
  counts[i] = (counts[i] or 0) + 1
  local ms = base_ms + counts[i] * 100
  local stamp = os.date("!%%Y-%%m-%%dT%%H:%%M:%%S", math.floor(ms / 1000))
    .. string.format(".%%03dZ", ms %% 1000)
  local body = string.format(
    '{"pings":[{"lat":%%.7f,"lng":%%.7f,"recorded_at":"%%s","accuracy_m":5}]}',
    lats[i] + counts[i] * 0.00001, lngs[i], stamp)
  return wrk.format("POST", "/v1/drivers/me/locations",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. tokens[i]}, body)
end
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(app: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    factory = ["--factory"] if app.endswith("create_app") else []
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", app, *factory, "--port", str(port),
         "--workers", WORKERS, "--log-level", "warning", "--no-access-log"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/docs", timeout=1)
            return proc
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"{app} did not start")


def cpu_s(pid: int) -> float:
    """User + system CPU time of a process so far, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wrk(port: int, script: Path, seconds: str = DURATION) -> tuple[float, int, int]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "-s", str(script),
         f"http://127.0.0.1:{port}"], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return rps, total, int(bad.group(1)) if bad else 0


def main() -> None:
    if shutil.which("wrk") is None:
        services.apt_install("wrk")
    settings = Settings()
    client = redis.Redis.from_url(settings.redis_url)
    client.flushdb()
    index = make_index(client, settings)
    city = make_city(DRIVERS, seed=5)
    now = SystemClock().now()
    index.go_online_many([(d, Product.ECONOMY) for d in city.ids], now_ms=to_ms(now))
    tokens = [issue_token(Principal(d, Role.DRIVER), secret=settings.jwt_secret,
                          algorithm=settings.jwt_algorithm, ttl_s=3600, now=now)
              for d in city.ids]
    folder = Path(tempfile.mkdtemp())

    def script_from_now() -> Path:
        """The wrk script, its pings stamped from now on (later than any posted before)."""
        script = folder / "pings.lua"
        script.write_text(LUA % {
            "tokens": ",".join(f'"{t}"' for t in tokens),
            "lats": ",".join(f"{p.lat:.7f}" for p in city.points),
            "lngs": ",".join(f"{p.lng:.7f}" for p in city.points),
            "base_ms": to_ms(SystemClock().now())})
        return script

    env = {**os.environ, "PYTHONPATH": str(Path.cwd())}
    servers = {}
    runs: dict[str, list[tuple[float, int, int, float]]] = {"bare": [], "real": []}
    try:
        for name, app in (("bare", "benchmarks.bare_app:app"), ("real", "app.main:create_app")):
            port = free_port()
            servers[name] = (port, serve(app, port, env))
            wrk(port, script_from_now(), seconds=WARM_S)
        for _ in range(ROUNDS):
            for name, (port, proc) in servers.items():
                before = cpu_s(proc.pid)
                rps, total, bad = wrk(port, script_from_now())
                runs[name].append((rps, total, bad, (cpu_s(proc.pid) - before) / total * 1e6))
    finally:
        for _, proc in servers.values():
            proc.terminate()
            proc.wait(timeout=15)
    applied = sum(1 for d in city.ids if (s := index.get(d)) is not None and s.point is not None)
    client.flushdb()
    header(f"HTTP intake: single-ping POST /v1/drivers/me/locations, uvicorn --workers {WORKERS},"
           f" wrk -t1 -c{CONNECTIONS}, {ROUNDS} turns of {DURATION}s each after {WARM_S}s"
           f" unmeasured, {DRIVERS} drivers")
    real, bare = runs["real"], runs["bare"]
    show(Figure("real API requests/s (median)", median([r[0] for r in real]), "req/s",
                "bare FastAPI parse-only endpoint", median([r[0] for r in bare]),
                target=">= 0.5x"))
    show(Figure("real API CPU per request (median)", median([r[3] for r in real]), "us",
                "bare FastAPI CPU per request", median([r[3] for r in bare]),
                higher_is_better=False))
    for name, rows in (("real", real), ("bare", bare)):
        print(f"  {name} runs (req/s, us CPU per request): "
              + ", ".join(f"{r[0]:,.0f} / {r[3]:.0f}" for r in rows))
    print(f"  non-2xx: real {sum(r[2] for r in real)}/{sum(r[1] for r in real)}, "
          f"bare {sum(r[2] for r in bare)}/{sum(r[1] for r in bare)}; "
          f"drivers placed by the real run: {applied}/{DRIVERS}")


if __name__ == "__main__":
    main()
