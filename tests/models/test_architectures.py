"""The test models beyond BERT (XLM-RoBERTa, ModernBERT, built by build_test_models.py from SciFact text in
../shared) scored by the kit as PyTorch scores them, outside the unit suite (which needs nothing of ../shared): the
scorer, the stand-in's three APIs, and a folder with PyTorch weights only (converted to ONNX once)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import requests

from osrerank.scorer import load_scorer
from osrerank.server.app import create_app

from ..conftest import ARCHITECTURES, ServerThread, hf_pipeline_expected


def pairs_of(folder):
    rows = json.loads((folder / "reference_scores.json").read_text())["pairs"]
    return rows, [(r["query"], r["document"]) for r in rows]


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_scorer_matches_pytorch(arch, arch_models):
    rows, pairs = pairs_of(arch_models[arch])
    scorer = load_scorer(arch_models[arch])
    assert "token_type_ids" not in scorer.runner.input_names  # the graph takes no token types
    np.testing.assert_allclose(scorer.score(pairs).values, [r["logit"] for r in rows], atol=1e-4, rtol=0)
    np.testing.assert_allclose(scorer.predict(pairs), [r["sigmoid"] for r in rows], atol=1e-5, rtol=0)
    assert scorer.count_tokens(pairs) == [r["tokens"] for r in rows]


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_stand_in_serves_every_api_like_pytorch(arch, arch_models):
    rows, pairs = pairs_of(arch_models[arch])
    with ServerThread(create_app(load_scorer(arch_models[arch]))) as server:
        body = {"inputs": [{"text": q, "text_pair": d} for q, d in pairs], "parameters": {"truncation": True}}
        sagemaker = requests.post(f"{server.url}/invocations", json=body, timeout=60).json()
        expected = hf_pipeline_expected(rows, load_scorer(arch_models[arch]))
        np.testing.assert_allclose([r["score"] for r in sagemaker], expected, atol=1e-5, rtol=0)
        torchserve = requests.post(f"{server.url}/predictions/m", json=body["inputs"], timeout=60).json()
        np.testing.assert_allclose(torchserve, [r["sigmoid"] for r in rows], atol=1e-5, rtol=0)
        query = rows[0]["query"]
        same = [r for r in rows if r["query"] == query]
        tei = requests.post(
            f"{server.url}/rerank",
            json={"query": query, "texts": [r["document"] for r in same], "truncate": True, "raw_scores": True},
            timeout=60,
        ).json()
        got = {r["index"]: r["score"] for r in tei}
        np.testing.assert_allclose([got[i] for i in range(len(same))], [r["logit"] for r in same], atol=1e-4, rtol=0)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_a_folder_with_pytorch_weights_only_is_converted_once(arch, arch_models, tmp_path, monkeypatch):
    monkeypatch.setenv("OSRERANK_CACHE", str(tmp_path / "cache"))
    folder = tmp_path / arch
    shutil.copytree(arch_models[arch], folder, ignore=shutil.ignore_patterns("onnx"))
    rows, pairs = pairs_of(folder)
    scorer = load_scorer(folder)
    np.testing.assert_allclose(scorer.score(pairs).values, [r["logit"] for r in rows], atol=1e-4, rtol=0)
    np.testing.assert_allclose(scorer.predict(pairs), [r["sigmoid"] for r in rows], atol=1e-5, rtol=0)
    converted = list((tmp_path / "cache" / "onnx").glob("*/model.onnx"))
    assert len(converted) == 1
    load_scorer(folder)  # a second load finds the conversion
    assert list((tmp_path / "cache" / "onnx").glob("*/model.onnx")) == converted
