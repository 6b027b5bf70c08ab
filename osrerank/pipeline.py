"""Step: the neural-search ``rerank`` search pipeline (type ``ml_opensearch``)."""

from __future__ import annotations

import json
from typing import Any

from .config import Settings
from .errors import ConfigError, NotFound
from .opensearch import Cluster
from .templates import render
from .types import Found

__all__ = ["check_pipeline", "delete_pipeline", "ensure_pipeline", "render_pipeline", "set_default_pipeline"]


def check_pipeline(settings: Settings) -> None:
    """Refuse pipeline settings that could only fail at search time."""
    chunk = settings.chunk
    texts = (settings.window or 0) * (chunk.passages if chunk else 1)
    if settings.max_batch and texts > settings.max_batch:
        raise ConfigError(
            f"--window {settings.window} sends up to {texts} texts per model call"
            + (f" ({chunk.passages} passages per document)" if chunk else "")
            + f", more than --max-batch {settings.max_batch}: lower the window, or raise the model server's limit"
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
            "max_batch": settings.max_batch or 0,
            "fail_open": settings.on_model_failure == "first-stage",
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
