"""``osrerank serve``: the stand-in model server in the foreground."""

from __future__ import annotations

from typing import Any

import click

from ..model import ScorerOptions
from ..server.run import ServeOptions
from .common import CONTEXT, dataclass_options, friendly_errors


@click.command(context_settings=CONTEXT)
@dataclass_options(ScorerOptions, required=("model",))
@dataclass_options(ServeOptions, skip=("scorer",))
@friendly_errors
def serve(**options: Any) -> None:
    """Serve a cross-encoder over SageMaker-runtime, TorchServe and TEI-style APIs.

    Every scoring request must carry a SigV4 signature (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)
    or the bearer token (OSRERANK_BEARER_TOKEN) unless --no-auth is given.

    \b
    Example:
        osrerank serve --model ./ms-marco-MiniLM-L-6-v2 --port 8080 --no-auth
        curl -s localhost:8080/rerank -d '{"query":"q","texts":["a","b"]}'
    """
    from ..server.run import serve as run

    scorer = {f: options.pop(f) for f in ScorerOptions.__dataclass_fields__}
    run(ServeOptions(scorer=ScorerOptions(**scorer), **options))


COMMANDS = [serve]
