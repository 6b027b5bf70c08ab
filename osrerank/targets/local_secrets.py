"""The secrets the local stand-in checks and its connectors send: a SigV4 key pair and a bearer token.

AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY and OSRERANK_BEARER_TOKEN win when set; what is not set is
generated once and kept in a 0600 file under the cache. The stand-in gets them through its
environment, never its command line; the connector stores them as ml-commons credentials.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass, field

from ..config.environment import get
from ..paths import cache_root
from ..types import Credentials

__all__ = ["LocalSecrets", "local_secrets"]


@dataclass(frozen=True)
class LocalSecrets:
    access_key: str
    secret_key: str = field(repr=False)
    bearer_token: str = field(repr=False)

    def credentials(self) -> Credentials:
        """What a connector to the stand-in sends: the key pair for SigV4 templates, the token for others."""
        return Credentials(access_key=self.access_key, secret_key=self.secret_key, bearer_token=self.bearer_token)

    def env(self) -> dict[str, str]:
        """The variables the stand-in reads them from."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "OSRERANK_BEARER_TOKEN": self.bearer_token,
        }


def local_secrets() -> LocalSecrets:
    path = cache_root() / "endpoint" / "local-credentials.json"
    stored = json.loads(path.read_text()) if path.exists() else {}
    if not {"access_key", "secret_key", "bearer_token"} <= set(stored):
        stored = {
            "access_key": "AKIALOCAL" + secrets.token_hex(6).upper(),
            "secret_key": secrets.token_urlsafe(30),
            "bearer_token": secrets.token_urlsafe(30),
            **stored,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(stored, f)
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not (key and secret):
        key, secret = stored["access_key"], stored["secret_key"]
    return LocalSecrets(key, secret, get("OSRERANK_BEARER_TOKEN") or stored["bearer_token"])
