"""Realistic rerank pairs for the speed benchmarks: SciFact test queries x their BM25 top k, as a reranker
sees them (title + ". " + text, up to the model's 512 tokens), from the kit's own judged groups
(osrerank/judged.py: a plain Python BM25, the same on every machine without a cluster)."""

from __future__ import annotations

from pathlib import Path

from osrerank.judged import judged_groups


def scifact_groups(dataset: Path, queries: int = 40, k: int = 25, skip: int = 0) -> list[tuple[str, list[str]]]:
    """(query, top-k documents) for test queries ``skip .. skip + queries`` in qrels/test.tsv order."""
    return [(g.query, g.documents) for g in judged_groups(dataset, queries=queries, k=k, skip=skip)]
