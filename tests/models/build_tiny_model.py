"""Build tiny-cross-encoder: a tiny random-weight BERT cross-encoder that the unit tests use from a fresh clone.

Why: the unit tests need a cross-encoder folder with an ONNX graph and PyTorch reference scores. The shared
``minilm-l6-random-head`` (91 MB, in ../shared) is not in the repository; this one is small enough to commit (a few
hundred kB) and is rebuilt from nothing by this script: no network, no model hub, fixed seeds. It has the layout and
the conventions of ``cross-encoder/ms-marco-MiniLM-L-6-v2`` (BertForSequenceClassification, one logit, uncased BERT
WordPiece tokenizer, inputs ``input_ids`` / ``attention_mask`` / ``token_type_ids``) at a tiny size. **Its scores
carry no relevance meaning**: random weights, for exactness and smoke tests of the serving path only.

What is built, into ``OUT_DIR`` (default ``tests/data/tiny-cross-encoder``; replaced if it holds an earlier build):

- ``tokenizer.json``, ``vocab.txt``, ``tokenizer_config.json``, ``special_tokens_map.json``: an uncased BERT
  WordPiece tokenizer (``tokenizers`` library: BertNormalizer lowercase, BertPreTokenizer, WordPiece, BERT pair
  template) whose vocabulary is learned from a small fixed corpus: tests/data/tiny-beir (corpus + queries), the
  OpenSearch reranking tutorial's query and passages, and the English paragraphs below.
- ``config.json``, ``model.safetensors``: ``BertForSequenceClassification``, hidden 32, 2 layers, 2 heads,
  intermediate 64, 128 positions, 2 token types, one label, seeded random weights; the classifier is scaled and
  shifted so that the reference pairs' logits span -6..6.
- ``onnx/model.onnx``: torch.onnx export (TorchScript exporter, opset 17), traced on a padded batch.
- ``reference_scores.json``: logits of 27 (query, document) pairs computed by PyTorch via transformers.
- ``PROVENANCE.md`` and ``SHA256SUMS.json``.

At the end, ONNX Runtime + ``tokenizers`` must reproduce every reference logit within 1e-4 (one pair at a time and
as one padded batch), else the script exits with an error.

The vocabulary is learned by a small WordPiece (BPE-style) trainer in this file rather than by
``tokenizers.trainers.WordPieceTrainer``: the library's trainer breaks ties between equally frequent merges in
hash-map order, so its vocabulary (even the token set) changes from run to run. Everything else is deterministic:
PyTorch runs on one thread with deterministic algorithms and JSON files are written in a fixed format, so a rebuild
with the same library versions gives the same bytes.

Usage::

    python tests/models/build_tiny_model.py [OUT_DIR]

Needs torch, transformers, tokenizers, onnx and onnxruntime; takes a few seconds on one thread.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import shutil
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from tokenizers import Tokenizer
    from transformers import PreTrainedModel

NAME = "tiny-cross-encoder"
SEED = 20261210
MAX_LENGTH = 128
VOCAB_SIZE = 1500  # upper bound: the trainer stops earlier when no pair of symbols is left to merge
HIDDEN, LAYERS, HEADS, INTERMEDIATE = 32, 2, 2, 64
INITIALIZER_RANGE = 0.2  # 10x BERT's, so that the [CLS] representation depends clearly on the input
LOGIT_RANGE = (-6.0, 6.0)  # the reference pairs' logits are mapped onto this range
LOGIT_TOLERANCE = 1e-4
SIGMOID_TOLERANCE = 1e-5
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # ids 0..4

REPO = Path(__file__).resolve().parent.parent.parent
TINY_BEIR = REPO / "tests" / "data" / "tiny-beir"
DEFAULT_OUT = REPO / "tests" / "data" / NAME

# ----------------------------------------------------------------------------- training corpus
#: The OpenSearch reranking tutorial (copied from osrerank/demo.py; including its "beforethe").
TUTORIAL_QUERY = "What is the capital of the United States?"
TUTORIAL_PASSAGES = [
    "Carson City is the capital city of the American state of Nevada.",
    "The Commonwealth of the Northern Mariana Islands is a group of islands in the Pacific Ocean. "
    "Its capital is Saipan.",
    "Washington, D.C. (also known as simply Washington or D.C., and officially as the District of Columbia) "
    "is the capital of the United States. It is a federal district.",
    "Capital punishment (the death penalty) has existed in the United States since beforethe United States "
    "was a country. As of 2017, capital punishment is legal in 30 of the 50 states.",
]

#: Plain English written for this file (no source), so that common words have tokens of their own.
PARAGRAPHS = [
    "A search engine answers a query in two steps. First it finds a few hundred documents that share words with "
    "the query, because that is fast. Then a slower model reads each pair of query and document together and gives "
    "it a score, and the results are sorted again by that score. This second step is called reranking.",
    "The model that reads a pair is a cross-encoder. It sees the query and the passage at the same time, so every "
    "word of one can attend to every word of the other. That makes it more accurate than comparing two separate "
    "vectors, but it also means the work grows with the number of documents and with their length.",
    "Long texts are cut before they reach the model. A pair that has more tokens than the limit loses tokens from "
    "the end of the longer text first, and the special tokens that mark the start and the separation of the two "
    "texts are always kept. Shorter pairs in a batch are padded, and the attention mask tells the model which "
    "positions are real.",
    "The city is built on both banks of a wide river. In the old town the streets are narrow and the houses have "
    "red roofs; the new districts to the north have parks, schools, a hospital and a large train station. About "
    "two million people live there, and many more come every day to work, to study or to visit the museums.",
    "Every country has a capital, where the government meets and the laws are made. Some capitals are the largest "
    "city of their country, others were chosen as a place between older cities or were built for that purpose. "
    "The population of a capital can change quickly when new offices, roads and homes are built.",
    "In the spring the garden is full of flowers: white and yellow in March, blue and purple in April, and red "
    "roses in early summer. Birds sing in the trees before the sun rises, and in the evening the air is warm and "
    "smells of grass. In autumn the leaves turn brown and gold and fall to the ground.",
    "To cook the soup, cut two onions, three carrots and a small piece of ginger, and fry them slowly in oil. Add "
    "water, salt and a handful of lentils, and let it boil for half an hour. Serve it hot with bread, a little "
    "lemon juice and fresh herbs from the market.",
    "The team tested the new version for a week before the release. They measured how long each request took, "
    "how much memory the server used and whether the answers were the same as before. One test failed on a text "
    "with strange characters, so they fixed the bug, wrote a new test and ran everything again.",
    "History is often told through great events: wars, elections, discoveries and disasters. But most of the past "
    "was ordinary life, with people working in fields and shops, raising children, telling stories and writing "
    "letters to friends who lived far away.",
    "The ocean covers most of the surface of the earth. Its water moves in currents that carry heat from the warm "
    "south to the cold north, and its islands are home to animals and plants found nowhere else. Ships have "
    "crossed it for centuries to trade, to fish and to explore.",
    "Numbers, dates and names appear in many questions: how many people live in a place, when a law was passed, "
    "who wrote a book or which river is the longest. A good answer gives the fact and, where it matters, the year "
    "in which it was true, such as 1990, 2010 or 2024. The ten digits are 0, 1, 2, 3, 4, 5, 6, 7, 8 and 9.",
]


def read_jsonl_texts(path: Path) -> list[str]:
    """Title and text of every line of a BEIR JSONL file, in file order."""
    texts = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            texts.append(f"{record.get('title', '')}\n{record.get('text', '')}".strip())
    return texts


def training_texts() -> list[str]:
    return [
        *read_jsonl_texts(TINY_BEIR / "corpus.jsonl"),
        *read_jsonl_texts(TINY_BEIR / "queries.jsonl"),
        TUTORIAL_QUERY,
        *TUTORIAL_PASSAGES,
        *PARAGRAPHS,
    ]


# ----------------------------------------------------------------------------- reference pairs
# The 27 pairs of the shared minilm-l6-random-head/reference_scores.json (copied from it): tutorial passages (with
# the Berlin example of sentence-transformers' docs) and a set of nasty strings, each as document and as query.
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


# ----------------------------------------------------------------------------- tokenizer
def train_wordpiece(words: list[tuple[str, int]], size: int) -> list[str]:
    """A WordPiece vocabulary the way ``tokenizers``' WordPieceTrainer learns one (BPE merges over words split into
    a first character and ``##``-prefixed continuing characters), but deterministic: words in sorted order, ties
    between equally frequent pairs broken by the pair's text. Returns the tokens in id order: the special tokens,
    the alphabet (every character of the words, sorted, then the same with ``##``), then the merges in order."""
    splits = [[word[0], *("##" + c for c in word[1:])] for word, _ in words]
    counts = [n for _, n in words]
    # Every character both word-initial and continuing (as BERT's vocabulary has), so that no word of known
    # characters becomes [UNK].
    characters = sorted({c for word, _ in words for c in word})
    alphabet = [*characters, *("##" + c for c in characters)]
    vocab = [*SPECIALS, *alphabet]
    known = set(vocab)
    while len(vocab) < size:
        pairs: Counter[tuple[str, str]] = Counter()
        for split, n in zip(splits, counts, strict=True):
            for pair in itertools.pairwise(split):
                pairs[pair] += n
        if not pairs:
            break
        (a, b), _ = min(pairs.items(), key=lambda item: (-item[1], item[0]))
        merged = a + b[2:]  # b is always a continuing piece ("##...")
        for split in splits:
            i = 0
            while i < len(split) - 1:
                if split[i] == a and split[i + 1] == b:
                    split[i : i + 2] = [merged]
                i += 1
        if merged not in known:
            vocab.append(merged)
            known.add(merged)
    return vocab


def build_tokenizer(texts: list[str]) -> Tokenizer:
    """Uncased BERT WordPiece, the pipeline of bert-base-uncased's (and ms-marco-MiniLM-L-6-v2's) tokenizer.json."""
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece

    normalizer = normalizers.BertNormalizer(
        clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True
    )
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    words: Counter[str] = Counter()
    for text in texts:
        words.update(word for word, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    tokens = train_wordpiece(sorted(words.items()), VOCAB_SIZE)
    vocab = {token: i for i, token in enumerate(tokens)}

    tokenizer = Tokenizer(
        WordPiece(vocab, unk_token="[UNK]", continuing_subword_prefix="##", max_input_chars_per_word=100)
    )
    tokenizer.normalizer = normalizer
    tokenizer.pre_tokenizer = pre_tokenizer
    tokenizer.decoder = decoders.WordPiece(prefix="##", cleanup=True)
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIALS])
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS]:0 $A:0 [SEP]:0",
        pair="[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return tokenizer


