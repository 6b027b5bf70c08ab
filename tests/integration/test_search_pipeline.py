"""What a plain `_search` against what setup made gets: the rank window in the engine, a visible
fail-open, batch limits, the edge cases of the rerank processor, and `osrerank doctor`'s findings."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from osrerank.demo import TUTORIAL_PASSAGES, TUTORIAL_QUERY
from osrerank.doctor import diagnose
from osrerank.errors import ConfigError, OpenSearchError
from osrerank.eval import load_queries
from osrerank.ingest import RERANK_FIELD, create_index, load_documents
from osrerank.pipeline import delete_pipeline, ensure_pipeline, render_pipeline
from osrerank.reranker import Reranker
from osrerank.search import search, search_body
from osrerank.server.run import ServerSpec
from osrerank.targets.local_secrets import local_secrets
from osrerank.targets.standin import StandInProcess

from .kit import settings_for

pytestmark = pytest.mark.integration

SCIFACT = Path(__file__).resolve().parents[3] / "shared" / "data" / "beir" / "scifact"
#: model calls of these tests time out after 5 s unless a test needs longer
FAST = {"timeout_s": 5}


def plain_search(cluster, index: str, body: dict, pipeline: str) -> dict:
    return cluster.call("POST", f"/{index}/_search", body, params={"search_pipeline": pipeline}, timeout=120)


def test_a_plain_search_reranks_the_window_and_returns_its_size(local_cluster, test_model_dir, scorer, scifact_index):
    """setup --window 50; a plain _search of size 10 returns the model's top 10 of the BM25 top 50."""
    r = Reranker(
        settings_for(
            local_cluster.url,
            test_model_dir,
            "wnd",
            pipeline={"window": 50},
            index={"name": scifact_index, "document_fields": RERANK_FIELD},
            connector={"timeout_s": 120},
        )
    )
    try:
        r.setup()
        cluster = r.cluster()
        queries = list(load_queries(SCIFACT / "queries.jsonl").values())[:3]
        for query in queries:
            first = cluster.call(
                "POST", f"/{scifact_index}/_search", search_body(query, (RERANK_FIELD,), 50, rerank=False)
            )
            hits = first["hits"]["hits"]
            expected = scorer.predict([(query, h["_source"][RERANK_FIELD]) for h in hits])
            top10 = [hits[i]["_id"] for i in np.argsort(-expected)[:10]]
            reply = plain_search(cluster, scifact_index, search_body(query, (RERANK_FIELD,), 10), "wnd-rerank")
            assert [h["_id"] for h in reply["hits"]["hits"]] == top10
            np.testing.assert_allclose(
                [h["_score"] for h in reply["hits"]["hits"]], np.sort(expected)[::-1][:10], atol=1e-5
            )
    finally:
        r.teardown(keep_index=True)  # the session's SciFact index


def tutorial(r: Reranker) -> None:
    cluster = r.cluster()
    create_index(cluster, r.settings.index.name, ("passage_text", "title"), recreate=True)
    load_documents(
        cluster, r.settings.index.name, [{"_id": str(i), "passage_text": p} for i, p in enumerate(TUTORIAL_PASSAGES)]
    )


@pytest.mark.parametrize("mode", ["first-stage", "fail"])
def test_the_model_dies_mid_stream_and_comes_back(local_cluster, test_model_dir, mode):
    """20 searches; the stand-in is killed after the 5th and restarted on its port after the 12th."""
    r = Reranker(
        settings_for(
            local_cluster.url, test_model_dir, f"fo-{mode[:5]}", pipeline={"on_model_failure": mode}, connector=FAST
        )
    )
    counts = {"reranked": 0, "fell back (marked)": 0, "failed clearly": 0, "wrong": 0}
    try:
        r.setup()
        tutorial(r)
        stand_in = StandInProcess(r.settings.name)
        info = stand_in.info()
        for n in range(20):
            if n == 5:
                stand_in.stop()
            if n == 12:
                stand_in.start(info.server_spec)  # on its port: the connector is unchanged
            started = time.monotonic()
            try:
                result = r.search(TUTORIAL_QUERY, size=4, match_all=True)
            except OpenSearchError as exc:
                assert mode == "fail" and 5 <= n < 12, exc
                assert time.monotonic() - started < r.settings.connector.timeout_s + 5 and "remote" in str(exc).lower()
                counts["failed clearly"] += 1
                continue
            if result.reranked:
                assert not 5 <= n < 12 and all(0 < h.score < 1 for h in result.hits)
                counts["reranked"] += 1
            else:  # BM25 order of match_all: every score 1.0
                assert mode == "first-stage" and 5 <= n < 12 and result.fallback
                assert [h.score for h in result.hits] == [1.0] * 4
                counts["fell back (marked)"] += 1
        print(f"{mode}: {counts}")
        assert counts["reranked"] == 13 and counts["wrong"] == 0
        assert counts["fell back (marked)" if mode == "first-stage" else "failed clearly"] == 7
    finally:
        r.teardown()


