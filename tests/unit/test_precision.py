"""Reduced precision is judged by ranking: the gate's arithmetic, which modes a CPU and a host may run, and what a
user sees when a mode is refused or ``auto`` falls back to fp32. The CPU is pinned with OSRERANK_CPU_FLAGS.

Whether int8 keeps the ranking depends on the model; the unit suite's tiny model decides nothing about it. The tests
that need int8 to fail the gate give it a known shift instead, and those that need bf16 to pass give the gate fp32's
scores for it (``gate_sees``; whether OpenVINO bf16 keeps a ranking depends on the model and on the CPU's bf16
support). The engines are still built and run; only what the gate judges is replaced, so refusal and fallback are
checked against figures this file computes itself.
"""

from __future__ import annotations

import json
import logging
import sys

import numpy as np
import pytest

from osrerank.cpu import CpuInfo, cpu_info
from osrerank.errors import ConfigError
from osrerank.gate import fidelity, load_gate_pairs, measured_speed, pairs_of
from osrerank.precision import FASTER_BY, MODES, PRECISIONS, refusal
from osrerank.scorer import ModelOptions, PairScorer, load_scorer

AVX2 = CpuInfo("Some EPYC", frozenset({"avx2"}), 2)


def shifted(values: np.ndarray) -> np.ndarray:
    """A known move of the ranking: every third score pushed down by the spread of all of them."""
    moved = np.array(values, dtype=np.float64)
    moved[::3] -= np.ptp(moved) + 1.0
    return moved


@pytest.fixture
def gate_sees(gate_file, monkeypatch, tmp_path):
    """What the gate sees of a mode's scores, set per mode by the test: ``"moved"``, the mode's own scores with
    ``shifted`` applied (it fails the gate), or ``"exact"``, fp32's scores (it passes). The mode's engine is still
    built and run; the speeds are not touched. A cache of its own (tmp_path / "cache"), so no other test reads a
    gate result measured on replaced scores."""
    import osrerank.scorer

    real, seen = osrerank.scorer._raw, {}

    def raw(scorer):
        score = real(scorer)
        if seen.get(scorer.mode) == "moved":
            return lambda pairs: shifted(score(pairs))
        if seen.get(scorer.mode) == "exact":
            return real(PairScorer(scorer.folder, scorer.options))
        return score

    monkeypatch.setattr(osrerank.scorer, "_raw", raw)
    monkeypatch.setenv("OSRERANK_CACHE", str(tmp_path / "cache"))
    return seen


def gate_measurements(caplog) -> list[dict]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "osrerank.gate"]


def test_identical_scores_pass_and_a_reversed_ranking_fails():
    scores = np.array([0.1, 0.5, 0.9, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6, 0.0])
    same = fidelity(scores, scores.copy(), [5, 5])
    assert same.spearman == pytest.approx(1.0)
    assert (same.top5_mean, same.top5_min, same.max_abs_logit_diff) == (1.0, 1.0, 0.0)
    assert same.passes()
    reversed_ = fidelity(scores, -scores, [10])
    assert reversed_.spearman == pytest.approx(-1.0)
    assert reversed_.top5_mean == 0.0  # the top 5 of ten, reversed, is the other five
    assert len(reversed_.failures()) == 3


def test_top5_overlap_is_per_query():
    reference = np.array([9, 8, 7, 6, 5, 4, 1, 2, 3, 4, 5, 6], dtype=float)
    candidate = reference.copy()
    candidate[5] = 10  # query 1: the 6th document jumps into the top 5, pushing one out
    result = fidelity(reference, candidate, [6, 6])
    assert result.top5_min == pytest.approx(0.8) and result.top5_mean == pytest.approx(0.9)
    assert result.max_abs_logit_diff == 6.0


def test_an_exact_mode_must_match_the_logits_too():
    scores = np.arange(10, dtype=float)
    off = fidelity(scores, scores + 0.01, [10])  # same ranking, every logit off by 0.01
    assert off.passes() and not off.passes(exact=True)
    assert "not exact" in off.failures(exact=True)[0]


def test_bf16_is_refused_on_a_cpu_without_bf16_dot_products():
    why = refusal("bf16", "kit", AVX2, "this host")
    assert why is not None and why.startswith("--precision bf16: this CPU (Some EPYC) has no bf16 dot products")
    assert refusal("int8", "kit", AVX2, "this host") is None
    assert refusal("bf16", "kit", CpuInfo("Zen 4", frozenset({"avx512f", "avx512_bf16"}), 2), "this host") is None
    old = refusal("int8", "kit", CpuInfo("old", frozenset({"sse4_2"}), 2), "this host")
    assert old is not None and old.startswith("--precision int8: ") and "neither AVX2 nor AVX-512" in old


