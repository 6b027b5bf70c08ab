"""Step: the ml-commons connector for the model endpoint, rendered from a template and found again by name."""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any

from .config import Settings
from .errors import ConfigError
from .ml_commons import MLCommons
from .templates import connector_template, render
from .types import Credentials, Found

__all__ = ["delete_connector", "ensure_connector", "render_connector"]


def render_connector(settings: Settings, template: str, endpoint_url: str, credentials: Credentials) -> dict[str, Any]:
    """The full ``_plugins/_ml/connectors/_create`` body for ``template``.

    Example::

        render_connector(Settings(), "sagemaker-hf-text-classification",
                         "https://runtime.sagemaker.us-east-1.amazonaws.com/endpoints/x/invocations",
                         Credentials(access_key="AKIA...", secret_key="..."))
    """
    info = connector_template(template)
    if settings.activation == "none" and not info.raw_scores:
        raise ConfigError(f"the {template} API returns relevance scores in [0, 1]: --activation none is not available")
    if info.auth == "aws_sigv4" and not (credentials.role_arn or (credentials.access_key and credentials.secret_key)):
        raise ConfigError(f"the {template} connector needs AWS credentials (access key + secret) or a role ARN")
    variables = {
        "name": settings.connector_name,
        "description": f"osrerank: {settings.model} via {template}",
        "endpoint_url": endpoint_url,
        "region": settings.region,
        # ml-commons reads client_config timeouts as whole seconds (Duration.ofSeconds, 2.19 and 3.x)
        "timeout_s": max(1, math.ceil(settings.timeout_s)),
        "max_retries": 0,
        "raw_scores": settings.activation == "none",
        "chunk": settings.chunk,
        "remote_model": settings.remote_model,
        **{
            k: getattr(credentials, k)
            for k in ("access_key", "secret_key", "session_token", "role_arn", "bearer_token")
        },
    }
    return render("connectors", template, variables)


def _fingerprint(body: dict[str, Any]) -> str:
    """Hash of the body, secrets included (a rotated key must replace the connector), never stored in clear."""
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def ensure_connector(ml: MLCommons, body: dict[str, Any]) -> Found:
    """Reuse the connector of that name if it was made from the same body; else replace it (and the
    models on it, which cannot outlive it)."""
    tag = f"(osrerank {_fingerprint(body)})"
    body = {**body, "description": f"{body.get('description', '')} {tag}".strip()}
    existing = ml.find_connectors(body["name"])
    for c in existing:
        if c.get("description", "").endswith(tag):
            return Found(c["id"], "reused")
    for c in existing:
        delete_connector(ml, c["id"])
    return Found(ml.create_connector(body), "replaced" if existing else "created")


def delete_connector(ml: MLCommons, connector_id: str) -> list[str]:
    """Delete a connector, first undeploying and deleting the models that use it; returns their ids."""
    model_ids = ml.models_using(connector_id)
    for model_id in model_ids:
        ml.delete_model(model_id)
    ml.delete_connector(connector_id)
    return model_ids