def test_batch_limit_of_the_model_server(local_cluster, test_model_dir, scorer):
    """A stand-in limited like a stock TEI (32 texts per request). With --max-batch 32 the pipeline calls the
    model once per hit, so a plain _search of size 100 (window 100) is reranked in full: every score equals a
    direct call to 1e-5, in the model's order; the server itself still refuses 33 texts in one request (TEI's
    message), and doctor finds the limit when --max-batch is not set. Fail-open cannot go with it."""
    tei = {"template": "tei-rerank", "timeout_s": 60}
    fail_open = {"max_batch": 32, "on_model_failure": "first-stage"}
    with pytest.raises(ConfigError, match="first-stage cannot go with --max-batch"):
        Reranker(settings_for(local_cluster.url, test_model_dir, "cap", connector=tei, pipeline=fail_open)).setup()
    r = Reranker(
        settings_for(local_cluster.url, test_model_dir, "cap", connector=tei, pipeline={"max_batch": 32, "window": 100})
    )
    stand_in = StandInProcess("cap")
    try:
        r.setup()
        info = stand_in.info()
        server = {**info.spec["server"], "max_client_batch_size": 32, "record": True}
        stand_in.start(ServerSpec.model_validate({**info.spec, "server": server}))  # same port: the same connector
        cluster = r.cluster()
        create_index(cluster, "cap-docs", ["passage_text"], recreate=True)
        texts = [f"{TUTORIAL_PASSAGES[i % 4]} {i}" for i in range(120)]
        load_documents(cluster, "cap-docs", [{"_id": str(i), "passage_text": t} for i, t in enumerate(texts)])
        for size in (100, 10):
            body = search_body(TUTORIAL_QUERY, ("passage_text",), size)
            reply = plain_search(cluster, "cap-docs", body, "cap-rerank")
            hits = reply["hits"]["hits"]
            assert len(hits) == size
            plain = search_body(TUTORIAL_QUERY, ("passage_text",), 100, rerank=False)
            first_stage = cluster.call("POST", "/cap-docs/_search", plain)
            window = [h["_id"] for h in first_stage["hits"]["hits"]]
            direct = scorer.predict([(TUTORIAL_QUERY, texts[int(i)]) for i in window])
            best = np.argsort(-np.asarray(direct), kind="stable")[:size]
            assert [h["_id"] for h in hits] == [window[i] for i in best]
            np.testing.assert_allclose([h["_score"] for h in hits], np.asarray(direct)[best], atol=1e-5, rtol=0)
            assert all("osrerank_score" not in h["_source"] for h in hits)  # by_field removed its field
        calls = requests.get(f"{info.base_url}/_osrerank/received", timeout=10).json()
        assert calls and max(len(c["pairs"]) for c in calls) == 1  # one document per request
        token = {"Authorization": f"Bearer {local_secrets().bearer_token}"}
        direct_call = requests.post(
            info.base_url + "/rerank", json={"query": "q", "texts": ["t"] * 33}, headers=token, timeout=30
        )
        assert direct_call.status_code == 413
        assert direct_call.json()["error"] == "batch size 33 > maximum allowed batch size 32"
        findings = diagnose(r.settings.updated(pipeline={"max_batch": None, "window": 50}))
        assert any(f.check == "batch limit" and f.level == "problem" for f in findings)
        findings = diagnose(r.settings)
        assert any(f.check == "batch limit" and f.level == "ok" for f in findings)
    finally:
        r.teardown()