def test_fp32_and_auto_run_anywhere_the_kit_scores():
    for host in ("kit", "ml-commons"):
        assert refusal("fp32", host, AVX2, "here") is None and refusal("auto", host, AVX2, "here") is None
    assert refusal("fp32", "other", AVX2, "the sagemaker target") is None  # fp32 is what every server runs


@pytest.mark.parametrize("asked", ["auto", "int8", "bf16"])
def test_a_server_that_is_not_the_kits_refuses_every_reduced_precision(asked):
    why = refusal(asked, "other", AVX2, "a given --endpoint-url")
    assert why == (
        f"--precision {asked} cannot apply to a given --endpoint-url: only the standin and opensearch targets run "
        "the kit's scorer"
    )


def test_inside_opensearch_only_onnx_runtime_modes_run():
    why = refusal("bf16", "ml-commons", CpuInfo("Zen 4", frozenset({"avx512_bf16"}), 2), "the opensearch target")
    assert why is not None and why.startswith("--precision bf16 cannot run inside OpenSearch (the opensearch target)")
    assert "runs fp32, int8 only" in why
    assert refusal("int8", "ml-commons", AVX2, "the opensearch target") is None


def test_what_precision_accepts_is_the_selectable_modes():
    assert PRECISIONS == ("auto", "fp32", "bf16", "int8", "int8-static")
    assert not MODES["fp32-openvino"].selectable and MODES["fp32-openvino"].exact
    assert ModelOptions.model_fields["precision"].annotation.__args__ == PRECISIONS


def test_cpu_flags_can_be_pinned(monkeypatch):
    monkeypatch.setenv("OSRERANK_CPU_FLAGS", "avx2, avx512_bf16")
    assert cpu_info().flags == {"avx2", "avx512_bf16"} and cpu_info().bf16
    monkeypatch.setenv("OSRERANK_CPU_FLAGS", "")  # set but empty: no flags at all, not the detected ones
    assert cpu_info().flags == frozenset()


def test_asking_for_bf16_on_such_a_cpu_says_why_before_loading_anything(tiny_model_dir, monkeypatch):
    monkeypatch.setenv("OSRERANK_CPU_FLAGS", "avx2")
    monkeypatch.setattr("osrerank.scorer.PairScorer", None)  # nothing may load: calling it would fail differently
    with pytest.raises(ConfigError, match=r"^--precision bf16: this CPU .* has no bf16 dot products"):
        load_scorer(tiny_model_dir, precision="bf16")


def test_int8_that_moves_the_ranking_is_refused_with_its_figures(
    tiny_model_dir, gate_file, gate_sees, scorer, monkeypatch
):
    monkeypatch.setenv("OSRERANK_CPU_FLAGS", "avx2")
    gate_sees["int8"] = "moved"
    with pytest.raises(ConfigError) as refused:
        load_scorer(tiny_model_dir, precision="int8", gate_pairs=str(gate_file))
    message = str(refused.value)
    pairs, sizes = pairs_of(load_gate_pairs(gate_file))
    int8 = PairScorer(tiny_model_dir, ModelOptions(path=str(tiny_model_dir)), "int8")
    expected = fidelity(scorer.score(pairs).values, shifted(int8.score(pairs).values), sizes)  # what the gate saw
    assert message.startswith(f"--precision int8 changes the ranking too much on {gate_file}: ")
    assert f"Spearman {expected.spearman:.5f} < 0.999" in message and f"({expected.shown()})" in message
    assert message.endswith("Use --precision fp32 (exact) or auto.")


