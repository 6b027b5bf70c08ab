"""Step: search through the rerank pipeline, with a rank window larger than the page returned.

The rerank processor rescores exactly the hits of the page OpenSearch returns, in one model call.
To rerank the top K and show the top N (Elasticsearch's ``rank_window_size``) we ask for K hits
and cut to N after reranking. :func:`search_body` is the one builder of such requests: search, eval
and the benchmarks all use it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .config import Settings
from .errors import ConfigError, OpenSearchError
from .opensearch import Cluster

__all__ = ["Hit", "SearchResult", "search", "search_body"]


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    source: dict[str, Any]

    def text(self, fields: Sequence[str]) -> str:
        return " ".join(str(_get(self.source, f) or "") for f in fields)


@dataclass(frozen=True)
class SearchResult:
    hits: list[Hit]
    raw: dict[str, Any]
    took_ms: int


def _get(source: dict[str, Any], dotted: str) -> Any:
    value: Any = source
    for part in dotted.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def search_body(
    query: str | None,
    fields: Sequence[str],
    size: int,
    *,
    rerank: bool = True,
    match_all: bool = False,
    query_text_path: str | None = None,
    source: list[str] | None = None,
) -> dict[str, Any]:
    """A BM25 request over ``fields`` (``match_all`` when asked or without a query) for ``size`` hits,
    with the rerank query context unless ``rerank`` is False."""
    first = {"match_all": {}} if match_all or not query else {"multi_match": {"query": query, "fields": list(fields)}}
    body: dict[str, Any] = {"query": first, "size": size}
    if source is not None:
        body["_source"] = source
    if rerank:
        context = {"query_text_path": query_text_path} if query_text_path else {"query_text": query or ""}
        body["ext"] = {"rerank": {"query_context": context}}
    return body


def search(
    cluster: Cluster,
    settings: Settings,
    query: str,
    *,
    size: int = 10,
    window: int | None = None,
    min_score: float | None = None,
    match_all: bool = False,
    query_text_path: str | None = None,
    pipeline: str | None = None,
    timeout: float | None = None,
) -> SearchResult:
    """Rerank the top ``window`` BM25 hits (default: ``size``) and return the best ``size``."""
    if any("." in f for f in settings.document_fields) and cluster.version < (3, 6, 0):
        warnings.warn(
            f"document_fields {settings.document_fields} has a dotted path; OpenSearch "
            f"{'.'.join(map(str, cluster.version))} reranks such fields on empty text (fixed in 3.6)",
            stacklevel=2,
        )
    body = search_body(
        query, settings.document_fields, max(window or size, size), match_all=match_all, query_text_path=query_text_path
    )
    pipeline = pipeline or settings.pipeline
    try:
        raw = cluster.call(
            "POST", f"/{settings.index}/_search", body, params={"search_pipeline": pipeline}, timeout=timeout
        )
    except OpenSearchError as exc:
        if exc.status in (400, 404) and f"{pipeline} is not defined" in str(exc):
            raise ConfigError(f"search pipeline {pipeline!r} does not exist: run `osrerank setup` first") from exc
        raise
    hits = [Hit(h["_id"], float(h["_score"]), h.get("_source", {})) for h in raw["hits"]["hits"]]
    if min_score is not None:
        hits = [h for h in hits if h.score >= min_score]
    return SearchResult(hits[:size], raw, int(raw.get("took", 0)))
