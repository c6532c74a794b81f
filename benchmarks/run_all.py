"""Every benchmark, one after another: `make bench` (BENCH_SIZES to choose the city sizes)."""

from benchmarks import http_intake, ingest, memory, nearby, redis_work

if __name__ == "__main__":
    for bench in (ingest, http_intake, nearby, redis_work, memory):
        bench.main()
