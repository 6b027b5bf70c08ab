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
from pathlib import Path

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
    stored = _read(path)
    if not {"access_key", "secret_key", "bearer_token"} <= set(stored):
        _store(
            path,
            {
                "access_key": "AKIALOCAL" + secrets.token_hex(6).upper(),
                "secret_key": secrets.token_urlsafe(30),
                "bearer_token": secrets.token_urlsafe(30),
                **stored,
            },
            replace=bool(stored),
        )
        stored = _read(path)
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not (key and secret):
        key, secret = stored["access_key"], stored["secret_key"]
    return LocalSecrets(key, secret, get("OSRERANK_BEARER_TOKEN") or stored["bearer_token"])


def _read(path: Path) -> dict[str, str]:
    return dict(json.loads(path.read_text())) if path.exists() else {}


def _store(path: Path, values: dict[str, str], *, replace: bool) -> None:
    """Write the secrets whole (a 0600 file beside, then moved into place). A new file is linked: when two
    callers generate at once (stand-ins started side by side in a fresh cache) the first one's secrets win and
    both read them back, so no stand-in starts with secrets its connectors will not send."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(values, f)
    try:
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
    except FileExistsError:
        pass  # another caller's secrets are in place: they are the ones
    finally:
        tmp.unlink(missing_ok=True)
