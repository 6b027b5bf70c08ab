"""The report page's speed: how long a large report takes to open and to sort, in headless Chromium.

python benchmarks/report_page.py [--queries 300,1000,3000] [--rounds 5] [--json]

Each size is a synthetic report (N queries x 2 arms x 10 hits, tests/browser/pages.py), written by the kit's own
report_page.write_page and opened ``--rounds`` times in a fresh page of Debian's Chromium (/usr/bin/chromium,
driven by Playwright as the browser test drives it). The figures are the page's own performance.now(): ``open``
from the start of navigation to the query table laid out, ``sort`` the slowest of two sorts by the difference
(handler, re-render and layout); ``load`` is the navigation's wall time as the driver saw it. Medians over the
rounds, in ms.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository: tests/browser/pages.py

from osrerank.report_page import write_page
from tests.browser.pages import chromium, open_and_sort, synthetic_page


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", default="300,1000,3000", help="report sizes, comma-separated")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    args = parser.parse_args()

    rows = {}
    with tempfile.TemporaryDirectory() as tmp, chromium() as browser:
        for n in (int(x) for x in args.queries.split(",") if x.strip()):
            path = write_page(synthetic_page(n), Path(tmp) / f"report-{n}.html")
            rounds = [open_and_sort(browser, path) for _ in range(args.rounds)]
            rows[n] = {
                "bytes": path.stat().st_size,
                **{k: round(statistics.median(r[k] for r in rounds), 1) for k in ("open", "sort", "load")},
            }
    result = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "load_average": round(os.getloadavg()[0], 1),  # other work on the machine while it ran
        "browser": "chromium (Debian)",
        "rounds": args.rounds,
        "queries": rows,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    machine = f"{result['cpu']} ({result['cores']} cores, load average {result['load_average']:.1f})"
    print(f"{machine}, median of {args.rounds} rounds")
    print(f"{'queries':>8} {'size KB':>8} {'open ms':>8} {'sort ms':>8} {'load ms':>8}")
    for n, r in rows.items():
        print(f"{n:>8} {r['bytes'] / 1024:>8.0f} {r['open']:>8.0f} {r['sort']:>8.1f} {r['load']:>8.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
