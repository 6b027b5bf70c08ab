"""OpenVINO's runner runs a call's batches on two streams, each batch of two or more rows split across them
(runtimes.OPENVINO_STREAMS). What it gives must be what one stream gives: every row, in order, whatever the batch
sizes, and for callers running at once."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from osrerank import runtimes
from osrerank.scorer import ModelOptions, PairScorer

pytest.importorskip("openvino", reason="the openvino extra is not installed")

ROWS = (1, 2, 3, 5, 32, 1, 17)


def runner_with(streams: int, graph, monkeypatch) -> runtimes.Runner:
    monkeypatch.setattr(runtimes, "OPENVINO_STREAMS", streams)
    return runtimes.openvino_runner(graph, threads=2, precision="f32")


def feeds(seed: int) -> list[dict[str, np.ndarray]]:
    """Batches of ROWS rows, each of its own width, random ids and some padding."""
    rng = np.random.default_rng(seed)
    made = []
    for rows in ROWS:
        width = int(rng.integers(6, 40))
        mask = (np.arange(width) < rng.integers(4, width + 1, rows)[:, None]).astype(np.int64)
        ids = rng.integers(1000, 2000, (rows, width)) * mask
        made.append({"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})
    return made


@pytest.fixture
def graph(tiny_model_dir):
    return PairScorer(tiny_model_dir, ModelOptions(path=str(tiny_model_dir))).onnx_file


def test_two_streams_give_one_streams_outputs_row_for_row(graph, monkeypatch):
    one, two = runner_with(1, graph, monkeypatch), runner_with(2, graph, monkeypatch)
    batches = feeds(0)
    expected = [one(feed) for feed in batches]
    for got, want, rows in zip(two.many(batches), expected, ROWS, strict=True):
        assert got.shape[0] == rows
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    # a call of one batch, and of one pair alone (which runs on a one-stream compilation of its own)
    np.testing.assert_allclose(two(batches[4]), expected[4], rtol=0, atol=1e-6)
    np.testing.assert_allclose(two(batches[0]), expected[0], rtol=0, atol=1e-6)


def test_callers_at_once_each_get_their_own_outputs(graph, monkeypatch):
    one, two = runner_with(1, graph, monkeypatch), runner_with(2, graph, monkeypatch)
    calls = [feeds(seed) for seed in range(6)]
    expected = [[one(feed) for feed in call] for call in calls]
    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(two.many, calls))
    for got, want in zip(results, expected, strict=True):
        for g, w in zip(got, want, strict=True):
            np.testing.assert_allclose(g, w, rtol=0, atol=1e-6)


def test_a_batch_the_graph_cannot_take_raises_in_the_caller(graph, monkeypatch):
    two = runner_with(2, graph, monkeypatch)
    good = feeds(1)[4]
    bad = {k: v[:, :, None] for k, v in good.items()}  # one dimension too many
    with pytest.raises(Exception, match=r"(?i)shape|rank|dimension"):
        two.many([good, bad])
    np.testing.assert_allclose(two.many([good])[0], runner_with(1, graph, monkeypatch)(good), rtol=0, atol=1e-6)
