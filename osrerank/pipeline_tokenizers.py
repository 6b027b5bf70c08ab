"""The folder's tokenizer as ONNX nodes, for the text pipeline (pipeline_export.py): one text in, its token ids
out (no special tokens: the pair template is the exporter's), exactly as the folder's ``tokenizer.json`` encodes it.

onnxruntime-extensions' tokenizer operators do the sub-word step; what they do differently from ``tokenizers`` is
done here with its string operators and standard ONNX ops, from tables read off the folder's own tokenizer:

- **normalization** (every family): the folder's normalizer applied to each code point alone, once at export
  (BertNormalizer's cleaning, lowercasing, accent stripping and CJK spacing are per character), becomes three
  regular expressions (characters removed, characters that become a space, CJK characters spaced) and one
  ``StringMapping`` table (the rest). The operators' own lowercasing and accent tables cover a few Latin, Greek and
  Cyrillic letters only, and their whitespace and control tables miss e.g. U+2028.
- **NUL**: every onnxruntime-extensions string operator reads a text only up to its first NUL, so ONNX Runtime's own
  operators (``com.microsoft`` Tokenizer, ``ai.onnx.ml`` LabelEncoder, ``Where``) first put a stand-in for each NUL:
  nothing where the folder's normalizer drops it (BERT's), else the noncharacter U+FDD0 where the folder's
  tokenizer, probed at export, reads the two alike (Unigram: both unknown; byte-level BPE: U+FDD0 is added as a token
  whose id the graph turns into NUL's byte; after a NUL, a contraction (NUL then ``'s``) is one token in the graph
  and two in ``tokenizers``: ``export`` says so). Where a probe differs, the NUL is dropped and ``export`` says so.
- **WordPiece**: the pre-tokenizer's punctuation and whitespace (probed character by character) split words;
  ``WordpieceTokenizer`` pieces them; a word with an unknown piece becomes one ``[UNK]`` as in ``tokenizers``
  (the operator keeps the pieces found before it).
- **Unigram**: ``HfJsonTokenizer`` (a SentencePiece unigram over ``tokenizer.json``), after ``WhitespaceSplit``'s
  whitespace runs are made single spaces. **BPE**: ``HfJsonTokenizer`` (byte-level BPE with its own pre-tokenizer
  regex); an NFC normalizer's composition of a letter and a separate accent is not done in the graph.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelLoadError
from .pipeline_normalizer import CharTable, Step, char_class, code_points, normalization

__all__ = ["EXTRA_OPSETS", "NUL_STAND_IN", "ORTX", "Builder", "TokenizerSpec", "read_tokenizer", "text_ids"]

ORTX = "ai.onnx.contrib"
#: The operator sets the tokenizer nodes use beside the model's own (ai.onnx 13 or later).
EXTRA_OPSETS = {ORTX: 1, "com.microsoft": 1, "ai.onnx.ml": 2}
#: What the graph puts for a NUL where the folder's tokenizer reads it (a noncharacter: not in texts in practice).
NUL_STAND_IN = "\ufdd0"
#: Texts with NULs on which the folder's tokenizer must read NUL_STAND_IN as it reads NUL.
NUL_PROBES = [
    "\x00",
    "a\x00b",
    " \x00 ",
    "a \x00",
    "!\x00?",
    "\x00\x00",
    "x\x00 y",
    "1\x002",
    "\xe9\x00",
    "\x00\u4e2d",
    "\u05e9\x00",
]
#: The tokenizers families the graph reproduces: tokenizer.json model type -> the onnxruntime-extensions operator.
SUPPORTED = {"WordPiece": "WordpieceTokenizer", "Unigram": "HfJsonTokenizer", "BPE": "HfJsonTokenizer"}


class Builder:
    """The nodes of one ONNX graph or Loop body, with fresh names; constants go to the root graph's initializers
    (a Loop body reads them from the outer scope)."""

    def __init__(self, prefix: str, root: Builder | None = None) -> None:
        self.prefix, self.root = prefix, root or self
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.count = 0

    def fresh(self, hint: str) -> str:
        self.root.count += 1
        return f"{self.prefix}{hint}_{self.root.count}"

    def op(self, op_type: str, inputs: list[str], outputs: int | list[str] = 1, *, domain: str = "", **attrs: Any):
        from onnx import helper

        names = outputs if isinstance(outputs, list) else [self.fresh(op_type.lower()) for _ in range(outputs)]
        node_name = attrs.pop("node_name", None) or self.fresh(op_type)
        self.nodes.append(helper.make_node(op_type, inputs, names, name=node_name, domain=domain, **attrs))
        return names[0] if len(names) == 1 else names

    def const(self, value: Any, dtype: Any = np.int64) -> str:
        from onnx import numpy_helper

        array = np.array(value, dtype=object if dtype is str else dtype)
        if dtype is str:
            array = np.array([v.encode("utf-8") for v in array.ravel()], dtype=object).reshape(array.shape)
        name = self.fresh("const")
        self.root.initializers.append(numpy_helper.from_array(array, name))
        return name


NUL_SPLIT = "\\x00|[^\\x00]+"  # RE2: a NUL, or a run of anything else


@dataclass(frozen=True)
class TokenizerSpec:
    """What the graph needs of the folder's tokenizer.json: its family, its vocabulary and the tables read off it."""

    family: str
    document: dict
    vocab: dict[str, int]
    unk_id: int
    normalization: list[Step]
    splits: str | None  # characters the pre-tokenizer splits at and drops (whitespace)
    isolates: str | None  # characters the pre-tokenizer makes words of their own (BERT's punctuation)
    drops_nul: bool
    composes: bool  # the normalizer composes characters (NFC, NFKC): not done in the graph
    nul: str = ""  # what the graph puts for a NUL: nothing, or NUL_STAND_IN
    nul_ids: tuple[int, int] | None = None  # BPE: the stand-in's added token id, and NUL's byte token id

    @property
    def graph_document(self) -> dict:
        """tokenizer.json as the graph's HfJsonTokenizer reads it: with the NUL stand-in as an added token (BPE)."""
        if not self.nul_ids:
            return self.document
        token = {"id": self.nul_ids[0], "content": self.nul, "single_word": False, "lstrip": False, "rstrip": False}
        token |= {"normalized": False, "special": False}
        return {**self.document, "added_tokens": [*self.document.get("added_tokens", []), token]}


