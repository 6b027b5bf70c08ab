"""The bi-encoder kind: cosine of mean-pooled embeddings, batched and length-grouped.

The encoder is the test cross-encoder's own BERT encoder, cut out of its ONNX graph with
``onnx.utils.extract_model`` (no torch here). The expected values are computed the plain way: one text
per ONNX run (no padding), mean pooling and cosine in numpy. The comparison against
sentence-transformers with the real all-MiniLM-L6-v2 weights is in benchmarks/p1_throughput.py.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx.utils
import onnxruntime as ort
import pytest
from tokenizers import Tokenizer

from osrerank.scorer import load_scorer

HIDDEN = "/bert/encoder/layer.5/output/LayerNorm/LayerNormalization_output_0"


@pytest.fixture(scope="module")
def encoder_dir(test_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("encoder")
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(test_model_dir / name, folder / name)
    onnx.utils.extract_model(
        str(test_model_dir / "onnx" / "model.onnx"),
        str(folder / "model.onnx"),
        ["input_ids", "attention_mask", "token_type_ids"],
        [HIDDEN],
    )
    return folder


def plain_embedding(session: ort.InferenceSession, tokenizer: Tokenizer, text: str) -> np.ndarray:
    enc = tokenizer.encode(text)
    feed = {
        "input_ids": np.array([enc.ids], dtype=np.int64),
        "attention_mask": np.ones((1, len(enc.ids)), dtype=np.int64),
        "token_type_ids": np.zeros((1, len(enc.ids)), dtype=np.int64),
    }
    vector = session.run(None, feed)[0][0].mean(axis=0)
    return vector / np.linalg.norm(vector)


def test_bi_encoder_scores_are_cosines_of_mean_pooled_embeddings(encoder_dir, reference):
    scorer = load_scorer(encoder_dir, kind="bi-encoder", batch_size=4)
    pairs = [(p["query"], p["document"]) for p in reference if p["tokens"] < 200]
    assert len({q for q, _ in pairs}) > 1 and len(pairs) > 8  # several queries, several batches
    session = ort.InferenceSession(str(encoder_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    tokenizer = Tokenizer.from_file(str(encoder_dir / "tokenizer.json"))
    expected = [
        float(plain_embedding(session, tokenizer, q) @ plain_embedding(session, tokenizer, d)) for q, d in pairs
    ]
    np.testing.assert_allclose(scorer.predict(pairs), expected, atol=1e-5)


def test_bi_encoder_identity_and_no_activation(encoder_dir):
    scorer = load_scorer(encoder_dir, kind="bi-encoder", activation="sigmoid")
    scores = scorer.predict([("same text", "same text"), ("same text", "something else entirely")])
    assert scores[0] == pytest.approx(1.0, abs=1e-5)  # cosine, not squashed by the sigmoid
    assert -1.0 <= scores[1] < 0.999
