"""Tokenizing (query, document) pairs for a model that reads them together, without tokenizing what the
model never sees.

A pair keeps ``max_length`` tokens, yet a long document is otherwise tokenized whole: on SciFact abstracts
cut at 128 tokens that was two thirds of the tokenizer's time, and tokenization was 12% of a bf16 search's.
So each document is first cut at a word boundary after ``max_length * FIRST_TRY_CHARS_PER_TOKEN``
characters, and the result is kept only where it is provably the one the whole text gives:

- the cut falls where a run of whitespace starts, so the tokens before it are the whole text's tokens (every
  pre-tokenizer in use here, BERT's, SentencePiece's Metaspace and byte-level BPE's, ends a piece there);
- the cut pair still overflowed, so the kept tokens are a strict prefix of the cut document's;
- the query was kept whole, which with ``longest_first`` truncation (the only strategy the kinds use) means
  the document's share is ``max_length`` minus the query's in both cases.

Any other pair is tokenized again from its whole text (cut only at ``cap`` characters, as before), so the
ids are the same as without the first try: ``tests/unit/test_pair_tokens.py`` checks it on texts built to
fall on each side of each condition. ``encode_batch_fast`` skips the character offsets nothing here reads.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Sequence
from typing import Any

__all__ = ["FIRST_TRY_CHARS_PER_TOKEN", "encode_pairs"]

#: Characters a token is assumed to cover at most on the first try (English: about 4.5). A document whose
#: first ``max_length`` tokens are longer than this is simply tokenized again in full.
FIRST_TRY_CHARS_PER_TOKEN = 6
_WHITESPACE_RUN = re.compile(r"\S\s")
_LOOK_BACK = 64


def encode_pairs(tokenizer: Any, pairs: Sequence[tuple[str, str | None]], cap: int) -> list[Any]:
    """``tokenizer.encode_batch`` of ``(query[:cap], document[:cap])`` for every pair (``query[:cap]`` alone
    where the document is None), in order, faster on documents much longer than the tokenizer's ``max_length``."""
    whole: list[Any] = [q[:cap] if d is None else (q[:cap], d[:cap]) for q, d in pairs]
    limit = int((tokenizer.truncation or {}).get("max_length") or 0)
    first = limit * FIRST_TRY_CHARS_PER_TOKEN
    long = [i for i, p in enumerate(whole) if limit and isinstance(p, tuple) and len(p[1]) > first]
    cut = {i: text for i in long if len(text := _before_space(whole[i][1], first)) < len(whole[i][1])}
    encoded = tokenizer.encode_batch_fast([(p[0], cut[i]) if i in cut else p for i, p in enumerate(whole)])
    if not cut:
        return encoded
    query_tokens = _query_lengths(tokenizer, [whole[i][0] for i in cut])
    again = [
        i for i in cut if not encoded[i].overflowing or encoded[i].sequence_ids.count(0) != query_tokens[whole[i][0]]
    ]
    if again:  # an empty call still costs the tokenizer's set-up (0.2 ms)
        for i, redone in zip(again, tokenizer.encode_batch_fast([whole[i] for i in again]), strict=True):
            encoded[i] = redone
    return encoded


def _before_space(text: str, at: int) -> str:
    """``text`` up to the last run of whitespace that starts before ``at`` (the whole text if none does). Looked
    for in the last ``_LOOK_BACK`` characters first: matches of ``\\S\\s`` cannot overlap, so the last one there is
    the last one of all (scanning the whole prefix was a sixth of the time a SciFact slice took to tokenize)."""
    for start in dict.fromkeys((max(0, at - _LOOK_BACK), 0)):
        last = deque(_WHITESPACE_RUN.finditer(text, start, at + 1), maxlen=1)
        if last:
            return text[: last[0].start() + 1]
    return text


def _query_lengths(tokenizer: Any, queries: Sequence[str]) -> dict[str, int]:
    """Each distinct query's own token count without special tokens (what a pair keeps of it when whole)."""
    distinct = list(dict.fromkeys(queries))
    counts = tokenizer.encode_batch_fast(distinct, add_special_tokens=False)
    return {q: len(e.ids) for q, e in zip(distinct, counts, strict=True)}
