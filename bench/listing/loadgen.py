"""Open-loop HTTP load generator (aiohttp; run as a separate process by bench.listing.bench).

Requests start on a fixed schedule (``--rate`` per second) whatever the answers do, and latency is
measured from the scheduled start (no coordinated omission). Prints one JSON object: per request
kind, count, errors, p50/p90/p99/max in milliseconds.

    python -m bench.listing.loadgen --url http://127.0.0.1:8081 --rate 200 --duration 15 \
        --plan plan.json --token TOKEN
The plan is a JSON list of [kind, method, path, body-or-null]; requests cycle through it.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


async def run(url: str, rate: float, duration: float, plan: list, token: str, warmup: float) -> dict:
    import aiohttp  # lighter per request than httpx: the generator must not be the bottleneck

    headers = {"Authorization": f"Bearer {token}"}
    latencies: dict[str, list[float]] = {}
    errors: dict[str, int] = {}
    connector = aiohttp.TCPConnector(limit=64)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(url, headers=headers, connector=connector, timeout=timeout) as client:
        async def one(i: int, scheduled: float, record: bool) -> None:
            kind, method, path, body = plan[i % len(plan)]
            try:
                async with client.request(method, path, json=body) as response:
                    await response.read()
                    ok = response.status < 500 and response.status not in (401, 403, 422)
            except (aiohttp.ClientError, asyncio.TimeoutError):
                ok = False
            elapsed = (time.perf_counter() - scheduled) * 1000
            if record:
                latencies.setdefault(kind, []).append(elapsed)
                if not ok:
                    errors[kind] = errors.get(kind, 0) + 1

        tasks = []
        start = time.perf_counter() + 0.2
        total = int((warmup + duration) * rate)
        for i in range(total):
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(i, scheduled, i >= warmup * rate)))
        await asyncio.gather(*tasks)
    out = {}
    everything: list[float] = []
    for kind, values in latencies.items():
        everything += values
        out[kind] = {"n": len(values), "errors": errors.get(kind, 0), "p50_ms": percentile(values, 50),
                     "p90_ms": percentile(values, 90), "p99_ms": percentile(values, 99), "max_ms": max(values)}
    out["all"] = {"n": len(everything), "errors": sum(errors.values()), "p50_ms": percentile(everything, 50),
                  "p90_ms": percentile(everything, 90), "p99_ms": percentile(everything, 99),
                  "max_ms": max(everything) if everything else float("nan")}
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--duration", type=float, default=15)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--plan", required=True)
    parser.add_argument("--token", required=True)
    args = parser.parse_args()
    with open(args.plan, encoding="utf-8") as f:
        plan = json.load(f)
    result = asyncio.run(run(args.url, args.rate, args.duration, plan, args.token, args.warmup))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
