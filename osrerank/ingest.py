"""The ``index`` settings section (which index, which fields are reranked), indices the kit owns, and the one
way documents get into them: a JSONL file (a BEIR corpus is one).

An index the kit creates carries ``_meta.created_by: osrerank``; teardown deletes only such indices.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from pydantic import field_validator

from .config.section import Section, setting
from .errors import ConfigError, NotFound
from .opensearch import Cluster

__all__ = [
    "OWNER_META",
    "RERANK_FIELD",
    "IndexOptions",
    "combine_fields",
    "count_lines",
    "create_index",
    "delete_index",
    "knn_field",
    "load_documents",
    "load_jsonl",
    "owned_by_kit",
    "read_jsonl",
]

#: The one field several source fields are joined into, so that the reranker sees a separator
#: (the rerank processor concatenates several ``document_fields`` with none: "Title" + "Body" -> "TitleBody").
RERANK_FIELD = "rerank_text"

OWNER_META = {"created_by": "osrerank"}


class IndexOptions(Section):
    """The index searched and the fields of its documents the model reads."""

    shorthand = "name"

    name: str = setting("my-test-data", "Index to search.", flag="--index")
    document_fields: tuple[str, ...] = setting(("passage_text",), "Comma-separated fields to rerank on.", min_length=1)

    @field_validator("document_fields", mode="before")
    @classmethod
    def _split(cls, v: Any) -> Any:
        if isinstance(v, str):
            return tuple(f.strip() for f in v.split(",") if f.strip())
        return v

    @field_validator("name")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v


def create_index(
    cluster: Cluster,
    index: str,
    text_fields: Iterable[str],
    *,
    recreate: bool = False,
    vectors: dict[str, Any] | None = None,
    pipeline: str | None = None,
) -> bool:
    """Create ``index`` with text mappings, marked as ours in ``_meta``; False if it already existed. On a
    cluster of several data nodes it gets two shards and a replica, so searches gather hits from several
    nodes and survive losing one. ``vectors``: vector fields' mappings (a k-NN index); ``pipeline``: the ingest
    pipeline every document goes through (the embeddings')."""
    if cluster.exists(f"/{index}"):
        if not recreate:
            return False
        delete_index(cluster, index, only_ours=False)
    properties: dict[str, Any] = {}
    for field in text_fields:
        node = properties
        *parents, leaf = field.split(".")
        for p in parents:
            node = node.setdefault(p, {"properties": {}})["properties"]
        node[leaf] = {"type": "text"}
    shards = (
        {"number_of_shards": 2, "number_of_replicas": 1}
        if cluster.data_nodes > 1
        else {
            "number_of_shards": 1,
            "number_of_replicas": 0,
        }
    )
    settings: dict[str, Any] = {**shards, **({"index.knn": True} if vectors else {})}
    if pipeline:
        settings["index.default_pipeline"] = pipeline
    properties.update(vectors or {})
    cluster.call(
        "PUT", f"/{index}", {"settings": settings, "mappings": {"_meta": OWNER_META, "properties": properties}}
    )
    return True


def knn_field(dimension: int) -> dict[str, Any]:
    """The mapping of a vector field for embeddings of ``dimension`` (pure-Java Lucene HNSW, cosine)."""
    return {
        "type": "knn_vector",
        "dimension": dimension,
        "method": {
            "name": "hnsw",
            "engine": "lucene",
            "space_type": "cosinesimil",
            "parameters": {"m": 16, "ef_construction": 128},
        },
    }


def owned_by_kit(cluster: Cluster, index: str) -> bool | None:
    """True if the kit created ``index`` (its ``_meta``), False if someone else did, None if it does not exist."""
    try:
        mapping = cluster.call("GET", f"/{index}/_mapping")
    except NotFound:
        return None
    meta = next(iter(mapping.values()), {}).get("mappings", {}).get("_meta", {})
    return bool(meta.get("created_by") == OWNER_META["created_by"])


def delete_index(cluster: Cluster, index: str, *, only_ours: bool = True) -> bool:
    """Delete ``index``; with only_ours, only if the kit created it."""
    owned = owned_by_kit(cluster, index)
    if owned is None or (only_ours and not owned):
        return False
    cluster.call("DELETE", f"/{index}")
    return True


def combine_fields(doc: dict[str, Any], fields: Iterable[str], into: str = RERANK_FIELD) -> dict[str, Any]:
    """``doc`` plus ``into``: the non-empty ``fields`` joined with ". " (e.g. title and body)."""
    parts = [str(doc.get(f) or "").strip() for f in fields]
    return {**doc, into: ". ".join(p for p in parts if p)}


def read_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """Documents from a JSONL file; a BEIR record (_id, title, text) keeps its id as ``_id``."""
    try:
        with path.open(encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except ValueError as exc:
                        raise ConfigError(f"{path}:{n} is not valid JSON: {exc}") from None
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist") from None


def count_lines(path: Path) -> int:
    """Non-empty lines of a JSONL file (documents to expect)."""
    try:
        with path.open(encoding="utf-8") as f:
            return sum(1 for line in f if line.strip())
    except FileNotFoundError:
        raise ConfigError(f"{path} does not exist") from None


def load_documents(
    cluster: Cluster,
    index: str,
    docs: Iterable[dict[str, Any]],
    *,
    on_progress: Callable[[int], None] | None = None,
    refresh: bool = True,
) -> int:
    """Bulk-index documents (``_id`` is used as the id when present); returns how many were indexed."""

    def actions() -> Iterator[dict[str, Any]]:
        for doc in docs:
            doc = dict(doc)
            action: dict[str, Any] = {"_index": index, "_source": doc}
            if "_id" in doc:
                action["_id"] = str(doc.pop("_id"))
            yield action

    count = 0
    for _ in cluster.bulk(actions()):
        count += 1
        if on_progress:
            on_progress(1)
    if refresh:
        cluster.call("POST", f"/{index}/_refresh")
    return count


def load_jsonl(
    cluster: Cluster,
    index: str,
    path: Path,
    *,
    text_fields: Sequence[str],
    combine: Sequence[str] = (),
    only: Sequence[str] | None = None,
    recreate: bool = False,
    on_progress: Callable[[int], None] | None = None,
    vectors: dict[str, Any] | None = None,
    pipeline: str | None = None,
) -> int:
    """Create ``index`` (text mappings for ``text_fields``) and load ``path`` into it. With ``combine``,
    every document also gets RERANK_FIELD: those fields joined with ". ". With ``only``, documents keep
    just those fields (and ``_id``): a BEIR record's free-form metadata stays out of the mapping."""
    fields = [*text_fields, *combine, *([RERANK_FIELD] if combine else [])]
    create_index(cluster, index, list(dict.fromkeys(fields)), recreate=recreate, vectors=vectors, pipeline=pipeline)

    def docs() -> Iterator[dict[str, Any]]:
        for doc in read_jsonl(path):
            if only is not None:
                kept = {k: doc.get(k) or "" for k in only}
                doc = {"_id": str(doc["_id"]), **kept} if "_id" in doc else kept
            yield combine_fields(doc, combine) if combine else doc

    return load_documents(cluster, index, docs(), on_progress=on_progress)