def read_tokenizer(folder: Path) -> TokenizerSpec:
    """The folder's tokenizer.json, probed once character by character (a few seconds); ModelLoadError for a family
    the graph cannot reproduce."""
    from tokenizers import Tokenizer

    path = folder / "tokenizer.json"
    try:
        tokenizer = Tokenizer.from_file(str(path))
        document = json.loads(path.read_text(encoding="utf-8"))
    except Exception as exc:
        raise ModelLoadError(f"cannot read {path}: {exc}") from exc
    model = document.get("model") or {}
    family = model.get("type", "?")
    if family not in SUPPORTED:
        raise ModelLoadError(
            f"{path} is a {family} tokenizer: the text pipeline reproduces WordPiece (BERT), Unigram (XLM-R) and "
            "byte-level BPE (ModernBERT) tokenizers only"
        )
    pre = json.dumps(document.get("pre_tokenizer"))
    if family == "BPE" and "ByteLevel" not in pre:
        raise ModelLoadError(f"{path} is a BPE tokenizer without byte-level pre-tokenization: not supported")
    if family == "WordPiece" and "BertPreTokenizer" not in pre:
        raise ModelLoadError(f"{path} is a WordPiece tokenizer without BERT's pre-tokenizer: not supported")
    if family == "Unigram" and model.get("byte_fallback"):
        raise ModelLoadError(f"{path} is a Unigram tokenizer with byte fallback: not supported")
    vocab = tokenizer.get_vocab(with_added_tokens=False)
    unk = model.get("unk_token", "[UNK]") if family == "WordPiece" else None
    unk_id = vocab.get(unk, 0) if unk else int(model.get("unk_id") or 0)
    splits, isolates = [], []
    if family != "BPE" and tokenizer.pre_tokenizer is not None:  # byte-level BPE's operator pre-tokenizes itself
        for code in code_points():
            pieces = len(tokenizer.pre_tokenizer.pre_tokenize_str(f"a{chr(code)}a"))
            (splits if pieces == 2 else isolates if pieces == 3 else [None]).append(code)
    normalizer = document.get("normalizer")
    drops_nul = tokenizer.normalizer is not None and tokenizer.normalizer.normalize_str("\0") == ""
    return _with_nul(
        tokenizer,
        TokenizerSpec(
            family=family,
            document=document,
            vocab=vocab,
            unk_id=unk_id,
            normalization=normalization(document),
            splits=char_class(splits),
            isolates=char_class(isolates),
            drops_nul=drops_nul,
            composes=any(f'"{n}"' in json.dumps(normalizer) for n in ("NFC", "NFKC", "Precompiled")),
        ),
    )


