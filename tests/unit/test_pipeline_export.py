"""``osrerank export``'s text pipeline on the tiny BERT of tests/data (nothing of ../shared): the graph's token ids
are the folder tokenizer's, its logits PyTorch's (batched and one pair at a time, nasty texts included), its cut is
tokenizers' longest_first, its mistakes get clear errors, and the stand-in serves the file on every route."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import requests
from click.testing import CliRunner

from osrerank.errors import ModelLoadError, ScoringError
from osrerank.model import activate
from osrerank.pipeline_export import EQUAL_MESSAGE, ONE_PAIR_MESSAGE, export_pipeline
from osrerank.scorer import ModelOptions, load_scorer
from osrerank.server.app import create_app

from ..conftest import REPO, ServerThread
from ..text_pipeline_graphs import ids_session, session

ort = pytest.importorskip("onnxruntime")
ox = pytest.importorskip("onnxruntime_extensions")

TINY = REPO / "tests" / "data" / "tiny-cross-encoder"
REFERENCE = json.loads((TINY / "reference_scores.json").read_text())["pairs"]
PAIRS = [(r["query"], r["document"]) for r in REFERENCE]
LOGITS = np.array([r["logit"] for r in REFERENCE])
#: Texts beyond the reference's where onnxruntime-extensions' own tables differ from tokenizers': NUL, a dotted
#: capital I, Hangul (decomposed by NFD), line separators, zero-width and BOM characters, U+FFFD, Latin-Extended
#: capitals, a word with a piece outside the vocabulary after known ones ("co₂"), fullwidth letters.
EXTRA = [
    "nul\x00here",
    "\x00",
    "İstanbul ÅÉÎ ß ﬁ Ǆ ǅ Œ œ",
    "한국어 텍스트",
    "sep \u2028 and \u2029",
    "x\u200by\ufeffz \ufffd",
    "co₂ 1⁄2 «q» 「」 ¶",
    "Ｆｕｌｌ ｗｉｄｔｈ",
    "tab\x0bvt\x0cff\x85nel \u00a0nbsp\u3000ideo",
]


def feed(pairs):
    return {
        "first_input": np.array([q for q, _ in pairs], dtype=object),
        "second_input": np.array([d for _, d in pairs], dtype=object),
    }


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    return export_pipeline(TINY, tmp_path_factory.mktemp("pipeline") / "tiny.onnx").path


@pytest.fixture(scope="module")
def pipeline(exported):
    return session(exported)


def test_token_ids_are_the_folder_tokenizers(tmp_path):
    from tokenizers import Tokenizer

    run = ids_session(TINY, tmp_path)
    tokenizer = Tokenizer.from_file(str(TINY / "tokenizer.json"))
    texts = sorted({t for pair in PAIRS for t in pair}) + EXTRA
    for text in texts:
        assert run(text) == tokenizer.encode(text, add_special_tokens=False).ids, repr(text[:80])


def test_logits_equal_pytorch_batched_and_one_pair_at_a_time(pipeline):
    assert [i.name for i in pipeline.get_inputs()] == ["first_input", "second_input"]
    assert [o.name for o in pipeline.get_outputs()] == ["logits"]
    np.testing.assert_allclose(pipeline.run(None, feed(PAIRS))[0], LOGITS, atol=1e-4, rtol=0)
    alone = [pipeline.run(None, feed([pair]))[0][0] for pair in PAIRS]
    np.testing.assert_allclose(alone, LOGITS, atol=1e-4, rtol=0)


def test_sigmoid_export_outputs_scores(tmp_path):
    path = export_pipeline(TINY, tmp_path / "scores.onnx", sigmoid=True).path
    run = session(path)
    assert [o.name for o in run.get_outputs()] == ["scores"]
    np.testing.assert_allclose(run.run(None, feed(PAIRS))[0], activate(LOGITS, "sigmoid"), atol=1e-5, rtol=0)


def test_long_pairs_are_cut_like_tokenizers_longest_first(pipeline):
    """Every pair over the tiny model's 128 tokens (125 for the texts, odd): either text long, both long, equal."""
    rng = random.Random(7)
    words = ["alpha", "beta", "gamma", "capital", "city", "state", "united", "the", "of", "population"]
    lengths = [(300, 200), (200, 300), (3, 1000), (1000, 3), (70, 70), (61, 64), (64, 61), (62, 62), (63, 62)]
    lengths += [(rng.randint(0, 400), rng.randint(0, 400)) for _ in range(30)]
    pairs = [tuple(" ".join(rng.choice(words) for _ in range(n)) for n in pair) for pair in lengths]
    scorer = load_scorer(TINY)  # the folder's tokenizer with its truncation
    np.testing.assert_allclose(pipeline.run(None, feed(pairs))[0], scorer.score(pairs).values, atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({"first_input": ["q", "q"], "second_input": ["d"]}, EQUAL_MESSAGE),
        ({"first_input": ["q"], "second_input": ["d", "e"]}, EQUAL_MESSAGE),
        ({"first_input": [], "second_input": []}, ONE_PAIR_MESSAGE),
    ],
)
def test_unequal_or_empty_inputs_are_refused_by_the_graph_by_name(pipeline, inputs, message):
    with pytest.raises(Exception, match=message):
        pipeline.run(None, {k: np.array(v, dtype=object) for k, v in inputs.items()})


