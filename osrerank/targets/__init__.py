"""Deploy targets, chosen by name. Adding a target: a module in this package and its line in ``TARGETS``."""

from __future__ import annotations

from ..config import Settings
from ..errors import ConfigError
from ..types import Progress, quiet
from .base import Endpoint, RemoteTarget, Target
from .in_cluster import InClusterTarget
from .sagemaker import SageMakerTarget
from .standin import StandInTarget
from .torchserve import TorchServeTarget

__all__ = ["TARGETS", "Endpoint", "RemoteTarget", "Target", "get_target"]

TARGETS: dict[str, type[Target]] = {
    StandInTarget.name: StandInTarget,
    SageMakerTarget.name: SageMakerTarget,
    InClusterTarget.name: InClusterTarget,
    TorchServeTarget.name: TorchServeTarget,
}
#: Earlier names that still work.
ALIASES = {"local": StandInTarget.name}


def get_target(settings: Settings, progress: Progress = quiet) -> Target:
    """The target ``settings.target`` names."""
    name = ALIASES.get(settings.target, settings.target)
    if name not in TARGETS:
        raise ConfigError(f"unknown target {settings.target!r}: pass --target with one of {', '.join(TARGETS)}")
    return TARGETS[name](settings, progress)
