"""The report page's data: per-query differences, worst first, each filter's queries, the page as one file with no
address in it; compare's moves and judgment files. The page in a real browser: tests/browser."""

from __future__ import annotations

import json
import math
import re

import pytest
from click.testing import CliRunner

from osrerank.cli import cli
from osrerank.compare import Comparison, comparison_page, moves, read_judgments
from osrerank.errors import ConfigError
from osrerank.eval import Arm, Dataset, EvalResult
from osrerank.report_page import (
    STATUSES,
    PageArm,
    PageQuery,
    ReportPage,
    eval_page,
    query_rows,
    read_titles,
    render_page,
    write_page,
)
from osrerank.search import Hit

from ..conftest import REPO

TINY_BEIR = REPO / "tests" / "data" / "tiny-beir"
ARMS = ("bm25", "bm25+rerank")


def query(qid, before, after, ndcg, judged):
    hits = {
        ARMS[0]: [(d, 10.0 - i) for i, d in enumerate(before)],
        ARMS[1]: [(d, 1.0 - i / 10) for i, d in enumerate(after)],
    }
    metrics = {arm: {"nDCG@10": v, "RR@10": v, "R@100": v} for arm, v in zip(ARMS, ndcg, strict=True)}
    return PageQuery(qid, f"text of {qid}", hits, metrics, judged)


@pytest.fixture
def page():
    """Five queries whose differences and filters are plain to see."""
    queries = [
        query("same", ["a", "b"], ["a", "b"], (0.5, 0.5), {"b": 1}),  # a relevant hit, no change
        query("helped", ["a", "b"], ["b", "a"], (0.63, 1.0), {"b": 1}),
        query("hurt", ["a", "b"], ["b", "a"], (1.0, 0.63), {"a": 2, "b": 0}),
        query("nothing", ["a", "b"], ["c", "a"], (0.0, 0.0), {"b": 0, "z": 1}),  # z is relevant, in neither list
        query("hurt-more", ["a"], ["c"], (0.9, 0.0), {"a": 1}),
    ]
    arms = [PageArm(a, {"nDCG@10": 0.5}, {"p50": 1.0, "p95": 2.0}) for a in ARMS]
    return ReportPage("a test page", arms, queries, {"a": "Alpha", "b": "Beta", "c": "Gamma"}, *ARMS)


def test_rows_are_the_differences_worst_first(page):
    rows = query_rows(page)
    assert [r.id for r in rows] == ["hurt-more", "hurt", "same", "nothing", "helped"]  # ties in query order
    assert [r.diff for r in rows] == pytest.approx([-0.9, -0.37, 0, 0, 0.37])
    assert (rows[0].baseline, rows[0].reranked) == (0.9, 0.0)


def test_each_filter_holds_its_queries_and_together_they_hold_all(page):
    members = {status: [r.id for r in query_rows(page, only=status)] for status in STATUSES}
    assert members == {"hurt": ["hurt-more", "hurt"], "helped": ["helped"], "unchanged": ["same"], "none": ["nothing"]}
    assert sorted(q for ids in members.values() for q in ids) == sorted(q.id for q in page.queries)


def test_the_arms_compared_are_any_two(page):
    rows = query_rows(page, "bm25+rerank", "bm25")
    assert [r.id for r in rows] == ["helped", "same", "nothing", "hurt", "hurt-more"]
    assert all(r.diff == 0 for r in query_rows(page, "bm25", "bm25"))


def test_the_page_is_one_file_with_no_address_in_it(page, tmp_path):
    page.docs["a"] = 'A title with </script><script>alert("x")</script> and https://example.org/a in it'
    page.charts = [("a chart", "data:image/png;base64,iVBORw0KGgo=")]
    html = write_page(page, tmp_path / "report.html").read_text()
    assert not re.search(r"https?://", html)  # nothing to fetch, and a document's URL is escaped in the data
    assert not re.search(r"<link|<script[^>]+src=|@import|url\(", html)
    assert html.count("</script>") == 2  # the data's and the code's: the document's text cannot close one
    assert '<img alt="a chart" src="data:image/png;base64,' in html
    data = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S).group(1)
    assert json.loads(data) == json.loads(json.dumps(page.to_json()))  # the same data, escapes undone


def test_the_summary_shows_every_arm_with_its_figures(page):
    page.arms.append(PageArm("blend 0.1 bm25", {"nDCG@10": 0.75, "RR@10": 0.5, "R@100": 0.25}))
    html = render_page(page)
    row = re.search(r'<tr data-arm="blend 0.1 bm25">(.*?)</tr>', html, re.S).group(1)
    assert re.findall(r">([^<>]+)</td>", row) == ["blend 0.1 bm25", "0.7500", "0.5000", "0.2500", "–", "–"]
    assert 'class="num best">0.7500' in row  # the best nDCG@10 of all arms


