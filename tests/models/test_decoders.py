"""The decoder (LLM) rerankers, kind ``decoder``, as PyTorch scores them: the tiny qwen3-reranker and
bge-reranker-gemma folders built by build_decoder_models.py (their reference_scores.json: 27 pairs, nasty texts
among them, scored one pair at a time in PyTorch with max_length 512). The kit's scorer, every route of the
stand-in, ``osrerank serve``'s options, and the refusals: a folder without a format, a target that cannot run a
decoder, a folder that is no causal LM, and ``osrerank train``. No cluster."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import requests
from click.testing import CliRunner, Result

from osrerank.cli import cli
from osrerank.errors import ConfigError, ModelLoadError
from osrerank.kinds import kind_refusal
from osrerank.kinds.decoder import FORMATS
from osrerank.opensearch import Cluster
from osrerank.reranker import Reranker
from osrerank.scorer import ModelOptions, load_scorer
from osrerank.server.app import create_app
from osrerank.settings import Settings
from osrerank.train import check_start

from ..conftest import REPO, ServerThread
from ..unit.fake_opensearch import FakeOpenSearch

FORMAT_NAMES = list(FORMATS)
TINY_CROSS_ENCODER = REPO / "tests" / "data" / "tiny-cross-encoder"
#: The sentence-transformers files of a tiny decoder folder, which name its format too.
ST_FILES = ("config_sentence_transformers.json", "modules.json", "sentence_bert_config.json", "chat_template.jinja")
RAW_TOLERANCE, SCORE_TOLERANCE = 1e-4, 1e-5


def reference(folder: Path) -> list[dict]:
    data = json.loads((folder / "reference_scores.json").read_text())
    assert data["max_length"] == 512 and len(data["pairs"]) == 27
    return data["pairs"]


def by_query(rows: list[dict]) -> dict[str, list[dict]]:
    """The reference rows grouped by query (in first-seen order): what one rerank request carries."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        groups.setdefault(r["query"], []).append(r)
    return groups


@pytest.fixture(scope="module")
def scorers(decoder_models):
    return {f: load_scorer(ModelOptions(path=str(decoder_models[f]), max_length=512)) for f in FORMAT_NAMES}


# ------------------------------------------------------------------ the scorer
@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_scorer_matches_pytorch_batched_and_one_at_a_time(fmt, decoder_models, scorers):
    rows = reference(decoder_models[fmt])
    pairs = [(r["query"], r["document"]) for r in rows]
    raw, score = [r["raw"] for r in rows], [r["score"] for r in rows]
    scorer = scorers[fmt]
    assert scorer.kind.name == "decoder" and scorer.kind.format.name == fmt  # found from the folder
    assert scorer.max_length == 512
    np.testing.assert_allclose(scorer.score(pairs).values, raw, atol=RAW_TOLERANCE, rtol=0)
    np.testing.assert_allclose(scorer.predict(pairs), score, atol=SCORE_TOLERANCE, rtol=0)
    alone = np.array([scorer.score([p]).values[0] for p in pairs])
    np.testing.assert_allclose(alone, raw, atol=RAW_TOLERANCE, rtol=0)
    np.testing.assert_allclose([scorer.predict([p])[0] for p in pairs], score, atol=SCORE_TOLERANCE, rtol=0)
    assert scorer.count_tokens(pairs) == [r["tokens"] for r in rows]  # the prompt is built as the model card's


# ------------------------------------------------------------------ every route of the stand-in
def tei(server, query, docs, raw_scores):
    body = {"query": query, "texts": docs, "truncate": True, "raw_scores": raw_scores}
    reply = requests.post(f"{server.url}/rerank", json=body, timeout=60)
    assert reply.status_code == 200, reply.text
    got = {r["index"]: r["score"] for r in reply.json()}
    return [got[i] for i in range(len(docs))]


