"""Build two tiny random-weight cross-encoder test models: xlmr-tiny-random-head and modernbert-tiny-random-head.

Why: osrerank must serve cross-encoders of other architectures than BERT (XLM-RoBERTa, e.g. the
``BAAI/bge-reranker-*`` family, and ModernBERT, e.g. ``Alibaba-NLP/gte-reranker-modernbert-base``), and no model
weights can be downloaded on the build machines. These folders have the real architectures, tokenizer types, special
token layouts and pair templates, at a tiny size (hidden 64, 2 layers) and with random weights. **Their scores carry
no relevance meaning**: they exist for exactness tests of the serving path (ONNX Runtime + ``tokenizers`` against a
PyTorch reference), like the shared ``minilm-l6-random-head``.

What is built, into ``OUT_DIR/<name>/`` (the Hugging Face folder layout):

- ``tokenizer.json``, ``tokenizer_config.json``, ``special_tokens_map.json``: a tokenizer trained offline with the
  ``tokenizers`` library on the first 2,000 SciFact documents (title + text). XLM-R: SentencePiece-style Unigram,
  4,000 pieces, ``<s>``=0 ``<pad>``=1 ``</s>``=2 ``<unk>``=3 ``<mask>``=3999, pairs as ``<s> A </s></s> B </s>``.
  ModernBERT: byte-level BPE, 4,000 tokens with ``[UNK] [CLS] [SEP] [PAD] [MASK]`` last (as in ModernBERT, where
  they sit at the end of the vocabulary), pairs as ``[CLS] A [SEP] B [SEP]``.
- ``config.json``, ``model.safetensors``: ``XLMRobertaForSequenceClassification`` /
  ``ModernBertForSequenceClassification``, one label, seeded random weights; the classifier's output layer is scaled
  and shifted so that the 27 reference pairs score from -6 to 9.
- ``onnx/model.onnx``: torch.onnx export (TorchScript exporter, opset 17), inputs ``input_ids`` and ``attention_mask``
  (int64, [batch, sequence]; neither architecture uses token types), output ``logits`` ([batch, 1]).
- ``reference_scores.json``: logits of 27 (query, document) pairs computed by PyTorch via transformers.
- ``PROVENANCE.md`` and ``SHA256SUMS.json``.

The build is bit-for-bit reproducible (same files on every run with the same library versions): PyTorch runs on one
thread with deterministic algorithms, the Unigram scores are re-estimated deterministically (the ``tokenizers``
Unigram trainer sums in hash-map order), and every JSON file is written in a fixed key order and format.

Usage::

    python build_test_models.py OUT_DIR [--only xlmr|modernbert] [--corpus SCIFACT_CORPUS_JSONL]

Needs torch, transformers (5.x), tokenizers, onnx and onnxruntime. Takes about 40 s (one thread; mostly Unigram
training).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import onnx
    import torch
    from tokenizers import Tokenizer
    from transformers import PreTrainedModel

MAX_LENGTH = 512
DOCUMENTS = 2000  # the first DOCUMENTS lines of the SciFact corpus train the tokenizers
VOCAB_SIZE = 4000
LOGIT_RANGE = (-6.0, 9.0)  # the reference pairs' logits are mapped onto this range
LOGIT_TOLERANCE = 1e-4
SIGMOID_TOLERANCE = 1e-5
# tests/models/build_test_models.py -> <repo>/../shared/data/beir/scifact (where tests/conftest.py finds shared data)
DEFAULT_CORPUS = Path(__file__).resolve().parent.parent.parent.parent / "shared/data/beir/scifact/corpus.jsonl"

# ----------------------------------------------------------------------------- reference pairs
# The 27 pairs of the shared minilm-l6-random-head/reference_scores.json: tutorial passages, the Berlin example and a
# set of nasty strings, each as document and as query.
US_QUERY = "What is the capital of the United States?"
BERLIN_QUERY = "How many people live in Berlin?"
WASHINGTON = (
    "Washington, D.C. (also known as simply Washington or D.C., and officially as the District of Columbia) is the "
    "capital of the United States. It is a federal district. "
)
US_PASSAGES = [
    "Carson City is the capital city of the American state of Nevada. At the  2010 United States Census, Carson City "
    "had a population of 55,274.",
    "The Commonwealth of the Northern Mariana Islands is a group of islands in the Pacific Ocean that are a political "
    "division controlled by the United States. Its capital is Saipan.",
    "Charlotte Amalie is the capital and largest city of the United States Virgin Islands. It has about 20,000 people. "
    "The city is on the island of Saint Thomas.",
    WASHINGTON,
    "Capital punishment (the death penalty) has existed in the United States since before the United States was a "
    "country. As of 2017, capital punishment is legal in 30 of the 50 states.",
]
BERLIN_PASSAGES = [
    "Berlin had a population of 3,520,031 registered inhabitants in an area of 891.82 square kilometers.",
    "New York City is famous for the Metropolitan Museum of Art.",
]
NASTY = [
    'He said "hi" \\ and left',
    "line1\nline2\r\nline3\ttabbed",
    "control \x01\x02\x1f chars",
    "unicode caf\xe9 na\xefve \u4e2d\u6587 \u0627\u0644\u0639\u0631\u0628\u064a\u0629",
    "emoji \U0001f680\U0001f525 non-BMP \U0001d518\U0001d52b\U0001d526",
    "sep \u2028 and \u2029",
    "",
    "long " * 3000,
    'json-looking {"a": [1, 2]} and ${parameters.inputs}',
    "backslash-n literal \\n and \\t",
]
PAIRS: list[tuple[str, str]] = [
    *((US_QUERY, d) for d in US_PASSAGES),
    *((BERLIN_QUERY, d) for d in BERLIN_PASSAGES),
    *((US_QUERY, s) for s in NASTY),
    *((s, WASHINGTON) for s in NASTY),
]


# ----------------------------------------------------------------------------- model specifications
@dataclass(frozen=True)
class Spec:
    """One test model: its folder name, seed, tokenizer builder and model builder."""

    name: str
    seed: int
    build_tokenizer: Callable[[list[str]], Tokenizer]
    tokenizer_config: dict[str, Any]
    special_tokens: dict[str, str]
    build_model: Callable[[Tokenizer], PreTrainedModel]
    classifier: str  # dotted path of the output nn.Linear that gets scaled
    provenance: str


def _write_json(path: Path, data: Any) -> None:
    """Fixed formatting (as the shared model's files): one-space indent, UTF-8, no trailing newline."""
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")


def read_corpus(corpus: Path, limit: int = DOCUMENTS) -> list[str]:
    """Title and text of the first ``limit`` documents, in file order."""
    texts: list[str] = []
    with corpus.open(encoding="utf-8") as handle:
        for line in handle:
            if len(texts) == limit:
                break
            doc = json.loads(line)
            texts.append(f"{doc.get('title', '')}\n{doc.get('text', '')}".strip())
    if len(texts) < limit:
        raise SystemExit(f"{corpus} has only {len(texts)} documents; {limit} are needed")
    return texts


def _word_counts(tokenizer: Tokenizer, texts: Iterable[str]) -> list[tuple[str, int]]:
    """Pre-tokenized words and their counts, sorted (so that every later loop runs in a fixed order)."""
    pre = tokenizer.pre_tokenizer
    assert pre is not None
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(word for word, _ in pre.pre_tokenize_str(text))
    return sorted(counts.items())


def _rescore_unigram(pieces: list[str], specials: list[str], words: list[tuple[str, int]]) -> list[tuple[str, float]]:
    """Deterministic scores for a fixed piece set: three rounds of hard EM (Viterbi counts -> log frequencies).

    ``tokenizers``' UnigramTrainer sums expected counts in hash-map order, so its scores differ by ~1e-3 from run to
    run (the piece set itself did not change in repeated runs). Starting every piece at the same score and
    re-estimating from Viterbi segmentations in a fixed word order gives the same floats on every run.
    """
    from tokenizers import Tokenizer
    from tokenizers.models import Unigram

    scores = dict.fromkeys(pieces, 0.0)
    unk_id = specials.index("<unk>")
    for _ in range(3):
        vocab = [(s, 0.0) for s in specials] + [(p, scores[p]) for p in pieces]
        model = Tokenizer(Unigram(vocab, unk_id=unk_id, byte_fallback=False))
        encodings = model.encode_batch([[w] for w, _ in words], is_pretokenized=True, add_special_tokens=False)
        counts: Counter[str] = Counter()
        for (_, n), encoding in zip(words, encodings, strict=True):
            for token in encoding.tokens:
                counts[token] += n
        total = sum(counts[p] for p in pieces)
        floor = math.log(0.5 / total)  # unseen pieces: half a count
        scores = {p: math.log(counts[p] / total) if counts[p] else floor for p in pieces}
    return [(p, round(scores[p], 6)) for p in pieces]


def build_xlmr_tokenizer(texts: list[str]) -> Tokenizer:
    """SentencePiece-style Unigram, laid out like XLM-R's: <s> <pad> </s> <unk> first, <mask> last.

    The pipeline is exactly the one transformers 5.x rebuilds for ``XLMRobertaTokenizer`` (no normalizer,
    WhitespaceSplit + Metaspace("▁", prepend always), XLM-R pair template), so ``AutoTokenizer`` and the bare
    ``tokenizers`` file encode identically.
    """
    from tokenizers import AddedToken, Tokenizer, decoders, pre_tokenizers, processors, trainers
    from tokenizers.models import Unigram

    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    pre = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")]
    )
    trained = Tokenizer(Unigram())
    trained.pre_tokenizer = pre
    trainer = trainers.UnigramTrainer(
        vocab_size=VOCAB_SIZE - 1,
        show_progress=False,
        special_tokens=specials,
        unk_token="<unk>",
        shrinking_factor=0.75,
        max_piece_length=16,
        n_sub_iterations=2,
    )
    trained.train_from_iterator(texts, trainer=trainer, length=len(texts))
    learned = json.loads(trained.to_str())["model"]["vocab"]
    pieces = sorted(p for p, _ in learned if p not in specials)
    scored = _rescore_unigram(pieces, specials, _word_counts(trained, texts))
    # Pieces by descending score, ties by text (sentencepiece orders its vocabulary by score too).
    scored.sort(key=lambda item: (-item[1], item[0]))
    vocab = [(s, 0.0) for s in specials] + scored + [("<mask>", 0.0)]
    assert len(vocab) == VOCAB_SIZE, len(vocab)

    tokenizer = Tokenizer(Unigram(vocab, unk_id=3, byte_fallback=False))
    tokenizer.pre_tokenizer = pre
    tokenizer.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    tokenizer.add_special_tokens([AddedToken("<mask>", special=True, normalized=True, lstrip=True)])
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", 0), ("</s>", 2)],
    )
    return tokenizer


