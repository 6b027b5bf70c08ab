"""Reduced precision against the real cluster: a mode the CPU cannot run, or one that moves the ranking, is
refused before anything is created, on both targets that run the kit's model; ``auto`` that finds no faster
mode passing the gate serves exact fp32 through ``_predict`` and a plain ``_search``, and says so on /ping.

The CPU is pinned to AVX2 (OSRERANK_CPU_FLAGS) so the outcome is the same on every machine; the gate runs on
SciFact pairs on which int8 moves the test model's ranking (the ``gate_file`` fixture). With OpenVINO
installed, ``auto`` takes its fp32 only because its scores match ONNX Runtime's; without it (hidden here, in
this process and the stand-in's, as for a user without the openvino extra) it falls back to ONNX Runtime.

On the stand-in the gate runs in the stand-in process only, which starts before anything is made in the
cluster: a refusal reaches setup as the server's one line, with nothing created and no stand-in left running;
each mode is measured once per model and CPU, and a restarted stand-in reads every result from the cache."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest
import requests

from osrerank.cpu import cpu_info
from osrerank.errors import ConfigError
from osrerank.precision import FASTER_BY, MODES
from osrerank.reranker import Reranker
from osrerank.targets.standin import StandInProcess

from .kit import one_line_only, one_node_only, settings_for
from .rest import Rest
from .test_lifecycle import load_tutorial

pytestmark = pytest.mark.integration

WITHOUT_OPENVINO = Path(__file__).parent / "without_openvino"
#: ``auto``'s choice and its gate run in the stand-in, the same on any cluster shape (CI's time budget)
ONE_NODE = one_node_only(
    "auto's gate and choice run in the stand-in and depend on no cluster shape: the one-node lines run them"
)
#: ``auto``'s measuring and its cache live in the stand-in alone: what the cluster sees of it, ``auto``'s
#: choice served through ``_predict`` and ``_search``, is test_auto_serves_exact_scores, on both lines
ONE_LINE = one_line_only(
    "auto measures and caches in the stand-in, on no OpenSearch line or cluster shape: 3.x, one node, only"
)


@pytest.mark.parametrize(
    ("target", "precision", "message"),
    [
        ("standin", "bf16", r"--precision bf16: this CPU .* has no bf16 dot products"),
        ("standin", "int8", r"--precision int8 changes the ranking too much .* Spearman 0\.9\d+ < 0\.999"),
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
    model = {"precision": precision, "gate_pairs": str(gate_file)}
    s = settings_for(local_cluster.url, test_model_dir, "prec", target=target, model=model)
    reranker = Reranker(s)
    try:
        with pytest.raises(ConfigError, match=message) as refused:
            reranker.setup()
        if precision == "int8":  # the gate's refusal, where the model is prepared: before the cluster is touched
            assert "stopped at step 'model server'" in str(refused.value)
            assert "Already in place: nothing" in str(refused.value)
        assert rest.snapshot() == before, "a refused precision left something behind"
        assert StandInProcess("prec").info() is None, "a refused precision left a stand-in running"
    finally:
        reranker.teardown()


@ONE_NODE
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
    model = {"precision": "auto", "gate_pairs": str(gate_file)}
    s = settings_for(local_cluster.url, test_model_dir, "auto", model=model, connector={"timeout_s": 30})
    reranker = Reranker(s)
    try:
        reranker.setup()
        ping = requests.get(f"{StandInProcess('auto').info().base_url}/ping", timeout=10).json()
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
        texts = [h.text(s.index.document_fields) for h in hits]
        direct = reranker.predict("What is the capital of the United States?", texts)
        assert [h.score for h in hits] == pytest.approx(direct, abs=1e-6)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)  # ranked by them
    finally:
        reranker.teardown()


def gate_measurements(log_file: Path, offset: int = 0) -> list[dict]:
    """The gate measurements a stand-in logged past ``offset`` of its log (one JSON line each on "osrerank.gate")."""
    with log_file.open("rb") as f:
        f.seek(offset)
        lines = f.read().decode("utf-8", errors="replace").splitlines()
    return [json.loads(line.partition(" osrerank.gate ")[2]) for line in lines if " osrerank.gate " in line]


@ONE_LINE
def test_auto_measures_each_mode_once_and_only_in_the_stand_in(
    local_cluster, test_model_dir, gate_pairs, tmp_path, monkeypatch, caplog
):
    """setup --precision auto with a fresh cache measures each mode this CPU can run once (model, mode, CPU),
    in the stand-in and never in this process; a restarted stand-in with the same model settings measures
    nothing: every result comes from the cache."""
    monkeypatch.setenv("OSRERANK_CACHE", str(tmp_path / "cache"))  # nothing measured yet; the stand-in inherits it
    monkeypatch.setenv("OSRERANK_CPU_FLAGS", "avx2")
    caplog.set_level(logging.INFO, logger="osrerank.gate")
    cpu = cpu_info()
    tried = {n for n, m in MODES.items() if n != "fp32" and "kit" in m.hosts and not m.needs(cpu) and not m.missing()}
    assert "int8" in tried and "bf16" not in tried  # AVX2 without bf16 dot products
    model = {"precision": "auto", "gate_pairs": str(gate_pairs)}
    s = settings_for(local_cluster.url, test_model_dir, "gates", model=model, connector={"timeout_s": 30})
    stand_in = StandInProcess("gates")
    try:
        Reranker(s).setup()
        first = stand_in.info()
        measured = gate_measurements(stand_in.log_file)
        fidelity = [tuple(m["measured"]) for m in measured if m["gate"] == "fidelity"]
        assert len(set(fidelity)) == len(fidelity), f"a mode was measured twice: {fidelity}"
        assert sorted(key[3] for key in fidelity) == sorted(tried)  # one per mode tried
        assert {(key[0], key[1], key[2], key[4]) for key in fidelity} == {
            (fidelity[0][0], "cross-encoder", "None", "avx2")  # one model, one CPU
        }
        speed = [tuple(m["measured"]) for m in measured if m["gate"] == "speed"]
        assert len(set(speed)) == len(speed), f"a mode was timed twice: {speed}"
        decided = first.precision()
        assert set(decided["figures"]) - {"pairs_per_s"} == tried  # what /ping reports is what was measured
        assert not [r for r in caplog.records if r.name == "osrerank.gate"], "the gate ran in the CLI process"

        offset = stand_in.log_file.stat().st_size
        again = s.updated(targets={"standin": {"max_wait_ms": 7.0}})  # another stand-in, the same model settings
        Reranker(again).setup()
        second = stand_in.info()
        assert second.pid != first.pid, "the stand-in was not restarted"
        assert gate_measurements(stand_in.log_file, offset) == [], "a restarted stand-in measured again"
        assert second.precision()["mode"] == decided["mode"]
        assert not [r for r in caplog.records if r.name == "osrerank.gate"], "the gate ran in the CLI process"
    finally:
        Reranker(s).teardown()
    assert stand_in.info() is None