def test_auto_without_a_passing_mode_falls_back_to_fp32_and_says_why(
    tiny_model_dir, gate_file, gate_sees, monkeypatch, caplog, tmp_path
):
    """What a user without the openvino extra gets on an AVX2 CPU: bf16 cannot run, int8 fails the gate."""
    monkeypatch.setenv("OSRERANK_CPU_FLAGS", "avx2")
    gate_sees["int8"] = "moved"
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino -> ImportError
    caplog.set_level(logging.INFO, logger="osrerank.gate")
    scorer = load_scorer(tiny_model_dir, precision="auto", gate_pairs=str(gate_file))
    assert scorer.mode == "fp32" and scorer.decision.mode == "fp32"
    reason = scorer.decision.reason
    assert reason.startswith("auto picked fp32 (exact): ")
    assert "bf16: this CPU" in reason and "int8 failed the fidelity gate" in reason
    assert "fp32-openvino: not installed (pip install 'osrerank[openvino]')" in reason
    assert set(scorer.decision.figures) == {"int8"}  # the measured figures, for /ping and the log; nothing timed
    assert [m["gate"] for m in gate_measurements(caplog)] == ["fidelity"]
    assert len(list((tmp_path / "cache" / "precision-gate").glob("*.json"))) == 1  # measured once, kept
    caplog.clear()
    again = load_scorer(ModelOptions(path=str(tiny_model_dir), precision="auto", gate_pairs=str(gate_file)))
    assert again.decision.reason == reason and gate_measurements(caplog) == []  # a second start reads it


def test_auto_takes_what_it_timed_fastest_and_its_scores_stay_exact(
    tiny_model_dir, gate_file, gate_sees, reference, monkeypatch
):
    """OpenVINO f32 is real here: it passes the gate only because it is exact; auto takes it or ONNX Runtime fp32
    by the speeds it measured on this machine (shown in the figures), and either way scores like PyTorch."""
    pytest.importorskip("openvino", reason="the openvino extra is not installed")
    monkeypatch.setenv("OSRERANK_CPU_FLAGS", "avx2")
    gate_sees["int8"] = "moved"
    scorer = load_scorer(tiny_model_dir, precision="auto", gate_pairs=str(gate_file))
    decision = scorer.decision
    assert "fp32-openvino passed the fidelity gate" in decision.reason and "int8 failed" in decision.reason
    speeds = decision.figures["pairs_per_s"]
    assert set(speeds) == {"fp32", "fp32-openvino"}
    assert f"fp32-openvino {speeds['fp32-openvino']:.1f}" in decision.reason
    faster = speeds["fp32-openvino"] >= FASTER_BY * speeds["fp32"]
    assert scorer.mode == ("fp32-openvino" if faster else "fp32"), decision.reason
    pairs = [(p["query"], p["document"]) for p in reference]
    assert scorer.score(pairs).values == pytest.approx([p["logit"] for p in reference], abs=1e-4)


@pytest.mark.parametrize(
    ("speeds", "picked", "said"),
    [
        (
            {"fp32": 20.0, "fp32-openvino": 25.0, "bf16": 15.0},
            "fp32-openvino",
            "auto picked fp32-openvino, the fastest",
        ),
        # measured on an AVX512-BF16 Xeon without AMX: bf16 kept the ranking and ran slower than fp32
        ({"fp32": 20.0, "fp32-openvino": 21.0, "bf16": 15.0}, "fp32", "nothing that passed is 1.1x faster"),
        ({"fp32": 20.0, "fp32-openvino": 21.0, "bf16": 40.0}, "bf16", "auto picked bf16, the fastest"),
    ],
)
def test_auto_goes_by_the_speeds_it_measures(tiny_model_dir, gate_file, gate_sees, monkeypatch, speeds, picked, said):
    """The choice among modes that pass, with the timing replaced (a real one depends on the machine)."""
    pytest.importorskip("openvino", reason="the openvino extra is not installed")
    monkeypatch.setenv("OSRERANK_CPU_FLAGS", "avx2,avx512_bf16")
    gate_sees.update(int8="moved", bf16="exact")
    monkeypatch.setattr("osrerank.precision.measured_speed", lambda key, groups, score: speeds[key[-2]])
    scorer = load_scorer(tiny_model_dir, precision="auto", gate_pairs=str(gate_file))
    decision = scorer.decision
    assert decision.mode == picked == scorer.mode and said in decision.reason, decision.reason
    assert "bf16 passed the fidelity gate" in decision.reason and "int8 failed the fidelity gate" in decision.reason
    assert decision.figures["pairs_per_s"] == speeds


def test_asking_for_a_mode_that_passes_runs_it_and_says_so(tiny_model_dir, gate_file, gate_sees, monkeypatch):
    pytest.importorskip("openvino", reason="the openvino extra is not installed")
    monkeypatch.setenv("OSRERANK_CPU_FLAGS", "avx2,avx512_bf16")
    gate_sees["bf16"] = "exact"
    scorer = load_scorer(tiny_model_dir, precision="bf16", gate_pairs=str(gate_file))
    assert scorer.mode == scorer.decision.mode == "bf16"
    assert scorer.decision.reason.startswith(f"bf16 passed the fidelity gate on {gate_file}: Spearman")


