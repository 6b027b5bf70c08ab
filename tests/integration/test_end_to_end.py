"""The tutorial flow through setup/search/teardown, idempotence, the demo CLI, and failure behaviour."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from osrerank.demo import TUTORIAL_PASSAGES, TUTORIAL_QUERY
from osrerank.errors import OpenSearchError
from osrerank.ingest import create_index, load_documents
from osrerank.ml_commons import MLCommons
from osrerank.reranker import Reranker
from osrerank.targets.standin import StandInProcess

from .kit import settings_for
from .rest import Rest, diff

pytestmark = pytest.mark.integration


@pytest.fixture
def e2e(local_cluster, test_model_dir):
    settings = settings_for(local_cluster.url, test_model_dir, "e2e", index="my-test-data", connector={"timeout_s": 5})
    reranker = Reranker(settings)
    yield reranker
    reranker.teardown()


def test_tutorial_flow_matches_pytorch_reference(e2e, reference):
    e2e.setup()
    cluster = e2e.cluster()
    # the reference holds the model-card versions of the tutorial's passages
    docs = [p for p in reference[:5] if not p["document"].startswith("Charlotte")]
    create_index(cluster, "my-test-data", ["passage_text"], recreate=True)
    load_documents(
        cluster, "my-test-data", [{"_id": str(i), "passage_text": p["document"]} for i, p in enumerate(docs)]
    )
    hits = e2e.search(TUTORIAL_QUERY, size=4, match_all=True).hits
    expected = sorted(range(4), key=lambda i: -docs[i]["sigmoid"])
    assert [h.id for h in hits] == [str(i) for i in expected]
    np.testing.assert_allclose([h.score for h in hits], [docs[i]["sigmoid"] for i in expected], atol=1e-5)


def test_teardown_dry_run_lists_exactly_what_teardown_removes(e2e, local_cluster):
    rest = Rest(local_cluster.url)
    before = rest.snapshot()
    e2e.setup()
    created = diff(rest.snapshot(), before)
    plan = e2e.teardown(dry_run=True)
    assert diff(rest.snapshot(), before) == created  # a dry run deletes nothing
    assert any(p.startswith("connector ") for p in plan) and "pipeline e2e-rerank" in plan
    assert e2e.teardown() == plan  # and lists exactly what the real teardown removes
    assert rest.snapshot() == before


def test_window_larger_than_page_and_min_score(e2e, scorer):
    e2e.setup()
    cluster = e2e.cluster()
    create_index(cluster, "my-test-data", ["passage_text"], recreate=True)
    load_documents(
        cluster, "my-test-data", [{"_id": str(i), "passage_text": p} for i, p in enumerate(TUTORIAL_PASSAGES)]
    )
    result = e2e.search(TUTORIAL_QUERY, size=2, top_k=4, match_all=True)
    expected = scorer.predict([(TUTORIAL_QUERY, p) for p in TUTORIAL_PASSAGES])
    assert [h.id for h in result.hits] == [str(i) for i in np.argsort(-expected)[:2]]
    floor = float(np.sort(expected)[-2])
    assert len(e2e.search(TUTORIAL_QUERY, size=4, top_k=4, match_all=True, min_score=floor - 1e-6).hits) == 2


def test_query_text_path_reads_the_query_from_the_request(e2e, scorer):
    e2e.setup()
    cluster = e2e.cluster()
    create_index(cluster, "my-test-data", ["passage_text"], recreate=True)
    load_documents(
        cluster, "my-test-data", [{"_id": str(i), "passage_text": p} for i, p in enumerate(TUTORIAL_PASSAGES)]
    )
    query = "capital of the United States"  # matches every passage with BM25
    hits = e2e.search(query, size=4, query_text_path="query.multi_match.query").hits
    expected = scorer.predict([(query, TUTORIAL_PASSAGES[int(h.id)]) for h in hits])
    np.testing.assert_allclose([h.score for h in hits], expected, atol=1e-5)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)


def test_rank_sorts_like_cross_encoder_rank(e2e, scorer):
    e2e.setup()
    ranked = e2e.rank(TUTORIAL_QUERY, TUTORIAL_PASSAGES, top_k=3, return_documents=True)
    expected = scorer.predict([(TUTORIAL_QUERY, p) for p in TUTORIAL_PASSAGES])
    assert [r["corpus_id"] for r in ranked] == list(np.argsort(-expected)[:3])
    np.testing.assert_allclose([r["score"] for r in ranked], np.sort(expected)[::-1][:3], atol=1e-5)
    assert all(r["text"] == TUTORIAL_PASSAGES[r["corpus_id"]] for r in ranked)


def test_partial_setup_failure_names_the_step_and_a_rerun_finishes(local_cluster, test_model_dir):
    dead = settings_for(
        local_cluster.url,
        test_model_dir,
        "partial",
        connector={"endpoint_url": "http://127.0.0.1:9/endpoints/partial/invocations", "timeout_s": 3},
    )  # nothing listens on port 9
    reranker = Reranker(dead)
    try:
        with pytest.raises(OpenSearchError) as failure:
            reranker.setup()
        message = str(failure.value)
        assert "stopped at step 'smoke check'" in message and "rerun `osrerank setup`" in message
        assert "connector" in message and "model" in message
        live = Reranker(dead.updated(connector={"endpoint_url": None}))
        result = live.setup()  # the connector is replaced for the new URL, everything else reused or made
        assert result.steps["model group"].action == "reused"
        assert len(live.predict(TUTORIAL_QUERY, TUTORIAL_PASSAGES)) == 4
    finally:
        Reranker(dead.updated(connector={"endpoint_url": None})).teardown()


def test_endpoint_down_gives_a_clear_error_then_recovers(e2e, test_model_dir):
    e2e.setup()
    cluster = e2e.cluster()
    create_index(cluster, "my-test-data", ["passage_text"], recreate=True)
    load_documents(cluster, "my-test-data", [{"passage_text": p} for p in TUTORIAL_PASSAGES])
    endpoint = StandInProcess("e2e")
    info = endpoint.info()
    endpoint.stop()
    started = time.monotonic()
    with pytest.raises(OpenSearchError):
        e2e.search(TUTORIAL_QUERY, size=4, match_all=True)
    assert time.monotonic() - started < 20
    assert cluster.call("GET", "/_cluster/health")["status"] in ("green", "yellow")
    endpoint.start(info.server_spec)  # same port, so the same URL: no re-setup needed
    assert len(e2e.search(TUTORIAL_QUERY, size=4, match_all=True).hits) == 4


def test_demo_cli_runs_and_prints_scores(local_cluster, test_model_dir):
    env = {**os.environ, "OSRERANK_NAME": "democli", "OSRERANK_PIPELINE__NAME": "democli-rerank"}
    cmd = [sys.executable, "-m", "osrerank", "demo", "--model", str(test_model_dir)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    try:
        assert proc.returncode == 0, proc.stderr
        assert "Washington, D.C." in proc.stdout and "created" in proc.stdout
    finally:
        subprocess.run([sys.executable, "-m", "osrerank", "teardown"], env=env, capture_output=True, timeout=300)


def test_unknown_template_is_a_one_line_error(local_cluster):
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "osrerank",
            "setup",
            "--template",
            "nope",
            "--opensearch-url",
            local_cluster.url,
            "--endpoint-url",
            "http://127.0.0.1:9/x",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "unknown connector template 'nope'" in proc.stderr and "Traceback" not in proc.stderr


def test_wrong_cluster_url_is_a_one_line_error():
    proc = subprocess.run(
        [sys.executable, "-m", "osrerank", "search", "q", "--opensearch-url", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0 and "cannot reach OpenSearch" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.real_model
@pytest.mark.skipif(
    not os.environ.get("OSRERANK_REAL_MODEL"), reason="set OSRERANK_REAL_MODEL to the real model folder"
)
def test_real_model_reproduces_the_tutorial_numbers(local_cluster):
    settings = settings_for(local_cluster.url, Path(os.environ["OSRERANK_REAL_MODEL"]), "real", index="my-test-data")
    reranker = Reranker(settings)
    try:
        from osrerank.demo import run_demo

        _, result = run_demo(settings, lambda m: None)
        published = {0: 0.115356825, 1: 0.00021142483, 2: 0.9997217, 3: 0.55655104}
        by_text = {TUTORIAL_PASSAGES[i]: s for i, s in published.items()}
        for hit in result.hits:
            assert hit.score == pytest.approx(by_text[hit.source["passage_text"]], abs=1e-5)
    finally:
        reranker.teardown()


def test_eval_on_a_scifact_slice_reports_both_arms(local_cluster, test_model_dir, scorer, tmp_path, scifact_index):
    from osrerank.eval import RERANK_FIELD, run_eval
    from osrerank.eval_report import write_results

    scifact = Path(__file__).resolve().parents[3] / "shared" / "data" / "beir" / "scifact"
    if not scifact.exists():
        pytest.fail(f"SciFact not found at {scifact}: the evaluation test needs ../shared/data/beir/scifact")
    settings = settings_for(local_cluster.url, test_model_dir, "evalslice")
    reranker = Reranker(settings)
    try:
        model_id = reranker.setup().model_id
        cluster = reranker.cluster()
        result = run_eval(cluster, settings, model_id, scifact, top_k=10, max_queries=20)
        assert result.queries == 20 and result.documents == 5183
        bm25, reranked = result.arms["bm25"], result.arms["bm25+rerank"]
        for arm in (bm25, reranked):
            assert 0 <= arm.metrics["nDCG@10"] <= 1 and len(arm.latencies_ms) == 20
        assert bm25.metrics["R@100"] == reranked.metrics["R@100"]  # same 10 hits, reordered
        json_path, png_path = write_results(result, tmp_path)
        assert json_path.exists() and png_path.stat().st_size > 10_000
        # one query by hand: the pipeline's order is the model's order of the BM25 top 10
        query = "0-dimensional biomaterials show inductive properties."
        body = {"query": {"match": {RERANK_FIELD: query}}, "size": 10, "_source": [RERANK_FIELD]}
        hits = cluster.call("POST", "/evalslice-eval-scifact/_search", body)["hits"]["hits"]
        reply = cluster.call(
            "POST",
            "/evalslice-eval-scifact/_search",
            {**body, "ext": {"rerank": {"query_context": {"query_text": query}}}},
            params={"search_pipeline": "evalslice-eval-rerank"},
        )
        expected = scorer.predict([(query, h["_source"][RERANK_FIELD]) for h in hits])
        assert [h["_id"] for h in reply["hits"]["hits"]] == [hits[i]["_id"] for i in np.argsort(-expected)]
    finally:
        removed = reranker.teardown(keep_index=True)  # the session's SciFact index (scifact_index)
    assert "pipeline evalslice-eval-rerank" in removed


def test_slow_endpoint_fails_within_the_configured_timeout(local_cluster, test_model_dir):
    """A model server that answers after 20 s, with timeout_s=2: the search error comes in seconds and
    the cluster stays green (ml-commons reads the connector timeouts as seconds)."""
    import asyncio

    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from ..conftest import ServerThread

    async def slow(request):
        await asyncio.sleep(20)
        return JSONResponse([0.5])

    with ServerThread(Starlette(routes=[Route("/predictions/{m}", slow, methods=["POST"])])) as server:
        endpoint = {"template": "torchserve-pairs", "endpoint_url": f"{server.url}/predictions/slow", "timeout_s": 2}
        settings = settings_for(local_cluster.url, test_model_dir, "slow", connector=endpoint)
        reranker = Reranker(settings)
        try:
            with pytest.raises(OpenSearchError, match="stopped at step 'smoke check'"):
                reranker.setup()
            cluster = reranker.cluster()
            started = time.monotonic()  # now with a client that would wait a minute: the cluster must give up
            with pytest.raises(OpenSearchError) as failure:
                MLCommons(cluster).predict(reranker.model_id(), "q", ["a"], timeout=60)
            assert time.monotonic() - started < 15 and "timed out after" not in str(failure.value)
            assert cluster.call("GET", "/_cluster/health")["status"] in ("green", "yellow")
        finally:
            reranker.teardown()
