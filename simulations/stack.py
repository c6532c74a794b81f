"""Runs the real API and worker as child processes, for the demo and end-to-end tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx


@contextmanager
def running_stack(*, port: int, env: dict[str, str] | None = None,
                  log_dir: Path | None = None, ready_timeout_s: float = 60) -> Iterator[str]:
    """Start `ridehail api` and `ridehail worker`; yield the base URL once /readyz is 200."""
    environment = {**os.environ, **(env or {})}
    log_dir = log_dir or Path(environment.get("RIDEHAIL_STATE_DIR", ".state"))
    log_dir.mkdir(parents=True, exist_ok=True)
    procs = []
    for name, args in (("api", ["api", "--port", str(port)]), ("worker", ["worker"])):
        log = open(log_dir / f"{name}-{port}.log", "wb")  # noqa: SIM115 - the child owns it
        procs.append(subprocess.Popen([sys.executable, "-m", "app.cli", *args], env=environment,
                                      stdout=log, stderr=subprocess.STDOUT))
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base_url, procs, ready_timeout_s)
        yield base_url
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


def _wait_ready(base_url: str, procs: list[subprocess.Popen[bytes]], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise RuntimeError("the API or worker exited during start-up; see its log")
        try:
            if httpx.get(f"{base_url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{base_url}/readyz not ready within {timeout_s:.0f}s")
