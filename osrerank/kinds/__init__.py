"""Model kinds, chosen by name (``--kind``) or found from the folder (``auto``). Adding a kind: a module in this
package (a ``ModelKind``) and its line in ``KINDS``."""

from __future__ import annotations

from pathlib import Path

from ..errors import ModelLoadError
from ..model import read_json
from .base import Encoded, ModelKind, Pair
from .bi_encoder import BiEncoder
from .cross_encoder import CrossEncoder
from .decoder import Decoder
from .text_pipeline import TextPipeline, is_text_pipeline

__all__ = ["KINDS", "Encoded", "ModelKind", "Pair", "kind_of", "kind_refusal"]

KINDS: dict[str, type[ModelKind]] = {
    CrossEncoder.name: CrossEncoder,
    BiEncoder.name: BiEncoder,
    Decoder.name: Decoder,
    TextPipeline.name: TextPipeline,
}


def kind_of(kind: str, model: str | Path) -> str:
    """The kind a model is: as given, or for ``auto`` what its folder's architectures say (a causal LM is a
    decoder reranker; anything else, and a hub id not downloaded yet, a cross-encoder, whose check names an
    embedding model for what it is; an ``.onnx`` file is a text pipeline from ``osrerank export``)."""
    if is_text_pipeline(model):
        if kind not in ("auto", TextPipeline.name):
            raise ModelLoadError(f"{model} is an ONNX file, a text pipeline: pass --kind auto, not --kind {kind}")
        return TextPipeline.name
    if kind != "auto":
        return kind
    folder = Path(model).expanduser()
    architectures = read_json(folder / "config.json").get("architectures") or [] if folder.is_dir() else []
    return Decoder.name if any(a.endswith("ForCausalLM") for a in architectures) else CrossEncoder.name


def kind_refusal(kind: str, target: str, model: str | Path = "") -> str | None:
    """Why ``target`` cannot run a model of ``kind`` (``auto``: as found in ``model``'s folder), or None."""
    kind = kind_of(kind, model)
    can = KINDS[kind].targets
    if target in can:
        return None
    why = {
        "opensearch": "ml-commons' in-cluster TEXT_SIMILARITY runs pair encoders only",
        "sagemaker": "the SageMaker HF container's text-classification task runs a classifier head only",
    }.get(target, "its server cannot run it")
    return (
        f"a {kind} model runs on the {' and '.join(sorted(can))} target(s), not --target {target} ({why}): use "
        f"--target {sorted(can)[0]}, or for a decoder your own vLLM's /rerank with --template cohere-rerank "
        "--endpoint-url"
        if kind == "decoder"
        else f"--kind {kind} runs on the {' and '.join(sorted(can))} target(s) only, not --target {target} ({why})"
    )
