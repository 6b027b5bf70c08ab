"""The torchserve-pairs template against real TorchServe (the torchserve target): nasty texts arrive
byte for byte, scores match PyTorch's reference (the kit's scorer for texts it has none for), one document
and many, and teardown stops TorchServe."""

from __future__ import annotations

import json

import numpy as np
import pytest

from osrerank.process import http_ok
from osrerank.reranker import Reranker
from osrerank.targets.torchserve import TorchServe

from .kit import settings_for
from .test_connectors import EXTRA_NASTY

pytestmark = pytest.mark.integration


def test_torchserve_target_end_to_end(local_cluster, test_model_dir, reference, scorer, tmp_path, monkeypatch):
    record = tmp_path / "received.jsonl"
    monkeypatch.setenv("OSRERANK_TORCHSERVE_RECORD", str(record))  # TorchServe's worker inherits it
    r = Reranker(
        settings_for(local_cluster.url, test_model_dir, "ts", target="torchserve", connector={"timeout_s": 60})
    )
    try:
        steps = r.setup().steps
        assert steps["endpoint"].id.endswith("/predictions/ts") and "connector" in steps
        info = TorchServe("ts").info()
        assert info is not None
        query = reference[0]["query"]
        rows = [p for p in reference if p["query"] == query]
        docs = [p["document"] for p in rows] + EXTRA_NASTY
        scores = r.predict(query, docs)
        received = json.loads(record.read_text().splitlines()[-1])["pairs"]
        assert received == [[query, d] for d in docs]  # byte for byte, in order
        np.testing.assert_allclose(scores[: len(rows)], [p["sigmoid"] for p in rows], atol=1e-5, rtol=0)
        np.testing.assert_allclose(scores[len(rows) :], scorer.predict([(query, d) for d in EXTRA_NASTY]), atol=1e-5)
        for pair in rows[:3]:  # one document per call
            assert r.predict(query, [pair["document"]])[0] == pytest.approx(pair["sigmoid"], abs=1e-5)
        assert r.setup().steps["endpoint"].action == "reused"
    finally:
        r.teardown()
    assert TorchServe("ts").info() is None and not http_ok(f"{info['inference']}/ping", timeout=2)
