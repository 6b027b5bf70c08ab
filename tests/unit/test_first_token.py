"""The last layer cut to the first token (osrerank/first_token.py): made where it changes no logit, refused
where it would, and the scorer serves the cut graph with PyTorch's logits."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import osrerank.first_token as first_token
from osrerank.first_token import first_token_graph
from osrerank.model import onnx_cache


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("OSRERANK_CACHE", str(tmp_path / "cache"))


def last_layer_rows(graph: Path, feed: dict[str, np.ndarray]) -> tuple[int, ...]:
    """The shape of the input of the graph's last feed-forward block (the last MatMul by a 2-D weight before the
    head): (batch, tokens it runs for, hidden)."""
    model = onnx.load(str(graph))
    weights = {i.name for i in model.graph.initializer if len(i.dims) == 2}
    ffn = [n for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in weights][-1]
    model.graph.output.append(onnx.helper.make_tensor_value_info(ffn.input[0], onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return tuple(session.run(None, feed)[-1].shape)


def test_the_cut_graph_runs_the_last_layer_for_one_token_with_the_same_logits(tiny_model_dir, scorer, reference):
    original = tiny_model_dir / "onnx" / "model.onnx"
    cut = first_token_graph(original)
    assert cut != original and cut.exists()
    batch = scorer.encode([(r["query"], r["document"]) for r in reference[:6]]).items
    feed = scorer._feed(batch, range(len(batch)))
    tokens = feed["input_ids"].shape[1]
    assert last_layer_rows(original, feed)[:2] == (6, tokens)
    assert last_layer_rows(cut, feed)[:2] == (6, 1)
    want, got = (ort.InferenceSession(str(g)).run(None, feed)[0] for g in (original, cut))
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)


def test_the_scorer_serves_the_cut_graph_and_pytorchs_logits(scorer, reference):
    assert scorer.onnx_file.name == "model.first-token.onnx"
    logits = scorer.score([(r["query"], r["document"]) for r in reference]).values
    np.testing.assert_allclose(logits, [r["logit"] for r in reference], atol=1e-4, rtol=0)


def test_a_head_that_reads_another_token_is_refused_and_the_refusal_kept(tiny_model_dir, tmp_path, monkeypatch):
    """The structure matches (the rewrite goes through) but the head reads token 1, not 0: the check on random
    batches catches it, the original graph serves, and the next load does not try again."""
    model = onnx.load(str(tiny_model_dir / "onnx" / "model.onnx"))
    gather = next(n for n in model.graph.node if n.op_type == "Gather" and "pooler" in n.name)
    index = next(n for n in model.graph.node if gather.input[1] in n.output)
    index.attribute[0].t.CopyFrom(onnx.numpy_helper.from_array(np.array(1, dtype=np.int64)))
    folder = tmp_path / "second-token"
    shutil.copytree(tiny_model_dir, folder)
    graph = folder / "onnx" / "model.onnx"
    onnx.save(model, str(graph))

    assert first_token_graph(graph) == graph
    refusal = next(onnx_cache(graph).glob("model.first-token-v*.refused")).read_text()
    assert refusal.startswith("the rewritten graph")  # caught by the check (it fails where a row 1 is read)

    def must_not_run(model):
        raise AssertionError("a refused graph was rewritten again")

    monkeypatch.setattr(first_token, "_cut_last_layer", must_not_run)
    assert first_token_graph(graph) == graph


def test_a_graph_without_attention_is_left_as_it_is(tmp_path):
    x = onnx.helper.make_tensor_value_info("input_ids", onnx.TensorProto.FLOAT, ["b", "s"])
    y = onnx.helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, ["b", "s"])
    graph = onnx.helper.make_graph([onnx.helper.make_node("Relu", ["input_ids"], ["logits"])], "g", [x], [y])
    path = tmp_path / "relu.onnx"
    onnx.save(onnx.helper.make_model(graph), str(path))
    assert first_token_graph(path) == path
    assert "no Softmax" in next(onnx_cache(path).glob("*.refused")).read_text()