def _with_nul(tokenizer: Any, spec: TokenizerSpec) -> TokenizerSpec:
    """The spec with its NUL stand-in, where the folder's tokenizer reads NUL_STAND_IN as it reads a NUL on every
    probe (with the stand-in's added token's id read as NUL's, for BPE); else NUL is dropped (a note says so)."""
    from dataclasses import replace

    from tokenizers import Tokenizer

    if spec.drops_nul:
        return spec
    nul_ids = None
    if spec.family == "BPE":
        byte = tokenizer.encode("\0", add_special_tokens=False).ids
        if len(byte) != 1:
            return spec
        nul_ids = (tokenizer.get_vocab_size(with_added_tokens=True), byte[0])
    candidate = replace(spec, nul=NUL_STAND_IN, nul_ids=nul_ids)
    probe = Tokenizer.from_str(json.dumps(candidate.graph_document))
    for text in NUL_PROBES:
        got = probe.encode(text.replace("\0", NUL_STAND_IN), add_special_tokens=False).ids
        if nul_ids:
            got = [nul_ids[1] if i == nul_ids[0] else i for i in got]
        if got != tokenizer.encode(text, add_special_tokens=False).ids:
            return spec
    return candidate


def text_ids(b: Builder, spec: TokenizerSpec, text: str) -> str:
    """Nodes in ``b`` that turn ``text`` (a string tensor of shape [1]) into its token ids (int64, 1-D)."""
    # each NUL a part of its own, made the stand-in (ONNX Runtime's own operators read past a NUL)
    parts = b.op("Tokenizer", [text], domain="com.microsoft", mark=0, mincharnum=1, pad_value="", tokenexp=NUL_SPLIT)
    nul = b.op("LabelEncoder", [parts], domain="ai.onnx.ml", keys_strings=["\0"], values_int64s=[1], default_int64=0)
    parts = b.op("Where", [b.op("Cast", [nul], to=9), b.const([spec.nul], str), parts])  # 9: BOOL
    text = b.op("StringJoin", [parts, b.const("", str), b.const(1)], domain=ORTX)
    for step in spec.normalization:
        text = _replace(b, text, *step) if isinstance(step, tuple) else _table(b, step, text)
    if spec.family == "WordPiece":
        return _wordpiece(b, spec, text)
    text = _replace(b, text, spec.splits and spec.splits + "+", " ")
    if spec.splits:  # WhitespaceSplit drops whitespace at either end
        text = _replace(b, text, "^ | $", "")
    if spec.family == "Unigram":
        flags = [b.const([0]), b.const([0.0], np.float32), *(b.const([False], bool) for _ in range(4))]
        ids = b.op("SentencepieceTokenizer", [text, *flags], 2, domain=ORTX, model=sentencepiece_model(spec))[0]
        return b.op("Cast", [ids], to=7)  # INT64
    config = json.dumps({"tokenizer_class": "PreTrainedTokenizerFast", "add_bos_token": False, "add_eos_token": False})
    ids = b.op(
        "HfJsonTokenizer",
        [text],
        domain=ORTX,
        tokenizer_config=config,
        tokenizer_vocab=json.dumps(spec.graph_document, ensure_ascii=False),
    )
    ids = b.op("Reshape", [ids, b.const([-1])])
    if spec.nul_ids:  # the stand-in's added token is NUL's byte
        stand_in, byte = spec.nul_ids
        ids = b.op("Where", [b.op("Equal", [ids, b.const(stand_in)]), b.const(byte), ids])
    return ids


def sentencepiece_model(spec: TokenizerSpec) -> bytes:
    """tokenizer.json's Unigram as a SentencePiece ModelProto (written by hand: pieces in tokenizer.json's order so
    the ids are the same, the unknown piece typed UNKNOWN and the special tokens CONTROL, no normalization of its
    own: the graph's tables did it, and its whitespace handling is Metaspace's). onnxruntime-extensions' own
    unigram over tokenizer.json (HfJsonTokenizer) misses some pieces: 'CD4' came out as '▁CD', '4'."""
    specials = {t["id"] for t in spec.document.get("added_tokens", []) if t.get("special")}
    pieces = b""
    for i, (piece, score) in enumerate(spec.document["model"]["vocab"]):
        kind = 2 if i == spec.unk_id else 3 if i in specials else 1
        body = _field(1, piece.encode("utf-8")) + bytes([0x15]) + struct.pack("<f", score) + bytes([0x18, kind])
        pieces += _field(1, body)
    vocab = len(spec.document["model"]["vocab"])
    trainer = bytes([0x18, 1]) + _varint_field(4, vocab) + _varint_field(40, spec.unk_id)
    trainer += b"".join(_varint_field(n, -1) for n in (41, 42, 43))  # no bos, eos or pad of its own
    normalizer = _field(1, b"identity") + bytes([0x18, 1, 0x20, 1, 0x28, 1])
    return pieces + _field(2, trainer) + _field(3, normalizer)


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int32 values are ten-byte varints
    out = b""
    while True:
        low, value = value & 0x7F, value >> 7
        out += bytes([low | (0x80 if value else 0)])
        if not value:
            return out


