"""The ``first_stage`` settings section: what retrieves the hits the model reranks, and the query bodies and
search-pipeline processor each kind needs.

- ``bm25`` (the default): a ``multi_match`` over the document fields.
- ``neural``: k-NN over a ``knn_vector`` field that a ``text_embedding`` ingest processor fills from the
  document field, with an embedding model deployed in ml-commons (embedding.py); the query is embedded by the
  same model (``neural`` query). ``k`` is at least the rank window, so the window has hits to rerank.
- ``hybrid``: both, combined by neural-search's phase-results processor: ``normalization-processor``
  (min_max, then the weighted arithmetic mean) or, with ``--hybrid-combination rrf``, ``score-ranker-processor``
  (reciprocal rank fusion; its JSON differs between 2.19 and 3.x). A hybrid query without that processor
  answers neural-search's raw format (marker hits with scores near -9.5e9), so setup always puts it first.

The rank window's request processor enlarges ``size``, which a hybrid query passes to each sub-query: each
retrieves ``max(size, window)`` hits per shard, and the window reranks the combined top. ``from`` > 0 needs
``pagination_depth`` (2.19+): the builder sets it to ``from + size``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from pydantic import field_validator, model_validator

from .config.section import Section, setting

__all__ = ["FirstStageOptions", "first_stage_query", "phase_processor"]

Kind = Literal["bm25", "neural", "hybrid"]


class FirstStageOptions(Section):
    """What retrieves the hits the model reranks."""

    shorthand = "kind"

    kind: Kind = setting(
        "bm25",
        "bm25 (match on the document fields), neural (k-NN on embeddings of the document field) or hybrid (both, "
        "normalized and combined by the pipeline).",
        flag="--first-stage",
    )
    embedding_model: str | None = setting(
        None, "The embedding model (folder or hub id) of the neural and hybrid first stages.", flag="--embedding-model"
    )
    embedding_target: Literal["standin", "opensearch"] = setting(
        "standin",
        "Where the embedding model runs: the kit's stand-in (TEI's /embed API, behind a connector), or inside "
        "OpenSearch (ml-commons ONNX; OpenSearch 2.19 needs internet access for its first deploy).",
    )
    embedding_endpoint_url: str | None = setting(
        None, "Your own embedding server (TEI's /embed API) instead of a stand-in."
    )
    vector_field: str = setting("embedding", "The knn_vector field the embeddings are kept in.")
    k: int | None = setting(
        None, "Neighbours the neural query asks for [default: the larger of the rank window and the page].", ge=1
    )
    hybrid_weights: tuple[float, float] = setting(
        (0.5, 0.5), "Weights of BM25 and neural in the hybrid combination (they sum to 1), e.g. 0.3,0.7."
    )
    hybrid_combination: Literal["arithmetic_mean", "rrf"] = setting(
        "arithmetic_mean",
        "arithmetic_mean: min_max-normalized scores, weighted; rrf: reciprocal rank fusion (OpenSearch 2.19+).",
    )

    @field_validator("hybrid_weights", mode="before")
    @classmethod
    def _split(cls, v: Any) -> Any:
        if isinstance(v, str):
            return tuple(float(x) for x in v.split(",") if x.strip())
        return v

    @field_validator("hybrid_weights")
    @classmethod
    def _sum_to_one(cls, v: tuple[float, float]) -> tuple[float, float]:
        if min(v) < 0 or abs(sum(v) - 1.0) > 1e-6:
            raise ValueError(f"{','.join(map(str, v))}: two weights of 0 or more that sum to 1, e.g. 0.3,0.7")
        return v

    @model_validator(mode="after")
    def _needs_a_model(self) -> FirstStageOptions:
        if self.kind != "bm25" and not self.embedding_model:
            raise ValueError(
                f"--first-stage {self.kind} needs --embedding-model (a sentence-transformers folder or hub id, "
                "e.g. all-MiniLM-L6-v2): it embeds the documents and the query"
            )
        return self

    @property
    def embeds(self) -> bool:
        """Whether this first stage needs the embedding model, its ingest pipeline and a vector field."""
        return self.kind != "bm25"


def first_stage_query(
    options: FirstStageOptions,
    query: str,
    fields: Sequence[str],
    *,
    hits: int,
    embedding_model_id: str | None = None,
    window: int | None = None,
) -> dict[str, Any]:
    """The ``query`` of a request that retrieves at least ``hits`` hits (or ``window``, the pipeline's rank
    window, whichever is larger) with this first stage."""
    match = {"multi_match": {"query": query, "fields": list(fields)}}
    if not options.embeds:
        return match
    if not embedding_model_id:
        raise ValueError("a neural or hybrid first stage needs the embedding model's id")
    k = options.k or max(hits, window or 0)
    neural = {"neural": {options.vector_field: {"query_text": query, "model_id": embedding_model_id, "k": k}}}
    if options.kind == "neural":
        return neural
    return {"hybrid": {"queries": [match, neural]}}


def phase_processor(options: FirstStageOptions, version: tuple[int, int, int]) -> dict[str, Any] | None:
    """The phase-results processor a hybrid first stage needs, in the JSON this OpenSearch line takes."""
    if options.kind != "hybrid":
        return None
    weights = list(options.hybrid_weights)
    if options.hybrid_combination == "rrf":
        if version < (2, 19, 0):
            raise ValueError("--hybrid-combination rrf needs OpenSearch 2.19 or later (score-ranker-processor)")
        if version < (3, 0, 0):  # 2.19 takes the rank constant among the parameters, and no weights
            rrf = {"technique": "rrf", "parameters": {"rank_constant": 60}}
            return {"score-ranker-processor": {"combination": rrf}}
        return {
            "score-ranker-processor": {
                "combination": {"technique": "rrf", "rank_constant": 60, "parameters": {"weights": weights}}
            }
        }
    return {
        "normalization-processor": {
            "normalization": {"technique": "min_max"},
            "combination": {"technique": "arithmetic_mean", "parameters": {"weights": weights}},
        }
    }
