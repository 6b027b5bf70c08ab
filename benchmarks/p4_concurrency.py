"""P4: 8 concurrent clients searching with a top-50 rerank for 60 s: throughput, p50/p99, errors.

python benchmarks/p4_concurrency.py [--model DIR] [--clients 8] [--seconds 60] [--window 50] [--json p4.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from _common import DEFAULT_MODEL, prepare, search


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--kind", default="cross-encoder")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--window", type=int, default=50)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    _, cluster, queries = prepare(args.model, args.kind)
    search(cluster, queries[0], args.window, True)  # warm-up
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    deadline = time.monotonic() + args.seconds

    def client(n: int) -> None:
        i = n
        while time.monotonic() < deadline:
            query = queries[i % len(queries)]
            i += args.clients
            t0 = time.perf_counter()
            try:
                search(cluster, query, args.window, True)
                with lock:
                    latencies.append((time.perf_counter() - t0) * 1000)
            except Exception as exc:  # count every failure, keep going
                with lock:
                    errors.append(f"{type(exc).__name__}: {str(exc)[:120]}")

    started = time.monotonic()
    with ThreadPoolExecutor(args.clients) as pool:
        list(pool.map(client, range(args.clients)))
    wall = time.monotonic() - started
    figures = {
        "clients": args.clients,
        "window": args.window,
        "seconds": wall,
        "searches": len(latencies),
        "searches_per_s": len(latencies) / wall,
        "pairs_per_s": len(latencies) * args.window / wall,
        "p50_ms": float(np.percentile(latencies, 50)) if latencies else None,
        "p99_ms": float(np.percentile(latencies, 99)) if latencies else None,
        "errors": len(errors),
    }
    print(f"P4 {args.clients} clients, top-{args.window} rerank, {wall:.0f} s")
    print(f"throughput   {figures['searches_per_s']:.2f} searches/s ({figures['pairs_per_s']:.0f} pairs/s)")
    print(f"latency      p50 {figures['p50_ms']:.0f} ms, p99 {figures['p99_ms']:.0f} ms")
    print(f"errors       {len(errors)}" + (f" (first: {errors[0]})" if errors else ""))
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
