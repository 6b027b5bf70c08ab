"""The one cache folder osrerank writes to: fetched servers, node data, endpoint state, ONNX conversions."""

from __future__ import annotations

import os
from pathlib import Path

from .config.environment import get

__all__ = ["cache_root"]


def cache_root() -> Path:
    """$OSRERANK_CACHE, else a per-user cache.

    As root the cache goes under /var/cache, because the unprivileged node user cannot
    traverse /root.
    """
    env = get("OSRERANK_CACHE")
    if env:
        return Path(env)
    if os.geteuid() == 0:
        return Path("/var/cache/osrerank")
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "osrerank"
