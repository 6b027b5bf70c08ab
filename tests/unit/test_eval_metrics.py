"""Metric computation on a hand-made qrels/run pair whose values are worked out below, and BEIR parsing."""

from __future__ import annotations

import math

import pytest

from osrerank.eval import compute_metrics, load_qrels


def test_metrics_on_a_hand_made_run():
    qrels = {"q1": {"d1": 1, "d3": 1}, "q2": {"d5": 1}, "q3": {"d9": 1}}
    run = {
        "q1": {"d1": 3.0, "d2": 2.0, "d3": 1.0},  # relevant at ranks 1 and 3
        "q2": {"d4": 2.0, "d5": 1.0},  # relevant at rank 2
        # q3: no hits at all, counts as 0
    }
    ndcg_q1 = (1 + 1 / math.log2(4)) / (1 + 1 / math.log2(3))
    ndcg_q2 = 1 / math.log2(3)
    metrics = compute_metrics(qrels, run)
    assert metrics["nDCG@10"] == pytest.approx((ndcg_q1 + ndcg_q2 + 0) / 3)
    assert metrics["RR@10"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert metrics["R@100"] == pytest.approx(2 / 3)


def test_relevant_document_beyond_rank_10_counts_for_recall_only():
    run = {"q": {f"d{i}": 100.0 - i for i in range(20)}}
    metrics = compute_metrics({"q": {"d15": 1}}, run)
    assert metrics["nDCG@10"] == 0 and metrics["RR@10"] == 0 and metrics["R@100"] == 1


def test_qrels_with_crlf_line_endings(tmp_path):
    path = tmp_path / "test.tsv"
    path.write_bytes(b"query-id\tcorpus-id\tscore\r\n1\t31715818\t1\r\n3\t14717500\t1\r\n3\t13734012\t2\r\n")
    assert load_qrels(path) == {"1": {"31715818": 1}, "3": {"14717500": 1, "13734012": 2}}
