"""The relevance gate's judged groups and its nDCG@10: BM25 over a BEIR folder written here, and nDCG@10 held
to ir_measures' (trec_eval's) on the same run."""

from __future__ import annotations

import json
import random

import ir_measures
import numpy as np
import pytest

from osrerank.errors import ConfigError
from osrerank.judged import judged_groups, mean_ndcg10, ndcg10

CORPUS = {
    "d1": ("Volcanoes", "magma rises through the crust until the volcano erupts"),
    "d2": ("Bees", "bees make honey from the nectar of flowers"),
    "d3": ("Tides", "the moon pulls the oceans, so the tides rise and fall"),
    "d4": ("Volcano gas", "gas pressure in magma makes a volcano erupt violently"),
    "d5": ("Sky", "sunlight scatters in air and the sky looks blue"),
}


@pytest.fixture
def beir(tmp_path):
    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text(
        "\n".join(json.dumps({"_id": i, "title": t, "text": x}) for i, (t, x) in CORPUS.items())
    )
    queries = {"q1": "why does a volcano erupt", "q2": "how do bees make honey", "q3": "not judged"}
    (tmp_path / "queries.jsonl").write_text("\n".join(json.dumps({"_id": i, "text": t}) for i, t in queries.items()))
    (tmp_path / "qrels/test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td4\t2\nq1\td1\t1\nq2\td2\t1\nq2\td9\t1\n")
    return tmp_path


def test_groups_are_the_judged_queries_with_their_bm25_top_k(beir):
    groups = judged_groups(beir, k=3)
    assert [g.query for g in groups] == ["why does a volcano erupt", "how do bees make honey"]
    assert set(groups[0].ids[:2]) == {"d1", "d4"}
    assert groups[1].ids[0] == "d2" and groups[1].documents[0] == "Bees. bees make honey from the nectar of flowers"
    assert groups[0].judgments == {"d4": 2, "d1": 1}
    assert [g.query for g in judged_groups(beir / "qrels/test.tsv", queries=1, skip=1)] == ["how do bees make honey"]


def test_trec_qrels_are_read_too(beir):
    (beir / "qrels/trec.txt").write_text("q1 0 d4 2\nq1 0 d1 1\n")
    assert judged_groups(beir / "qrels/trec.txt")[0].judgments == {"d4": 2, "d1": 1}


def test_what_is_not_a_beir_folder_is_refused_by_name(tmp_path, beir):
    with pytest.raises(ConfigError, match=r"corpus.jsonl.*not found; give a BEIR folder"):
        judged_groups(tmp_path / "nowhere")
    (beir / "qrels/test.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td4\n")
    with pytest.raises(ConfigError, match="line 2: expected query-id, corpus-id, score"):
        judged_groups(beir)


def test_ndcg10_is_trec_evals():
    rng = random.Random(7)
    docs = [f"d{i}" for i in range(40)]
    qrels, run, groups_scores = {}, {}, []
    for q in range(25):
        judged = {d: rng.choice([0, 1, 1, 2, 3]) for d in rng.sample(docs, 8)}
        judged[f"unretrieved{q}"] = 2  # counts in the ideal order, as trec_eval's
        candidates = rng.sample(docs, 25)
        scores = np.array([rng.random() for _ in candidates])
        qrels[str(q)] = judged
        run[str(q)] = dict(zip(candidates, scores.tolist(), strict=True))
        groups_scores.append((candidates, scores, judged))
    expected = {m.query_id: m.value for m in ir_measures.iter_calc([ir_measures.nDCG @ 10], qrels, run)}
    for q, (candidates, scores, judged) in enumerate(groups_scores):
        assert ndcg10(candidates, scores, judged) == pytest.approx(expected[str(q)], abs=1e-12)


def test_mean_ndcg10_follows_the_groups_order(beir):
    groups = judged_groups(beir, k=3)
    perfect = np.concatenate([[3.0 if d == "d4" else 2.0 if d == "d1" else 0.0 for d in groups[0].ids], [1, 0, 0]])
    assert mean_ndcg10(groups[:1], perfect[:3]) == pytest.approx(1.0)
    assert 0 < mean_ndcg10(groups, perfect) < 1  # q2 has a judged document BM25 never found
