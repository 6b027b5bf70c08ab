"""Step: search through the rerank pipeline, with a rank window larger than the page returned.

The rerank processor rescores exactly the hits of the page OpenSearch returns, in one model call.
To rerank the top K and show the top N (Elasticsearch's ``rank_window_size``) we ask for K hits
(``top_k``) and cut to N after reranking; a pipeline with a rank window does the same in the engine.
:func:`search_body` is the one builder of such requests: search, eval and the benchmarks all use it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError, NotFound, OpenSearchError
from .first_stage import first_stage_query
from .opensearch import Cluster
from .settings import Settings

__all__ = ["Hit", "SearchResult", "application_request", "search", "search_body"]


@dataclass(frozen=True)
class Hit:
    id: str
    score: float
    source: dict[str, Any]

    def text(self, fields: Sequence[str]) -> str:
        return " ".join(str(_get(self.source, f) or "") for f in fields)


@dataclass(frozen=True)
class SearchResult:
    """The hits, OpenSearch's response, and whether the model reranked them: False when the pipeline
    answers in first-stage order because the model failed (``fallback`` says why)."""

    hits: list[Hit]
    raw: dict[str, Any]
    took_ms: int
    reranked: bool = True
    fallback: str | None = None


#: what the per-hit pipeline (--max-batch) answers when a hit's model call failed, and the usual causes of that
PER_HIT_FAILED = "The field to rerank by is not found at hit"
PER_HIT_CAUSES = (
    "That hit's model call failed (the per-hit pipeline, --max-batch). The node's log says why, after "
    "ml-commons' 'Prediction Failed'. Usual causes: the model server is down or refused the text; the request's "
    "ext.rerank.query_context has no query_text, or has query_text_path too; the hit has none of the rerank "
    "fields in _source. `osrerank doctor` checks the model server and the pipeline"
)


def rerank_outcome(raw: dict[str, Any]) -> tuple[bool, str | None]:
    """From a ``verbose_pipeline`` response: did the rerank processor run, and if not, why."""
    for result in raw.get("processor_results", []):
        if result.get("tag") == "osrerank-rerank" and result.get("status") == "fail":
            return False, str(result.get("error") or "the rerank processor failed")
    return True, None


def _fails_open(cluster: Cluster, pipeline: str) -> bool:
    """Whether the pipeline's rerank processor passes first-stage hits through when the model fails."""
    try:
        definition = cluster.call("GET", f"/_search/pipeline/{pipeline}").get(pipeline, {})
    except NotFound as exc:
        raise ConfigError(f"search pipeline {pipeline!r} does not exist: run `osrerank setup` first") from exc
    # the `rerank` processor decides: the per-hit pipeline's ml_inference always ignores its failures (they
    # reach the caller through its by_field `rerank`, which never does)
    reorders = [p.get("rerank") or {} for p in definition.get("response_processors", [])]
    return any(r.get("tag") == "osrerank-rerank" and r.get("ignore_failure") for r in reorders)


def blend(first: dict[str, float], model: dict[str, float], weight: float) -> dict[str, float]:
    """``weight`` x first-stage + (1 - weight) x model score, each min-max normalised over the hits both
    hold, so that BM25's unbounded scale and the model's meet on [0, 1]."""
    shared = [d for d in model if d in first]

    def normalised(scores: dict[str, float]) -> dict[str, float]:
        low, high = min(scores[d] for d in shared), max(scores[d] for d in shared)
        return {d: (scores[d] - low) / (high - low) if high > low else 1.0 for d in shared}

    if not shared:
        return {}
    a, b = normalised(first), normalised(model)
    return {d: weight * a[d] + (1 - weight) * b[d] for d in shared}


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
    first_stage: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A request for ``size`` hits retrieved by ``first_stage`` (a query from first_stage.py), else by BM25 over
    ``fields`` (``match_all`` when asked or without a query), with the rerank query context unless ``rerank``
    is False."""
    first = {"match_all": {}} if match_all or not query else {"multi_match": {"query": query, "fields": list(fields)}}
    if first_stage is not None and query and not match_all:
        first = first_stage
    body: dict[str, Any] = {"query": first, "size": size}
    if source is not None:
        body["_source"] = source
    if rerank:
        context = {"query_text_path": query_text_path} if query_text_path else {"query_text": query or ""}
        body["ext"] = {"rerank": {"query_context": context}}
    return body


def application_request(
    settings: Settings, query: str, size: int, embedding_model_id: str | None = None
) -> tuple[str, dict[str, Any]]:
    """The plain ``_search`` an application sends for ``size`` reranked hits (path with the pipeline, body): the
    pipeline's window enlarges the first stage by itself, and a neural query asks for enough neighbours."""
    fields, window = settings.index.document_fields, settings.pipeline.window
    retrieve = first_stage_query(
        settings.first_stage, query, fields, hits=size, embedding_model_id=embedding_model_id, window=window
    )
    path = f"/{settings.index.name}/_search?search_pipeline={settings.pipeline.name}"
    return path, search_body(query, fields, size, first_stage=retrieve)


