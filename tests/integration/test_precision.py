"""Reduced precision against the real cluster: a mode the CPU cannot run, or one that moves the ranking, is
refused before anything is created, on both targets that run the kit's model; ``auto`` that finds no faster
mode passing the gate serves exact fp32 through ``_predict`` and a plain ``_search``, and says so on /ping.

The CPU is pinned to AVX2 (OSRERANK_CPU_FLAGS) so the outcome is the same on every machine; the gate runs on
SciFact pairs on which int8 moves the test model's ranking (the ``gate_file`` fixture). With OpenVINO
installed, ``auto`` takes its fp32 only because its scores match ONNX Runtime's; without it (hidden here, in
this process and the stand-in's, as for a user without the openvino extra) it falls back to ONNX Runtime."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import requests

from osrerank.config import Settings
from osrerank.errors import ConfigError
from osrerank.precision import FASTER_BY
from osrerank.reranker import Reranker
from osrerank.targets.standin import StandIn

from .rest import Rest
from .test_lifecycle import load_tutorial

pytestmark = pytest.mark.integration

WITHOUT_OPENVINO = Path(__file__).parent / "without_openvino"


def settings(url, model, name, **extra) -> Settings:
    return Settings(
        opensearch_url=url, model=str(model), name=name, pipeline=f"{name}-rerank", index=f"{name}-docs", **extra
    )


@pytest.mark.parametrize(
    ("target", "precision", "message"),
    [
        ("local", "bf16", r"--precision bf16: this CPU .* has no bf16 dot products"),
        ("local", "int8", r"--precision int8 changes the ranking too much .* Spearman 0\.9\d+ < 0\.999"),
        ("opensearch", "bf16", r"--precision bf16 cannot run inside OpenSearch"),
        ("opensearch", "int8", r"--precision int8 changes the ranking too much .* Spearman 0\.9\d+ < 0\.999"),
    ],
)
def test_a_refused_mode_creates_nothing(
    local_cluster, test_model_dir, gate_file, monkeypatch, target, precision, message
):
    monkeypatch.setenv("OSRERANK_CPU_FLAGS", "avx2")
    rest = Rest(local_cluster.url)
    before = rest.snapshot()
    s = settings(
        local_cluster.url, test_model_dir, "prec", target=target, precision=precision, gate_pairs=str(gate_file)
    )
    reranker = Reranker(s)
    try:
        with pytest.raises(ConfigError, match=message):
            reranker.setup()
        assert rest.snapshot() == before, "a refused precision left something behind"
        assert StandIn("prec").info() is None, "a refused precision started a stand-in"
    finally:
        reranker.teardown()


@pytest.mark.parametrize(
    ("openvino", "why"),
    [
        (False, "int8 failed the fidelity gate"),
        (True, "fp32-openvino passed the fidelity gate"),
    ],
)
def test_auto_serves_exact_scores(local_cluster, test_model_dir, gate_file, reference, monkeypatch, openvino, why):
    """auto with no faster mode passing serves ONNX Runtime fp32; with OpenVINO, whichever fp32 it timed faster
    here (by at least FASTER_BY). Either way the scores through _predict are PyTorch's, and a plain _search
    ranks by them."""
    monkeypatch.setenv("OSRERANK_CPU_FLAGS", "avx2")
    if not openvino:
        monkeypatch.setitem(sys.modules, "openvino", None)
        monkeypatch.setenv("PYTHONPATH", str(WITHOUT_OPENVINO))
    s = settings(local_cluster.url, test_model_dir, "auto", precision="auto", gate_pairs=str(gate_file), timeout_s=30)
    reranker = Reranker(s)
    try:
        reranker.setup()
        ping = requests.get(f"{StandIn('auto').info().base_url}/ping", timeout=10).json()
        assert why in ping["precision"]["why"]
        speeds = ping["precision"]["pairs_per_s"]
        if openvino:
            assert set(speeds) == {"fp32", "fp32-openvino"}
            faster = speeds["fp32-openvino"] >= FASTER_BY * speeds["fp32"]
            assert ping["precision"]["mode"] == ("fp32-openvino" if faster else "fp32")
        else:
            assert ping["precision"]["mode"] == "fp32" and speeds is None  # nothing passed: nothing to time

        capital = [r for r in reference if r["query"] == "What is the capital of the United States?"][:6]
        scores = reranker.predict(capital[0]["query"], [r["document"] for r in capital])
        assert scores == pytest.approx([r["sigmoid"] for r in capital], abs=1e-5)  # PyTorch's figures

        load_tutorial(reranker)
        hits = reranker.search("What is the capital of the United States?", size=4).hits
        texts = [h.text(s.document_fields) for h in hits]
        direct = reranker.predict("What is the capital of the United States?", texts)
        assert [h.score for h in hits] == pytest.approx(direct, abs=1e-6)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)  # ranked by them
    finally:
        reranker.teardown()