def test_non_string_inputs_are_refused_by_onnx_runtime(pipeline):
    with pytest.raises(Exception, match=r"tensor\(string\)"):
        pipeline.run(None, {"first_input": np.array([1, 2]), "second_input": np.array([3, 4])})
    with pytest.raises(Exception, match=r"Invalid rank for input: (first|second)_input"):
        pipeline.run(None, {"first_input": np.array([["q"]], dtype=object), "second_input": np.array([["d"]])})


def test_non_string_texts_are_refused_by_the_kit_and_the_stand_in(exported):
    """A numpy array of Python objects reaches the graph as each object's str (ONNX Runtime's conversion): the kit
    checks the types before."""
    scorer = load_scorer(exported)
    for pair in [("q", 5), (None, "d"), ("q", b"d")]:
        with pytest.raises(ScoringError, match="must be strings"):
            scorer.score([pair])
    with ServerThread(create_app(scorer, max_wait_s=0.01)) as server:
        for path, body in [
            ("/rerank", {"query": "q", "texts": ["a", 1]}),
            ("/invocations", {"inputs": [{"text": "q", "text_pair": 3}]}),
            ("/v2/rerank", {"model": "m", "query": 5, "documents": ["a"]}),
            ("/rerank", {"query": "q", "texts": []}),
        ]:
            reply = requests.post(server.url + path, json=body, timeout=30)
            assert reply.status_code == 400 and reply.json()["error_type"] in ("validation", "empty"), reply.text


def test_cli_writes_the_file_and_refuses_what_it_cannot_reproduce(tmp_path):
    from osrerank.cli import cli

    done = CliRunner().invoke(cli, ["export", "--model", str(TINY), "--out", str(tmp_path / "x.onnx")])
    assert done.exit_code == 0, done.output
    assert "WordPiece tokenizer in the graph, pairs cut at 128 tokens" in done.output
    assert (tmp_path / "x.onnx").stat().st_size > 100_000
    cases = {
        "decoder": ({"architectures": ["Qwen3ForCausalLM"]}, None, "a decoder model: a text pipeline is made of"),
        "embedding": ({"architectures": ["BertModel"]}, None, "without a classification head"),
        "wordlevel": ({}, "WordLevel", "is a WordLevel tokenizer: the text pipeline reproduces WordPiece"),
    }
    for name, (config, model_type, message) in cases.items():
        folder = tmp_path / name
        shutil.copytree(TINY, folder)
        (folder / "config.json").write_text(json.dumps({**json.loads((TINY / "config.json").read_text()), **config}))
        if model_type:
            document = json.loads((folder / "tokenizer.json").read_text())
            document["model"]["type"] = model_type
            (folder / "tokenizer.json").write_text(json.dumps(document))
        refused = CliRunner().invoke(cli, ["export", "--model", str(folder), "--out", str(tmp_path / f"{name}.onnx")])
        assert refused.exit_code == 1 and message in refused.output, refused.output
        assert "Traceback" not in refused.output and not (tmp_path / f"{name}.onnx").exists()


