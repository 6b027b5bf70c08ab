"""Step: the neural-search ``rerank`` search pipeline (type ``ml_opensearch``)."""

from __future__ import annotations

import json
from typing import Any

from .config import Settings
from .errors import NotFound
from .opensearch import Cluster
from .templates import render
from .types import Found

__all__ = ["delete_pipeline", "ensure_pipeline", "render_pipeline", "set_default_pipeline"]


def render_pipeline(settings: Settings, model_id: str) -> dict[str, Any]:
    return render(
        "pipelines",
        "rerank",
        {
            "description": f"osrerank: rerank {', '.join(settings.document_fields)} with {settings.model}",
            "model_id": model_id,
            "document_fields": list(settings.document_fields),
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
