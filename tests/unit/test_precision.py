"""Reduced precision is judged by ranking: the gate's arithmetic, which modes a CPU may run, and what a user
sees when a mode is refused or ``auto`` falls back to fp32. The CPU is pinned with OSRERANK_CPU_FLAGS."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from osrerank.cpu import CpuInfo, cpu_info
from osrerank.errors import ConfigError
from osrerank.model import ScorerOptions
from osrerank.precision import FASTER_BY, cached_speed, fidelity, load_gate_pairs, unsupported
from osrerank.scorer import PairScorer, choose_precision, load_scorer


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


def test_bf16_is_refused_on_a_cpu_without_bf16_dot_products():
    avx2 = CpuInfo("Some EPYC", frozenset({"avx2"}), 2)
    assert "no bf16 dot products" in unsupported("bf16", avx2)
    assert unsupported("int8", avx2) is None
    assert unsupported("bf16", CpuInfo("Zen 4", frozenset({"avx512f", "avx512_bf16"}), 2)) is None
    assert "neither AVX2 nor AVX-512" in unsupported("int8", CpuInfo("old", frozenset({"sse4_2"}), 2))


def test_cpu_flags_can_be_pinned(monkeypatch):
    monkeypatch.setenv("OSRERANK_CPU_FLAGS", "avx2, avx512_bf16")
    assert cpu_info().flags == {"avx2", "avx512_bf16"} and cpu_info().bf16


def test_asking_for_bf16_on_such_a_cpu_says_why_before_loading_anything(test_model_dir, monkeypatch):
    monkeypatch.setenv("OSRERANK_CPU_FLAGS", "avx2")
    with pytest.raises(ConfigError, match=r"--precision bf16: this CPU .* has no bf16 dot products"):
        load_scorer(test_model_dir, precision="bf16")


def test_int8_that_moves_the_ranking_is_refused_with_its_figures(test_model_dir, gate_file, monkeypatch):
    monkeypatch.setenv("OSRERANK_CPU_FLAGS", "avx2")
    with pytest.raises(ConfigError) as refused:
        load_scorer(test_model_dir, precision="int8", gate_pairs=str(gate_file))
    message = str(refused.value)
    assert "--precision int8 changes the ranking too much" in message
    assert "Spearman 0.9" in message and "< 0.999" in message and "--precision fp32" in message


def test_auto_without_a_passing_mode_falls_back_to_fp32_and_says_why(test_model_dir, gate_file, monkeypatch, tmp_path):
    """What a user without the openvino extra gets on an AVX2 CPU: bf16 cannot run, int8 fails the gate."""
    monkeypatch.setenv("OSRERANK_CPU_FLAGS", "avx2")
    monkeypatch.setenv("OSRERANK_CACHE", str(tmp_path / "cache"))  # its own: it checks what is measured and kept
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino -> ImportError
    scorer = load_scorer(test_model_dir, precision="auto", gate_pairs=str(gate_file))
    assert scorer.mode == "fp32" and scorer.choice.mode == "fp32"
    reason = scorer.choice.reason
    assert "bf16: this CPU" in reason and "int8 failed the fidelity gate" in reason
    assert "fp32-openvino: OpenVINO is not installed" in reason
    assert "int8" in scorer.choice.figures  # the measured figures, for /ping and the log
    gate_cache = list((tmp_path / "cache" / "precision-gate").glob("*.json"))
    assert len(gate_cache) == 1  # measured once; a second start reads it
    options = ScorerOptions(model=str(test_model_dir), precision="auto", gate_pairs=str(gate_file))
    assert choose_precision(test_model_dir, options).reason == reason


def test_auto_takes_what_it_timed_fastest_and_its_scores_stay_exact(test_model_dir, gate_file, reference, monkeypatch):
    """Unpatched: OpenVINO f32 passes the gate only because it is exact; auto takes it or ONNX Runtime fp32 by
    the speeds it measured on this machine (shown in the figures), and either way scores like PyTorch."""
    monkeypatch.setenv("OSRERANK_CPU_FLAGS", "avx2")
    scorer = load_scorer(test_model_dir, precision="auto", gate_pairs=str(gate_file))
    choice = scorer.choice
    assert "fp32-openvino passed the fidelity gate" in choice.reason and "int8 failed" in choice.reason
    speeds = choice.figures["pairs_per_s"]
    assert set(speeds) == {"fp32", "fp32-openvino"} and f"fp32-openvino {speeds['fp32-openvino']:.1f}" in choice.reason
    faster = speeds["fp32-openvino"] >= FASTER_BY * speeds["fp32"]
    assert scorer.mode == ("fp32-openvino" if faster else "fp32"), choice.reason
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
def test_auto_goes_by_the_speeds_it_measures(test_model_dir, gate_file, monkeypatch, speeds, picked, said):
    """The choice among modes that pass, with the timing replaced (a real one depends on the machine)."""
    monkeypatch.setenv("OSRERANK_CPU_FLAGS", "avx2,avx512_bf16")
    monkeypatch.setattr("osrerank.scorer.cached_speed", lambda key, groups, score: speeds[key[-2]])
    options = ScorerOptions(model=str(test_model_dir), precision="auto", gate_pairs=str(gate_file))
    choice = choose_precision(test_model_dir, options)
    assert choice.mode == picked and said in choice.reason, choice.reason
    assert "bf16 passed the fidelity gate" in choice.reason and "int8 failed the fidelity gate" in choice.reason
    assert choice.figures["pairs_per_s"] == speeds


def test_speed_is_timed_once_per_machine(test_model_dir, gate_file, tmp_path, monkeypatch):
    monkeypatch.setenv("OSRERANK_CACHE", str(tmp_path))
    scorer = PairScorer(test_model_dir, ScorerOptions(model=str(test_model_dir)))
    groups = load_gate_pairs(gate_file)
    calls = []

    def score(pairs):
        calls.append(len(pairs))
        return scorer.score(pairs).values

    first = cached_speed(["model", "fp32", "avx2"], groups, score)
    assert first > 0 and calls == [8, 40]  # 8 untimed, then the rest of the 48 gate pairs
    assert cached_speed(["model", "fp32", "avx2"], groups, score) == first and len(calls) == 2


def test_an_exact_mode_must_match_the_logits_too():
    scores = np.arange(10, dtype=float)
    shifted = fidelity(scores, scores + 0.01, [10])  # same ranking, every logit off by 0.01
    assert shifted.passes() and not shifted.passes(exact=True)
    assert "not exact" in shifted.failures(exact=True)[0]


def test_int8_really_is_a_different_model_close_to_fp32(test_model_dir, reference, scorer, tmp_path, monkeypatch):
    """Below the gate: the quantized graph is cached and is really another model."""
    monkeypatch.setenv("OSRERANK_CACHE", str(tmp_path))
    int8 = PairScorer(test_model_dir, ScorerOptions(model=str(test_model_dir)), "int8")
    assert list(tmp_path.glob("onnx/*/model.int8.onnx"))
    pairs = [(p["query"], p["document"]) for p in reference]
    fp32, q8 = scorer.score(pairs).values, int8.score(pairs).values
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


def test_max_length_caps_the_tokens_and_reports_truncation(test_model_dir):
    short = load_scorer(test_model_dir, max_length=16)
    long_doc = "word " * 200
    assert short.max_length == 16
    assert short.count_tokens([("q", long_doc)]) == [16]
    assert short.score([("q", long_doc)]).truncated.tolist() == [True]
    with pytest.raises(ConfigError, match="--max-length 4 is too short"):
        load_scorer(test_model_dir, max_length=4)
