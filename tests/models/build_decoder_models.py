"""Build two tiny random-weight decoder (LLM) rerankers: qwen3-reranker-tiny and bge-gemma-tiny.

Why: besides cross-encoders with a classification head, osrerank has to serve rerankers that are causal language
models scored through the logits of their next token: ``Qwen/Qwen3-Reranker-0.6B`` (``Qwen3ForCausalLM``, score =
sigmoid(logit("yes") - logit("no"))) and ``BAAI/bge-reranker-v2-gemma`` (``GemmaForCausalLM``, score =
sigmoid(logit("Yes"))). No model weights can be downloaded on the build machines, so these folders have the real
architectures, tokenizer pipelines, special tokens and prompt formats at a tiny size (hidden 64, 2 layers) with
random weights. **Their scores carry no relevance meaning**: they exist for exactness tests of the serving path
against a PyTorch reference, like ``build_test_models.py``'s XLM-R and ModernBERT folders.

What is built, into ``OUT_DIR/<name>/`` (the Hugging Face folder layout):

- ``tokenizer.json``, ``tokenizer_config.json``, ``special_tokens_map.json``: a BPE tokenizer trained offline with
  the ``tokenizers`` library on a small fixed corpus (tests/data/tiny-beir, the OpenSearch tutorial's query and
  passages, the format's own prompt texts and the English paragraphs below). Qwen3: byte-level BPE with the Qwen2
  pre-tokenizer regex and NFC (the pipeline transformers 5 rebuilds for ``Qwen2Tokenizer``), added tokens
  ``<|endoftext|> <|im_start|> <|im_end|> <think> </think>`` after the learned vocabulary. Gemma: SentencePiece-style
  BPE with byte fallback (normalizer " " -> "▁", no dummy prefix, ``<0x00>``..``<0xFF>`` byte pieces; the pipeline
  transformers 5 rebuilds for ``GemmaTokenizer``), ``<pad>``=0 ``<eos>``=1 ``<bos>``=2 ``<unk>``=3 ``<mask>``=4 as
  in Gemma. "yes", "no" and "Yes" are single tokens in both.
- ``config.json``, ``generation_config.json``, ``model.safetensors``: ``Qwen3ForCausalLM`` / ``GemmaForCausalLM``
  (tied embeddings as the real models), seeded random weights; the final norm's gain is set so that the reference
  pairs' raw scores have mean 0 and span 10 units. ``config.json`` also carries ``_name_or_path`` = the real hub id
  (transformers 5 no longer writes that key, but a file that has it loads fine).
- Sentence Transformers files (``modules.json``, ``sentence_bert_config.json``, ``config_sentence_transformers.json``,
  ``1_LogitScore/config.json``, ``chat_template.jinja``): the CrossEncoder = Transformer(text-generation) +
  LogitScore layout of sentence-transformers >= 5.4, so that ``CrossEncoder(folder).predict`` scores the same
  prompt (used below as a cross-check).
- ``reference_scores.json``: raw score and sigmoid of 27 (query, document) pairs, computed one pair at a time (no
  padding) by PyTorch via transformers, with the input ids built exactly as the real models' own code builds them
  (max_length 512).
- ``PROVENANCE.md`` and ``SHA256SUMS.json``.

Checks (the script exits with an error if one fails): transformers' tokenizer and the bare ``tokenizers`` file give
the same input ids for every reference pair; "yes", "no" and "Yes" are single tokens; sigmoid(yes - no) equals the
Qwen3 card's softmax([no, yes])[yes]; a left-padded batch gives the same raw scores as one pair at a time (within
1e-4, with and without position ids); and, if sentence-transformers is installed,
``CrossEncoder(folder, max_length=512).predict`` reproduces the raw scores (within 1e-4) of all 27 pairs for Qwen3
and of the 25 pairs the bge recipe does not truncate for Gemma.

Everything is deterministic: PyTorch runs on one thread with deterministic algorithms, the ``tokenizers`` BPE
trainer runs on one thread, and JSON files are written in a fixed format, so a rebuild with the same library
versions gives the same bytes.

Usage::

    python tests/models/build_decoder_models.py OUT_DIR [--only qwen3|gemma] [--no-st-check]

Needs torch, transformers (5.x) and tokenizers; sentence-transformers (>= 5.4) for the optional cross-check.
Takes about 10 s on one thread (both models, sentence-transformers check included).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from tokenizers import Tokenizer
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

MAX_LENGTH = 512
RAW_SPREAD = 10.0  # the reference pairs' raw scores span this many units, with mean 0
RAW_TOLERANCE = 1e-4
HIDDEN, LAYERS, HEADS, KV_HEADS, HEAD_DIM, INTERMEDIATE = 64, 2, 4, 2, 16, 128
MAX_POSITIONS = 1024  # >= 512 + the Gemma prompt (the bge recipe appends the prompt after truncating to 512)
INITIALIZER_RANGE = 0.1  # 5x the real models': with 0.02 the last position hardly depends on the input (raw spread
# 0.04 for Gemma); with 0.2 Gemma's RoPE rounding makes left-padded rows differ by > 1e-4

REPO = Path(__file__).resolve().parent.parent.parent
TINY_BEIR = REPO / "tests" / "data" / "tiny-beir"

# ----------------------------------------------------------------------------- the two formats, as the models' code
#: Qwen/Qwen3-Reranker-0.6B model card ("Transformers Usage"): format_instruction, prefix, suffix, default task.
QWEN3_INSTRUCTION = "Given a web search query, retrieve relevant passages that answer the query"
QWEN3_PREFIX = (
    "<|im_start|>system\nJudge whether the Document meets the requirements based on the Query and the Instruct "
    'provided. Note that the answer can only be "yes" or "no".<|im_end|>\n<|im_start|>user\n'
)
QWEN3_SUFFIX = "<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"


def qwen3_text(query: str, document: str, instruction: str = QWEN3_INSTRUCTION) -> str:
    return f"<Instruct>: {instruction}\n<Query>: {query}\n<Document>: {document}"


#: BAAI/bge-reranker-v2-gemma model card ("For LLM-based reranker"): get_inputs' default prompt and separator.
BGE_PROMPT = (
    "Given a query A and a passage B, determine whether the passage contains an answer to the query by providing a "
    "prediction of either 'Yes' or 'No'."
)
BGE_SEP = "\n"

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

#: Plain English written for this file (no source), so that common words and the answer words get tokens of their own.
PARAGRAPHS = [
    "A language model can also judge relevance. It reads an instruction, a query and a document, and is asked "
    "whether the document answers the query. The answer is a single word: yes or no. The model does not have to "
    "write that word; the reranker only looks at how likely the next token would be yes, and how likely it would "
    "be no, and turns the difference into a score.",
    "Yes. No. Yes, it does. No, it does not. Is the passage relevant? Yes. Does it answer the question? No.\n"
    "yes\nno\nYes\nNo\nyes\nno\nYes\nNo\nyes\nno\nYes\nNo\nyes\nno\nYes\nNo\n",
    "Some rerankers put the query first and the passage second, each behind a short label such as A and B, and end "
    "with a question for the model. Others wrap everything in a chat: a system message with the rules, a user "
    "message with the task, and the start of the assistant's answer, so that the very next token is the verdict.",
    "The river runs through the middle of the town, under seven old bridges. On market days the square in front "
    "of the town hall is full of stalls selling cheese, bread, apples and flowers, and people stand in the sun "
    "talking about the weather, the harvest and the news from the capital.",
    "When a text is too long, the tokenizer keeps the beginning and drops the rest. A query may use at most three "
    "quarters of the budget, and the passage fills what is left. Padding goes on the left for these models, so "
    "that the last position of every row in a batch is a real token and not a pad.",
    "In the winter the lake freezes, and children skate on it after school while their parents watch from the "
    "shore with cups of hot tea. In summer the same lake is warm enough to swim in, and small boats with white "
    "sails cross it from one village to the next.",
    "The library opens at nine in the morning and closes at eight in the evening. Students come to read, to write "
    "their papers and to meet friends; older visitors read the newspapers, and on Saturdays there is a reading hour "
    "for young children with stories about animals, ships and faraway countries.",
    "A good test uses strange inputs on purpose: quotes and backslashes, tabs and line breaks, control characters, "
    "letters from other scripts, emoji, an empty string and a very long text. If the scores of a padded batch "
    "match the scores of single pairs, the attention mask is doing its job.",
]


def read_jsonl_texts(path: Path) -> list[str]:
    """Title and text of every line of a BEIR JSONL file, in file order."""
    texts = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            texts.append(f"{record.get('title', '')}\n{record.get('text', '')}".strip())
    return texts


def common_texts() -> list[str]:
    return [
        *read_jsonl_texts(TINY_BEIR / "corpus.jsonl"),
        *read_jsonl_texts(TINY_BEIR / "queries.jsonl"),
        TUTORIAL_QUERY,
        *TUTORIAL_PASSAGES,
        *PARAGRAPHS,
    ]


# ----------------------------------------------------------------------------- reference pairs
# The 27 pairs of tests/models/build_tiny_model.py (copied from it): tutorial passages (with the Berlin example of
# sentence-transformers' docs) and a set of nasty strings, each as document and as query.
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


# ----------------------------------------------------------------------------- tokenizers
#: transformers 5's Qwen2Tokenizer PRETOKENIZE_REGEX.
QWEN2_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"""
    r"""|\s*[\r\n]+|\s+(?!\S)|\s+"""
)
QWEN3_VOCAB = 2000  # learned byte-level BPE tokens (256 bytes + merges); the added tokens come after
QWEN3_ADDED = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
QWEN3_SPECIAL = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"}  # <think> and </think> are added, not special
GEMMA_VOCAB = 2000  # total, specials and byte pieces included
GEMMA_SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]
#: Training-only split of the normalized text ("▁" for spaces) into SentencePiece-like pieces: a word with its
#: leading "▁", a digit (Gemma splits digits), a punctuation run, a run of "▁", a run of other whitespace. The
#: inference pipeline has no pre-tokenizer (as Gemma's), so merges never join across these piece classes.
GEMMA_TRAIN_SPLIT = r"▁?[\p{L}\p{M}]+|▁?\p{N}|▁?[^\p{L}\p{M}\p{N}▁\s]+|▁+|\s+"


