"""The `ridehail` command: services, api, worker, demo, token."""

from __future__ import annotations

import argparse
import logging
import sys

import uvicorn

from accounts.tokens import Principal, Role, issue_token
from app import services
from app.worker import run_worker
from core.clock import SystemClock
from core.ids import new_id
from core.settings import Settings
from simulations.demo import run_demo


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ridehail", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    svc = sub.add_parser("services", help="local PostgreSQL/PostGIS, Redis and Kafka (Tansu)")
    svc.add_argument("action", choices=["up", "down", "status", "redis"],
                     help="redis: only Redis (a local cluster when REDIS_CLUSTER=true)")
    api = sub.add_parser("api", help="serve the HTTP API with uvicorn")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
    api.add_argument("--workers", type=int, default=1)
    sub.add_parser("worker", help="dispatcher, outbox relay, analytics consumer, sweeper")
    demo = sub.add_parser("demo", help="start API and worker, play a few rides, print them")
    demo.add_argument("--rides", type=int, default=3)
    demo.add_argument("--port", type=int, default=8765)
    sub.add_parser("token", help="print an admin bearer token")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    for noisy in ("kafka", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    settings = Settings()
    if args.command == "services":
        if args.action == "up":
            services.up(settings)
        elif args.action == "redis":
            services.redis_only(settings)
        elif args.action == "down":
            services.down()
        else:
            return services.status(settings)
    elif args.command == "api":
        uvicorn.run("app.main:create_app", factory=True, host=args.host, port=args.port,
                    workers=args.workers, log_level="warning")
    elif args.command == "worker":
        run_worker(settings)
    elif args.command == "demo":
        return run_demo(settings, rides=args.rides, port=args.port)
    elif args.command == "token":
        print(issue_token(Principal(new_id(), Role.ADMIN), secret=settings.jwt_secret,
                          algorithm=settings.jwt_algorithm, ttl_s=3600, now=SystemClock().now()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
