"""Step: the neural-search ``rerank`` search pipeline, and the ``pipeline`` settings section it is made from.

What every search through the pipeline does (rank window, fail-open, long documents, batch limits) is a
field of :class:`PipelineOptions` and a variable of ``pipelines/rerank.json.j2``: adding a pipeline option is
a field here and its use in the template.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import field_validator, model_validator

from .config.section import Section, setting
from .errors import ConfigError, NotFound
from .opensearch import Cluster
from .templates import render
from .types import Found

__all__ = [
    "Chunking",
    "PipelineOptions",
    "chunking",
    "delete_pipeline",
    "ensure_pipeline",
    "render_pipeline",
    "set_default_pipeline",
    "set_up_pipeline",
    "their_pipeline",
]


@dataclass(frozen=True)
class Chunking:
    """Overlapping passages of ``words`` whitespace-separated words, ``stride`` apart, at most ``passages``."""

    words: int = 200
    stride: int = 100
    passages: int = 4

    @property
    def reach(self) -> int:
        """Words a document is read up to."""
        return (self.passages - 1) * self.stride + self.words


def chunking(spec: str) -> Chunking | None:
    """``truncate`` -> None; ``chunk[:WORDS[:STRIDE[:PASSAGES]]]`` -> Chunking."""
    name, *numbers = spec.split(":")
    if name == "truncate" and not numbers:
        return None
    chunk = None
    if name == "chunk" and len(numbers) <= 3 and all(n.isdigit() for n in numbers):
        words = int(numbers[0]) if numbers else Chunking.words
        stride = int(numbers[1]) if len(numbers) > 1 else max(1, words // 2)
        chunk = Chunking(words, stride, int(numbers[2]) if len(numbers) > 2 else Chunking.passages)
    if chunk is None or not 1 <= chunk.stride <= chunk.words or chunk.passages < 1:
        raise ValueError(
            f"{spec!r} is not truncate or chunk[:WORDS[:STRIDE[:PASSAGES]]] with 1 <= STRIDE <= WORDS "
            "(e.g. chunk:200:100)"
        )
    return chunk


class PipelineOptions(Section):
    """The search pipeline setup creates (found again by its name), and what it does for every search."""

    shorthand = "name"

    name: str = setting("osrerank-rerank", "Search pipeline name.", flag="--pipeline")
    window: int | None = setting(
        None, "Rank window: rerank the top K first-stage hits of every search and return the request's size.", ge=1
    )
    on_model_failure: Literal["fail", "first-stage"] = setting(
        "fail",
        "When the model fails: fail the search, or answer in first-stage order (?verbose_pipeline=true tells which).",
    )
    long_documents: str = setting(
        "truncate",
        "truncate (to the model's limit), or chunk[:WORDS[:STRIDE[:PASSAGES]]]: score overlapping passages, a "
        "document gets its best passage's score [chunk: 200 words, stride 100, 4 passages].",
    )
    extend: str | None = setting(
        None,
        "A search pipeline of yours to extend: its request and phase-results processors (a hybrid application's "
        "normalization) run first, then the rank window and the rerank, then its response processors. Yours is "
        "not changed.",
        flag="--extend-pipeline",
    )
    max_batch: int | None = setting(
        None,
        "Most texts the model server takes in one request (TEI's --max-client-batch-size): the pipeline then calls "
        "the model once per hit (in parallel), so any page or window fits.",
        ge=1,
    )

    @field_validator("long_documents")
    @classmethod
    def _chunking(cls, v: str) -> str:
        chunking(v)  # raises ValueError with the accepted forms
        return v

    @field_validator("name")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v

    @model_validator(mode="after")
    def _coherent(self) -> PipelineOptions:
        """Refuse combinations that could only fail at search time."""
        if self.per_document and self.on_model_failure == "first-stage":
            # measured on 3.6.0: when its calls fail, ml_inference passes the hits on in the order the calls
            # ended, so a window's first-stage top N would be lost
            raise ValueError(
                "--on-model-failure first-stage cannot go with --max-batch: the per-hit model calls that --max-batch "
                "needs return failed hits in the order the calls ended, not in first-stage order. Use "
                "--on-model-failure fail, or raise the model server's per-request limit and drop --max-batch"
            )
        chunk = self.chunk
        if self.max_batch and chunk and chunk.passages > self.max_batch:
            raise ValueError(
                f"--long-documents {self.long_documents} sends up to {chunk.passages} passages of one document "
                f"per model call, more than --max-batch {self.max_batch}: use fewer passages, or raise the model "
                "server's limit"
            )
        return self

    @property
    def chunk(self) -> Chunking | None:
        """How documents are cut into passages, or None to truncate them."""
        return chunking(self.long_documents)

    @property
    def per_document(self) -> bool:
        """Whether the pipeline calls the model once per hit: when the model server caps texts per request
        (``--max-batch``), a page or window larger than the cap must not reach it as one call."""
        return bool(self.max_batch)


def render_pipeline(
    options: PipelineOptions,
    model_id: str,
    document_fields: tuple[str, ...],
    description: str,
    *,
    phase: dict[str, Any] | None = None,
    theirs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The pipeline body for ``model_id`` reranking ``document_fields``; ``phase``: a hybrid first stage's
    phase-results processor; ``theirs``: the pipeline it extends (its processors around ours; its own
    phase-results processors win over ``phase``)."""
    theirs = theirs or {}
    phases = theirs.get("phase_results_processors") or ([phase] if phase else [])
    return render(
        "pipelines",
        "rerank",
        {
            "description": description,
            "model_id": model_id,
            "document_fields": list(document_fields),
            "window": options.window or 0,
            "fail_open": options.on_model_failure == "first-stage",
            "per_document": options.per_document,
            "before": theirs.get("request_processors") or [],
            "phase": phases,
            "after": theirs.get("response_processors") or [],
        },
    )