TOKENIZER_CONFIG = {
    "do_lower_case": True,
    "unk_token": "[UNK]",
    "sep_token": "[SEP]",
    "pad_token": "[PAD]",
    "cls_token": "[CLS]",
    "mask_token": "[MASK]",
    "tokenize_chinese_chars": True,
    "strip_accents": None,
    "do_basic_tokenize": True,
    "never_split": None,
    "tokenizer_class": "BertTokenizer",
    "model_max_length": MAX_LENGTH,
}
SPECIAL_TOKENS_MAP = {
    "unk_token": "[UNK]",
    "sep_token": "[SEP]",
    "pad_token": "[PAD]",
    "cls_token": "[CLS]",
    "mask_token": "[MASK]",
}


def load_tokenizer(folder: Path) -> Tokenizer:
    """The serving path's tokenizer: the bare ``tokenizers`` file, longest-first truncation to MAX_LENGTH."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tokenizer.enable_truncation(MAX_LENGTH, strategy="longest_first")
    tokenizer.no_padding()
    return tokenizer


def hf_encode(folder: Path, pairs: list[tuple[str, str]]) -> tuple[list[list[int]], list[list[int]], list[int]]:
    """transformers' pair encoding with the saved tokenizer.json: input ids and token type ids of the batched call
    (which keeps an empty text), and the lengths of one call per pair (which may drop an empty ``text_pair``)."""
    from transformers import BertTokenizerFast

    hf = BertTokenizerFast(tokenizer_file=str(folder / "tokenizer.json"), **TOKENIZER_CONFIG)
    queries, documents = [q for q, _ in pairs], [d for _, d in pairs]
    batched = hf(queries, documents, truncation="longest_first", max_length=MAX_LENGTH)
    single = [len(hf(q, d, truncation="longest_first", max_length=MAX_LENGTH)["input_ids"]) for q, d in pairs]
    from_folder = BertTokenizerFast.from_pretrained(folder)(
        queries, documents, truncation="longest_first", max_length=MAX_LENGTH
    )
    if from_folder["input_ids"] != batched["input_ids"]:
        raise SystemExit("BertTokenizerFast.from_pretrained(folder) and tokenizer_file= encode differently")
    return batched["input_ids"], batched["token_type_ids"], single


# ----------------------------------------------------------------------------- model
def build_model(vocab_size: int) -> PreTrainedModel:
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(
        vocab_size=vocab_size,
        hidden_size=HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        intermediate_size=INTERMEDIATE,
        max_position_embeddings=MAX_LENGTH,
        type_vocab_size=2,
        initializer_range=INITIALIZER_RANGE,
        pad_token_id=0,
        num_labels=1,
        id2label={0: "LABEL_0"},
        label2id={"LABEL_0": 0},
        architectures=["BertForSequenceClassification"],
    )
    config._attn_implementation = "eager"
    return BertForSequenceClassification(config).eval()


def torch_logits(model: PreTrainedModel, ids: list[list[int]], types: list[list[int]]) -> torch.Tensor:
    """One pair at a time, no padding."""
    import torch

    rows = []
    with torch.no_grad():
        for x, t in zip(ids, types, strict=True):
            out = model(
                input_ids=torch.tensor([x]),
                attention_mask=torch.ones(1, len(x), dtype=torch.long),
                token_type_ids=torch.tensor([t]),
            )
            rows.append(out.logits[0, 0])
    return torch.stack(rows)


def padded(ids: list[list[int]], types: list[list[int]]) -> tuple[Any, Any, Any]:
    """int64 numpy arrays (input_ids, attention_mask, token_type_ids), right-padded with [PAD]=0."""
    import numpy as np

    width = max(len(x) for x in ids)
    input_ids = np.zeros((len(ids), width), dtype=np.int64)
    mask = np.zeros((len(ids), width), dtype=np.int64)
    type_ids = np.zeros((len(ids), width), dtype=np.int64)
    for row, (x, t) in enumerate(zip(ids, types, strict=True)):
        input_ids[row, : len(x)], mask[row, : len(x)], type_ids[row, : len(t)] = x, 1, t
    return input_ids, mask, type_ids


def scale_classifier(model: PreTrainedModel, ids: list[list[int]], types: list[list[int]]) -> tuple[float, float]:
    """Affine map on the classifier so the reference logits span LOGIT_RANGE; returns (scale, raw spread)."""
    import torch

    raw = torch_logits(model, ids, types)
    low, high = float(raw.min()), float(raw.max())
    scale = (LOGIT_RANGE[1] - LOGIT_RANGE[0]) / (high - low)
    layer = model.classifier
    with torch.no_grad():
        bias = float(layer.bias[0])
        layer.weight.mul_(scale)
        layer.bias.fill_(LOGIT_RANGE[0] - scale * (low - bias))
    return scale, high - low


def export_onnx(model: PreTrainedModel, target: Path, tokenizer: Tokenizer) -> None:
    """TorchScript exporter, opset 17, dynamic batch and sequence, traced on a padded batch of two pairs of
    different lengths (so the graph keeps the attention mask's effect and no branch assumes unpadded input)."""
    import warnings

    import torch

    class Logits(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits

    encodings = [tokenizer.encode(TUTORIAL_QUERY, p) for p in (TUTORIAL_PASSAGES[2], TUTORIAL_PASSAGES[0])]
    assert len(encodings[0].ids) != len(encodings[1].ids)
    dummy = tuple(torch.from_numpy(a) for a in padded([e.ids for e in encodings], [e.type_ids for e in encodings]))
    names = ["input_ids", "attention_mask", "token_type_ids"]
    target.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Logits().eval(),
            dummy,
            str(target),
            input_names=names,
            output_names=["logits"],
            dynamic_axes={**{n: {0: "batch", 1: "sequence"} for n in names}, "logits": {0: "batch"}},
            opset_version=17,
            do_constant_folding=True,
            dynamo=False,
        )


# ----------------------------------------------------------------------------- verification
def verify(folder: Path) -> dict[str, float]:
    """ONNX Runtime + ``tokenizers`` against reference_scores.json, one pair at a time and as one padded batch."""
    import numpy as np
    import onnxruntime as ort

    reference = json.loads((folder / "reference_scores.json").read_text(encoding="utf-8"))
    pairs = [(p["query"], p["document"]) for p in reference["pairs"]]
    expected = np.array([p["logit"] for p in reference["pairs"]], dtype=np.float64)
    expected_sigmoid = np.array([p["sigmoid"] for p in reference["pairs"]], dtype=np.float64)
    encodings = load_tokenizer(folder).encode_batch(pairs)
    ids, types = [e.ids for e in encodings], [e.type_ids for e in encodings]
    lengths = [len(x) for x in ids]
    if lengths != [p["tokens"] for p in reference["pairs"]]:
        raise SystemExit(f"tokenizers' token counts differ from the reference: {lengths}")

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(folder / "onnx" / "model.onnx"), options, providers=["CPUExecutionProvider"])
    inputs = {i.name: i for i in session.get_inputs()}
    if sorted(inputs) != ["attention_mask", "input_ids", "token_type_ids"]:
        raise SystemExit(f"unexpected ONNX inputs {sorted(inputs)}")
    names = ["input_ids", "attention_mask", "token_type_ids"]

    def run(rows_ids: list[list[int]], rows_types: list[list[int]]) -> Any:
        feed = dict(zip(names, padded(rows_ids, rows_types), strict=True))
        return session.run(["logits"], feed)[0][:, 0].astype(np.float64)

    batch = run(ids, types)
    single = np.array([run([x], [t])[0] for x, t in zip(ids, types, strict=True)])
    sigmoid = 1.0 / (1.0 + np.exp(-batch))
    result = {
        "ort_single_max_abs_logit_diff": float(np.abs(single - expected).max()),
        "ort_batch_max_abs_logit_diff": float(np.abs(batch - expected).max()),
        "ort_batch_max_abs_sigmoid_diff": float(np.abs(sigmoid - expected_sigmoid).max()),
    }
    if (
        max(result["ort_single_max_abs_logit_diff"], result["ort_batch_max_abs_logit_diff"]) > LOGIT_TOLERANCE
        or result["ort_batch_max_abs_sigmoid_diff"] > SIGMOID_TOLERANCE
    ):
        raise SystemExit(f"ONNX Runtime + tokenizers do not reproduce the reference scores: {result}")
    return result


