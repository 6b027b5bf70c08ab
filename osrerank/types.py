"""Small value types shared by the steps: what a step found or made, connector credentials, progress."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

__all__ = ["Action", "Credentials", "Found", "Progress", "quiet"]

#: What a step did with its object.
Action = Literal["created", "reused", "replaced", "updated"]

#: A one-line progress report for long work (the CLI prints it; the library stays quiet by default).
Progress = Callable[[str], None]


def quiet(_: str) -> None:
    """The default Progress: say nothing."""


@dataclass(frozen=True)
class Found:
    """An object the kit needs (in OpenSearch or on AWS), and whether this run created, reused, replaced
    or updated it. ``id`` is the object's id, or its name or URL where it has no id."""

    id: str
    action: Action


@dataclass(frozen=True)
class Credentials:
    """What a connector authenticates with. Never printed: the secrets are left out of ``repr``."""

    access_key: str | None = None
    secret_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    role_arn: str | None = None
    bearer_token: str | None = field(default=None, repr=False)
