"""The bi-encoder kind: cosine of mean-pooled embeddings, batched and length-grouped; and the two kinds refusing
each other's folders.

The encoder is the tiny test cross-encoder's own BERT encoder, cut out of its ONNX graph with
``onnx.utils.extract_model`` at the last hidden state (no torch here), in a folder whose config.json says
``BertModel``, as an embedding model's does. The expected values are computed the plain way: one text per ONNX
run (no padding), mean pooling and cosine in numpy. The comparison against sentence-transformers with the real
all-MiniLM-L6-v2 weights is in benchmarks/p1_throughput.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnx.utils
import onnxruntime as ort
import pytest
from tokenizers import Tokenizer

from osrerank.errors import ModelLoadError
from osrerank.scorer import load_scorer


def last_hidden_state(graph_file: Path) -> str:
    """The encoder's output: the last LayerNormalization's, which feeds the pooler and the classifier."""
    graph = onnx.load(str(graph_file), load_external_data=False).graph
    normalized = [node.output[0] for node in graph.node if node.op_type == "LayerNormalization"]
    assert normalized, f"{graph_file} has no LayerNormalization node to cut at"
    return normalized[-1]


@pytest.fixture(scope="module")
def encoder_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("encoder")
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (tiny_model_dir / name).exists():
            shutil.copy(tiny_model_dir / name, folder / name)
    config = json.loads((tiny_model_dir / "config.json").read_text())
    config["architectures"] = ["BertModel"]  # an embedding model: no classification head
    (folder / "config.json").write_text(json.dumps(config))
    graph = tiny_model_dir / "onnx" / "model.onnx"
    inputs = [i.name for i in onnx.load(str(graph), load_external_data=False).graph.input]
    onnx.utils.extract_model(str(graph), str(folder / "model.onnx"), inputs, [last_hidden_state(graph)])
    return folder


def plain_embedding(session: ort.InferenceSession, tokenizer: Tokenizer, text: str) -> np.ndarray:
    enc = tokenizer.encode(text)
    feed = {
        "input_ids": np.array([enc.ids], dtype=np.int64),
        "attention_mask": np.ones((1, len(enc.ids)), dtype=np.int64),
        "token_type_ids": np.zeros((1, len(enc.ids)), dtype=np.int64),
    }
    wanted = {i.name for i in session.get_inputs()}
    vector = session.run(None, {k: v for k, v in feed.items() if k in wanted})[0][0].mean(axis=0)
    return vector / np.linalg.norm(vector)


def test_bi_encoder_scores_are_cosines_of_mean_pooled_embeddings(encoder_dir, reference):
    scorer = load_scorer(encoder_dir, kind="bi-encoder", batch_size=4)
    assert not scorer.squashed
    pairs = [(p["query"], p["document"]) for p in reference if p["tokens"] < scorer.max_length]  # none cut
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


def test_each_kind_refuses_the_others_folder(encoder_dir, tiny_model_dir):
    with pytest.raises(ModelLoadError, match=r"is a BertForSequenceClassification: a cross-encoder.*--kind cross-enc"):
        load_scorer(tiny_model_dir, kind="bi-encoder")
    with pytest.raises(ModelLoadError, match=r"is a BertModel without a classification head.*--kind bi-encoder"):
        load_scorer(encoder_dir)