# ----------------------------------------------------------------------------- files
def write_json(path: Path, data: Any) -> None:
    """Fixed formatting (as the shared model's files): one-space indent, UTF-8, no trailing newline."""
    path.write_text(json.dumps(data, indent=1, ensure_ascii=False), encoding="utf-8")


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def versions() -> str:
    import onnx
    import tokenizers
    import torch
    import transformers

    return (
        f"PyTorch {torch.__version__}, transformers {transformers.__version__}, tokenizers {tokenizers.__version__}, "
        f"onnx {onnx.__version__}"
    )


PROVENANCE = """\
# tiny-cross-encoder — a tiny BERT cross-encoder for unit tests

**The scores carry no relevance meaning.** Random weights: this folder exists so that the unit tests run from a fresh
clone (without ../shared) with a real cross-encoder folder — the layout and conventions of
`cross-encoder/ms-marco-MiniLM-L-6-v2` at a tiny size. Use it for exactness tests of the serving path (ONNX Runtime +
`tokenizers` against the PyTorch reference) and for smoke tests of loading, padding and truncation; never for
quality numbers or speed figures.

Rebuild with `python tests/models/build_tiny_model.py tests/data/tiny-cross-encoder` (replaces the folder; the same
bytes with the same library versions, see `SHA256SUMS.json`).

Built by `tests/models/build_tiny_model.py` with {versions}; no network, no model hub. PyTorch ran on one thread with
`torch.use_deterministic_algorithms(True)`.

- Model: `BertForSequenceClassification`, one logit, hidden 32, 2 layers, 2 heads, intermediate 64,
  `max_position_embeddings` 128, 2 token types, vocabulary {vocab_size}; {params:,} parameters,
  `torch.manual_seed({seed})`, `initializer_range` {init} (ten times BERT's, so that the `[CLS]` representation depends
  on the input). The classifier's weights were multiplied by {scale:.4g} (raw spread of the reference logits
  {spread:.4g}) and its bias shifted so the reference logits span {low:.2f}…{high:.2f}. `config.json` +
  `model.safetensors` (transformers `save_pretrained`).
- Tokenizer: uncased BERT WordPiece, the pipeline of bert-base-uncased's `tokenizer.json` (BertNormalizer with
  lowercase, accents stripped and Chinese characters split; BertPreTokenizer; WordPiece with `##` continuing
  pieces, 100 characters per word at most; pairs `[CLS] A [SEP] B [SEP]` with token type ids 0 then 1).
  `[PAD]`=0, `[UNK]`=1, `[CLS]`=2, `[SEP]`=3, `[MASK]`=4, then the alphabet and the learned pieces ({vocab_size}
  tokens; `vocab.txt` lists them in id order). The vocabulary was learned by BPE-style WordPiece merges (as
  `tokenizers`' WordPieceTrainer, but with ties broken by text, so that it is reproducible) on a small fixed corpus:
  `tests/data/tiny-beir` corpus.jsonl and queries.jsonl (sha256 {beir_corpus} and {beir_queries}), the query and
  four passages of the OpenSearch reranking tutorial, and {paragraphs} paragraphs of plain English written for the
  script. Words with characters outside that corpus (CJK, Arabic, emoji, mathematical letters) become
  `[UNK]`; accented letters lose their accents in the normalizer. `tokenizer.json` has padding and truncation
  null, as the real ms-marco-MiniLM-L-6-v2 file: the caller decides (truncate pairs to 128 tokens, longest
  first). `tokenizer_config.json`: `BertTokenizer`, `model_max_length` 128, `do_lower_case` true.
- `onnx/model.onnx`: torch.onnx TorchScript exporter (`dynamo=False`), opset 17, eager attention, traced on a padded
  batch of two pairs of different lengths. Inputs `input_ids`, `attention_mask`, `token_type_ids` (int64, [batch,
  sequence], dynamic axes); output `logits` ([batch, 1]). Padded batches give the same logits as single pairs when
  `attention_mask` is 0 on padding (pad with `[PAD]`=0).
- `reference_scores.json`: the 27 (query, document) pairs of the shared `minilm-l6-random-head` (tutorial passages,
  the Berlin example, nasty strings — quotes, backslashes, CR/LF/tab, control characters, non-BMP, U+2028/2029,
  empty, 15,000 characters, JSON-looking text — as document and as query) with `logit`, `sigmoid` and token count,
  computed by PyTorch via transformers (`BertTokenizerFast` on the saved `tokenizer.json`, batched pair encoding,
  longest-first truncation to 128; not ONNX Runtime). ONNX Runtime + `tokenizers` (`enable_truncation(128,
  strategy="longest_first")`, pair encoding) reproduce the logits to within {ort_diff:.1e}, one pair at a time and
  in one padded batch (checked by the build): compare logits with tolerance 1e-4 and sigmoid scores with 1e-5.
- Empty texts: {empty}
- `SHA256SUMS.json`: checksums of the other files.
"""


