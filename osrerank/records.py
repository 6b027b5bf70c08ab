"""What setup made, remembered per search pipeline: the settings it resolved (never a secret), so the commands
that act on a setup (search, predict, doctor, eval, teardown) start from them instead of from the defaults.

A record is one JSON file in the kit's cache (``setups/<pipeline>.json``), written by a setup that succeeded
and removed by the teardown of that pipeline. sources.py merges it below the TOML file, the variables and the
flags, so anything given again still wins. Which record: the pipeline named by ``--pipeline`` (or its
variable or TOML key), else the one setup made last.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .paths import cache_root

__all__ = ["all_records", "forget", "recorded", "remember"]


def _folder() -> Path:
    return cache_root() / "setups"


def _file(pipeline: str) -> Path:
    return _folder() / f"{pipeline.replace('/', '_')}.json"


def remember(pipeline: str, settings: Mapping[str, Any], steps: Mapping[str, str]) -> Path:
    """Write the record of a setup: its settings (secret-free, as JSON) and the ids of what it made."""
    path = _file(pipeline)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"pipeline": pipeline, "at": time.time(), "settings": dict(settings), "steps": dict(steps)}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2))
    tmp.replace(path)
    return path


def all_records() -> list[dict[str, Any]]:
    """Every record, the most recent first (an unreadable file is skipped)."""
    found = []
    for path in _folder().glob("*.json") if _folder().is_dir() else []:
        try:
            found.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue
    return sorted(found, key=lambda r: -float(r.get("at", 0)))


def recorded(pipeline: str | None) -> dict[str, Any] | None:
    """The settings setup recorded for ``pipeline``, or for the most recent setup when it is None."""
    if pipeline is not None:
        try:
            return dict(json.loads(_file(pipeline).read_text())["settings"])
        except (OSError, ValueError, KeyError):
            return None
    every = all_records()
    return dict(every[0]["settings"]) if every else None


def forget(pipeline: str) -> bool:
    """Remove the record of ``pipeline``; True if there was one."""
    path = _file(pipeline)
    existed = path.exists()
    path.unlink(missing_ok=True)
    return existed
