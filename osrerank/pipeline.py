"""Step: the neural-search ``rerank`` search pipeline (type ``ml_opensearch``)."""

from __future__ import annotations

import json
from typing import Any

from .config import Settings
from .errors import ConfigError, NotFound
from .opensearch import Cluster
from .templates import render
from .types import Found

__all__ = [
    "check_pipeline",
    "delete_pipeline",
    "ensure_pipeline",
    "per_document",
    "render_pipeline",
    "set_default_pipeline",
]


def per_document(settings: Settings) -> bool:
    """Whether the pipeline calls the model once per hit: when the model server caps texts per request
    (``--max-batch``), a page or window larger than the cap must not reach it as one call."""
    return bool(settings.max_batch)


def check_pipeline(settings: Settings) -> None:
    """Refuse pipeline settings that could only fail at search time."""
    if per_document(settings) and settings.on_model_failure == "first-stage":
        # measured on 3.6.0: when its calls fail, ml_inference passes the hits on in the order the calls
        # ended, so a window's first-stage top N would be lost
        raise ConfigError(
            "--on-model-failure first-stage cannot go with --max-batch: the per-hit model calls that --max-batch "
            "needs return failed hits in the order the calls ended, not in first-stage order. Use "
            "--on-model-failure fail, or raise the model server's per-request limit and drop --max-batch"
        )
    chunk = settings.chunk
    if settings.max_batch and chunk and chunk.passages > settings.max_batch:
        raise ConfigError(
            f"--long-documents {settings.long_documents} sends up to {chunk.passages} passages of one document "
            f"per model call, more than --max-batch {settings.max_batch}: use fewer passages, or raise the model "
            "server's limit"
        )


def render_pipeline(settings: Settings, model_id: str) -> dict[str, Any]:
    return render(
        "pipelines",
        "rerank",
        {
            "description": f"osrerank: rerank {', '.join(settings.document_fields)} with {settings.model}",
            "model_id": model_id,
            "document_fields": list(settings.document_fields),
            "window": settings.window or 0,
            "fail_open": settings.on_model_failure == "first-stage",
            "per_document": per_document(settings),
        },
    )


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