def reflow(markdown: str, width: int = 118) -> str:
    """Re-wrap paragraphs and bullets (the template's lines grow when values are filled in)."""
    out: list[str] = []
    block: list[str] = []

    def flush() -> None:
        if block:
            first = block[0]
            indent = len(first) - len(first.lstrip())
            text = " ".join(line.strip() for line in block)
            out.append(
                textwrap.fill(
                    text,
                    width,
                    initial_indent=" " * indent,
                    subsequent_indent=" " * (indent + (2 if first.lstrip().startswith("- ") else 0)),
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


def empty_note(pairs: list[tuple[str, str]], ids: list[list[int]], single_lengths: list[int]) -> str:
    differing = [(q, d, len(x), n) for (q, d), x, n in zip(pairs, ids, single_lengths, strict=True) if len(x) != n]
    if not differing:
        return "transformers' one-pair call `tokenizer(query, document)` gives the same ids as the batched call."
    listed = "; ".join(
        f"query {q[:30]!r} with document {d[:30]!r}: {a} tokens (one-pair call: {b})" for q, d, a, b in differing
    )
    return (
        "transformers' one-pair call `tokenizer(query, document)` drops an empty document and encodes the query "
        "alone, without the pair's second `[SEP]`; the batched call `tokenizer([query], [document])` and `tokenizers` "
        f"keep it, and the reference uses that encoding (what the serving path does): {listed}."
    )


def prepare(out: Path) -> None:
    """An empty output folder; an existing one is replaced only if it holds an earlier build (or nothing)."""
    if out.exists():
        reference = out / "reference_scores.json"
        ours = reference.is_file() and json.loads(reference.read_text(encoding="utf-8")).get("model") == NAME
        if any(out.iterdir()) and not ours:
            raise SystemExit(f"{out} exists and does not hold a {NAME} build: refusing to replace it")
        shutil.rmtree(out)
    out.mkdir(parents=True)


def build(out: Path) -> dict[str, Any]:
    import torch

    started = time.perf_counter()
    prepare(out)

    texts = training_texts()
    tokenizer = build_tokenizer(texts)
    tokenizer.save(str(out / "tokenizer.json"))  # padding and truncation null: the caller decides
    vocab = sorted(tokenizer.get_vocab(with_added_tokens=True).items(), key=lambda item: item[1])
    assert [i for _, i in vocab] == list(range(len(vocab)))
    (out / "vocab.txt").write_text("".join(f"{t}\n" for t, _ in vocab), encoding="utf-8")
    write_json(out / "tokenizer_config.json", TOKENIZER_CONFIG)
    write_json(out / "special_tokens_map.json", SPECIAL_TOKENS_MAP)

    ids, types, single_lengths = hf_encode(out, PAIRS)
    served = load_tokenizer(out).encode_batch(PAIRS)
    if ids != [e.ids for e in served] or types != [e.type_ids for e in served]:
        raise SystemExit("transformers and tokenizers encode the reference pairs differently")

    torch.manual_seed(SEED)
    model = build_model(len(vocab))
    scale, spread = scale_classifier(model, ids, types)
    model.save_pretrained(out, safe_serialization=True)
    export_onnx(model, out / "onnx" / "model.onnx", load_tokenizer(out))

    # The reference: PyTorch via transformers, the model reloaded from the saved folder.
    from transformers import BertForSequenceClassification

    reloaded = BertForSequenceClassification.from_pretrained(out, attn_implementation="eager").eval()
    logits = torch_logits(reloaded, ids, types)
    sigmoid = torch.sigmoid(logits)
    write_json(
        out / "reference_scores.json",
        {
            "model": NAME,
            "truncation": MAX_LENGTH,
            "pairs": [
                {"query": q, "document": d, "logit": float(lg), "sigmoid": float(sg), "tokens": len(x)}
                for (q, d), lg, sg, x in zip(PAIRS, logits, sigmoid, ids, strict=True)
            ],
        },
    )
    with torch.no_grad():  # the padded batch in PyTorch equals one pair at a time: the mask really masks
        batch = reloaded(
            **{
                k: torch.from_numpy(v)
                for k, v in zip(["input_ids", "attention_mask", "token_type_ids"], padded(ids, types), strict=True)
            }
        ).logits[:, 0]
    torch_padded_diff = float((batch - logits).abs().max())

    checks = verify(out)
    params = sum(p.numel() for p in reloaded.parameters())
    (out / "PROVENANCE.md").write_text(
        reflow(
            PROVENANCE.format(
                versions=versions(),
                vocab_size=len(vocab),
                params=params,
                seed=SEED,
                init=INITIALIZER_RANGE,
                scale=scale,
                spread=spread,
                low=float(logits.min()),
                high=float(logits.max()),
                beir_corpus=sha256(TINY_BEIR / "corpus.jsonl")[:12],
                beir_queries=sha256(TINY_BEIR / "queries.jsonl")[:12],
                paragraphs=len(PARAGRAPHS),
                ort_diff=max(checks["ort_single_max_abs_logit_diff"], checks["ort_batch_max_abs_logit_diff"], 1e-7),
                empty=empty_note(PAIRS, ids, single_lengths),
            )
        ),
        encoding="utf-8",
    )
    files = sorted(p for p in out.rglob("*") if p.is_file())
    write_json(out / "SHA256SUMS.json", {p.relative_to(out).as_posix(): sha256(p) for p in files})
    sizes = {p.relative_to(out).as_posix(): p.stat().st_size for p in sorted(out.rglob("*")) if p.is_file()}
    return {
        "folder": str(out),
        "seconds": round(time.perf_counter() - started, 1),
        "vocab_size": len(vocab),
        "parameters": params,
        "classifier_scale": scale,
        "raw_spread": spread,
        "logit_range": [float(logits.min()), float(logits.max())],
        "torch_padded_vs_single_max_abs_diff": torch_padded_diff,
        **checks,
        "sizes": sizes,
        "total_bytes": sum(sizes.values()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "out_dir", type=Path, nargs="?", default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})"
    )
    args = parser.parse_args(argv)
    # Before tokenizers / torch / onnxruntime start thread pools: one thread everywhere, so sums run in one order.
    os.environ["RAYON_NUM_THREADS"] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    json.dump(build(args.out_dir.resolve()), sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
