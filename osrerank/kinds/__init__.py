"""Model kinds, chosen by name (``--kind``). Adding a kind: a module in this package (a ``ModelKind``) and its
line in ``KINDS``."""

from __future__ import annotations

from .base import Encoded, ModelKind, Pair
from .bi_encoder import BiEncoder
from .cross_encoder import CrossEncoder

__all__ = ["KINDS", "Encoded", "ModelKind", "Pair", "kind_refusal"]

KINDS: dict[str, type[ModelKind]] = {
    CrossEncoder.name: CrossEncoder,
    BiEncoder.name: BiEncoder,
}


def kind_refusal(kind: str, target: str) -> str | None:
    """Why ``target`` cannot run a model of ``kind``, or None."""
    can = KINDS[kind].targets
    if target in can:
        return None
    return f"--kind {kind} runs on the {' and '.join(sorted(can))} target(s) only, not --target {target}"