def build_modernbert_tokenizer(texts: list[str]) -> Tokenizer:
    """Byte-level BPE as ModernBERT's (OLMo/GPT-NeoX style), special tokens appended after the learned vocabulary."""
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers, pre_tokenizers, processors, trainers
    from tokenizers.models import BPE

    specials = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]
    tokenizer = Tokenizer(BPE())
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE - len(specials),
        show_progress=False,
        special_tokens=[],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(texts, trainer=trainer, length=len(texts))
    assert tokenizer.get_vocab_size() == VOCAB_SIZE - len(specials), tokenizer.get_vocab_size()
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials[:4]])
    tokenizer.add_special_tokens([AddedToken("[MASK]", special=True, normalized=False, lstrip=True)])
    ids = {t: tokenizer.token_to_id(t) for t in specials}
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0",
        pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])],
    )
    return tokenizer


def build_xlmr_model(tokenizer: Tokenizer) -> PreTrainedModel:
    from transformers import XLMRobertaConfig, XLMRobertaForSequenceClassification

    config = XLMRobertaConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=MAX_LENGTH + 2,  # positions start after the padding index 1, as in XLM-R
        type_vocab_size=1,
        initializer_range=0.2,
        pad_token_id=tokenizer.token_to_id("<pad>"),
        bos_token_id=tokenizer.token_to_id("<s>"),
        eos_token_id=tokenizer.token_to_id("</s>"),
        num_labels=1,
        id2label={0: "LABEL_0"},
        label2id={"LABEL_0": 0},
        architectures=["XLMRobertaForSequenceClassification"],
    )
    config._attn_implementation = "eager"
    return XLMRobertaForSequenceClassification(config)