def test_edge_cases_of_plain_searches(local_cluster, test_model_dir, scorer):
    fields = {"document_fields": "title,passage_text"}
    r = Reranker(settings_for(local_cluster.url, test_model_dir, "edge", index=fields, connector=FAST))
    try:
        r.setup()
        cluster = r.cluster()
        create_index(cluster, "edge-docs", ["title", "passage_text"], recreate=True)
        docs = [
            {"_id": "0", "title": "Capital", "passage_text": TUTORIAL_PASSAGES[2]},
            {"_id": "1", "passage_text": TUTORIAL_PASSAGES[0]},
        ]
        load_documents(cluster, "edge-docs", docs)
        ext = {"ext": {"rerank": {"query_context": {"query_text": TUTORIAL_QUERY}}}}
        everything = {"query": {"match_all": {}}, **ext}
        # size 0: counts only, no hits, no error
        reply = plain_search(cluster, "edge-docs", {**everything, "size": 0}, "edge-rerank")
        assert reply["hits"]["hits"] == [] and reply["hits"]["total"]["value"] == 2
        # track_total_hits false: reranked all the same
        reply = plain_search(cluster, "edge-docs", {**everything, "track_total_hits": False}, "edge-rerank")
        assert len(reply["hits"]["hits"]) == 2
        # no hits: an empty page, no model call
        reply = plain_search(cluster, "edge-docs", {"query": {"match": {"title": "nothing"}}, **ext}, "edge-rerank")
        assert reply["hits"]["hits"] == []
        # one of two fields missing in a document: that field counts as empty text (fields joined with no separator)
        reply = plain_search(cluster, "edge-docs", everything, "edge-rerank")
        scores = {h["_id"]: h["_score"] for h in reply["hits"]["hits"]}
        expected = scorer.predict(
            [(TUTORIAL_QUERY, "Capital" + TUTORIAL_PASSAGES[2]), (TUTORIAL_QUERY, TUTORIAL_PASSAGES[0])]
        )
        assert scores == pytest.approx({"0": expected[0], "1": expected[1]}, abs=1e-5)
        # no ext.rerank: neural-search's rerank processor fails with a null pointer (documented: every reranked
        # search must carry the query)
        with pytest.raises(OpenSearchError) as missing:
            plain_search(cluster, "edge-docs", {"query": {"match_all": {}}}, "edge-rerank")
        assert missing.value.status == 500 and "RerankSearchExtBuilder" in str(missing.value)  # its null pointer
        # the per-hit pipeline (--max-batch) answers a failed model call with by_field's 400, every time: without
        # ignore_failure on its ml_inference, a call failing before all were sent left the search unanswered
        # (9 of 10 on 3.6.0 with 10 hits) and its task running until the node restarted
        per_hit = r.settings.updated(pipeline={"max_batch": 8, "name": "edge-per-hit"}).pipeline
        body = render_pipeline(per_hit, r.model_id(), r.settings.index.document_fields, "edge cases, per hit")
        ensure_pipeline(cluster, "edge-per-hit", body)
        more = [{"_id": str(i), "passage_text": TUTORIAL_PASSAGES[i % 4]} for i in range(2, 9)]
        load_documents(cluster, "edge-docs", [*more, {"_id": "9", "other": "none of the rerank fields"}])
        refused = [
            {"query": {"match_all": {}}},  # no ext
            {"query": {"match_all": {}}, "ext": {"rerank": {"query_context": {"query_text_path": "query.match_all"}}}},
            {
                "query": {"match_all": {}},
                "ext": {"rerank": {"query_context": {"query_text": TUTORIAL_QUERY, "query_text_path": "x"}}},
            },
            {"query": {"match_all": {}}, **ext},  # hit 9 has none of the fields
        ]
        for request in refused * 3:
            with pytest.raises(OpenSearchError) as failed:
                cluster.call(
                    "POST", "/edge-docs/_search", request, params={"search_pipeline": "edge-per-hit"}, timeout=30
                )
            assert failed.value.status == 400 and "The field to rerank by is not found at hit" in str(failed.value)
        with pytest.raises(OpenSearchError, match=r"That hit's model call failed .* none of the rerank fields"):
            search(cluster, r.settings, TUTORIAL_QUERY, match_all=True, pipeline="edge-per-hit")  # what the CLI adds
        searching = cluster.call("GET", "/_tasks", params={"actions": "indices:data/read/search*"})["nodes"]
        assert [t for node in searching.values() for t in node["tasks"]] == []  # none left running
        cluster.call(
            "POST",
            "/edge-docs/_delete_by_query",
            {"query": {"terms": {"_id": [str(i) for i in range(2, 10)]}}},
            params={"refresh": "true"},
        )
        reply = plain_search(cluster, "edge-docs", {**everything, "size": 0}, "edge-per-hit")
        assert reply["hits"]["hits"] == [] and reply["hits"]["total"]["value"] == 2
        reply = plain_search(cluster, "edge-docs", {**everything, "track_total_hits": False}, "edge-per-hit")
        assert {h["_id"]: h["_score"] for h in reply["hits"]["hits"]} == pytest.approx(scores, abs=1e-5)
        delete_pipeline(cluster, "edge-per-hit")
    finally:
        r.teardown()


def test_doctor_finds_each_trap(local_cluster, test_model_dir, os_client):
    fields = {"document_fields": "title,body.text,missing"}
    r = Reranker(settings_for(local_cluster.url, test_model_dir, "doc", index=fields, connector=FAST))
    try:
        r.setup()
        cluster = r.cluster()
        cluster.call(
            "PUT",
            "/doc-docs",
            {
                "mappings": {
                    "_source": {"enabled": False},
                    "properties": {"title": {"type": "text"}, "body": {"properties": {"text": {"type": "text"}}}},
                }
            },
        )
        model_id = r.model_id()
        r.ml().cluster.call("POST", f"/_plugins/_ml/models/{model_id}/_undeploy")
        time.sleep(2)
        found = {(f.check, f.level, f.message.split(":")[0]) for f in diagnose(r.settings)}
        problems = {(c, m) for c, level, m in found if level == "problem"}
        assert ("index", "doc-docs keeps no _source") in problems
        assert ("document_fields", "missing is not in the mapping of doc-docs") in problems
        assert any(c == "model state" for c, _ in problems)
        assert any(c == "document_fields" and level == "warning" for c, level, _ in found)  # no separator
        dotted = ("document_fields", "body.text is a dotted path") in problems
        assert dotted == (os_client.version < (3, 6, 0))
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "osrerank",
                "doctor",
                "--opensearch-url",
                local_cluster.url,
                "--name",
                "doc",
                "--index",
                "doc-docs",
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert proc.returncode == 1 and "PROBLEM" in proc.stdout and "Traceback" not in proc.stderr
    finally:
        r.teardown()
        Reranker(r.settings).cluster().call("DELETE", "/doc-docs")