def test_speed_is_timed_once_per_machine(tiny_model_dir, gate_file, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("OSRERANK_CACHE", str(tmp_path))
    caplog.set_level(logging.INFO, logger="osrerank.gate")
    scorer = PairScorer(tiny_model_dir, ModelOptions(path=str(tiny_model_dir)))
    groups = load_gate_pairs(gate_file)
    calls = []

    def score(pairs):
        calls.append(len(pairs))
        return scorer.score(pairs).values

    first = measured_speed(["model", "fp32", "avx2"], groups, score)
    assert first > 0 and calls == [8, 40]  # 8 untimed, then the rest of the 48 gate pairs
    assert measured_speed(["model", "fp32", "avx2"], groups, score) == first and len(calls) == 2
    (logged,) = gate_measurements(caplog)
    assert logged["gate"] == "speed" and logged["measured"] == ["model", "fp32", "avx2"]


def test_int8_really_is_a_different_model_close_to_fp32(tiny_model_dir, reference, scorer, tmp_path, monkeypatch):
    """Below the gate: the quantized graph is cached and is really another model."""
    monkeypatch.setenv("OSRERANK_CACHE", str(tmp_path))
    int8 = PairScorer(tiny_model_dir, ModelOptions(path=str(tiny_model_dir)), "int8")
    assert list(tmp_path.glob("onnx/*/model.int8.onnx"))
    pairs = [(p["query"], p["document"]) for p in reference]
    fp32, q8 = scorer.score(pairs).values, int8.score(pairs).values
    assert np.all(np.isfinite(q8)) and not np.allclose(fp32, q8, atol=1e-4)
    assert np.corrcoef(fp32, q8)[0, 1] > 0.95


def test_int8_static_is_calibrated_once_keeps_the_head_in_fp32_and_stays_close(
    tiny_model_dir, reference, scorer, tmp_path, monkeypatch
):
    """Below the gate: int8-static is an OpenVINO graph with quantize nodes on the encoder's products and none in
    the classification head, built once per graph and calibration set (a second scorer finds it in the cache and
    never calls NNCF), and really another model close to fp32."""
    pytest.importorskip("nncf", reason="int8-static needs the int8 extra (nncf), installed by the dev extra")
    monkeypatch.setenv("OSRERANK_CACHE", str(tmp_path))
    options = ModelOptions(path=str(tiny_model_dir))
    static = PairScorer(tiny_model_dir, options, "int8-static")
    (ir,) = tmp_path.glob("int8-static/*/model.xml")
    xml = ir.read_text()
    assert xml.count('type="FakeQuantize"') >= 6
    quantized_names = [line for line in xml.splitlines() if 'type="FakeQuantize"' in line]
    assert not [n for n in quantized_names if "classifier" in n or "pooler" in n]
    import nncf

    monkeypatch.setattr(nncf, "quantize", lambda *a, **k: pytest.fail("calibrated again"))
    again = PairScorer(tiny_model_dir, options, "int8-static")
    pairs = [(p["query"], p["document"]) for p in reference]
    fp32, q8 = scorer.score(pairs).values, static.score(pairs).values
    assert np.array_equal(q8, again.score(pairs).values)
    assert np.all(np.isfinite(q8)) and not np.allclose(fp32, q8, atol=1e-4)
    assert np.corrcoef(fp32, q8)[0, 1] > 0.95


@pytest.mark.parametrize(
    ("content", "error"),
    [
        ('{"query": "q", "documents": "not a list of texts"}\n' * 4, "line 1: expected"),
        ("not json\n", "line 1: expected"),
        ('{"query": "q", "documents": ["a", "b", "c", "d", "e"]}\n' * 3, "at least 4 queries"),
        ('{"query": "q", "documents": ["a", "b"]}\n' * 4, "at least 5 documents"),
    ],
)
def test_gate_pairs_that_cannot_judge_are_refused(tmp_path, content, error):
    path = tmp_path / "pairs.jsonl"
    path.write_text(content)
    with pytest.raises(ConfigError, match=error):
        load_gate_pairs(path)
    with pytest.raises(ConfigError, match="cannot read --gate-pairs"):
        load_gate_pairs(tmp_path / "missing.jsonl")


def test_max_length_caps_the_tokens_and_reports_truncation(tiny_model_dir):
    short = load_scorer(tiny_model_dir, max_length=16)
    long_doc = "word " * 200
    assert short.max_length == 16
    assert short.count_tokens([("q", long_doc)]) == [16]
    assert short.score([("q", long_doc)]).truncated.tolist() == [True]
    with pytest.raises(
        ConfigError,
        match=r"model\.max_length = 4: 4 is too short: a pair needs at least 8 tokens \(set with --max-length",
    ):
        load_scorer(tiny_model_dir, max_length=4)


@pytest.fixture
def judged_folder(tmp_path):
    """A BEIR folder of the unit topics: each query judges its own passage relevant (grade 2) and its
    paraphrase grade 1; notes that repeat the queries' words make BM25 find at least two candidates for each."""
    from .conftest import TOPICS

    (tmp_path / "beir" / "qrels").mkdir(parents=True)
    corpus, qrels = [], ["query-id\tcorpus-id\tscore"]
    for i, (query, own) in enumerate(TOPICS.items()):
        corpus += [
            {"_id": f"{i}-own", "title": "", "text": own},
            {"_id": f"{i}-short", "title": "", "text": f"In short: {own}."},
        ]
        qrels += [f"q{i}\t{i}-own\t2", f"q{i}\t{i}-short\t1"]
        corpus.append({"_id": f"{i}-note", "title": "", "text": f"A note on the question: {query}"})  # BM25 finds it
    corpus.append({"_id": "faq", "title": "", "text": " ".join(TOPICS)})
    (tmp_path / "beir" / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in corpus))
    (tmp_path / "beir" / "queries.jsonl").write_text(
        "\n".join(json.dumps({"_id": f"q{i}", "text": q}) for i, q in enumerate(TOPICS))
    )
    (tmp_path / "beir" / "qrels" / "test.tsv").write_text("\n".join(qrels))
    return tmp_path / "beir"