def build_modernbert_model(tokenizer: Tokenizer) -> PreTrainedModel:
    from transformers import ModernBertConfig, ModernBertForSequenceClassification

    ids = {t: tokenizer.token_to_id(t) for t in ("[CLS]", "[SEP]", "[PAD]")}
    config = ModernBertConfig(
        vocab_size=math.ceil(tokenizer.get_vocab_size() / 64) * 64,  # padded to a multiple of 64, as ModernBERT's
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=128,
        max_position_embeddings=MAX_LENGTH,
        global_attn_every_n_layers=2,  # layer 0 global attention, layer 1 local (sliding window)
        local_attention=128,
        initializer_range=0.2,
        pad_token_id=ids["[PAD]"],
        bos_token_id=ids["[CLS]"],
        eos_token_id=ids["[SEP]"],
        cls_token_id=ids["[CLS]"],
        sep_token_id=ids["[SEP]"],
        classifier_pooling="cls",
        num_labels=1,
        id2label={0: "LABEL_0"},
        label2id={"LABEL_0": 0},
        architectures=["ModernBertForSequenceClassification"],
    )
    config._attn_implementation = "eager"
    return ModernBertForSequenceClassification(config)


# ----------------------------------------------------------------------------- build steps
def _encode_pairs(tokenizer: Tokenizer, pairs: list[tuple[str, str]]) -> list[list[int]]:
    """What a ``tokenizers`` user gets: encode_batch of (query, document) with longest-first truncation to 512."""
    tokenizer.enable_truncation(MAX_LENGTH, strategy="longest_first")
    tokenizer.no_padding()
    return [e.ids for e in tokenizer.encode_batch(pairs)]


