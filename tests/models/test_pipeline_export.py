"""The text pipeline (``osrerank export``) of the shared MiniLM test model and the XLM-R and ModernBERT test models
(built by build_test_models.py): the graph's token ids are the folder tokenizer's, on the reference pairs and on
SciFact abstracts, and its logits PyTorch's, batched and one pair at a time."""

from __future__ import annotations

import json

import numpy as np
import pytest

from osrerank.pipeline_export import INPUTS, export_pipeline
from osrerank.scorer import load_scorer

from ..conftest import SCIFACT
from ..text_pipeline_graphs import ids_session, session

ort = pytest.importorskip("onnxruntime")
ox = pytest.importorskip("onnxruntime_extensions")

MODELS = ("minilm", "xlmr", "modernbert")
#: The issue's nasty texts beyond the reference pairs': NUL (alone, inside, repeated, at the ends), right-to-left
#: text with bidi controls, 20,000 characters (words, and one word), emoji sequences (ZWJ, flags, skin tones),
#: quotes and backslashes.
NASTY = [
    "nul\x00inside",
    "\x00",
    "\x00\x00 two at the start, one at the end\x00",
    "שלום עולם \u200fמה שלומך\u200e? \u202eRTL override\u202c مرحبا بالعالم",
    "capital " * 2500,
    "x" * 20000,
    "👨\u200d👩\u200d👧 family 🇩🇪🇺🇸 flags 👍🏽 skin 🏳️\u200d🌈",
    "quotes \"double\" 'single' „low“ «guillemets» `back`",
    "back\\slash \\n \\\\ \\u0000 C:\\path\\to",
]
WASHINGTON = "Washington, D.C. is the capital of the United States."
NASTY_PAIRS = [("What is the capital of the United States?", t) for t in NASTY] + [(t, WASHINGTON) for t in NASTY]
NASTY_PAIRS += [("capital " * 2500, "x" * 20000), ("\x00", "\x00")]


@pytest.fixture(scope="module")
def folders(test_model_dir, arch_models):
    return {"minilm": test_model_dir, **arch_models}


def reference(folder):
    rows = json.loads((folder / "reference_scores.json").read_text())["pairs"]
    return [(r["query"], r["document"]) for r in rows], np.array([r["logit"] for r in rows])


@pytest.mark.parametrize("name", MODELS)
def test_logits_equal_pytorch_batched_and_one_pair_at_a_time(name, folders, tmp_path):
    pairs, logits = reference(folders[name])
    result = export_pipeline(folders[name], tmp_path / f"{name}.onnx")
    assert result.tokenizer == {"minilm": "WordPiece", "xlmr": "Unigram", "modernbert": "BPE"}[name]
    run = session(result.path)
    batch = {"first_input": np.array([q for q, _ in pairs]), "second_input": np.array([d for _, d in pairs])}
    np.testing.assert_allclose(run.run(None, batch)[0], logits, atol=1e-4, rtol=0)
    for (q, d), want in zip(pairs, logits, strict=True):
        alone = run.run(None, {"first_input": np.array([q]), "second_input": np.array([d])})[0]
        assert abs(float(alone[0]) - want) < 1e-4, (q[:40], d[:40])
    np.testing.assert_allclose(load_scorer(result.path).score(pairs).values, logits, atol=1e-4, rtol=0)


def pytorch_logits(folder, pairs):
    """PyTorch's logits (transformers, the folder's model.safetensors), one pair at a time, pairs encoded by the
    folder's tokenizer cut longest_first to 512 tokens as build_test_models.py encodes its reference; for the MiniLM
    test model, which has ONNX weights only, the kit's scorer (``tokenizers`` + ONNX Runtime on its onnx/model.onnx,
    within 2e-5 of PyTorch on its reference: PROVENANCE.md)."""
    if not (folder / "model.safetensors").exists():
        return load_scorer(folder).score(pairs).values
    torch = pytest.importorskip("torch")
    from tokenizers import Tokenizer
    from transformers import AutoModelForSequenceClassification

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.enable_truncation(512, strategy="longest_first")
    tokenizer.no_padding()
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        return np.array(
            [float(model(input_ids=torch.tensor([e.ids])).logits[0, 0]) for e in tokenizer.encode_batch(pairs)]
        )


@pytest.mark.parametrize("name", MODELS)
def test_nasty_texts_equal_pytorch_batched_and_one_pair_at_a_time(name, folders, tmp_path):
    """NUL, right-to-left text, 20,000 characters, emoji, quotes and backslashes, as query and as document. The
    arrays hold Python objects: ONNX Runtime reads a numpy str array's texts only up to a NUL (and numpy drops
    trailing NULs itself)."""
    want = pytorch_logits(folders[name], NASTY_PAIRS)
    run = session(export_pipeline(folders[name], tmp_path / f"{name}.onnx").path)

    def feed(pairs):
        return {name: np.array([p[k] for p in pairs], dtype=object) for k, name in enumerate(INPUTS)}

    np.testing.assert_allclose(run.run(None, feed(NASTY_PAIRS))[0], want, atol=1e-4, rtol=0)
    for pair, logit in zip(NASTY_PAIRS, want, strict=True):
        alone = run.run(None, feed([pair]))[0]
        assert abs(float(alone[0]) - logit) < 1e-4, (pair[0][:40], pair[1][:40])


@pytest.mark.parametrize("name", MODELS)
def test_token_ids_equal_the_folder_tokenizers_on_the_reference_texts(name, folders, tmp_path):
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folders[name] / "tokenizer.json"))
    ids = ids_session(folders[name], tmp_path)
    pairs, _ = reference(folders[name])
    for text in sorted({t for pair in pairs for t in pair} | set(NASTY)):
        assert ids(text) == tokenizer.encode(text, add_special_tokens=False).ids, repr(text[:80])


@pytest.mark.parametrize("name", MODELS)
def test_token_ids_on_scifact_abstracts(name, folders, tmp_path):
    """WordPiece and byte-level BPE: every abstract alike. Unigram: SentencePiece breaks exact score ties the other
    way ('000' is '0','00' in tokenizers and '00','0' in SentencePiece): an abstract may differ there only."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folders[name] / "tokenizer.json"))
    ids = ids_session(folders[name], tmp_path)
    with (SCIFACT / "corpus.jsonl").open() as lines:
        texts = [f"{row['title']} {row['text']}" for row in map(json.loads, lines)][:300]
    scores = {}
    if name == "xlmr":
        scores = dict(
            enumerate(s for _, s in json.loads((folders[name] / "tokenizer.json").read_text())["model"]["vocab"])
        )
    differ = []
    for text in texts:
        want, got = tokenizer.encode(text, add_special_tokens=False).ids, ids(text)
        if want != got:
            differ.append(text[:60])
            assert scores and abs(sum(scores[i] for i in want) - sum(scores[i] for i in got)) < 1e-3, text[:80]
    assert len(differ) <= (len(texts) // 50 if name == "xlmr" else 0), differ
