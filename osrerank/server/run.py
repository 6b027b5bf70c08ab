"""Run the stand-in server in the foreground (``osrerank serve`` and ``python -m osrerank.server``)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

from ..errors import ConfigError
from ..model import Activation, Kind, Precision, load_scorer
from .app import create_app
from .auth import Auth
from .sigv4 import SigV4Verifier

__all__ = ["ServeOptions", "auth_from_env", "build_app", "serve"]


@dataclass(frozen=True)
class ServeOptions:
    """How to run the stand-in; mirrors the ``osrerank serve`` flags."""

    model: str
    kind: Kind = "cross-encoder"
    activation: Activation = "sigmoid"
    host: str = "127.0.0.1"
    port: int = 8080
    auth: bool = True
    region: str = "us-east-1"
    record: bool = False
    batch_size: int = 32
    max_batch_pairs: int = 256
    max_wait_ms: float = 5.0
    threads: int | None = None
    precision: Precision = "fp32"


def auth_from_env(region: str) -> Auth:
    """What clients authenticate with: SigV4 with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, and/or
    ``Authorization: Bearer $OSRERANK_BEARER_TOKEN``. At least one must be set."""
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    auth = Auth(
        sigv4=SigV4Verifier(key, secret, region) if key and secret else None,
        bearer_token=os.environ.get("OSRERANK_BEARER_TOKEN") or None,
    )
    if not auth.enabled:
        raise ConfigError(
            "the stand-in authenticates every scoring request: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "(SigV4) and/or OSRERANK_BEARER_TOKEN, or pass --no-auth to serve unauthenticated (local use only)"
        )
    return auth


def build_app(options: ServeOptions):  # type: ignore[no-untyped-def]
    auth = auth_from_env(options.region) if options.auth else None
    scorer = load_scorer(
        options.model,
        kind=options.kind,
        activation=options.activation,
        batch_size=options.batch_size,
        threads=options.threads,
        precision=options.precision,
    )
    return create_app(
        scorer,
        activation=options.activation,
        auth=auth,
        record=options.record,
        max_pairs=options.max_batch_pairs,
        max_wait_s=options.max_wait_ms / 1000,
    )


def serve(options: ServeOptions) -> None:
    """Load the model and serve until interrupted."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    app = build_app(options)
    uvicorn.run(app, host=options.host, port=options.port, log_level="warning", access_log=False)