def _hf_ids(folder: Path, pairs: list[tuple[str, str]]) -> tuple[list[list[int]], list[int]]:
    """transformers' pair encoding: batched (keeps an empty text) and one call per pair (drops an empty text_pair)."""
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(folder)
    batched = hf([q for q, _ in pairs], [d for _, d in pairs], truncation=True, max_length=MAX_LENGTH)
    single = [len(hf(q, d, truncation=True, max_length=MAX_LENGTH)["input_ids"]) for q, d in pairs]
    assert "token_type_ids" not in batched, sorted(batched)
    return batched["input_ids"], single


def _logits(model: PreTrainedModel, ids: list[list[int]]) -> torch.Tensor:
    """One pair at a time, no padding."""
    import torch

    with torch.no_grad():
        rows = [
            model(input_ids=torch.tensor([x]), attention_mask=torch.ones(1, len(x), dtype=torch.long)).logits[0]
            for x in ids
        ]
    return torch.stack(rows)[:, 0]


def _scale_classifier(model: PreTrainedModel, path: str, ids: list[list[int]]) -> tuple[float, float]:
    """Affine map on the output layer so the reference logits span LOGIT_RANGE; returns (scale, raw spread)."""
    import torch

    layer = model.get_submodule(path)
    raw = _logits(model, ids)
    low, high = float(raw.min()), float(raw.max())
    scale = (LOGIT_RANGE[1] - LOGIT_RANGE[0]) / (high - low)
    with torch.no_grad():
        bias = float(layer.bias[0])
        layer.weight.mul_(scale)
        layer.bias.fill_(LOGIT_RANGE[0] - scale * (low - bias))
    return scale, high - low


class _ByName:
    """Wraps the model so that ONNX export calls it with keyword inputs and returns the logits tensor."""

    @staticmethod
    def wrap(model: PreTrainedModel) -> torch.nn.Module:
        import torch

        class Wrapper(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.inner = model

            def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
                return self.inner(input_ids=input_ids, attention_mask=attention_mask).logits

        return Wrapper().eval()


def export_onnx(model: PreTrainedModel, target: Path, pad_id: int) -> None:
    """TorchScript export, opset 17, dynamic batch and sequence.

    The dummy batch is longer than the sliding window and has a padded row, so that no branch the tracer records
    assumes short or unpadded inputs.
    """
    import warnings

    import torch

    ids = torch.full((2, 160), 5 if pad_id != 5 else 6, dtype=torch.long)
    mask = torch.ones(2, 160, dtype=torch.long)
    ids[1, 100:] = pad_id
    mask[1, 100:] = 0
    target.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _ByName.wrap(model),
            (ids, mask),
            str(target),
            input_names=["input_ids", "attention_mask"],
            output_names=["logits"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "sequence"},
                "attention_mask": {0: "batch", 1: "sequence"},
                "logits": {0: "batch"},
            },
            opset_version=17,
            do_constant_folding=True,
            dynamo=False,
        )


