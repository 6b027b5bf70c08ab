"""The report page in a real browser (headless Chromium, Debian's package, driven by Playwright).

A real ``osrerank eval`` on a SciFact slice, run as a user runs it against the session's cluster, writes
report.html; the test opens it, sorts the queries by the difference, opens the worst one and checks that the two
lists shown are the two arms' top 10 from the run files eval wrote beside it, each hit with its judged grade
(qrels), its title from the corpus and its rank move; that each filter shows the queries it should; that another
arm chosen on the page shows that arm's run; and that the page made no request but for the file itself. A
second test runs ``osrerank compare`` for that worst query against the eval's index and pipeline (``--qrels``,
``--html``) and checks the terminal's lists against the page it wrote. A third test opens a 300-query report and
records how long opening and sorting took (measured, not asserted: ``python benchmarks/report_page.py`` prints
the same figures).

With ``REPORT_SCREENSHOT=docs/report-page.png`` the first test saves the page, the worst query opened, there
(the README's picture).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from osrerank.compare import moves
from osrerank.eval import Dataset, load_qrels, per_query_metrics
from osrerank.report_page import write_page

from ..conftest import REPO, SCIFACT
from .pages import CHROMIUM, chromium, open_and_sort, synthetic_page

BASELINE, RERANKED, BLEND = "bm25", "bm25+rerank", "blend 0.5 bm25"
#: The eval's objects (setup's model, pipelines, the corpus index), removed at the end.
NAME = "reportpage"
QUERIES = 20


@pytest.fixture(scope="module")
def browser() -> Any:
    if not CHROMIUM.exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install -y chromium (.ci/run does)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        pytest.fail("Playwright is missing: pip install -e '.[dev]' (its browser download is not needed)")
    with chromium() as launched:
        yield launched


def osrerank(*args: str, columns: int = 200) -> subprocess.CompletedProcess[str]:
    """The command as a user runs it (none of this process's OSRERANK_* settings), its tables ``columns`` wide."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("OSRERANK_") or k == "OSRERANK_CACHE"}
    env["COLUMNS"] = str(columns)
    return subprocess.run(
        [sys.executable, "-m", "osrerank", *args], capture_output=True, text=True, env=env, timeout=900, check=False
    )


def read_run(path: Path) -> dict[str, list[tuple[str, float]]]:
    run: dict[str, list[tuple[str, float]]] = {}
    for line in path.read_text().splitlines():
        qid, _, doc, rank, score, _tag = line.split()
        hits = run.setdefault(qid, [])
        assert int(rank) == len(hits) + 1
        hits.append((doc, float(score)))
    return run


@pytest.fixture(scope="module")
def evaluation(local_cluster: Any, test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``osrerank eval`` on 20 SciFact queries, 15 BM25 hits reranked (so hits from below the top 10 rise into it)."""
    if not (SCIFACT / "corpus.jsonl").exists():
        pytest.fail(f"SciFact not found at {SCIFACT}: the report page's test needs ../shared/data/beir/scifact")
    out = tmp_path_factory.mktemp("eval")
    common = ["--opensearch-url", local_cluster.url, "--name", NAME, "--pipeline", f"{NAME}-rerank"]
    try:
        proc = osrerank(
            "eval", "--dataset", str(SCIFACT), "--max-queries", str(QUERIES), "--top-k", "15", "--out", str(out),
            "--model", str(test_model_dir), *common,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert "report.html" in proc.stdout
        yield out
    finally:
        teardown = osrerank("teardown", *common)
        assert teardown.returncode == 0, teardown.stderr


def expected_rows(out: Path) -> list[dict[str, Any]]:
    """Each judged query's nDCG@10 in both arms, computed here from the run files and the qrels, and what the
    page should call it; in the page's first order (worst difference first, ties in query order)."""
    judged = Dataset.read(SCIFACT, "test", QUERIES).qrels  # the first judged queries, in qrels order
    runs = {arm: read_run(out / f"{arm.replace(' ', '-')}.run") for arm in (BASELINE, RERANKED)}
    ndcg = {arm: per_query_metrics(judged, {q: dict(h) for q, h in run.items()}) for arm, run in runs.items()}
    rows = []
    for q in judged:
        a, b = (round(ndcg[arm][q]["nDCG@10"], 6) for arm in (BASELINE, RERANKED))
        shown = [d for arm in runs for d, _ in runs[arm].get(q, [])[:10]]
        relevant = any(judged[q].get(d, 0) > 0 for d in shown)
        status = "none" if not relevant else "hurt" if b < a else "helped" if b > a else "unchanged"
        rows.append({"id": q, "diff": b - a, "status": status})
    return sorted(rows, key=lambda r: r["diff"])


def rows_shown(page: Any) -> list[str]:
    return page.eval_on_selector_all("#rows tr[data-qid]", "rows => rows.map(r => r.dataset.qid)")


def hits_shown(page: Any, list_id: str) -> list[dict[str, str]]:
    return page.eval_on_selector_all(
        f"#{list_id} li[data-doc]",
        """items => items.map(li => ({doc: li.dataset.doc, grade: li.dataset.grade, move: li.dataset.move,
            label: li.querySelector('.grade').textContent, text: li.querySelector('.doc').textContent,
            score: li.querySelector('.score').textContent}))""",
    )


def titles(ids: set[str]) -> dict[str, str]:
    found = {}
    with (SCIFACT / "corpus.jsonl").open() as lines:
        for line in lines:
            row = json.loads(line)
            if row["_id"] in ids:
                found[row["_id"]] = row["title"]
    return found


def check_lists(page: Any, out: Path, qid: str, left: str, right: str) -> None:
    """The two lists shown are the two arms' top 10 from their run files, with grades, titles, scores and moves."""
    qrels = load_qrels(SCIFACT / "qrels" / "test.tsv")[qid]
    a = read_run(out / f"{left.replace(' ', '-')}.run").get(qid, [])[:10]
    b = read_run(out / f"{right.replace(' ', '-')}.run").get(qid, [])[:10]
    shown_a, shown_b = hits_shown(page, "list-a"), hits_shown(page, "list-b")
    assert [h["doc"] for h in shown_a] == [d for d, _ in a]
    assert [h["doc"] for h in shown_b] == [d for d, _ in b]
    names = titles({d for d, _ in a + b})
    for shown, run in ((shown_a, a), (shown_b, b)):
        for hit, (doc, score) in zip(shown, run, strict=True):
            grade = qrels.get(doc)
            assert hit["grade"] == ("" if grade is None else str(grade))
            assert hit["label"] == ("unjudged" if grade is None else f"grade {grade}" if grade else "judged 0")
            assert hit["text"] == f"{names[doc]} {doc}"
            assert float(hit["score"]) == pytest.approx(score, abs=1e-6)
    after = moves([d for d, _ in a], [d for d, _ in b])
    assert [h["move"] for h in shown_b] == after
    right_place = {d: i for i, (d, _) in enumerate(b)}
    for hit in shown_a:  # the same move, shown on the document in the baseline's list
        doc = hit["doc"]
        assert hit["move"] == ("dropped" if doc not in right_place else after[right_place[doc]])


@pytest.mark.integration  # the session's cluster
def test_the_report_of_a_real_evaluation(evaluation: Path, browser: Any, record_property: Any) -> None:
    out = evaluation
    report = out / "report.html"
    url = report.resolve().as_uri()
    results = json.loads((out / "results.json").read_text())
    expected = expected_rows(out)
    assert {r["status"] for r in expected} >= {"hurt", "helped"}, "the slice should show both"

    page = browser.new_page()
    requests, refused = [], []
    page.on("request", lambda request: requests.append(request.url))
    page.route("**/*", lambda route: route.continue_() if route.request.url == url else (
        refused.append(route.request.url), route.abort()))  # fmt: skip
    page.goto(url)

    # the summary: every arm of results.json with its figures
    for arm, figures in results["arms"].items():
        cells = page.eval_on_selector(f'#arms tr[data-arm="{arm}"]', "tr => [...tr.cells].map(c => c.textContent)")
        assert cells[1:4] == [f"{figures['metrics'][m]:.4f}" for m in ("nDCG@10", "RR@10", "R@100")]
        assert cells[4] == (f"{figures['latency_ms']['p50']:.0f}" if figures["latency_ms"] else "–")
    assert page.locator("#summary img").first.get_attribute("src").startswith("data:image/png;base64,")

    # the queries, worst first; sorted by the difference (best first), then again (worst first)
    worst_first = [r["id"] for r in expected]
    assert rows_shown(page) == worst_first
    header = page.locator("#queries th[data-key=diff]")
    header.click()
    assert header.get_attribute("aria-sort") == "descending"
    best_first = [r["id"] for r in sorted(expected, key=lambda r: -r["diff"])]
    assert rows_shown(page) == best_first
    header.click()
    assert header.get_attribute("aria-sort") == "ascending" and rows_shown(page) == worst_first

    # each filter shows its queries
    for status in ("hurt", "helped", "none", "unchanged"):
        page.select_option("#filter", status)
        assert rows_shown(page) == [r["id"] for r in expected if r["status"] == status], status
    page.select_option("#filter", "all")

    # the worst query opened: the two arms' top 10, side by side
    worst = worst_first[0]
    page.click(f'#rows tr[data-qid="{worst}"]')
    assert page.locator("#detail").is_visible()
    check_lists(page, out, worst, BASELINE, RERANKED)
    if os.environ.get("REPORT_SCREENSHOT"):
        page.screenshot(path=str(REPO / os.environ["REPORT_SCREENSHOT"]), full_page=True)

    # another arm chosen on the page: its run, for the same query
    page.select_option("#arm-b", BLEND)
    check_lists(page, out, worst, BASELINE, BLEND)

    assert refused == [] and requests == [url], "the page asked for more than itself"
    record_property("report_bytes", report.stat().st_size)
    page.close()


@pytest.mark.integration  # the session's cluster
def test_compare_one_query_in_the_terminal_and_its_page(
    evaluation: Path, browser: Any, local_cluster: Any, test_model_dir: Path
) -> None:
    """``osrerank compare`` on the eval's index and rerank pipeline, for the query reranking hurt most: the first
    stage's list is BM25's top 10 of the eval's run file, both lists are printed side by side with their judged
    marks, and the --html page shows the same two lists with the qrels' grades and makes no request."""
    out, qrels = evaluation, SCIFACT / "qrels" / "test.tsv"
    worst = expected_rows(out)[0]["id"]
    text = Dataset.read(SCIFACT, "test", QUERIES).queries[worst]
    html = out / f"compare-{worst}.html"
    proc = osrerank(
        "compare", text, "--qrels", str(qrels), "--query-id", worst, "--html", str(html),
        "--pipeline", f"{NAME}-eval-rerank", "--index", f"{NAME}-eval-scifact", "--document-fields", "rerank_text",
        "--name", NAME, "--opensearch-url", local_cluster.url, "--model", str(test_model_dir),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    judged = load_qrels(qrels)[worst]
    bm25 = [d for d, _ in read_run(out / f"{BASELINE}.run")[worst]]

    page = browser.new_page()
    url, requests = html.resolve().as_uri(), []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(url)
    assert page.locator("#detail").is_visible() and not page.locator("#queries").is_visible()
    left, right = hits_shown(page, "list-a"), hits_shown(page, "list-b")
    assert [h["doc"] for h in left] == bm25[:10]
    assert len(right) == 10 and {h["doc"] for h in right} <= set(bm25[:15])  # reranked from the eval's window
    rows = [line for line in proc.stdout.splitlines() if line.startswith("│")]
    assert len(rows) == 10
    for n, (row, a, b) in enumerate(zip(rows, left, right, strict=True), 1):
        cells = [c.strip() for c in row.strip("│").split("│")]
        assert cells[0] == str(n)
        for cell, hit in ((cells[1], a), (cells[4], b)):
            grade = judged.get(hit["doc"])
            assert cell == (hit["doc"] if grade is None else f"{hit['doc']} ●{grade}")
            assert hit["grade"] == ("" if grade is None else str(grade))
    assert [c.strip() for r in rows for c in [r.strip("│").split("│")[6]]] == [h["move"] for h in right]
    ndcg = page.locator("#list-b-title").text_content().rsplit(" ", 1)[1]
    assert f"bm25+rerank {ndcg}" in proc.stdout
    assert requests == [url], "the page asked for more than itself"
    page.close()


def test_a_300_query_report_opens_and_sorts(browser: Any, tmp_path: Path, record_property: Any) -> None:
    """The issue's bound: opened (the navigation as the driver saw it) and sorted in under a second. Measured here
    at about 0.2 s with the machine's 2 cores busy elsewhere, so the bound has room for a slow CI machine; the
    figures go to the JUnit report and the output (benchmarks/report_page.py measures the same, larger sizes
    too)."""
    path = write_page(synthetic_page(300), tmp_path / "report.html")
    timings = open_and_sort(browser, path)
    assert timings["rows"] == 300
    for name in ("open", "sort", "load"):
        record_property(f"{name}_ms", round(timings[name], 1))
    size = path.stat().st_size
    print(f"300-query report ({size} bytes): opened in {timings['open']:.0f} ms, sorted in {timings['sort']:.1f} ms "
          f"(the page's performance.now()); the load as the driver saw it: {timings['load']:.0f} ms")  # fmt: skip
    assert timings["load"] + timings["sort"] < 1000, timings
