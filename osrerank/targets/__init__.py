"""Deploy targets, chosen by name. Adding a target: a module in this package and its line in ``TARGETS``; a
target's ``Options`` section becomes ``targets.<name>`` in the settings, with its flags, by itself."""

from __future__ import annotations

from ..types import Progress, quiet
from .base import DeploySettings, Endpoint, RemoteTarget, Target
from .in_cluster import InClusterTarget
from .sagemaker import SageMakerTarget
from .standin import StandInTarget
from .torchserve import TorchServeTarget

__all__ = ["TARGETS", "DeploySettings", "Endpoint", "RemoteTarget", "Target", "get_target"]

TARGETS: dict[str, type[Target]] = {
    StandInTarget.name: StandInTarget,
    SageMakerTarget.name: SageMakerTarget,
    InClusterTarget.name: InClusterTarget,
    TorchServeTarget.name: TorchServeTarget,
}


def get_target(settings: DeploySettings, progress: Progress = quiet) -> Target:
    """The target ``settings.target`` names (the settings only hold names of ``TARGETS``)."""
    return TARGETS[settings.target](settings, progress)