def with_token_type_ids(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` that also declares an unused int64 input ``token_type_ids`` [batch, sequence].

    ml-commons 2.12-3.8 feeds token_type_ids to every local ONNX model (opensearch-project/ml-commons#4924).
    """
    import onnx

    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    copy.graph.input.append(
        onnx.helper.make_tensor_value_info("token_type_ids", onnx.TensorProto.INT64, ["batch", "sequence"])
    )
    onnx.checker.check_model(copy)
    return copy


def _ort_logits(session: Any, ids: list[list[int]], pad_id: int, extra: dict[str, Any] | None = None) -> Any:
    import numpy as np

    width = max(len(x) for x in ids)
    input_ids = np.full((len(ids), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(ids), width), dtype=np.int64)
    for row, x in enumerate(ids):
        input_ids[row, : len(x)] = x
        mask[row, : len(x)] = 1
    feed = {"input_ids": input_ids, "attention_mask": mask}
    if extra is not None:
        feed["token_type_ids"] = np.zeros_like(input_ids)
    return session.run(["logits"], feed)[0][:, 0]


def verify(folder: Path, pad_id: int) -> dict[str, float]:
    """ONNX Runtime + ``tokenizers`` against reference_scores.json: one padded batch, one pair at a time, and the
    graph with an extra token_type_ids input. Raises if a logit is off by more than LOGIT_TOLERANCE."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    reference = json.loads((folder / "reference_scores.json").read_text(encoding="utf-8"))
    pairs = [(p["query"], p["document"]) for p in reference["pairs"]]
    expected = np.array([p["logit"] for p in reference["pairs"]])
    ids = _encode_pairs(_load_tokenizer(folder), pairs)
    assert [len(x) for x in ids] == [p["tokens"] for p in reference["pairs"]]
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(str(folder / "onnx" / "model.onnx"), options, providers=["CPUExecutionProvider"])
    names = sorted(i.name for i in session.get_inputs())
    assert names == ["attention_mask", "input_ids"], names
    batch = _ort_logits(session, ids, pad_id)
    single = np.concatenate([_ort_logits(session, [x], pad_id) for x in ids])
    typed_model = with_token_type_ids(onnx.load(str(folder / "onnx" / "model.onnx")))
    typed = ort.InferenceSession(typed_model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    typed_batch = _ort_logits(typed, ids, pad_id, extra={})
    sigmoid = 1 / (1 + np.exp(-batch.astype(np.float64)))
    result = {
        "batch_max_abs_diff": float(np.abs(batch - expected).max()),
        "single_max_abs_diff": float(np.abs(single - expected).max()),
        "sigmoid_max_abs_diff": float(np.abs(sigmoid - [p["sigmoid"] for p in reference["pairs"]]).max()),
        "token_type_ids_graph_vs_plain": float(np.abs(typed_batch - batch).max()),
    }
    if max(result["batch_max_abs_diff"], result["single_max_abs_diff"]) > LOGIT_TOLERANCE or (
        result["token_type_ids_graph_vs_plain"] != 0.0
    ):
        raise SystemExit(f"{folder.name}: ONNX Runtime does not reproduce the reference: {result}")
    return result


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _legacy_metaspace(node: Any) -> Any:
    """Metaspace with ``add_prefix_space`` and without ``split`` (which tokenizers < 0.19 always do)."""
    if isinstance(node, dict):
        node = {k: _legacy_metaspace(v) for k, v in node.items()}
        if node.get("type") == "Metaspace" and node.pop("split", True) is True:
            node["add_prefix_space"] = node.get("prepend_scheme", "always") != "never"
        return node
    if isinstance(node, list):
        return [_legacy_metaspace(v) for v in node]
    return node


def build(spec: Spec, texts: list[str], out: Path) -> dict[str, Any]:
    """Build one model folder from scratch and verify it."""
    import torch

    started = time.perf_counter()
    folder = out / spec.name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)

    tokenizer = spec.build_tokenizer(texts)
    tokenizer.save(str(folder / "tokenizer.json"))  # padding and truncation unset: the caller decides
    # Metaspace spelled as tokenizers < 0.19 reads it too (as the SageMaker tutorial's DLC, transformers
    # 4.37, needs); tokenizers >= 0.19 reads that spelling the same (tests/contract checks the ids)
    spec_json = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    (folder / "tokenizer.json").write_text(
        json.dumps(_legacy_metaspace(spec_json), ensure_ascii=False), encoding="utf-8"
    )
    _write_json(folder / "tokenizer_config.json", spec.tokenizer_config)
    _write_json(folder / "special_tokens_map.json", spec.special_tokens)
    ids = _encode_pairs(_load_tokenizer(folder), PAIRS)
    hf_ids, hf_single_lengths = _hf_ids(folder, PAIRS)
    if hf_ids != ids:
        raise SystemExit(f"{spec.name}: transformers and tokenizers encode the reference pairs differently")

    torch.manual_seed(spec.seed)
    model = spec.build_model(tokenizer).eval()
    scale, spread = _scale_classifier(model, spec.classifier, ids)
    model.save_pretrained(folder, safe_serialization=True)
    pad_id = int(model.config.pad_token_id)
    export_onnx(model, folder / "onnx" / "model.onnx", pad_id)

    # The reference: PyTorch via transformers, reloaded from the saved folder.
    from transformers import AutoModelForSequenceClassification

    reloaded = AutoModelForSequenceClassification.from_pretrained(folder, attn_implementation="eager").eval()
    logits = _logits(reloaded, ids)
    sigmoid = torch.sigmoid(logits)
    _write_json(
        folder / "reference_scores.json",
        {
            "model": spec.name,
            "truncation": MAX_LENGTH,
            "pairs": [
                {"query": q, "document": d, "logit": float(lg), "sigmoid": float(sg), "tokens": len(x)}
                for (q, d), lg, sg, x in zip(PAIRS, logits, sigmoid, ids, strict=True)
            ],
        },
    )
    # Padded batch in PyTorch equals one pair at a time (the attention mask really masks).
    with torch.no_grad():
        width = max(len(x) for x in ids)
        batch_ids = torch.tensor([x + [pad_id] * (width - len(x)) for x in ids])
        batch_mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids])
        padded = reloaded(input_ids=batch_ids, attention_mask=batch_mask).logits[:, 0]
    torch_padding_diff = float((padded - logits).abs().max())

    params = sum(p.numel() for p in model.parameters())
    (folder / "PROVENANCE.md").write_text(
        _reflow(
            spec.provenance.format(
                params=params,
                scale=scale,
                spread=spread,
                low=float(logits.min()),
                high=float(logits.max()),
                versions=_versions(),
                empty=_empty_note(PAIRS, ids, hf_single_lengths),
            )
        ),
        encoding="utf-8",
    )
    checks = verify(folder, pad_id)
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    _write_json(folder / "SHA256SUMS.json", {p.relative_to(folder).as_posix(): _sha256(p) for p in files})
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "parameters": params,
        "classifier_scale": scale,
        "torch_padded_vs_single": torch_padding_diff,
        **checks,
        "sizes": {p.relative_to(folder).as_posix(): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()},
    }


def _reflow(markdown: str, width: int = 118) -> str:
    """Re-wrap paragraphs and bullets (the template's lines grow when values are filled in)."""
    out: list[str] = []
    block: list[str] = []

    def flush() -> None:
        if block:
            first = block[0]
            indent = len(first) - len(first.lstrip()) + (2 if first.lstrip().startswith("- ") else 0)
            text = " ".join(line.strip() for line in block)
            out.append(
                textwrap.fill(
                    text,
                    width,
                    initial_indent=" " * (len(first) - len(first.lstrip())),
                    subsequent_indent=" " * indent,
                    break_long_words=False,
                    break_on_hyphens=False,
                )
            )
            block.clear()

    for line in markdown.splitlines():
        if not line.strip() or line.startswith("#"):
            flush()
            out.append(line)
        elif line.lstrip().startswith("- "):
            flush()
            block.append(line)
        else:
            block.append(line)
    flush()
    return "\n".join(out) + "\n"


def _load_tokenizer(folder: Path) -> Tokenizer:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(folder / "tokenizer.json"))


def _versions() -> str:
    import tokenizers
    import torch
    import transformers

    return f"PyTorch {torch.__version__}, transformers {transformers.__version__}, tokenizers {tokenizers.__version__}"


def _empty_note(pairs: list[tuple[str, str]], ids: list[list[int]], single_lengths: list[int]) -> str:
    """How transformers' one-pair call differs from the tokenizers encoding for an empty text, if it does."""
    differing = [(q, d, len(x), n) for (q, d), x, n in zip(pairs, ids, single_lengths, strict=True) if len(x) != n]
    if not differing:
        return "transformers' one-pair call `tokenizer(query, document)` gives the same ids for every pair."
    lines = [
        "transformers' one-pair call `tokenizer(query, document, truncation=True, max_length=512)` drops an empty "
        "`text_pair` and encodes the query as a single text, without the pair template's trailing separators; the "
        "batched call "
        "`tokenizer([query], [document], ...)` and `tokenizers` keep it. The reference uses the `tokenizers` encoding "
        "(what the serving path does):"
    ]
    lines += [f"  - query {q[:40]!r}, document {d[:40]!r}: {a} tokens (one-pair call: {b})" for q, d, a, b in differing]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- provenance texts
COMMON = """\
- **Scores carry no meaning.** Random weights: this folder is an architecture test, not a relevance model. Use it for
  exactness tests of the serving path (ONNX Runtime + `tokenizers` against the PyTorch reference) and smoke tests of
  loading, padding and truncation; never for quality numbers.
- Built by `tests/models/build_test_models.py` ({versions}); running it again gives the same bytes
  (`SHA256SUMS.json`). PyTorch ran on one thread with `torch.use_deterministic_algorithms(True)`.
- `onnx/model.onnx`: torch.onnx TorchScript exporter (`dynamo=False`), opset 17, eager attention, dynamic `batch` and
  `sequence`. Inputs `input_ids`, `attention_mask` (int64, [batch, sequence]); **no `token_type_ids`** (the
  architecture has none). Output `logits` ([batch, 1]). Padded batches give the same logits as single pairs when
  `attention_mask` is 0 on padding (pad with `pad_token_id` from `config.json`).
- `reference_scores.json`: the 27 (query, document) pairs of `minilm-l6-random-head` (tutorial passages, the Berlin
  example, nasty strings as document and as query) with `logit`, `sigmoid` and token count, computed by PyTorch via
  transformers (not ONNX Runtime), pair-encoded with longest-first truncation to 512 tokens. Logits span
  {low:.2f}…{high:.2f}: the output layer's weights were multiplied by {scale:.4g} (raw spread {spread:.4g}) and its bias
  shifted so the reference pairs map onto -6…9. ONNX Runtime + `tokenizers` (`encode_batch` of (query, document)
  tuples, `enable_truncation(512, strategy="longest_first")`) reproduce the logits one pair at a time and in one padded
  batch: compare logits with tolerance 1e-4 and sigmoid scores with 1e-5.
- Empty texts: {empty}
"""

XLMR_PROVENANCE = (
    """\
# xlmr-tiny-random-head — a tiny XLM-RoBERTa cross-encoder for tests

The architecture of XLM-RoBERTa rerankers such as `BAAI/bge-reranker-base` (`XLMRobertaForSequenceClassification`,
one logit, max 512 tokens) at a tiny size: hidden 64, 2 layers, 4 heads, intermediate 128, 514 position embeddings
(positions start after the padding index, as in XLM-R), one token type; {params:,} parameters,
`torch.manual_seed(20261201)`. `initializer_range` is 0.2, ten times XLM-R's: with 0.02 the `<s>` representation
hardly depends on the input (the 27 reference logits spread over 5e-4, and scaling that to several units would
amplify float32 noise).

- Tokenizer: SentencePiece-style Unigram trained with the `tokenizers` library on the first 2,000 documents of BEIR
  SciFact (`corpus.jsonl`, title + newline + text): `UnigramTrainer(vocab_size=3999, shrinking_factor=0.75,
  max_piece_length=16, n_sub_iterations=2)`; the trainer's piece set is kept and its scores re-estimated by three
  deterministic hard-EM rounds (the trainer's own scores vary by ~1e-3 between runs). 4,000 ids: `<s>`=0, `<pad>`=1,
  `</s>`=2, `<unk>`=3, `<mask>`=3999. No normalizer; pre-tokenizer WhitespaceSplit + Metaspace("▁", prepend always) —
  the pipeline transformers 5.x rebuilds for `XLMRobertaTokenizer`, so `AutoTokenizer` and `tokenizer.json` agree.
  Pairs: `<s> A </s></s> B </s>`, token type ids all 0. Characters never seen in SciFact (CJK, Arabic, emoji) become
  `<unk>` (no byte fallback, as XLM-R). `tokenizer_class` XLMRobertaTokenizerFast, `model_max_length` 512, padding and
  truncation unset in `tokenizer.json` (the caller decides). `pad_token_id` is **1**, not 0.
"""
    + COMMON
)

MODERNBERT_PROVENANCE = (
    """\
# modernbert-tiny-random-head — a tiny ModernBERT cross-encoder for tests

The architecture of ModernBERT rerankers such as `Alibaba-NLP/gte-reranker-modernbert-base`
(`ModernBertForSequenceClassification`, CLS pooling, one logit) at a tiny size: hidden 64, 2 layers (layer 0 global
attention, layer 1 local attention with a 128-token window), 4 heads, intermediate 128 (GLU), rotary positions,
`max_position_embeddings` 512 (ModernBERT declares 8,192; this model is for pairs truncated to 512 as the other
targets); {params:,} parameters, `torch.manual_seed(20261202)`, `initializer_range` 0.2 (ten times ModernBERT's,
so that the `[CLS]` representation depends on the input). Eager attention; no unpadding (transformers 5.x pads;
flash-attention paths unused). Global attention uses RoPE theta 160,000, local attention 10,000, as ModernBERT.

- Tokenizer: byte-level BPE (ModernBERT's is an OLMo/GPT-NeoX-style byte-level BPE) trained with the `tokenizers`
  library on the first 2,000 documents of BEIR SciFact (`corpus.jsonl`, title + newline + text):
  `BpeTrainer(vocab_size=3995)` with the 256-byte alphabet, NFC normalizer, then the special tokens appended as in
  ModernBERT: `[UNK]`=3995, `[CLS]`=3996, `[SEP]`=3997, `[PAD]`=3998, `[MASK]`=3999 (the embedding has 4,032 rows,
  padded to a multiple of 64 like ModernBERT's 50,368). Every character is encodable (byte level). Pairs:
  `[CLS] A [SEP] B [SEP]` (type ids 0/1, unused by the model). `tokenizer_class` PreTrainedTokenizerFast,
  `model_max_length` 512, `model_input_names` input_ids + attention_mask. `pad_token_id` is **3998**, not 0.
"""
    + COMMON
)

SPECS = {
    "xlmr": Spec(
        name="xlmr-tiny-random-head",
        seed=20261201,
        build_tokenizer=build_xlmr_tokenizer,
        tokenizer_config={
            "tokenizer_class": "XLMRobertaTokenizerFast",
            "model_max_length": MAX_LENGTH,
            "model_input_names": ["input_ids", "attention_mask"],
            "add_prefix_space": True,
            "clean_up_tokenization_spaces": False,
            "bos_token": "<s>",
            "eos_token": "</s>",
            "sep_token": "</s>",
            "cls_token": "<s>",
            "unk_token": "<unk>",
            "pad_token": "<pad>",
            "mask_token": "<mask>",
        },
        special_tokens={
            "bos_token": "<s>",
            "eos_token": "</s>",
            "unk_token": "<unk>",
            "sep_token": "</s>",
            "pad_token": "<pad>",
            "cls_token": "<s>",
            "mask_token": "<mask>",
        },
        build_model=build_xlmr_model,
        classifier="classifier.out_proj",
        provenance=XLMR_PROVENANCE,
    ),
    "modernbert": Spec(
        name="modernbert-tiny-random-head",
        seed=20261202,
        build_tokenizer=build_modernbert_tokenizer,
        tokenizer_config={
            "tokenizer_class": "PreTrainedTokenizerFast",
            "model_max_length": MAX_LENGTH,
            "model_input_names": ["input_ids", "attention_mask"],
            "clean_up_tokenization_spaces": True,
            "unk_token": "[UNK]",
            "cls_token": "[CLS]",
            "sep_token": "[SEP]",
            "pad_token": "[PAD]",
            "mask_token": "[MASK]",
        },
        special_tokens={
            "unk_token": "[UNK]",
            "cls_token": "[CLS]",
            "sep_token": "[SEP]",
            "pad_token": "[PAD]",
            "mask_token": "[MASK]",
        },
        build_model=build_modernbert_model,
        classifier="classifier",
        provenance=MODERNBERT_PROVENANCE,
    ),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="where the model folders are written (replaced if present)")
    parser.add_argument("--only", choices=sorted(SPECS), help="build one model only")
    parser.add_argument(
        "--corpus", type=Path, default=DEFAULT_CORPUS, help=f"BEIR SciFact corpus.jsonl (default: {DEFAULT_CORPUS})"
    )
    args = parser.parse_args(argv)
    if not args.corpus.is_file():
        parser.error(f"SciFact corpus not found at {args.corpus}: pass --corpus PATH/TO/scifact/corpus.jsonl")

    # Before tokenizers / torch start their thread pools: one thread everywhere, so float sums run in one order.
    os.environ["RAYON_NUM_THREADS"] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    texts = read_corpus(args.corpus)
    report = {}
    for key in [args.only] if args.only else list(SPECS):
        report[SPECS[key].name] = build(SPECS[key], texts, args.out_dir)
    json.dump(report, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
