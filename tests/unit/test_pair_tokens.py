"""The first-try cut of long documents (kinds/pair_tokens.py) must give the very ids the tokenizer gives on the
whole text: checked against ``Tokenizer.encode_batch`` of the whole pairs, with BERT's WordPiece (the tiny
model's tokenizer) and, trained here in a few milliseconds, XLM-R's pipeline (WhitespaceSplit + Metaspace,
Unigram) and ModernBERT's (byte-level BPE), on texts built to fall on each side of each condition."""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest
from tokenizers import Tokenizer, decoders, pre_tokenizers, processors, trainers
from tokenizers.models import BPE, Unigram

from osrerank.kinds.pair_tokens import FIRST_TRY_CHARS_PER_TOKEN, _before_space, encode_pairs

CAP = 64 * 512
WORDS = (  # noqa: SIM905 (a sentence reads better than a list of 33 strings)
    "the cell protein expression of p53 was 2.5-fold higher (n=40) in tumour samples; mice treated with "
    "vitamin-D showed reduced risk, whereas controls' IL-6 levels did not change: see Fig. 3B and ref. [12]"
).split()


def _documents(count: int = 30) -> list[str]:
    """Abstract-like texts, 50 to 700 words, with punctuation, numbers and the odd double space or newline."""
    rng = random.Random(7)
    return [
        "".join(w + rng.choice([" ", " ", " ", "  ", "\n", ", "]) for w in rng.choices(WORDS, k=rng.randint(50, 700)))
        for _ in range(count)
    ]


def _metaspace_unigram(texts: list[str]) -> Tokenizer:
    tokenizer = Tokenizer(Unigram())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")]
    )
    tokenizer.decoder = decoders.Metaspace()
    specials = ["<s>", "<pad>", "</s>", "<unk>"]
    tokenizer.train_from_iterator(
        texts, trainers.UnigramTrainer(vocab_size=300, special_tokens=specials, unk_token="<unk>")
    )
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)]
    )
    return tokenizer


def _byte_level_bpe(texts: list[str]) -> Tokenizer:
    tokenizer = Tokenizer(BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["[CLS]", "[SEP]"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(texts, trainer)
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", 0), ("[SEP]", 1)]
    )
    return tokenizer


def _crafted(max_length: int) -> list[tuple[str, str | None]]:
    first = max_length * FIRST_TRY_CHARS_PER_TOKEN
    words = " ".join(f"w{i}" for i in range(4 * max_length))
    long_query = " ".join(["retinal"] * max_length)  # more than half the budget: both sides get trimmed
    half_query = " ".join(["cell"] * (max_length // 2 - 3))
    return [
        ("q", "x" * (first + 50)),  # no whitespace at all before the cut
        ("q", "https://example.org/" + "a/" * first + " tail words"),  # one giant token run, then words
        ("q", ("  \t\n " + "word ") * max_length),  # whitespace runs of every kind at the cut
        ("q", "y" * (first - 3) + "   z" * 40),  # the cut lands inside a run of spaces
        ("q", ("長い文書です。" * 40) + " " + words),  # CJK (split per character by BERT), then words
        ("q", "é́ naïve café " * max_length),  # combining accents (stripped by BERT's normalizer)
        (long_query, words),
        (half_query, words),
        (half_query + " cell cell", words),
        ("q", "short document"),
        ("query alone", None),
        ("q", "a" * 7 + " b" * (first // 2 - 4) + "c" * 2000),  # enough tokens only in the part after the cut
    ]


@pytest.fixture(scope="module")
def tokenizers(tiny_model_dir: Path) -> dict[str, Tokenizer]:
    texts = _documents()
    return {
        "wordpiece": Tokenizer.from_file(str(tiny_model_dir / "tokenizer.json")),
        "metaspace-unigram": _metaspace_unigram(texts),
        "byte-level-bpe": _byte_level_bpe(texts),
    }


@pytest.mark.parametrize("max_length", [16, 128])
def test_first_try_cut_gives_the_whole_texts_ids(tokenizers: dict[str, Tokenizer], max_length: int) -> None:
    queries = ["does vitamin d lower the risk of cancer?", "p53"]
    pairs: list[tuple[str, str | None]] = [(q, d) for q in queries for d in _documents()] + _crafted(max_length)
    for name, tokenizer in tokenizers.items():
        tokenizer.enable_truncation(max_length, strategy="longest_first")
        tokenizer.no_padding()
        expected = tokenizer.encode_batch([q[:CAP] if d is None else (q[:CAP], d[:CAP]) for q, d in pairs])
        got = encode_pairs(tokenizer, pairs, CAP)
        for i, (want, have) in enumerate(zip(expected, got, strict=True)):
            assert have.ids == want.ids, (name, max_length, i, pairs[i][1] and pairs[i][1][:60])
            assert have.type_ids == want.type_ids, (name, i)
            assert bool(have.overflowing) == bool(want.overflowing), (name, i)


def test_the_cut_falls_where_a_scan_of_the_whole_prefix_puts_it() -> None:
    """``_before_space`` looks back a few characters first; it must cut where the plain definition does (the
    start of the last whitespace run at or before the cut point), also when that run lies further back than its
    look-back, or nowhere."""
    rng = random.Random(11)
    pieces = ["word", "x" * 90, " ", "  ", "\n", "\t ", "é́", "長い"]
    texts = ["".join(rng.choices(pieces, k=rng.randint(1, 60))) for _ in range(400)]
    texts += ["few words then " + "x" * 500, "x" * 500, "  " + "y" * 300]
    for text in texts:
        for at in {0, 1, 63, 64, 65, len(text) // 2, len(text) - 1, rng.randrange(len(text) + 1)}:
            starts = [m.start() + 1 for m in re.finditer(r"\S\s", text[: at + 1])]
            assert _before_space(text, at) == (text[: starts[-1]] if starts else text), (text[:80], at)