def ranked(results, key):
    """Scores in input order from a reply's ranked results (each index once, every one present)."""
    got = {r["index"]: r[key] for r in results}
    assert sorted(got) == list(range(len(results)))
    return [got[i] for i in range(len(results))]


def cohere(server, query, docs):
    body = {"model": "m", "query": query, "documents": docs}
    reply = requests.post(f"{server.url}/v2/rerank", json=body, timeout=60)
    assert reply.status_code == 200, reply.text
    return ranked(reply.json()["results"], "relevance_score")


def bedrock_agent(server, query, docs):
    body = {
        "queries": [{"type": "TEXT", "textQuery": {"text": query}}],
        "sources": [
            {"type": "INLINE", "inlineDocumentSource": {"type": "TEXT", "textDocument": {"text": d}}} for d in docs
        ],
        "rerankingConfiguration": {
            "type": "BEDROCK_RERANKING_MODEL",
            "bedrockRerankingConfiguration": {
                "numberOfResults": len(docs),
                "modelConfiguration": {"modelArn": "arn:aws:bedrock:us-east-1::foundation-model/amazon.rerank-v1:0"},
            },
        },
    }
    reply = requests.post(f"{server.url}/rerank", json=body, timeout=60)
    assert reply.status_code == 200, reply.text
    return ranked(reply.json()["results"], "relevanceScore")


def bedrock_invoke(server, query, docs):
    body = {"query": query, "documents": docs, "top_n": len(docs), "api_version": 2}
    reply = requests.post(f"{server.url}/model/x/invoke", json=body, timeout=60)
    assert reply.status_code == 200, reply.text
    return ranked(reply.json()["results"], "relevance_score")


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_stand_in_serves_every_route_like_pytorch(fmt, decoder_models):
    """Each route answers the reference for all 27 pairs: SageMaker and TorchServe in one request, the rerank
    APIs (one query each) in one request per query; the raw value where the route can ask for it."""
    rows = reference(decoder_models[fmt])
    raw, score = [r["raw"] for r in rows], [r["score"] for r in rows]
    app = create_app(load_scorer(ModelOptions(path=str(decoder_models[fmt]), max_length=512)))
    with ServerThread(app) as server:
        inputs = [{"text": r["query"], "text_pair": r["document"]} for r in rows]
        body = {"inputs": inputs, "parameters": {"truncation": True}}
        reply = requests.post(f"{server.url}/invocations", json=body, timeout=60)
        assert reply.status_code == 200, reply.text
        assert {r["label"] for r in reply.json()} == {"LABEL_0"}
        np.testing.assert_allclose([r["score"] for r in reply.json()], score, atol=SCORE_TOLERANCE, rtol=0)
        body["parameters"]["function_to_apply"] = "none"
        reply = requests.post(f"{server.url}/invocations", json=body, timeout=60).json()
        np.testing.assert_allclose([r["score"] for r in reply], raw, atol=RAW_TOLERANCE, rtol=0)

        reply = requests.post(f"{server.url}/predictions/m", json=inputs, timeout=60)
        assert reply.status_code == 200, reply.text
        np.testing.assert_allclose(reply.json(), score, atol=SCORE_TOLERANCE, rtol=0)

        groups = by_query(rows)
        assert len(groups) == 12  # two plain queries, ten nasty ones
        for query, same in groups.items():
            docs = [r["document"] for r in same]
            want_raw, want = [r["raw"] for r in same], [r["score"] for r in same]
            np.testing.assert_allclose(tei(server, query, docs, True), want_raw, atol=RAW_TOLERANCE, rtol=0)
            np.testing.assert_allclose(tei(server, query, docs, False), want, atol=SCORE_TOLERANCE, rtol=0)
            for route in (cohere, bedrock_agent, bedrock_invoke):
                np.testing.assert_allclose(route(server, query, docs), want, atol=SCORE_TOLERANCE, rtol=0)