def their_pipeline(cluster: Cluster, name: str) -> dict[str, Any]:
    """A user's pipeline to extend, refused when it does not exist or already reranks."""
    try:
        body = dict(cluster.call("GET", f"/_search/pipeline/{name}")[name])
    except NotFound:
        raise ConfigError(f"--extend-pipeline {name}: there is no search pipeline of that name") from None
    if any("rerank" in p or "ml_inference" in p for p in body.get("response_processors") or []):
        raise ConfigError(
            f"--extend-pipeline {name}: that pipeline already reranks (a rerank or ml_inference response processor); "
            "extend one without it, or use it as it is"
        )
    return body


def set_up_pipeline(
    cluster: Cluster,
    options: PipelineOptions,
    model_id: str,
    document_fields: tuple[str, ...],
    description: str,
    name: str | None = None,
    phase: dict[str, Any] | None = None,
) -> Found:
    """Render the pipeline for ``model_id`` and create, keep or update it (``name``: else the section's); with
    ``options.extend``, around the processors of the pipeline it extends."""
    theirs = their_pipeline(cluster, options.extend) if options.extend else None
    body = render_pipeline(options, model_id, document_fields, description, phase=phase, theirs=theirs)
    return ensure_pipeline(cluster, name or options.name, body)


def ensure_pipeline(cluster: Cluster, name: str, body: dict[str, Any]) -> Found:
    """Create the pipeline, keep it if identical, or update it in place (PUT replaces)."""
    try:
        current = cluster.call("GET", f"/_search/pipeline/{name}").get(name)
    except NotFound:
        current = None
    if current is not None and _canonical(current) == _canonical(body):
        return Found(name, "reused")
    cluster.call("PUT", f"/_search/pipeline/{name}", body)
    return Found(name, "replaced" if current is not None else "created")


def _canonical(pipeline: dict[str, Any]) -> str:
    return json.dumps(pipeline, sort_keys=True)


def set_default_pipeline(cluster: Cluster, index: str, name: str) -> None:
    """Make every search on ``index`` go through the pipeline (index.search.default_pipeline)."""
    cluster.call("PUT", f"/{index}/_settings", {"index.search.default_pipeline": name})


def delete_pipeline(cluster: Cluster, name: str) -> bool:
    """Delete a pipeline; False if there was none."""
    try:
        cluster.call("DELETE", f"/_search/pipeline/{name}")
        return True
    except NotFound:
        return False
