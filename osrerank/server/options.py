"""The stand-in server's settings section (``targets.standin``): where it listens, whom it serves, how it
batches. ``osrerank serve`` and the standin target take this one section, beside the ``model`` section."""

from __future__ import annotations

from ..config.section import Section, setting

__all__ = ["ServerOptions"]

#: The port ``osrerank serve`` listens on when none is given (the standin target takes any free one).
SERVE_PORT = 8080


class ServerOptions(Section):
    """The stand-in around the model: address, authentication, batching, limits."""

    host: str = setting("127.0.0.1", "Address the stand-in listens on.")
    port: int | None = setting(
        None,
        f"Port the stand-in listens on (0: any free port) [default: {SERVE_PORT} for osrerank serve, any free port "
        "for the standin target].",
        ge=0,
        le=65535,
    )
    auth: bool = setting(
        True,
        "Require a SigV4 signature (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY) or the bearer token "
        "(OSRERANK_BEARER_TOKEN) on every scoring route; --no-auth serves anyone (local use only).",
    )
    record: bool = setting(False, "Keep the texts received, at /_osrerank/received (tests).")
    max_batch_tokens: int = setting(
        2048, "Token budget of one model batch, shared round-robin by the waiting requests.", ge=1
    )
    max_wait_ms: float = setting(5.0, "Max wait to fill a batch when idle.", ge=0)
    cache_mb: float = setting(
        64,
        "Keep the scores of pairs already scored, within this many MB (a repeated search skips the model; about "
        "240 bytes a pair, so 64 MB holds some 280,000 pairs); 0: off.",
        ge=0,
    )
    max_client_batch_size: int | None = setting(
        None, "Refuse requests of more pairs than this, as TEI does [default: 1024].", ge=1
    )
