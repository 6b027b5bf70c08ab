"""Step: the ml-commons connector for a model endpoint, rendered from a template and found again by name; and
the ``connector`` settings section every remote target shares (which template, which endpoint, how long to wait).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from typing import Any

from .backoff import Backoff
from .config.section import Section, setting
from .errors import ConfigError, Conflict, OpenSearchError
from .ml_commons import CONNECTOR_INDEX, MLCommons
from .pipeline import Chunking
from .templates import connector_template, render
from .types import Credentials, Found

__all__ = ["ConnectorOptions", "delete_connector", "ensure_connector", "passes_inputs_through", "render_connector"]


class ConnectorOptions(Section):
    """How the cluster reaches a model server: the template (the server's API), its URL when the kit does
    not start one, the region SigV4 signs for, and the call's timeout."""

    shorthand = "endpoint_url"

    template: str | None = setting(None, "Connector template [default: the target's].")
    endpoint_url: str | None = setting(None, "Use this model endpoint instead of deploying one.")
    region: str = setting(
        None,
        "AWS region of the endpoint's SigV4 scope (SageMaker, Bedrock; the stand-in checks it) [default: AWS_REGION, "
        "AWS_DEFAULT_REGION, us-east-1].",
        factory=lambda: os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1",
    )
    role_arn: str | None = setting(
        None, "IAM role the connector assumes (Amazon OpenSearch Service).", flag="--connector-role-arn"
    )
    remote_model: str | None = setting(
        None,
        "Model a hosted rerank API is asked for: Cohere's [rerank-v3.5] or a Bedrock model id [amazon.rerank-v1:0].",
        pattern=r"^[A-Za-z0-9._:/-]+$",
    )
    timeout_s: float = setting(30.0, "Model call timeout in seconds.", flag="--timeout", gt=0)


def render_connector(
    options: ConnectorOptions,
    template: str,
    endpoint_url: str,
    credentials: Credentials,
    *,
    name: str,
    description: str,
    raw_scores: bool = False,
    chunk: Chunking | None = None,
    passthrough: bool = False,
) -> dict[str, Any]:
    """The full ``_plugins/_ml/connectors/_create`` body for ``template``; ``raw_scores``: the model's logits
    (activation none), ``chunk``: long documents cut into passages in the pre-process, ``passthrough``: the
    pairs handed to ml-commons as text it neither re-parses nor escapes (3.0+: :func:`passes_inputs_through`).

    Example::

        render_connector(ConnectorOptions(region="us-east-1"), "sagemaker-hf-text-classification",
                         "https://runtime.sagemaker.us-east-1.amazonaws.com/endpoints/x/invocations",
                         Credentials(access_key="AKIA...", secret_key="..."), name="x-connector", description="x")
    """
    info = connector_template(template)
    if raw_scores and not info.raw_scores:
        raise ConfigError(f"the {template} API returns relevance scores in [0, 1]: --activation none is not available")
    if info.auth == "aws_sigv4" and not (credentials.role_arn or (credentials.access_key and credentials.secret_key)):
        raise ConfigError(f"the {template} connector needs AWS credentials (access key + secret) or a role ARN")
    variables = {
        "name": name,
        "description": description,
        "endpoint_url": endpoint_url,
        "region": options.region,
        # ml-commons reads client_config timeouts as whole seconds (Duration.ofSeconds, 2.19 and 3.x)
        "timeout_s": max(1, math.ceil(options.timeout_s)),
        "max_retries": 0,
        "raw_scores": raw_scores,
        "chunk": chunk,
        "passthrough": passthrough,
        "remote_model": options.remote_model,
        **{
            k: getattr(credentials, k)
            for k in ("access_key", "secret_key", "session_token", "role_arn", "bearer_token")
        },
    }
    return render("connectors", template, variables)


def passes_inputs_through(ml: MLCommons) -> bool:
    """Whether this cluster's ml-commons honours ``no_escape_params`` (3.0+), so a connector may hand it the pairs
    as a string it does not parse to decide on escaping (connectors/_painless.j2, ``return_pairs``)."""
    return ml.cluster.version >= (3, 0, 0)


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


#: Longer than the model index's refresh interval (1 s): a model registered just before shows by then.
REFRESH_S = 1.5


def delete_connector(ml: MLCommons, connector_id: str, wait_s: float = 30.0) -> list[str]:
    """Delete a connector, first undeploying and deleting the models that use it; returns their ids. ml-commons
    refuses (409) while any model is on it, and the model search can lag a model registered just before, so
    the models are looked up again until the connector goes (``wait_s`` at most): CI once saw the connector
    refused for 10 s over a model the first lookup had not found.

    ml-commons also refuses over models on *other* connectors: it looks for users with a ``match`` query on
    the model index's ``connector_id``, a text field, so ``dz-iUKIB3n_bSXBO5FMJ`` is matched by any model whose
    connector id also starts ``dz-`` (CI lost a run to that). When twice, a refresh interval apart, no model is
    on this connector and every model the refusal names is on another, the connector's document is deleted
    as ml-commons' own delete would have."""
    deleted: list[str] = []
    deadline, pause, misnamed = time.monotonic() + wait_s, Backoff(), 0
    while True:
        for model_id in ml.models_using(connector_id):
            if model_id not in deleted:
                ml.delete_model(model_id)
                deleted.append(model_id)
        try:
            ml.delete_connector(connector_id)
            return deleted
        except Conflict as refusal:
            elsewhere = _models_elsewhere(ml, connector_id, refusal)
            misnamed = misnamed + 1 if elsewhere and not ml.models_using(connector_id) else 0
            if misnamed == 2:
                _delete_misjudged(ml, connector_id, elsewhere)
                return deleted
            if time.monotonic() > deadline:
                raise
            if misnamed:
                time.sleep(REFRESH_S)
            else:
                pause.sleep()


def _models_elsewhere(ml: MLCommons, connector_id: str, refusal: Conflict) -> dict[str, str | None]:
    """The models a 409 names, when every one of them is on another connector (else empty)."""
    listed = re.search(r"\[([\w\-, ]+)\]\s*$", str(refusal))  # "... update the models first: [id, id]"
    named = re.findall(r"[\w-]+", listed[1]) if listed else []
    if not named:
        return {}
    found = ml.connectors_of(named)
    return found if len(found) == len(named) and connector_id not in found.values() else {}


def _delete_misjudged(ml: MLCommons, connector_id: str, elsewhere: dict[str, str | None]) -> None:
    """Delete the connector past ml-commons' mistaken check, or say why it stays and what lets it go."""
    blockers = ", ".join(f"{m} (on connector {c})" for m, c in elsewhere.items())
    try:
        ml.delete_connector_document(connector_id)
    except OpenSearchError as exc:
        raise ConfigError(
            f"connector {connector_id} has no models, but ml-commons refuses to delete it over {blockers}: it "
            "matches connector ids as text, so ids sharing a dash-separated part collide. The kit's way round, "
            f"deleting the document from {CONNECTOR_INDEX}, was refused too ({exc}). It goes once those models "
            f"are deleted; or delete it as an admin: DELETE {CONNECTOR_INDEX}/_doc/{connector_id}"
        ) from exc