def test_with_judged_queries_a_mode_is_judged_by_ndcg_too_and_says_its_figures(
    tiny_model_dir, judged_folder, gate_sees, scorer, monkeypatch
):
    from osrerank.judged import judged_groups, mean_ndcg10

    pytest.importorskip("openvino", reason="the openvino extra is not installed")
    monkeypatch.setenv("OSRERANK_CPU_FLAGS", "avx2,avx512_bf16")
    gate_sees["bf16"] = "exact"
    decided = load_scorer(tiny_model_dir, precision="bf16", gate_qrels=str(judged_folder)).decision
    groups = judged_groups(judged_folder, queries=100)
    exact = mean_ndcg10(groups, scorer.score([(g.query, d) for g in groups for d in g.documents]).values)
    assert decided.reason.startswith(f"bf16 passed the fidelity gate on 6 judged queries of {judged_folder}: Spearman")
    assert f"nDCG@10 {exact:.4f} vs fp32 {exact:.4f} on 6 judged queries" in decided.reason
    assert decided.figures["ndcg10"] == {"fp32": round(exact, 4), "bf16": round(exact, 4)}


def test_a_mode_that_loses_relevance_is_refused_by_its_ndcg(tiny_model_dir, judged_folder, gate_sees, monkeypatch):
    """The bound itself set below zero: even fp32's own scores then lose 'too much', which shows the refusal."""
    pytest.importorskip("openvino", reason="the openvino extra is not installed")
    monkeypatch.setenv("OSRERANK_CPU_FLAGS", "avx2,avx512_bf16")
    monkeypatch.setattr("osrerank.gate.RELEVANCE_DROP", -0.5)
    gate_sees["bf16"] = "exact"
    with pytest.raises(
        ConfigError,
        match=r"--precision bf16 changes the ranking too much on .*: nDCG@10 0\.\d{4} "
        r"is 0\.0000 below fp32's 0\.\d{4} \(> -0\.5\)",
    ):
        load_scorer(tiny_model_dir, precision="bf16", gate_qrels=str(judged_folder))


def test_judged_queries_must_exist(tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("OSRERANK_CPU_FLAGS", "avx2")
    with pytest.raises(ConfigError, match=r"--gate-qrels .*not found; give a BEIR folder"):
        load_scorer(tiny_model_dir, precision="int8", gate_qrels=str(tmp_path))
