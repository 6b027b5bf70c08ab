"""The ONNX scorer against PyTorch's reference scores for the test cross-encoder."""

from __future__ import annotations

import time

import numpy as np
import pytest

from osrerank.errors import ModelLoadError
from osrerank.model import activate, resolve_model_dir
from osrerank.scorer import length_batches, load_scorer


def test_reference_logits_and_sigmoid_in_one_batch(scorer, reference):
    pairs = [(p["query"], p["document"]) for p in reference]
    raw = scorer.score(pairs).values
    np.testing.assert_allclose(raw, [p["logit"] for p in reference], atol=1e-4, rtol=0)
    np.testing.assert_allclose(activate(raw, "sigmoid"), [p["sigmoid"] for p in reference], atol=1e-5, rtol=0)


def test_one_pair_at_a_time_equals_batch(scorer, reference):
    pairs = [(p["query"], p["document"]) for p in reference]
    batch = scorer.score(pairs).values
    single = np.array([scorer.score([pair]).values[0] for pair in pairs])
    np.testing.assert_allclose(single, batch, atol=1e-4, rtol=0)


def test_batches_hold_similar_lengths_and_every_pair_once():
    lengths = [512, 40, 41, 12, 44, 13, 300, 330, 45, 40, 40, 40]
    batches = length_batches(lengths, size=3)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert all(len(b) <= 3 for b in batches)
    assert all(max(lengths[i] for i in b) <= 1.1 * min(lengths[i] for i in b) for b in batches)
    assert [sorted(lengths[i] for i in b) for b in batches] == [
        [12, 13],
        [40, 40, 40],
        [40, 41, 44],
        [45],
        [300, 330],
        [512],
    ]


def test_truncation_is_reported_for_long_pairs(scorer, reference):
    pairs = [(p["query"], p["document"]) for p in reference]
    truncated = scorer.score(pairs).truncated
    assert [bool(t) for t in truncated] == [p["tokens"] >= scorer.max_length for p in reference]
    assert scorer.count_tokens(pairs) == [p["tokens"] for p in reference]


def test_empty_input_gives_empty_scores(scorer):
    assert scorer.score([]).values.shape == (0,)
    assert scorer.predict([]).shape == (0,)


def test_activation_none_returns_logits(tiny_model_dir, reference):
    raw_scorer = load_scorer(tiny_model_dir, activation="none")
    values = raw_scorer.predict([(reference[0]["query"], reference[0]["document"])])
    assert values[0] == pytest.approx(reference[0]["logit"], abs=1e-4)


def test_hub_id_fails_fast_and_names_the_offline_cause(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    started = time.monotonic()
    with pytest.raises(ModelLoadError, match=r"Hugging Face Hub.*--model DIR"):
        resolve_model_dir("cross-encoder/ms-marco-MiniLM-L-6-v2")
    assert time.monotonic() - started < 30


def test_folder_without_weights_is_a_clear_error(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "tokenizer.json").write_text("{}")
    with pytest.raises(ModelLoadError, match=r"no onnx/model\.onnx"):
        load_scorer(tmp_path)


def test_nonexistent_path_is_not_taken_for_a_hub_id(tmp_path):
    with pytest.raises(ModelLoadError, match="neither a model folder nor a hub id"):
        resolve_model_dir(str(tmp_path / "missing" / "model"))


def test_openvino_pads_to_a_multiple_of_32_tokens_and_stays_exact(tiny_model_dir, reference):
    """OpenVINO keeps state per input shape, so its batches are padded to a multiple of 32 tokens (within
    max_length); the padding is masked: logits stay within 1e-4 of PyTorch, in one batch and pair by pair."""
    from osrerank.scorer import ModelOptions, PairScorer

    scorer = PairScorer(tiny_model_dir, ModelOptions(path=str(tiny_model_dir)), "fp32-openvino")
    pairs = [(p["query"], p["document"]) for p in reference]
    items = scorer.encode(pairs).items
    widths = {len(e.ids): scorer._feed(items, [i])["input_ids"].shape[1] for i, e in enumerate(items)}
    assert all(w == max(n, min(-(-n // 32) * 32, scorer.max_length)) for n, w in widths.items()), widths
    assert any(w > n for n, w in widths.items())  # some pair really is padded
    logits = [p["logit"] for p in reference]
    np.testing.assert_allclose(scorer.score(pairs).values, logits, atol=1e-4, rtol=0)
    np.testing.assert_allclose([scorer.score([pair]).values[0] for pair in pairs], logits, atol=1e-4, rtol=0)
    assert PairScorer(tiny_model_dir, ModelOptions(path=str(tiny_model_dir)), "fp32").width_step == 1
