"""Step: the neural-search ``rerank`` search pipeline (type ``ml_opensearch``)."""

from __future__ import annotations

from typing import Any

from .config import Settings
from .connector import Found
from .errors import OpenSearchError
from .opensearch import Cluster
from .templates import render

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
    except OpenSearchError as exc:
        if exc.status != 404:
            raise
        current = None
    if current is not None and _same(current, body):
        return Found(name, "reused")
    cluster.call("PUT", f"/_search/pipeline/{name}", body)
    return Found(name, "replaced" if current is not None else "created")


def _same(current: dict[str, Any], wanted: dict[str, Any]) -> bool:
    def core(p: dict[str, Any]) -> Any:
        return [r.get("rerank", r) for r in p.get("response_processors", [])], p.get("description")

    return bool(core(current) == core(wanted))


def set_default_pipeline(cluster: Cluster, index: str, name: str) -> None:
    """Make every search on ``index`` go through the pipeline (index.search.default_pipeline)."""
    cluster.call("PUT", f"/{index}/_settings", {"index.search.default_pipeline": name})


def delete_pipeline(cluster: Cluster, name: str) -> bool:
    try:
        cluster.call("DELETE", f"/_search/pipeline/{name}")
        return True
    except OpenSearchError as exc:
        if exc.status == 404:
            return False
        raise