def test_the_kit_scores_the_file_as_a_text_pipeline(exported):
    scorer = load_scorer(exported)
    assert (scorer.kind.name, scorer.max_length, scorer.label) == ("text-pipeline", 128, "LABEL_0")
    np.testing.assert_allclose(scorer.score(PAIRS).values, LOGITS, atol=1e-4, rtol=0)
    assert load_scorer(ModelOptions(path=str(exported))).kind.name == "text-pipeline"
    with pytest.raises(ModelLoadError, match="fp32 only"):
        load_scorer(exported, precision="int8")
    with pytest.raises(ModelLoadError, match="pass --kind auto"):
        load_scorer(exported, kind="cross-encoder")


def ranked(values: np.ndarray) -> list[int]:
    return sorted(range(len(values)), key=lambda i: -values[i])


def test_the_stand_in_serves_the_file_with_the_same_scores_on_every_route(exported):
    """An empty document is scored as the pair (query, "") on every route, the reference's encoding: the graph
    reads pairs only (the SageMaker route of a model folder scores it as the query alone)."""
    sigmoid = activate(LOGITS, "sigmoid")
    query = REFERENCE[0]["query"]
    rows = [i for i, r in enumerate(REFERENCE) if r["query"] == query]
    docs = [REFERENCE[i]["document"] for i in rows]
    expected = sigmoid[rows]
    with ServerThread(create_app(load_scorer(exported), max_wait_s=0.01)) as server:
        body = {"inputs": [{"text": q, "text_pair": d} for q, d in PAIRS], "parameters": {"truncation": True}}
        sagemaker = requests.post(f"{server.url}/invocations", json=body, timeout=60)
        assert sagemaker.status_code == 200, sagemaker.text
        np.testing.assert_allclose([r["score"] for r in sagemaker.json()], sigmoid, atol=1e-5, rtol=0)
        torchserve = requests.post(f"{server.url}/predictions/model", json=body["inputs"], timeout=60).json()
        np.testing.assert_allclose(torchserve, sigmoid, atol=1e-5, rtol=0)

        tei = requests.post(f"{server.url}/rerank", json={"query": query, "texts": docs, "truncate": True}, timeout=60)
        raw = requests.post(
            f"{server.url}/rerank", json={"query": query, "texts": docs, "raw_scores": True}, timeout=60
        )
        cohere = requests.post(f"{server.url}/v2/rerank", json={"model": "m", "query": query, "documents": docs})
        invoke = requests.post(
            f"{server.url}/model/amazon.rerank-v1:0/invoke", json={"query": query, "documents": docs}
        )
        agent = {
            "queries": [{"textQuery": {"text": query}, "type": "TEXT"}],
            "sources": [{"inlineDocumentSource": {"textDocument": {"text": d}, "type": "TEXT"}} for d in docs],
            "rerankingConfiguration": {"bedrockRerankingConfiguration": {}, "type": "BEDROCK_RERANKING_MODEL"},
        }
        bedrock = requests.post(f"{server.url}/rerank", json=agent, timeout=60)
    for reply, results, key, want in [
        (tei, lambda j: j, "score", expected),
        (raw, lambda j: j, "score", LOGITS[rows]),
        (cohere, lambda j: j["results"], "relevance_score", expected),
        (invoke, lambda j: j["results"], "relevance_score", expected),
        (bedrock, lambda j: j["results"], "relevanceScore", expected),
    ]:
        assert reply.status_code == 200, reply.text
        answer = results(reply.json())
        assert [r["index"] for r in answer] == ranked(want), reply.url
        np.testing.assert_allclose([r[key] for r in answer], want[ranked(want)], atol=1e-4, rtol=0)
