"""Realistic rerank pairs for the speed benchmarks: SciFact test queries x their BM25 top k, as a reranker
sees them (title + ". " + text, up to the model's 512 tokens).

BM25 here is a plain Python one (k1=1.2, b=0.75, Lucene's idf, lower-cased word tokens over
title + ". " + text) so the pairs are the same on every machine without a cluster; its top 25 is close to,
not identical with, OpenSearch's.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path

TOKEN = re.compile(r"\w+")
K1, B = 1.2, 0.75


def _tokens(text: str) -> list[str]:
    return TOKEN.findall(text.lower())


def scifact_groups(dataset: Path, queries: int = 40, k: int = 25, skip: int = 0) -> list[tuple[str, list[str]]]:
    """(query, top-k documents) for test queries ``skip .. skip + queries`` in qrels/test.tsv order."""
    docs = [json.loads(line) for line in (dataset / "corpus.jsonl").read_text().splitlines() if line.strip()]
    ids = [d["_id"] for d in docs]
    texts = [f"{d['title']}. {d['text']}" for d in docs]
    tfs = [Counter(_tokens(t)) for t in texts]
    lengths = [sum(tf.values()) for tf in tfs]
    avgdl = sum(lengths) / len(lengths)
    df: Counter[str] = Counter()
    for tf in tfs:
        df.update(tf.keys())
    idf = {t: math.log(1 + (len(docs) - n + 0.5) / (n + 0.5)) for t, n in df.items()}
    postings: dict[str, list[tuple[int, int]]] = {}
    for i, tf in enumerate(tfs):
        for t, c in tf.items():
            postings.setdefault(t, []).append((i, c))

    def top(query: str) -> list[int]:
        scores: dict[int, float] = {}
        for t in _tokens(query):
            for i, c in postings.get(t, ()):
                norm = K1 * (1 - B + B * lengths[i] / avgdl)
                scores[i] = scores.get(i, 0.0) + idf[t] * c * (K1 + 1) / (c + norm)
        return sorted(scores, key=lambda i: (-scores[i], ids[i]))[:k]

    text_of = {}
    for line in (dataset / "queries.jsonl").read_text().splitlines():
        if line.strip():
            q = json.loads(line)
            text_of[q["_id"]] = q["text"]
    judged = [line.split("\t")[0] for line in (dataset / "qrels/test.tsv").read_text().splitlines()[1:] if line]
    chosen = list(dict.fromkeys(judged))[skip : skip + queries]
    return [(text_of[q], [texts[i] for i in top(text_of[q])]) for q in chosen]
