"""Run the stand-in server in the foreground: ``osrerank serve``, or ``python -m osrerank.server OPTIONS_JSON``
as the stand-in target starts it in the background. Both take the one :class:`ServeOptions`."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..model import ScorerOptions
from ..scorer import load_scorer
from .app import create_app
from .auth import Auth
from .sigv4 import SigV4Verifier

__all__ = ["ServeOptions", "auth_from_env", "build_app", "serve"]


@dataclass(frozen=True)
class ServeOptions:
    """How to run the stand-in: the model (``scorer``) and the server around it."""

    scorer: ScorerOptions
    host: str = field(default="127.0.0.1", metadata={"help": "Address to listen on."})
    port: int = field(default=8080, metadata={"help": "Port to listen on (1-65535; 0: any free port)."})
    auth: bool = field(
        default=True,
        metadata={
            "help": "Require a SigV4 signature (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) or the bearer token "
            "(OSRERANK_BEARER_TOKEN) on every scoring route; --no-auth serves anyone (local use only)."
        },
    )
    region: str | None = field(
        default=None, metadata={"help": "SigV4 region to accept [default: AWS_REGION, AWS_DEFAULT_REGION, us-east-1]."}
    )
    record: bool = field(default=False, metadata={"help": "Keep the texts received, at /_osrerank/received (tests)."})
    max_batch_tokens: int = field(
        default=2048,
        metadata={"help": "Token budget of one model batch, shared round-robin by the waiting requests."},
    )
    max_wait_ms: float = field(default=5.0, metadata={"help": "Max wait to fill a batch when idle."})
    max_client_batch_size: int | None = field(
        default=None, metadata={"help": "Refuse requests of more pairs than this, as TEI does [default: 1024]."}
    )

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port {self.port} is out of range: pass --port between 1 and 65535")

    @property
    def signing_region(self) -> str:
        """The region SigV4 requests must be scoped to: what every AWS tool reads, unless given."""
        return self.region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeOptions:
        data: dict[str, Any] = json.loads(text)
        return cls(scorer=ScorerOptions(**data.pop("scorer")), **data)


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


def build_app(options: ServeOptions) -> Any:
    auth = auth_from_env(options.signing_region) if options.auth else None
    scorer = load_scorer(options.scorer)
    choice = {"precision": scorer.choice.mode, "why": scorer.choice.reason}
    logging.getLogger("osrerank.server").info(json.dumps(choice))
    return create_app(
        scorer,
        activation=options.scorer.activation,
        auth=auth,
        record=options.record,
        max_batch_tokens=options.max_batch_tokens,
        max_wait_s=options.max_wait_ms / 1000,
        max_client_batch_size=options.max_client_batch_size,
    )


def serve(options: ServeOptions) -> None:
    """Load the model and serve until interrupted."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    app = build_app(options)
    log = logging.getLogger("osrerank.server")
    log.info(json.dumps({"serving": options.scorer.model, "port": options.port, "auth": options.auth}))
    uvicorn.run(app, host=options.host, port=options.port, log_level="warning", access_log=False)