def _qwen3_pipeline(tokenizer: Tokenizer) -> None:
    """Normalizer, pre-tokenizer and decoder exactly as transformers 5's Qwen2Tokenizer builds them."""
    from tokenizers import Regex, decoders, normalizers, pre_tokenizers

    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()


def build_qwen3_tokenizer(texts: list[str]) -> Tokenizer:
    """Byte-level BPE laid out like Qwen2/Qwen3's: learned tokens, then the added tokens."""
    from tokenizers import AddedToken, Tokenizer, pre_tokenizers, processors, trainers
    from tokenizers.models import BPE

    tokenizer = Tokenizer(BPE(dropout=None, unk_token=None, fuse_unk=False, byte_fallback=False))
    _qwen3_pipeline(tokenizer)
    trainer = trainers.BpeTrainer(
        vocab_size=QWEN3_VOCAB,
        show_progress=False,
        special_tokens=[],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(texts, trainer=trainer, length=len(texts))
    tokenizer.add_special_tokens([AddedToken(t, special=t in QWEN3_SPECIAL, normalized=False) for t in QWEN3_ADDED])
    # Qwen2's tokenizer.json post-processor: ByteLevel, which adds no token (Qwen has no BOS).
    tokenizer.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    return tokenizer


def build_gemma_tokenizer(texts: list[str]) -> Tokenizer:
    """SentencePiece-style BPE with byte fallback laid out like Gemma's: specials, byte pieces, learned pieces."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors, trainers
    from tokenizers.models import BPE

    bytes_ = [f"<0x{b:02X}>" for b in range(256)]
    trained = Tokenizer(BPE())
    trained.normalizer = normalizers.Replace(" ", "\u2581")
    trained.pre_tokenizer = pre_tokenizers.Split(Regex(GEMMA_TRAIN_SPLIT), behavior="isolated", invert=False)
    trainer = trainers.BpeTrainer(
        vocab_size=GEMMA_VOCAB - len(GEMMA_SPECIALS) - len(bytes_), show_progress=False, special_tokens=[]
    )
    trained.train_from_iterator(texts, trainer=trainer, length=len(texts))
    learned = json.loads(trained.to_str())["model"]
    pieces = sorted(learned["vocab"].items(), key=lambda item: item[1])
    vocab = {t: i for i, t in enumerate([*GEMMA_SPECIALS, *bytes_, *(p for p, _ in pieces)])}
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in learned["merges"]]

    # The pipeline transformers 5's GemmaTokenizer builds (its Split(" ") pre-tokenizer is a no-op after the
    # normalizer, which has already replaced every space).
    tokenizer = Tokenizer(
        BPE(vocab=vocab, merges=merges, unk_token="<unk>", fuse_unk=True, byte_fallback=True, dropout=None)
    )
    tokenizer.normalizer = normalizers.Replace(" ", "\u2581")
    tokenizer.pre_tokenizer = pre_tokenizers.Split(pattern=" ", behavior="merged_with_previous", invert=False)
    tokenizer.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse()])
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in GEMMA_SPECIALS])
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<bos>:0 $A:0", pair="<bos>:0 $A:0 <bos>:1 $B:1", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    return tokenizer


def _added_tokens_decoder(tokenizer: Tokenizer) -> dict[str, Any]:
    """tokenizer_config.json's added_tokens_decoder, as transformers writes it."""
    added = json.loads(tokenizer.to_str())["added_tokens"]
    return {
        str(t["id"]): {
            "content": t["content"],
            "lstrip": t["lstrip"],
            "normalized": t["normalized"],
            "rstrip": t["rstrip"],
            "single_word": t["single_word"],
            "special": t["special"],
        }
        for t in added
    }


# ----------------------------------------------------------------------------- input ids, as the models' code
def qwen3_ids(tok: PreTrainedTokenizerBase, query: str, document: str, max_length: int = MAX_LENGTH) -> list[int]:
    """Qwen3-Reranker model card: process_inputs() for one pair (no padding)."""
    prefix_tokens = tok.encode(QWEN3_PREFIX, add_special_tokens=False)
    suffix_tokens = tok.encode(QWEN3_SUFFIX, add_special_tokens=False)
    inputs = tok(
        [qwen3_text(query, document)],
        padding=False,
        truncation="longest_first",
        return_attention_mask=False,
        max_length=max_length - len(prefix_tokens) - len(suffix_tokens),
    )
    return prefix_tokens + inputs["input_ids"][0] + suffix_tokens


def _prepare_for_model_only_second(ids: list[int], pair_ids: list[int], max_length: int) -> list[int]:
    """``tokenizer.prepare_for_model(ids, pair_ids, truncation='only_second', max_length=max_length,
    add_special_tokens=False)['input_ids']`` with right-side truncation (transformers' default).

    transformers 5 has ``prepare_for_model`` on Python tokenizers only (``tokenization_python.PythonBackend``), not
    on ``tokenizers``-backed ones such as ``GemmaTokenizer``, so the model card's call fails there; this is its
    ``truncate_sequences`` ONLY_SECOND branch (the same in transformers 4.x when the second text is long enough,
    which it always is here: the first text has at most 1 + 384 tokens).
    """
    remove = len(ids) + len(pair_ids) - max_length
    if remove > 0:
        if remove >= len(pair_ids):
            raise ValueError("the first text alone exceeds max_length")  # never with max_length * 3 // 4 queries
        pair_ids = pair_ids[:-remove]
    return ids + pair_ids


def bge_gemma_ids(tok: PreTrainedTokenizerBase, query: str, passage: str, max_length: int = MAX_LENGTH) -> list[int]:
    """bge-reranker-v2-gemma model card: get_inputs() for one pair (no padding)."""
    prompt_inputs = tok(BGE_PROMPT, return_tensors=None, add_special_tokens=False)["input_ids"]
    sep_inputs = tok(BGE_SEP, return_tensors=None, add_special_tokens=False)["input_ids"]
    query_inputs = tok(
        f"A: {query}", return_tensors=None, add_special_tokens=False, max_length=max_length * 3 // 4, truncation=True
    )
    passage_inputs = tok(
        f"B: {passage}", return_tensors=None, add_special_tokens=False, max_length=max_length, truncation=True
    )
    item = _prepare_for_model_only_second(
        [tok.bos_token_id] + query_inputs["input_ids"], sep_inputs + passage_inputs["input_ids"], max_length
    )
    return item + sep_inputs + prompt_inputs


def bare_ids(fmt: str, tokenizer: Tokenizer, query: str, document: str, max_length: int = MAX_LENGTH) -> list[int]:
    """The same ids from the bare ``tokenizers`` file with plain list slicing (what a non-transformers serving path
    does): an independent check of the recipes' truncation arithmetic."""
    tokenizer.no_truncation()
    tokenizer.no_padding()

    def enc(text: str) -> list[int]:
        return tokenizer.encode(text, add_special_tokens=False).ids

    if fmt == "qwen3-reranker":
        prefix, suffix = enc(QWEN3_PREFIX), enc(QWEN3_SUFFIX)
        return prefix + enc(qwen3_text(query, document))[: max_length - len(prefix) - len(suffix)] + suffix
    bos = tokenizer.token_to_id("<bos>")
    first = [bos, *enc(f"A: {query}")[: max_length * 3 // 4]]
    second = (enc(BGE_SEP) + enc(f"B: {document}")[:max_length])[: max_length - len(first)]
    return first + second + enc(BGE_SEP) + enc(BGE_PROMPT)


# ----------------------------------------------------------------------------- models
def build_qwen3_model(tokenizer: Tokenizer) -> PreTrainedModel:
    from transformers import Qwen3Config, Qwen3ForCausalLM

    config = Qwen3Config(
        vocab_size=math.ceil(tokenizer.get_vocab_size() / 64) * 64,  # padded past the tokenizer, as Qwen3's 151,936
        hidden_size=HIDDEN,
        intermediate_size=INTERMEDIATE,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=KV_HEADS,
        head_dim=HEAD_DIM,
        max_position_embeddings=MAX_POSITIONS,
        rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
        rms_norm_eps=1e-6,
        initializer_range=INITIALIZER_RANGE,
        tie_word_embeddings=True,  # as Qwen3-Reranker-0.6B
        bos_token_id=tokenizer.token_to_id("<|endoftext|>"),
        eos_token_id=tokenizer.token_to_id("<|im_end|>"),
        architectures=["Qwen3ForCausalLM"],
    )
    config._attn_implementation = "eager"
    return Qwen3ForCausalLM(config)


def build_gemma_model(tokenizer: Tokenizer) -> PreTrainedModel:
    from transformers import GemmaConfig, GemmaForCausalLM

    config = GemmaConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=HIDDEN,
        intermediate_size=INTERMEDIATE,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=1,  # multi-query attention, as gemma-2b
        head_dim=HEAD_DIM,
        hidden_activation="gelu_pytorch_tanh",
        max_position_embeddings=MAX_POSITIONS,
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        rms_norm_eps=1e-6,
        initializer_range=INITIALIZER_RANGE,
        tie_word_embeddings=True,  # as Gemma
        pad_token_id=tokenizer.token_to_id("<pad>"),
        bos_token_id=tokenizer.token_to_id("<bos>"),
        eos_token_id=tokenizer.token_to_id("<eos>"),
        architectures=["GemmaForCausalLM"],
    )
    config._attn_implementation = "eager"
    return GemmaForCausalLM(config)


def last_logits(model: PreTrainedModel, ids: list[list[int]]) -> torch.Tensor:
    """Logits at the last position, one sequence at a time, no padding: [n, vocab]."""
    import torch

    with torch.no_grad():
        rows = [
            model(input_ids=torch.tensor([x]), attention_mask=torch.ones(1, len(x), dtype=torch.long)).logits[0, -1]
            for x in ids
        ]
    return torch.stack(rows)


def raw_scores(logits: torch.Tensor, true_id: int, false_id: int | None) -> torch.Tensor:
    """LogitScore: logit[true] - logit[false], or logit[true] alone."""
    return logits[:, true_id] - logits[:, false_id] if false_id is not None else logits[:, true_id]


def calibrate_final_norm(
    model: PreTrainedModel, ids: list[list[int]], true_id: int, false_id: int | None, gemma: bool
) -> tuple[float, float]:
    """Set the final RMSNorm's gain so that the reference raw scores have mean 0 and span RAW_SPREAD.

    raw_i = g . m_i with m_i = n_i * d (n_i: the normalized last hidden state, d: the output row(s) of the
    scored token(s)). Removing from g its component along mean(m_i) makes mean(raw) exactly 0; a scale factor then
    sets the spread. Only the output changes: the embeddings (tied with the output rows) and every layer stay as
    initialized. Returns (scale, raw spread before calibration).
    """
    import torch

    norm = model.model.norm
    with torch.no_grad():
        before = raw_scores(last_logits(model, ids), true_id, false_id)
        gain = (1.0 + norm.weight) if gemma else norm.weight.clone()  # Gemma's RMSNorm multiplies by (1 + weight)
        with_unit_gain = torch.ones_like(gain) - 1.0 if gemma else torch.ones_like(gain)
        norm.weight.copy_(with_unit_gain)
        normalized = []
        for x in ids:
            hidden = model.model(input_ids=torch.tensor([x]), attention_mask=torch.ones(1, len(x), dtype=torch.long))
            normalized.append(hidden.last_hidden_state[0, -1])
        n = torch.stack(normalized).double()
        weight = model.get_output_embeddings().weight.double()
        d = weight[true_id] - weight[false_id] if false_id is not None else weight[true_id]
        m = n * d
        mu = m.mean(0)
        g = gain.double()
        g = g - (g @ mu) / (mu @ mu) * mu
        raw = m @ g
        scale = RAW_SPREAD / float(raw.max() - raw.min())
        g = g * scale
        norm.weight.copy_((g - 1.0 if gemma else g).to(norm.weight.dtype))
    return scale, float(before.max() - before.min())


# ----------------------------------------------------------------------------- sentence-transformers files
QWEN3_CHAT_TEMPLATE = (
    '{%- set instruct = messages | selectattr("role", "eq", "system") | map(attribute="content") | first'
    ' | default("' + QWEN3_INSTRUCTION + '") -%}\n'
    '{%- set query = messages | selectattr("role", "eq", "query") | map(attribute="content") | first -%}\n'
    '{%- set document = messages | selectattr("role", "eq", "document") | map(attribute="content") | first -%}\n'
    "{{- "
    + json.dumps(QWEN3_PREFIX + "<Instruct>: ")
    + ' + instruct + "\\n<Query>: " + query + "\\n<Document>: " + document + '
    + json.dumps(QWEN3_SUFFIX)
    + " -}}\n"
)
BGE_GEMMA_CHAT_TEMPLATE = (
    '{%- set query = messages | selectattr("role", "eq", "query") | map(attribute="content") | first -%}\n'
    '{%- set document = messages | selectattr("role", "eq", "document") | map(attribute="content") | first -%}\n'
    '{{- bos_token + "A: " + query + "\\nB: " + document + "\\n" + ' + json.dumps(BGE_PROMPT) + " -}}\n"
)


def write_sentence_transformers_files(
    folder: Path, true_id: int, false_id: int | None, prompts: dict[str, str], chat_template: str
) -> None:
    """The CrossEncoder layout of sentence-transformers >= 5.4 (docs/cross_encoder/usage/custom_models.rst)."""
    import torch
    import transformers

    (folder / "chat_template.jinja").write_text(chat_template, encoding="utf-8")
    _write_json(
        folder / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.base.modules.transformer.Transformer"},
            {
                "idx": 1,
                "name": "1",
                "path": "1_LogitScore",
                "type": "sentence_transformers.cross_encoder.modules.logit_score.LogitScore",
            },
        ],
        indent=2,
    )
    _write_json(
        folder / "sentence_bert_config.json",
        {
            "transformer_task": "text-generation",
            "modality_config": {
                "text": {"method": "forward", "method_output_name": "logits"},
                "message": {"method": "forward", "method_output_name": "logits", "format": "flat"},
            },
            "module_output_name": "causal_logits",
        },
        indent=2,
    )
    (folder / "1_LogitScore").mkdir()
    _write_json(
        folder / "1_LogitScore" / "config.json",
        {"true_token_id": true_id, "false_token_id": false_id, "module_input_name": "causal_logits"},
        indent=2,
    )
    _write_json(
        folder / "config_sentence_transformers.json",
        {
            "__version__": {
                "sentence_transformers": "5.4.0",  # the first release with LogitScore (a floor, not the builder)
                "transformers": transformers.__version__,
                "pytorch": torch.__version__,
            },
            "activation_fn": "torch.nn.modules.linear.Identity",
            "default_prompt_name": "query" if prompts else None,
            "model_type": "CrossEncoder",
            "prompts": prompts,
        },
        indent=2,
    )


# ----------------------------------------------------------------------------- specifications
@dataclass(frozen=True)
class Spec:
    key: str
    name: str
    format: str
    hub_id: str
    seed: int
    training_texts: list[str]
    build_tokenizer: Callable[[list[str]], Tokenizer]
    tokenizer_config: Callable[[Tokenizer], dict[str, Any]]
    special_tokens: dict[str, str]
    build_model: Callable[[Tokenizer], PreTrainedModel]
    true_token: str
    false_token: str | None
    recipe: Callable[..., list[int]]
    chat_template: str
    prompts: dict[str, str]
    provenance: str


def _qwen3_tokenizer_config(tokenizer: Tokenizer) -> dict[str, Any]:
    return {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": _added_tokens_decoder(tokenizer),
        "bos_token": None,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|im_end|>",
        "errors": "replace",
        "model_max_length": MAX_POSITIONS,
        "pad_token": "<|endoftext|>",
        "padding_side": "left",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }


def _gemma_tokenizer_config(tokenizer: Tokenizer) -> dict[str, Any]:
    return {
        "add_bos_token": True,
        "add_eos_token": False,
        "added_tokens_decoder": _added_tokens_decoder(tokenizer),
        "bos_token": "<bos>",
        "clean_up_tokenization_spaces": False,
        "eos_token": "<eos>",
        "mask_token": "<mask>",
        "model_max_length": MAX_POSITIONS,
        "pad_token": "<pad>",
        "padding_side": "left",
        "sp_model_kwargs": {},
        "spaces_between_special_tokens": False,
        "tokenizer_class": "GemmaTokenizer",
        "unk_token": "<unk>",
        "use_default_system_prompt": False,
    }


COMMON_PROVENANCE = """\
- **Scores carry no meaning.** Random weights: this folder is an architecture and format test, not a relevance model.
  Use it for exactness tests of the serving path against `reference_scores.json` and for smoke tests of loading,
  padding and truncation; never for quality numbers.
- Built by `tests/models/build_decoder_models.py` ({versions}); running it again gives the same bytes
  (`SHA256SUMS.json`). PyTorch ran on one thread with `torch.use_deterministic_algorithms(True)`.
- `config.json` carries `"_name_or_path": "{hub_id}"` so that a reader can tell the format from the folder
  (transformers 5 neither writes nor reads this key back: `from_pretrained` sets `name_or_path` to the local path;
  read the JSON file itself). `reference_scores.json` says `"format": "{format}"`.
- Model: {params:,} parameters, `torch.manual_seed({seed})`, `initializer_range` 0.1 (five times the real model's, so
  that the last position depends on the input), eager attention, fp32. The final norm's gain was set (its component
  along the mean scored direction removed, then scaled by {scale:.4g}; raw spread before: {spread:.4g}) so the
  reference raw scores have mean 0 and span 10 units: {low:.3f} … {high:.3f}. Embeddings and layers are as
  initialized.
- `reference_scores.json`: the 27 (query, document) pairs of `tiny-cross-encoder` (tutorial passages, the Berlin
  example, nasty strings as document and as query) with `raw`, `score` = sigmoid(raw) and the token count, computed
  one pair at a time (no padding) by PyTorch via transformers with the input ids built as described above,
  max_length 512. A left-padded batch (pad id {pad_id}, attention mask 0 on pads) gives the same raw scores
  within {padded:.1e} without position ids (as the model cards and sentence-transformers run it; RoPE cancels the
  shift up to rounding) and within {padded_pos:.1e} with position ids counted from the first real token.
  Compare raw scores with tolerance 1e-4.
- Sentence Transformers: `modules.json` = Transformer (`text-generation`, message format `flat`) + `1_LogitScore`
  (true {true_id}, false {false_id}), `chat_template.jinja` renders the same prompt from the `query`/`document` pair
  roles; `activation_fn` Identity, so `CrossEncoder(folder).predict(pairs)` returns the raw scores. {st_note}
"""

QWEN3_PROVENANCE = (
    """\
# qwen3-reranker-tiny — a tiny Qwen3-Reranker for tests

The architecture and scoring of `Qwen/Qwen3-Reranker-0.6B` (`Qwen3ForCausalLM`, score from the next-token logits
of "yes" and "no") at a tiny size: hidden 64, 2 layers, 4 query heads, 2 key/value heads, head_dim 16, intermediate
128, `max_position_embeddings` 1024, RoPE theta 1e6, tied embeddings, `vocab_size` {vocab_size} (the tokenizer's
{tokens} tokens padded to a multiple of 64, as Qwen3's 151,936 rows for 151,669 tokens).

- Input ids (the model card's `process_inputs`, one pair): `prefix_ids + tok(text)[:512 - len(prefix_ids) -
  len(suffix_ids)] + suffix_ids` (`tok` adds no special token), with text = `<Instruct>: {{instruction}}\\n<Query>:
  {{query}}\\n<Document>: {{doc}}`, instruction "{instruction}", prefix = `<|im_start|>system\\nJudge whether the
  Document meets the requirements based on the Query and the Instruct provided. Note that the answer can only be
  "yes" or "no".<|im_end|>\\n<|im_start|>user\\n` ({prefix_len} tokens) and suffix =
  `<|im_end|>\\n<|im_start|>assistant\\n<think>\\n\\n</think>\\n\\n` ({suffix_len} tokens). raw = logit("yes") -
  logit("no") at the last position; score = sigmoid(raw) = softmax([no, yes])[yes], the card's p(yes).
- Tokenizer: byte-level BPE trained with the `tokenizers` library (`BpeTrainer(vocab_size=2000)`, 256-byte
  alphabet; it runs out of pairs to merge first) on tests/data/tiny-beir, the tutorial passages, the prompt texts
  and a few English paragraphs; the pipeline of
  transformers 5's `Qwen2Tokenizer` (NFC, the Qwen2 split regex, ByteLevel without prefix space, no BOS). Token ids:
  "yes"={yes}, "no"={no}, "Yes"={Yes}; added tokens `<|endoftext|>`={endoftext} (pad), `<|im_start|>`={im_start},
  `<|im_end|>`={im_end} (eos), `<think>`={think} and `</think>`={think_end} (not special, as Qwen3's).
  `tokenizer_config.json`: `Qwen2Tokenizer`, `padding_side` left (the model card loads the tokenizer with
  `padding_side='left'` and reads the last position).
"""
    + COMMON_PROVENANCE
)

GEMMA_PROVENANCE = (
    """\
# bge-gemma-tiny — a tiny bge-reranker-v2-gemma for tests

The architecture and scoring of `BAAI/bge-reranker-v2-gemma` (`GemmaForCausalLM`, score from the next-token logit
of "Yes") at a tiny size: hidden 64, 2 layers, 4 query heads, 1 key/value head (multi-query, as gemma-2b), head_dim
16, intermediate 128 (GeGLU, gelu_pytorch_tanh), `max_position_embeddings` 1024, tied embeddings, `vocab_size`
{vocab_size}.

- Input ids (the model card's `get_inputs`, one pair): `[bos] + tok("A: {{query}}")[:384]` as the first part,
  `tok("\\n") + tok("B: {{passage}}")[:512]` as the second, the second cut from the end so that both fit in 512
  (`prepare_for_model(truncation='only_second', max_length=512)`), then `+ tok("\\n") + tok(prompt)` (so up to 512 +
  {tail} tokens); every `tok` without special tokens; prompt "{prompt}". raw = logit("Yes") at the last position;
  score = sigmoid(raw). transformers 5's `GemmaTokenizer` has no `prepare_for_model` (only Python tokenizers keep
  it), so the builder applies its ONLY_SECOND truncation itself and checks it against plain slicing of the bare
  `tokenizers` encodings.
- Tokenizer: SentencePiece-style BPE with byte fallback, trained with the `tokenizers` library (`BpeTrainer`,
  which runs out of pairs to merge before 2,000 tokens; words split as SentencePiece does: a word with its leading
  "▁", single digits, punctuation runs, whitespace runs) on
  tests/data/tiny-beir, the tutorial passages, the prompt texts and a few English paragraphs; then laid out as
  Gemma's: `<pad>`=0, `<eos>`=1, `<bos>`=2, `<unk>`=3, `<mask>`=4, `<0x00>`…`<0xFF>`=5…260, learned pieces after;
  {tokens} tokens. The pipeline of transformers 5's `GemmaTokenizer`: normalizer " " → "▁" (no dummy prefix), BPE
  with byte fallback and fused unknowns, no pre-tokenizer in effect; characters not in the vocabulary become byte
  pieces. Token ids: "Yes"={Yes}, "yes"={yes}, "no"={no}, "\\n"={newline}. `tokenizer_config.json`: `GemmaTokenizer`,
  `add_bos_token` true (the recipe adds `<bos>` itself and encodes without special tokens), `padding_side` left
  (transformers 5's GemmaTokenizer default; the model card pads and reads position -1).
"""
    + COMMON_PROVENANCE
)


def _specs() -> dict[str, Spec]:
    texts = common_texts()
    return {
        "qwen3": Spec(
            key="qwen3",
            name="qwen3-reranker-tiny",
            format="qwen3-reranker",
            hub_id="Qwen/Qwen3-Reranker-0.6B",
            seed=20261220,
            training_texts=[*texts, QWEN3_PREFIX, QWEN3_SUFFIX, qwen3_text("", "")],
            build_tokenizer=build_qwen3_tokenizer,
            tokenizer_config=_qwen3_tokenizer_config,
            special_tokens={"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"},
            build_model=build_qwen3_model,
            true_token="yes",
            false_token="no",
            recipe=qwen3_ids,
            chat_template=QWEN3_CHAT_TEMPLATE,
            prompts={"query": QWEN3_INSTRUCTION},
            provenance=QWEN3_PROVENANCE,
        ),
        "gemma": Spec(
            key="gemma",
            name="bge-gemma-tiny",
            format="bge-reranker-gemma",
            hub_id="BAAI/bge-reranker-v2-gemma",
            seed=20261221,
            training_texts=[*texts, BGE_PROMPT, "A: \nB: "],
            build_tokenizer=build_gemma_tokenizer,
            tokenizer_config=_gemma_tokenizer_config,
            special_tokens={
                "bos_token": "<bos>",
                "eos_token": "<eos>",
                "unk_token": "<unk>",
                "pad_token": "<pad>",
                "mask_token": "<mask>",
            },
            build_model=build_gemma_model,
            true_token="Yes",
            false_token=None,
            recipe=bge_gemma_ids,
            chat_template=BGE_GEMMA_CHAT_TEMPLATE,
            prompts={},
            provenance=GEMMA_PROVENANCE,
        ),
    }


# ----------------------------------------------------------------------------- build
def _write_json(path: Path, data: Any, indent: int = 1) -> None:
    """Fixed formatting: UTF-8, no trailing newline."""
    path.write_text(json.dumps(data, indent=indent, ensure_ascii=False), encoding="utf-8")


def _reflow(markdown: str, width: int = 118) -> str:
    """Re-wrap paragraphs and bullets (the template's lines grow or shrink when values are filled in)."""
    import textwrap

    out: list[str] = []
    block: list[str] = []

    def flush() -> None:
        if block:
            indent = len(block[0]) - len(block[0].lstrip())
            bullet = block[0].lstrip().startswith("- ")
            out.append(
                textwrap.fill(
                    " ".join(line.strip() for line in block),
                    width,
                    initial_indent=" " * indent,
                    subsequent_indent=" " * (indent + (2 if bullet else 0)),
                    break_long_words=False,
                    break_on_hyphens=False,
                )
            )
            block.clear()

    for line in markdown.splitlines():
        if not line.strip() or line.startswith("#"):
            flush()
            out.append(line)
        else:
            if line.lstrip().startswith("- "):
                flush()
            block.append(line)
    flush()
    return "\n".join(out).rstrip() + "\n"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _versions() -> str:
    import tokenizers
    import torch
    import transformers

    return f"PyTorch {torch.__version__}, transformers {transformers.__version__}, tokenizers {tokenizers.__version__}"


def _single_token_id(tokenizer: Tokenizer, text: str) -> int:
    """The id of ``text`` if the tokenizer encodes it (without special tokens) as exactly that one token."""
    ids = tokenizer.encode(text, add_special_tokens=False).ids
    if len(ids) != 1 or tokenizer.token_to_id(text) != ids[0]:
        raise SystemExit(f"{text!r} is not a single token: {ids}")
    return ids[0]


def padded_batch_diffs(
    model: PreTrainedModel, ids: list[list[int]], pad_id: int, raw: torch.Tensor, true_id: int, false_id: int | None
) -> dict[str, float]:
    """Left-padded batch, attention mask 0 on pads: max |raw - single-pair raw| without position ids (as the model
    cards and sentence-transformers run it: every row's positions shift by its padding, which RoPE cancels up to
    rounding) and with position ids counted from the first real token (as transformers' generate does)."""
    import torch

    width = max(len(x) for x in ids)
    batch = torch.tensor([[pad_id] * (width - len(x)) + x for x in ids])
    mask = torch.tensor([[0] * (width - len(x)) + [1] * len(x) for x in ids])
    positions = (mask.cumsum(1) - 1).clamp(min=0)
    diffs = {}
    with torch.no_grad():
        for label, extra in (("no_position_ids", {}), ("position_ids_from_mask", {"position_ids": positions})):
            logits = model(input_ids=batch, attention_mask=mask, **extra).logits[:, -1]
            diffs[label] = float((raw_scores(logits, true_id, false_id) - raw).abs().max())
    return diffs


def st_cross_check(folder: Path, spec: Spec, ids: list[list[int]], raw: list[float]) -> dict[str, Any]:
    """``CrossEncoder(folder, max_length=512).predict`` on all pairs (batches of 8, left-padded by
    sentence-transformers). It renders ``chat_template.jinja``, tokenizes the whole text, cuts it to 512 tokens from
    the end and restores the template's suffix: for the Qwen3 format that is exactly the model card's truncation, so
    every pair must match; the bge recipe truncates its parts instead (query to 384 tokens, then the passage, then
    appends the prompt), so only the pairs it does not truncate must match."""
    import numpy as np
    import sentence_transformers
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(str(folder), device="cpu", max_length=MAX_LENGTH)
    predicted = np.asarray(model.predict(PAIRS, batch_size=8, convert_to_numpy=True), dtype=np.float64)
    diffs = np.abs(predicted - raw)
    truncated = [
        i for i, (q, d) in enumerate(PAIRS) if len(spec.recipe(_hf_tokenizer(folder), q, d, 10**6)) != len(ids[i])
    ]
    checked = [i for i in range(len(PAIRS)) if spec.key == "qwen3" or i not in truncated]
    diff = float(diffs[checked].max())
    if diff > RAW_TOLERANCE:
        raise SystemExit(f"{spec.name}: CrossEncoder.predict differs from the reference by {diff}")
    return {
        "sentence_transformers": sentence_transformers.__version__,
        "modules": [type(m).__name__ for m in model],
        "pairs_checked": len(checked),
        "max_abs_diff": diff,
        "truncated_pairs_abs_diff": [round(float(diffs[i]), 6) for i in truncated],
    }


_HF_TOKENIZERS: dict[Path, Any] = {}


def _hf_tokenizer(folder: Path) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    if folder not in _HF_TOKENIZERS:
        _HF_TOKENIZERS[folder] = AutoTokenizer.from_pretrained(folder)
    return _HF_TOKENIZERS[folder]


def build(spec: Spec, out: Path, st_check: bool) -> dict[str, Any]:
    import torch
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM

    started = time.perf_counter()
    folder = out / spec.name
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    _HF_TOKENIZERS.pop(folder, None)

    # Tokenizer
    tokenizer = spec.build_tokenizer(spec.training_texts)
    tokenizer.save(str(folder / "tokenizer.json"))
    _write_json(folder / "tokenizer_config.json", spec.tokenizer_config(tokenizer), indent=2)
    _write_json(folder / "special_tokens_map.json", spec.special_tokens, indent=2)
    bare = Tokenizer.from_file(str(folder / "tokenizer.json"))
    token_ids = {t: _single_token_id(bare, t) for t in ("yes", "no", "Yes")}
    true_id = token_ids[spec.true_token]
    false_id = token_ids[spec.false_token] if spec.false_token else None

    hf = _hf_tokenizer(folder)
    if hf.convert_tokens_to_ids("yes") != token_ids["yes"] or hf("Yes", add_special_tokens=False)["input_ids"] != [
        token_ids["Yes"]
    ]:
        raise SystemExit(f"{spec.name}: transformers resolves yes/Yes differently")
    ids = [spec.recipe(hf, q, d) for q, d in PAIRS]
    if ids != [bare_ids(spec.format, bare, q, d) for q, d in PAIRS]:
        raise SystemExit(f"{spec.name}: transformers and the bare tokenizers file give different input ids")

    # Model
    torch.manual_seed(spec.seed)
    model = spec.build_model(tokenizer).eval()
    scale, spread = calibrate_final_norm(model, ids, true_id, false_id, gemma=spec.key == "gemma")
    model.save_pretrained(folder, safe_serialization=True)
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    config["_name_or_path"] = spec.hub_id
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    write_sentence_transformers_files(folder, true_id, false_id, spec.prompts, spec.chat_template)

    # Reference: PyTorch via transformers, reloaded from the saved folder, one pair at a time
    reloaded = AutoModelForCausalLM.from_pretrained(folder, attn_implementation="eager", dtype=torch.float32).eval()
    logits = last_logits(reloaded, ids)
    raw = raw_scores(logits, true_id, false_id)
    score = torch.sigmoid(raw)
    if false_id is not None:  # the model card's p(yes): log_softmax over [no, yes], exp
        card = torch.log_softmax(torch.stack([logits[:, false_id], logits[:, true_id]], 1), dim=1)[:, 1].exp()
        if float((card - score).abs().max()) > 1e-6:
            raise SystemExit(f"{spec.name}: sigmoid(yes - no) differs from softmax([no, yes])[yes]")
    reference: dict[str, Any] = {
        "model": spec.name,
        "format": spec.format,
        "max_length": MAX_LENGTH,
    }
    if spec.key == "qwen3":
        reference["instruction"] = QWEN3_INSTRUCTION
    reference["true_token_id"] = true_id
    reference["false_token_id"] = false_id
    reference["pairs"] = [
        {"query": q, "document": d, "raw": float(r), "score": float(s), "tokens": len(x)}
        for (q, d), r, s, x in zip(PAIRS, raw, score, ids, strict=True)
    ]
    _write_json(folder / "reference_scores.json", reference)

    pad_id = hf.pad_token_id
    padded = padded_batch_diffs(reloaded, ids, pad_id, raw, true_id, false_id)
    if max(padded.values()) > RAW_TOLERANCE:
        raise SystemExit(f"{spec.name}: a left-padded batch differs from single pairs: {padded}")

    st: dict[str, Any] | str
    if st_check:
        try:
            import sentence_transformers  # noqa: F401
        except ImportError:
            st = "sentence-transformers is not installed"
        else:
            st = st_cross_check(folder, spec, ids, [float(r) for r in raw])
    else:
        st = "skipped (--no-st-check)"
    st_note = ""
    if isinstance(st, dict):
        st_note = (
            f"With sentence-transformers {st['sentence_transformers']}, `CrossEncoder(folder, max_length=512).predict` "
            f"reproduced the raw scores of {st['pairs_checked']} of the 27 pairs within {st['max_abs_diff']:.1e}"
        )
        st_note += (
            " (all of them: rendering the template, cutting the text to 512 tokens and restoring the suffix is the "
            "model card's truncation)."
            if spec.key == "qwen3"
            else f"; the {len(st['truncated_pairs_abs_diff'])} pairs the recipe truncates differ by "
            f"{', '.join(f'{d:.2f}' for d in st['truncated_pairs_abs_diff'])} (sentence-transformers cuts the rendered "
            "text, including the prompt, to 512 tokens; the recipe cuts the query to 384 tokens, then the passage, and "
            "appends the prompt after)."
        )

    params = sum(p.numel() for p in model.parameters())
    vocab = bare.get_vocab()
    (folder / "PROVENANCE.md").write_text(
        _reflow(
            spec.provenance.format(
                vocab_size=model.config.vocab_size,
                tokens=bare.get_vocab_size(),
                instruction=QWEN3_INSTRUCTION,
                prompt=BGE_PROMPT,
                tail=len(bare.encode(BGE_SEP + BGE_PROMPT, add_special_tokens=False).ids),
                yes=token_ids["yes"],
                no=token_ids["no"],
                Yes=token_ids["Yes"],
                newline=vocab.get("\n"),
                prefix_len=len(bare.encode(QWEN3_PREFIX, add_special_tokens=False).ids),
                suffix_len=len(bare.encode(QWEN3_SUFFIX, add_special_tokens=False).ids),
                endoftext=vocab.get("<|endoftext|>"),
                im_start=vocab.get("<|im_start|>"),
                im_end=vocab.get("<|im_end|>"),
                think=vocab.get("<think>"),
                think_end=vocab.get("</think>"),
                versions=_versions(),
                hub_id=spec.hub_id,
                format=spec.format,
                params=params,
                seed=spec.seed,
                scale=scale,
                spread=spread,
                low=float(raw.min()),
                high=float(raw.max()),
                pad_id=pad_id,
                padded=max(padded["no_position_ids"], 1e-7),
                padded_pos=max(padded["position_ids_from_mask"], 1e-7),
                true_id=true_id,
                false_id="none (raw = logit of the true token)" if false_id is None else false_id,
                st_note=st_note,
            )
        ),
        encoding="utf-8",
    )
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    _write_json(folder / "SHA256SUMS.json", {p.relative_to(folder).as_posix(): _sha256(p) for p in files})
    return {
        "seconds": round(time.perf_counter() - started, 1),
        "parameters": params,
        "token_ids": token_ids,
        "raw_range": [round(float(raw.min()), 4), round(float(raw.max()), 4)],
        "tokens_range": [min(len(x) for x in ids), max(len(x) for x in ids)],
        "final_norm_scale": scale,
        "padded_batch_vs_single": padded,
        "sentence_transformers": st,
        "sizes": {p.relative_to(folder).as_posix(): p.stat().st_size for p in sorted(folder.rglob("*")) if p.is_file()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="where the model folders are written (replaced if present)")
    parser.add_argument("--only", choices=["qwen3", "gemma"], help="build one model only")
    parser.add_argument(
        "--no-st-check", action="store_true", help="skip the sentence-transformers CrossEncoder cross-check"
    )
    args = parser.parse_args(argv)

    # Before tokenizers / torch start their thread pools: one thread everywhere, so float sums run in one order.
    os.environ["RAYON_NUM_THREADS"] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)

    specs = _specs()
    report = {}
    for key in [args.only] if args.only else list(specs):
        report[specs[key].name] = build(specs[key], args.out_dir, st_check=not args.no_st_check)
    json.dump(report, sys.stdout, indent=1, ensure_ascii=False)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
