"""Step: create (or find again) the ml-commons connector for the model endpoint."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from .config import Settings
from .errors import ConfigError
from .opensearch import Cluster
from .templates import render

__all__ = [
    "Credentials",
    "Found",
    "connector_name",
    "delete_connector",
    "ensure_connector",
    "find_connectors",
    "render_connector",
]


@dataclass(frozen=True)
class Credentials:
    """What the connector authenticates with. Never printed: ``repr`` hides the secrets."""

    access_key: str | None = None
    secret_key: str | None = None
    session_token: str | None = None
    role_arn: str | None = None
    bearer_token: str | None = None

    def __repr__(self) -> str:
        return f"Credentials(access_key={self.access_key!r}, role_arn={self.role_arn!r}, secrets=hidden)"


@dataclass(frozen=True)
class Found:
    """An object the kit needs in OpenSearch, and whether this run created, reused or replaced it."""

    id: str
    action: str  # "created" | "reused" | "replaced"


def connector_name(settings: Settings) -> str:
    return f"{settings.name}-connector"


def render_connector(settings: Settings, endpoint_url: str, credentials: Credentials) -> dict[str, Any]:
    """The full ``_plugins/_ml/connectors/_create`` body for ``settings.connector_template``.

    Example::

        render_connector(Settings(), "https://runtime.sagemaker.us-east-1.amazonaws.com/endpoints/x/invocations",
                         Credentials(access_key="AKIA...", secret_key="..."))
    """
    template = settings.connector_template
    if template == "sagemaker-hf-text-classification" and not (
        credentials.role_arn or (credentials.access_key and credentials.secret_key)
    ):
        raise ConfigError("the SageMaker connector needs AWS credentials (access key + secret) or --role-arn")
    variables = {
        "name": connector_name(settings),
        "description": f"osrerank: {settings.model} via {template}",
        "endpoint_url": endpoint_url,
        "region": settings.region,
        # ml-commons reads client_config timeouts as whole seconds (Duration.ofSeconds, 2.19 and 3.x)
        "timeout_s": max(1, math.ceil(settings.timeout_s)),
        "max_retries": 0,
        "raw_scores": settings.activation == "none",
        **{
            k: getattr(credentials, k)
            for k in ("access_key", "secret_key", "session_token", "role_arn", "bearer_token")
        },
    }
    return render("connectors", template, variables)


def _fingerprint(body: dict[str, Any]) -> str:
    """Hash of the body, secrets included (a rotated key must replace the connector), never stored in clear."""
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def find_connectors(cluster: Cluster, name: str) -> list[dict[str, Any]]:
    return cluster.find("/_plugins/_ml/connectors/_search", {"term": {"name.keyword": name}})


def ensure_connector(cluster: Cluster, body: dict[str, Any]) -> Found:
    """Reuse the connector of that name if it was made from the same body; else replace it."""
    tag = f"(osrerank {_fingerprint(body)})"
    body = {**body, "description": f"{body.get('description', '')} {tag}".strip()}
    existing = find_connectors(cluster, body["name"])
    for c in existing:
        if c.get("description", "").endswith(tag):
            return Found(c["id"], "reused")
    for c in existing:
        delete_connector(cluster, c["id"])
    created = cluster.call("POST", "/_plugins/_ml/connectors/_create", body)
    return Found(created["connector_id"], "replaced" if existing else "created")


def delete_connector(cluster: Cluster, connector_id: str) -> list[str]:
    """Delete a connector, first undeploying and deleting the models that use it; returns their ids."""
    from .register import delete_model, models_using

    model_ids = models_using(cluster, connector_id)
    for model_id in model_ids:
        delete_model(cluster, model_id)
    cluster.call("DELETE", f"/_plugins/_ml/connectors/{connector_id}")
    return model_ids