def _varint_field(number: int, value: int) -> bytes:
    return _varint(number << 3) + _varint(value)


def _field(number: int, payload: bytes) -> bytes:
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _table(b: Builder, table: CharTable, text: str) -> str:
    for pattern, rewrite in ((table.removed, ""), (table.spaced, " "), (table.cjk, " \\0 ")):
        text = _replace(b, text, pattern, rewrite)
    if table.mapped:
        keys = char_class(sorted(ord(c) for c in table.mapped))
        split = [text, b.const(f"({keys})", str), b.const(keys, str)]  # the pattern's group is what splits
        pieces = b.op("StringRegexSplitWithOffsets", split, 4, domain=ORTX)[0]
        mapped = b.op(
            "StringMapping", [pieces], domain=ORTX, map="\n".join(f"{k}\t{v}" for k, v in table.mapped.items())
        )
        text = b.op("StringJoin", [mapped, b.const("", str), b.const(0)], domain=ORTX)
    return text


def _replace(b: Builder, text: str, pattern: str | None, rewrite: str) -> str:
    if not pattern:
        return text
    return b.op("StringRegexReplace", [text, b.const(pattern, str), b.const(rewrite, str)], domain=ORTX)


def _wordpiece(b: Builder, spec: TokenizerSpec, text: str) -> str:
    """BERT's pre-tokenizer (punctuation isolated, whitespace splits) and WordPiece, with tokenizers' rule for a word
    that has a piece outside the vocabulary: the whole word is one [UNK] (the operator keeps the pieces before it)."""
    model = spec.document["model"]
    text = _replace(b, text, spec.isolates, " \\0 ")
    text = _replace(b, text, spec.splits, " ")
    words = b.op("StringRegexSplitWithOffsets", [text, b.const("( )", str), b.const("", str)], 4, domain=ORTX)[0]
    pieces, _, begins, limits = b.op(
        "WordpieceTokenizer",
        [words, b.const(np.zeros(0, dtype=np.int64))],
        4,
        domain=ORTX,
        vocab=json.dumps(spec.vocab, ensure_ascii=False),
        suffix_indicator=model.get("continuing_subword_prefix", "##"),
        unknown_token=model.get("unk_token", "[UNK]"),
        max_input_chars_per_word=int(model.get("max_input_chars_per_word", 100)),
    )
    table = "\n".join(f"{token}\t{i}" for token, i in spec.vocab.items() if "\t" not in token and "\n" not in token)
    ids = b.op("StringToVector", [pieces], domain=ORTX, map=table, unk=str(spec.unk_id))
    ids = b.op("Reshape", [ids, b.const([-1])])
    # a word whose last piece is [UNK] failed: keep that piece only
    count = b.op("Shape", [ids])
    zeros = b.op("ConstantOfShape", [count], value=_tensor(0))
    firsts = b.op("ScatterElements", [zeros, begins, b.op("Expand", [b.const(1), b.op("Shape", [begins])])])
    word = b.op("Sub", [b.op("CumSum", [firsts, b.const(0)]), b.const(1)])
    last = b.op("Sub", [limits, b.const(1)])
    failed = b.op("Equal", [b.op("Gather", [ids, last]), b.const(spec.unk_id)])
    position = b.op("Range", [b.const(0), b.op("Squeeze", [count, b.const([0])]), b.const(1)])
    is_last = b.op("Equal", [position, b.op("Gather", [last, word])])
    keep = b.op("Or", [b.op("Not", [b.op("Gather", [failed, word])]), is_last])
    return b.op("Compress", [ids, keep], axis=0)


def _tensor(value: int) -> Any:
    from onnx import helper

    return helper.make_tensor("value", 7, [1], [value])  # INT64