def search(
    cluster: Cluster,
    settings: Settings,
    query: str,
    *,
    size: int = 10,
    top_k: int | None = None,
    min_score: float | None = None,
    match_all: bool = False,
    query_text_path: str | None = None,
    pipeline: str | None = None,
    timeout: float | None = None,
    blend_weight: float | None = None,
    embedding_model_id: str | None = None,
) -> SearchResult:
    """Rerank the top ``top_k`` BM25 hits (default: ``size``; the pipeline's rank window applies too) and return
    the best ``size``. With ``blend_weight``, hits are ordered by that share of the normalised BM25 score
    plus the rest of the model's (see :func:`blend`). A pipeline set up with ``on_model_failure first-stage``
    is asked with ``verbose_pipeline``, so that a fallback shows (``reranked`` False, ``fallback`` why)."""
    fields, window = settings.index.document_fields, settings.pipeline.window
    if any("." in f for f in fields) and cluster.version < (3, 6, 0):
        warnings.warn(
            f"document_fields {fields} has a dotted path; OpenSearch "
            f"{'.'.join(map(str, cluster.version))} reads such fields from _source as empty text (fixed in 3.6): a "
            "search answers 400 unless it asks for them in fields",
            stacklevel=2,
        )
    k = max(top_k or size, size, window or 0) if blend_weight is not None else max(top_k or size, size)
    first = settings.first_stage
    if blend_weight is not None and first.kind == "hybrid":
        raise ConfigError(
            "--blend needs the first stage's own scores, and a hybrid query answers them only through its "
            "normalization processor: blend with a bm25 or neural first stage"
        )
    retrieve = first_stage_query(first, query, fields, hits=k, embedding_model_id=embedding_model_id, window=window)
    body = search_body(query, fields, k, match_all=match_all, query_text_path=query_text_path, first_stage=retrieve)
    pipeline = pipeline or settings.pipeline.name
    params = {"search_pipeline": pipeline}
    fails_open = _fails_open(cluster, pipeline)
    if fails_open:  # verbose mode says whether the rerank ran (it also answers failures a pipeline would fail)
        params["verbose_pipeline"] = "true"
    try:
        raw = cluster.call("POST", f"/{settings.index.name}/_search", body, params=params, timeout=timeout)
    except OpenSearchError as exc:
        if exc.status in (400, 404) and f"{pipeline} is not defined" in str(exc):
            raise ConfigError(f"search pipeline {pipeline!r} does not exist: run `osrerank setup` first") from exc
        if exc.status == 400 and PER_HIT_FAILED in str(exc):
            raise OpenSearchError(f"{exc}. {PER_HIT_CAUSES}", exc.status) from exc
        raise
    reranked, fallback = rerank_outcome(raw)
    raw.pop("processor_results", None)  # copies of every hit, twice: not for the caller
    hits = [Hit(h["_id"], float(h["_score"]), h.get("_source", {})) for h in raw["hits"]["hits"]]
    if blend_weight is not None and reranked:
        plain = {k_: v for k_, v in body.items() if k_ != "ext"}
        first_stage = cluster.call("POST", f"/{settings.index.name}/_search", plain, timeout=timeout)
        bm25 = {h["_id"]: float(h["_score"]) for h in first_stage["hits"]["hits"]}
        blended = blend(bm25, {h.id: h.score for h in hits}, blend_weight)
        hits = sorted((Hit(h.id, blended[h.id], h.source) for h in hits if h.id in blended), key=lambda h: -h.score)
    if min_score is not None:
        hits = [h for h in hits if h.score >= min_score]
    return SearchResult(hits[:size], raw, int(raw.get("took", 0)), reranked, fallback)
