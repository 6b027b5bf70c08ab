"""Run the stand-in server in the foreground: ``osrerank serve``, or ``python -m osrerank.server SPEC_JSON`` as the
standin target starts it in the background. Both hand over the same :class:`ServerSpec`: the ``model``
section, the ``targets.standin`` section and the SigV4 region, serialised once.

The precision is decided here, where the model is loaded to serve, and nowhere else: the decision (mode, why,
figures) is logged as one JSON line and shown by ``/ping``, where the standin target reads it back.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from pydantic import BaseModel, ConfigDict

from ..config.environment import get
from ..errors import ConfigError
from ..scorer import ModelOptions, load_scorer
from .app import create_app
from .auth import Auth
from .options import SERVE_PORT, ServerOptions
from .sigv4 import SigV4Verifier

__all__ = ["REFUSED", "ServerSpec", "auth_from_env", "build_app", "serve"]

#: How the background server's last log line starts when it refuses its settings (the target shows the rest).
REFUSED = "osrerank serve: "


class ServerSpec(BaseModel):
    """Everything a stand-in process needs, validated by the same section classes on both sides."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    model: ModelOptions
    server: ServerOptions = ServerOptions()
    region: str = "us-east-1"

    @property
    def port(self) -> int:
        return SERVE_PORT if self.server.port is None else self.server.port


def auth_from_env(region: str) -> Auth:
    """What clients authenticate with: SigV4 with AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, and/or
    ``Authorization: Bearer $OSRERANK_BEARER_TOKEN``. At least one must be set."""
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    auth = Auth(
        sigv4=SigV4Verifier(key, secret, region) if key and secret else None,
        bearer_token=get("OSRERANK_BEARER_TOKEN"),
    )
    if not auth.enabled:
        raise ConfigError(
            "the stand-in authenticates every scoring request: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "(SigV4) and/or OSRERANK_BEARER_TOKEN, or pass --no-auth to serve unauthenticated (local use only)"
        )
    return auth


def build_app(spec: ServerSpec) -> Any:
    """Load the model (deciding its precision) and build the ASGI app around it."""
    auth = auth_from_env(spec.region) if spec.server.auth else None
    scorer = load_scorer(spec.model, cache_mb=spec.server.cache_mb)
    decision = scorer.decision
    logging.getLogger("osrerank.server").info(
        json.dumps({"precision": decision.mode, "why": decision.reason, "figures": decision.figures})
    )
    return create_app(
        scorer,
        activation=spec.model.activation,
        auth=auth,
        record=spec.server.record,
        max_batch_tokens=spec.server.max_batch_tokens,
        max_wait_s=spec.server.max_wait_ms / 1000,
        max_client_batch_size=spec.server.max_client_batch_size,
    )


#: Seconds the stand-in keeps an idle connection open: longer than its clients keep one in their pools (ml-commons'
#: AWS SDK Netty client: 60 s). With uvicorn's default of 5 s, a pooled connection idle for about 5 s could be
#: closed by the server just as ml-commons sent the next call on it, and that call failed ("The connection was
#: closed during the request": one per-hit call in a CI run of 3.6.0 on three nodes).
KEEP_ALIVE_S = 75


def serve(spec: ServerSpec) -> None:
    """Load the model and serve until interrupted."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    app = build_app(spec)
    log = logging.getLogger("osrerank.server")
    log.info(json.dumps({"serving": spec.model.path, "port": spec.port, "auth": spec.server.auth}))
    uvicorn.run(
        app,
        host=spec.server.host,
        port=spec.port,
        log_level="warning",
        access_log=False,
        timeout_keep_alive=KEEP_ALIVE_S,
    )