# ------------------------------------------------------------------ the command line
@pytest.fixture
def clean_environment(monkeypatch, tmp_path):
    """No OSRERANK_* or AWS_* variable of the machine's reaches a command; the kit cache is the test's own."""
    for name in list(os.environ):
        if name.startswith(("OSRERANK_", "AWS_")):
            monkeypatch.delenv(name)
    cache = tmp_path / "cache"
    monkeypatch.setenv("OSRERANK_CACHE", str(cache))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    return cache


def osrerank(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), prog_name="osrerank")


def one_line_error(result: Result, code: int, *fragments: str) -> str:
    """The command exited with ``code`` through click, printing one error line with every fragment."""
    assert isinstance(result.exception, SystemExit), f"an exception escaped the command: {result.exception!r}"
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    for fragment in fragments:
        assert fragment in errors[0], result.output
    return errors[0]


@pytest.fixture
def captured(monkeypatch, clean_environment):
    """What ``osrerank serve`` would serve: the ServerSpec handed to osrerank.server.run.serve."""
    specs = []
    monkeypatch.setattr("osrerank.server.run.serve", specs.append)
    return specs


@pytest.mark.parametrize("fmt", FORMAT_NAMES)
@pytest.mark.parametrize("kind", ["auto", "decoder"])
def test_serve_takes_the_decoder_options(fmt, kind, decoder_models, captured):
    folder = decoder_models[fmt]
    result = osrerank("serve", "--model", str(folder), "--kind", kind, "--decoder-format", fmt, "--no-auth")
    assert result.exit_code == 0, result.output
    (spec,) = captured
    assert spec.model.path == str(folder) and spec.model.kind == kind and spec.model.decoder_format == fmt
    assert spec.model.instruction is None and not spec.server.auth


def test_serve_found_format_and_instruction(decoder_models, captured):
    folder = decoder_models["qwen3-reranker"]
    result = osrerank("serve", "--model", str(folder), "--instruction", "Find passages", "--max-length", "512")
    assert result.exit_code == 0, result.output
    (spec,) = captured
    assert (spec.model.kind, spec.model.decoder_format, spec.model.instruction) == ("auto", None, "Find passages")
    assert spec.model.max_length == 512


def test_an_unknown_decoder_format_is_a_usage_error(decoder_models, captured):
    result = osrerank("serve", "--model", str(decoder_models["qwen3-reranker"]), "--decoder-format", "llama-rerank")
    one_line_error(result, 2, "--decoder-format", "llama-rerank", "qwen3-reranker", "bge-reranker-gemma")
    assert captured == []


# ------------------------------------------------------------------ refusals
@pytest.fixture
def formatless(decoder_models, tmp_path):
    """The tiny qwen3 folder with nothing in its files naming its format: no _name_or_path in config.json, no
    sentence-transformers files."""
    folder = tmp_path / "formatless"
    shutil.copytree(decoder_models["qwen3-reranker"], folder)
    config = json.loads((folder / "config.json").read_text())
    del config["_name_or_path"]
    (folder / "config.json").write_text(json.dumps(config))
    for name in ST_FILES:
        (folder / name).unlink()
    shutil.rmtree(folder / "1_LogitScore")
    return folder


def test_a_causal_lm_that_names_no_format_is_refused(formatless, clean_environment, monkeypatch):
    with pytest.raises(ModelLoadError, match="--decoder-format qwen3-reranker or bge-reranker-gemma") as refused:
        load_scorer(ModelOptions(path=str(formatless), max_length=512))
    assert "Qwen3ForCausalLM" in str(refused.value) and "\n" not in str(refused.value)
    assert not clean_environment.exists()  # nothing exported, nothing cached

    def no_server(*args, **kwargs):
        raise AssertionError("the server started")

    monkeypatch.setattr("uvicorn.run", no_server)
    one_line_error(osrerank("serve", "--model", str(formatless), "--no-auth"), 1, "--decoder-format", "formatless")
    assert not clean_environment.exists()


