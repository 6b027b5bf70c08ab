"""``osrerank serve``: the stand-in model server in the foreground."""

from __future__ import annotations

from typing import Any

import click

from .common import CONTEXT, friendly_errors, resolve_settings, settings_options


@click.command(context_settings=CONTEXT)
@settings_options("model", "targets.standin", "connector.region")
@friendly_errors
def serve(**kwargs: Any) -> None:
    """Serve a cross-encoder over SageMaker-runtime, TorchServe, TEI, Cohere and Bedrock-style APIs.

    Every scoring request must carry a SigV4 signature (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)
    or the bearer token (OSRERANK_BEARER_TOKEN) unless --no-auth is given.

    \b
    Example:
        osrerank serve --model ./ms-marco-MiniLM-L-6-v2 --port 8080 --no-auth
        curl -s localhost:8080/rerank -d '{"query":"q","texts":["a","b"]}'
    """
    from ..server.run import ServerSpec
    from ..server.run import serve as run

    settings = resolve_settings(kwargs)
    run(ServerSpec(model=settings.model, server=settings.targets.standin, region=settings.connector.region))


COMMANDS = [serve]
