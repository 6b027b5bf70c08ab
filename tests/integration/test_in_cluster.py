"""The opensearch target: the ONNX cross-encoder registered inside the node (chunked upload, offline)."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from osrerank.errors import OpenSearchError
from osrerank.reranker import Reranker

from .kit import settings_for

pytestmark = pytest.mark.integration


@pytest.fixture
def needs_3x(os_client):
    if os_client.version < (3, 0, 0):
        pytest.skip("2.19 offline: its PyTorch 1.13.1 natives are not on Maven Central (see the 2.x test)")


def test_2x_offline_deploy_fails_with_the_reason(os_client, test_model_dir):
    """2.19's ml-commons pins PyTorch 1.13.1 for DJL's helper engine and Maven Central lacks a matching
    JNI library: offline, the deploy must fail with the message that says so."""
    if os_client.version >= (3, 0, 0):
        pytest.skip("3.x gets libtorch from Maven Central: the exactness tests cover it")
    reranker = in_cluster_on(os_client.url, test_model_dir)
    try:
        with pytest.raises(OpenSearchError, match=r"publish\.djl\.ai.*2\.19 pins PyTorch 1\.13\.1"):
            reranker.setup()
    finally:
        reranker.teardown()


def in_cluster(local_cluster, test_model_dir, **extra) -> Reranker:
    return in_cluster_on(local_cluster.url, test_model_dir, **extra)


def in_cluster_on(url, test_model_dir, **changes) -> Reranker:
    return Reranker(settings_for(url, test_model_dir, "incluster", target="opensearch", **changes))


def by_query(reference):
    groups = defaultdict(list)
    for i, pair in enumerate(reference):
        groups[pair["query"]].append(i)
    return groups


@pytest.mark.parametrize(("activation", "key", "tolerance"), [("sigmoid", "sigmoid", 1e-5), ("none", "logit", 1e-4)])
def test_every_reference_pair_through_the_in_cluster_model(
    needs_3x, local_cluster, test_model_dir, reference, activation, key, tolerance
):
    reranker = in_cluster(local_cluster, test_model_dir, model={"activation": activation})
    try:
        reranker.setup()
        got = np.zeros(len(reference))
        for query, rows in by_query(reference).items():  # one _predict per query, several documents each
            got[rows] = reranker.predict(query, [reference[i]["document"] for i in rows])
        np.testing.assert_allclose(got, [p[key] for p in reference], atol=tolerance, rtol=0)
    finally:
        reranker.teardown()
