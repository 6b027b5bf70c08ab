"""What the browser test and benchmarks/report_page.py share: the system's Chromium driven by Playwright, a
synthetic report of any size, and the page's own timings of opening and sorting it.

The browser is Debian's ``chromium`` (``apt-get install -y chromium``, which .ci/run does); Playwright's own
browser download (``playwright install``) is never used: the launch names the executable.
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from osrerank.eval import MEASURES, per_query_metrics
from osrerank.report_page import PageArm, PageQuery, ReportPage

CHROMIUM = Path("/usr/bin/chromium")
#: No GPU, no sandbox (root in CI), and none of the browser's own traffic (updates, sync, field trials).
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextmanager
def chromium(width: int = 1400, height: int = 1000) -> Iterator[Any]:
    """A headless Chromium with a fresh profile (Playwright takes the profile folder as ``user_data_dir``, not as a
    flag): a browser context to open pages in, closed on exit."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="osrerank-chromium-") as profile, sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            args=FLAGS,
            headless=True,
            viewport={"width": width, "height": height},
        )
        try:
            yield context
        finally:
            context.close()


def synthetic_page(queries: int = 300, hits: int = 10, seed: int = 0) -> ReportPage:
    """``queries`` queries x 2 arms (bm25, bm25+rerank) x ``hits`` hits, made up but shaped like an evaluation's
    page: the second list mostly the first one shuffled, three judged documents per query (some relevant, some in
    the lists), each query's metrics computed from its lists as eval computes them."""
    rng = random.Random(seed)
    arms = ("bm25", "bm25+rerank")
    made, docs, qrels, runs = [], {}, {}, {arm: {} for arm in arms}
    for n in range(queries):
        qid, pool = f"q{n}", [f"d{n}-{k}" for k in range(2 * hits)]
        first = rng.sample(pool, hits)
        second = rng.sample(first, hits - 2) + rng.sample([d for d in pool if d not in first], 2)
        qrels[qid] = {d: rng.choice((0, 1, 1, 2)) for d in rng.sample(pool, 3)}
        for d in pool:
            words = " ".join(rng.choice("abcdefgh") * 4 for _ in range(8))
            docs[d] = f"synthetic document {d} on topic {n % 17}: {words}"
        for arm, top in zip(arms, (first, second), strict=True):
            runs[arm][qid] = [(d, round(10 - i * 0.7 + rng.random() / 2, 4)) for i, d in enumerate(top)]
    metrics = {arm: per_query_metrics(qrels, {q: dict(h) for q, h in run.items()}) for arm, run in runs.items()}
    for n in range(queries):
        qid = f"q{n}"
        hits_ = {arm: runs[arm][qid] for arm in arms}
        made.append(
            PageQuery(
                qid, f"synthetic query {n} on topic {n % 17}", hits_, {a: metrics[a][qid] for a in arms}, qrels[qid]
            )
        )
    summary = [
        PageArm(
            arm, {m: sum(metrics[arm][q][m] for q in qrels) / queries for m in MEASURES}, {"p50": 10.0, "p95": 20.0}
        )
        for arm in arms
    ]
    return ReportPage(f"synthetic: {queries} queries", summary, made, docs, *arms, about={"queries": str(queries)})


def open_and_sort(browser: Any, path: Path, sorts: int = 2) -> dict[str, float]:
    """Open the page and sort its table by the difference ``sorts`` times; the page's own performance.now()
    figures (ms): ``open`` from the start of navigation to the table laid out, ``sort`` the slowest sort
    (handler, re-render and layout), and ``load`` the navigation's wall time as the driver saw it."""
    import time

    page = browser.new_page()
    try:
        t0 = time.perf_counter()
        page.goto(path.resolve().as_uri())
        load = (time.perf_counter() - t0) * 1000
        opened = page.evaluate("window.reportTimings.open")
        slowest = 0.0
        for _ in range(sorts):
            page.click("#queries th[data-key=diff]")
            slowest = max(slowest, page.evaluate("window.reportTimings.sort"))
        return {"open": opened, "sort": slowest, "load": load, "rows": page.locator("#rows tr").count()}
    finally:
        page.close()
