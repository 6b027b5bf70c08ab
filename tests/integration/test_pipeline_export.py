"""``osrerank export``'s text pipeline file behind the cluster: the stand-in process serves the XLM-R test model's
exported file (``serve --model FILE.onnx``), and ``osrerank.rank()`` through OpenSearch gives PyTorch's scores.
About 12 s (export 3 s, stand-in start, one connector and pipeline)."""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import pytest

import osrerank
from osrerank.model import activate
from osrerank.pipeline_export import export_pipeline
from osrerank.reranker import Reranker

from .kit import one_node_only, settings_for

pytestmark = [
    pytest.mark.integration,
    one_node_only("the exported file behind the stand-in depends on no cluster shape: the one-node lines run it"),
]
pytest.importorskip("onnxruntime_extensions")


def test_rank_through_the_cluster_on_the_exported_file_matches_pytorch(arch_models, local_cluster, tmp_path):
    exported = export_pipeline(arch_models["xlmr"], tmp_path / "xlmr.onnx").path
    rows = json.loads((arch_models["xlmr"] / "reference_scores.json").read_text())["pairs"]
    groups = defaultdict(list)
    for i, row in enumerate(rows):
        groups[row["query"]].append(i)
    settings = settings_for(local_cluster.url, exported, "exp29-pipeline")
    reranker = Reranker(settings)
    try:
        reranker.setup()
        for query, members in groups.items():
            ranked = osrerank.rank(query, [rows[i]["document"] for i in members], settings=settings)
            # a pair with an empty document is the pair (query, ""), as PyTorch's reference encodes it
            expected = activate(np.array([rows[i]["logit"] for i in members]), "sigmoid")
            assert [r["corpus_id"] for r in ranked] == list(np.argsort(-expected, kind="stable")), query[:40]
            np.testing.assert_allclose([r["score"] for r in ranked], sorted(expected, reverse=True), atol=1e-5, rtol=0)
    finally:
        reranker.teardown()