def tiny_result():
    """tiny-beir's runs as WORKING.md works them out (top 3), through eval's own classes."""
    runs = {
        "bm25": {"q1": ["a4", "b3", "c2"], "q2": ["g3", "h2", "i1"], "q3": []},
        "bm25+rerank": {"q1": ["c2", "b3", "a4"], "q2": ["i1", "h2", "g3"], "q3": []},
    }
    arms = {
        name: Arm({}, [5.0, 6.0, 7.0], {q: [(d, 3.0 - i) for i, d in enumerate(top)] for q, top in run.items()})
        for name, run in runs.items()
    }
    return EvalResult(str(TINY_BEIR), "test", 3, 9, 3, "table", "cross-encoder", "bm25", 1.0, arms)


def test_an_evaluations_page_has_each_querys_figures_lists_and_documents():
    data = Dataset.read(TINY_BEIR, "test", None)
    page = eval_page(tiny_result(), data)
    assert (page.baseline, page.reranked) == ARMS
    q1, q2, q3 = page.queries
    assert q1.metrics["bm25"]["nDCG@10"] == pytest.approx(0.3193939, abs=1e-6)  # WORKING.md, by hand
    assert q1.metrics["bm25+rerank"]["nDCG@10"] == pytest.approx(0.6387879, abs=1e-6)
    assert q2.metrics["bm25+rerank"]["RR@10"] == 1 and q3.metrics["bm25"]["nDCG@10"] == 0
    assert q1.judged == {"c2": 2, "d1": 1, "e0": 1}  # shown or relevant
    assert [d for d, _ in q1.hits["bm25+rerank"]] == ["c2", "b3", "a4"]
    assert page.docs["c2"] == "zebra zebra jade kelp lotus moss nectar opal"  # no title: the first words
    assert set(page.docs) == {"a4", "b3", "c2", "g3", "h2", "i1"}  # the documents shown, only
    rows = query_rows(page)
    assert [(r.id, r.status) for r in rows] == [("q3", "none"), ("q1", "helped"), ("q2", "helped")]
    assert rows[2].diff == pytest.approx(0.5)


def test_titles_are_read_for_the_ids_asked_only(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    lines = [
        {"_id": "1", "title": "First", "text": "one"},
        {"_id": 'quote"d', "title": "", "text": " ".join(f"w{i}" for i in range(40))},
        {"_id": "3", "title": "Third", "text": "three"},
    ]
    corpus.write_text("".join(json.dumps(x) + "\n" for x in lines) + "not json: never parsed\n")
    titles = read_titles(corpus, ['quote"d', "3"])
    assert titles["3"] == "Third"
    assert titles['quote"d'] == " ".join(f"w{i}" for i in range(24)) + " …"
    assert read_titles(corpus, []) == {}


def test_moves_between_two_lists():
    assert moves(["a", "b", "c", "d"], ["c", "a", "e", "d"]) == ["↑2", "↓1", "new", "="]


def hit(doc, score, title=""):
    return Hit(doc, score, {"title": title, "passage_text": f"the text of {doc} " * 10})


def test_a_comparison_page_is_opened_on_its_query():
    c = Comparison(
        "what?", "bm25", [hit("a", 9.0, "A"), hit("b", 8.0)], [hit("b", 0.9), hit("a", 0.1, "A")], (3.0, 50.0),
        ("passage_text",), "q7", {"a": 0, "b": 2, "z": 1},
    )  # fmt: skip
    page = comparison_page(c)
    (q,) = page.queries
    assert q.hits == {"bm25": [("a", 9.0), ("b", 8.0)], "bm25+rerank": [("b", 0.9), ("a", 0.1)]}
    assert page.docs == {"a": "A", "b": " ".join(["the", "text", "of", "b"] * 6) + " …"}  # no title: 24 words
    assert q.metrics["bm25+rerank"]["nDCG@10"] == pytest.approx(2 / (2 + 1 / math.log2(3)))
    assert q.metrics["bm25"]["RR@10"] == 0.5
    assert [a.latency_ms for a in page.arms] == [{"took": 3.0}, {"took": 50.0}]
    assert query_rows(page)[0].status == "helped"


def test_judgments_from_trec_or_beir_files(tmp_path):
    trec = tmp_path / "qrels.txt"
    trec.write_text("1 0 d1 1\n1 0 d2 0\n2 0 d3 2\n")
    assert read_judgments(trec, "1") == ("1", {"d1": 1, "d2": 0})
    beir = tmp_path / "test.tsv"
    beir.write_text("query-id\tcorpus-id\tscore\r\n7\td9\t2\r\n")
    assert read_judgments(beir) == ("7", {"d9": 2})
    with pytest.raises(ConfigError, match="judgments for 2 queries: pick one with --query-id"):
        read_judgments(trec)
    with pytest.raises(ConfigError, match="no judgments for query '9'"):
        read_judgments(trec, "9")
    trec.write_text("1 d1 1\n")
    with pytest.raises(ConfigError, match=r"qrels.txt:1: expected qid iteration docid grade"):
        read_judgments(trec)


def test_compare_refuses_a_query_id_without_judgments():
    result = CliRunner().invoke(cli, ["compare", "what?", "--query-id", "1"])
    assert result.exit_code == 2 and "give --qrels too" in result.output
