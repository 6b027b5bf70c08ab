"""XLM-R and ModernBERT cross-encoders through the cluster: osrerank.rank() on the stand-in, and the
in-cluster target (which needs the token_type_ids input ml-commons before 3.9 always feeds)."""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import pytest

import osrerank
from osrerank.reranker import Reranker
from osrerank.scorer import load_scorer

from ..conftest import ARCHITECTURES, hf_pipeline_expected
from .kit import settings_for

pytestmark = pytest.mark.integration


def grouped(folder):
    rows = json.loads((folder / "reference_scores.json").read_text())["pairs"]
    groups = defaultdict(list)
    for i, row in enumerate(rows):
        groups[row["query"]].append(i)
    return rows, groups


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_rank_through_the_cluster_matches_pytorch(arch, arch_models, local_cluster):
    settings = settings_for(local_cluster.url, arch_models[arch], f"arch-{arch}")
    reranker = Reranker(settings)
    try:
        reranker.setup()
        rows, groups = grouped(arch_models[arch])
        scorer = load_scorer(arch_models[arch])
        for query, members in groups.items():
            docs = [rows[i]["document"] for i in members]
            ranked = osrerank.rank(query, docs, settings=settings)
            expected = hf_pipeline_expected([rows[i] for i in members], scorer)  # the SageMaker route's
            assert [r["corpus_id"] for r in ranked] == list(np.argsort(-np.array(expected), kind="stable"))
            np.testing.assert_allclose([r["score"] for r in ranked], sorted(expected, reverse=True), atol=1e-5, rtol=0)
    finally:
        reranker.teardown()


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_in_cluster_model_matches_pytorch(arch, arch_models, local_cluster, os_client):
    if os_client.version < (3, 0, 0):
        pytest.skip("2.19 cannot deploy in-cluster offline (test_in_cluster checks its error)")
    settings = settings_for(
        local_cluster.url, arch_models[arch], f"archin-{arch}", target="opensearch", model={"activation": "none"}
    )
    reranker = Reranker(settings)
    try:
        reranker.setup()
        rows, groups = grouped(arch_models[arch])
        got = np.zeros(len(rows))
        for query, members in groups.items():
            got[members] = reranker.predict(query, [rows[i]["document"] for i in members])
        np.testing.assert_allclose(got, [r["logit"] for r in rows], atol=1e-4, rtol=0)
    finally:
        reranker.teardown()