def test_a_format_given_for_a_folder_that_names_none_scores_it(formatless, decoder_models, clean_environment):
    rows = reference(decoder_models["qwen3-reranker"])
    scorer = load_scorer(ModelOptions(path=str(formatless), max_length=512, decoder_format="qwen3-reranker"))
    values = scorer.score([(r["query"], r["document"]) for r in rows]).values
    np.testing.assert_allclose(values, [r["raw"] for r in rows], atol=RAW_TOLERANCE, rtol=0)


@pytest.fixture
def fake(monkeypatch, clean_environment):
    fake = FakeOpenSearch()
    monkeypatch.setattr("osrerank.reranker.connect", lambda options, url=None: Cluster(fake, "http://fake"))  # type: ignore[arg-type]
    return fake


@pytest.mark.parametrize("target", ["opensearch", "sagemaker"])
@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_a_target_that_cannot_run_a_decoder_refuses_it_before_anything(
    target, fmt, decoder_models, fake, clean_environment
):
    folder = str(decoder_models[fmt])
    why = kind_refusal("auto", target, folder)
    assert why is not None and f"not --target {target}" in why and "--target standin" in why
    assert kind_refusal("decoder", target, folder) == why
    assert kind_refusal("auto", "standin", folder) is None and kind_refusal("auto", "torchserve", folder) is None

    reranker = Reranker(Settings(name="dec", target=target, model=folder, cluster="http://fake"))
    with pytest.raises(ConfigError) as refused:
        reranker.target.check()
    assert str(refused.value) == why
    with pytest.raises(ConfigError) as refused:
        reranker.setup()
    assert str(refused.value) == why
    assert fake.calls == []  # the cluster was not asked for anything

    for command in ("deploy", "setup"):
        result = osrerank(command, "--target", target, "--model", folder, "--opensearch-url", "http://127.0.0.1:9")
        assert one_line_error(result, 1) == f"Error: {why}"
    assert not clean_environment.exists() or not any(p.is_file() for p in clean_environment.rglob("*"))


def test_kind_decoder_on_a_folder_that_is_no_causal_lm_is_refused(clean_environment):
    with pytest.raises(ModelLoadError, match="not a causal language model") as refused:
        load_scorer(ModelOptions(path=str(TINY_CROSS_ENCODER), kind="decoder"))
    assert "BertForSequenceClassification" in str(refused.value) and "--kind decoder" in str(refused.value)
    one_line_error(
        osrerank("serve", "--model", str(TINY_CROSS_ENCODER), "--kind", "decoder", "--no-auth"),
        1,
        "not a causal language model",
    )
    assert not clean_environment.exists()


# ------------------------------------------------------------------ train stays encoder-only
@pytest.mark.parametrize("fmt", FORMAT_NAMES)
def test_train_refuses_a_decoder(fmt, decoder_models, clean_environment, tmp_path):
    folder = str(decoder_models[fmt])
    for new_head in (False, True):
        with pytest.raises(ModelLoadError, match="train stays encoder-only"):
            check_start(folder, new_head)
    with pytest.raises(ModelLoadError, match="train stays encoder-only"):
        check_start(str(TINY_CROSS_ENCODER), False, kind="decoder")
    check_start(str(TINY_CROSS_ENCODER), False)  # a cross-encoder still trains
    out = tmp_path / "trained"
    for extra in ([], ["--new-head"], ["--kind", "decoder"]):
        result = osrerank(
            "train", "--dataset", str(REPO / "tests" / "data" / "tiny-beir"), "--out", str(out), "--model", folder,
            "--opensearch-url", "http://127.0.0.1:9", *extra,
        )  # fmt: skip
        one_line_error(result, 1, "train stays encoder-only", folder)
    assert not out.exists()
    assert "train stays encoder-only" in osrerank("train", "--help").output
