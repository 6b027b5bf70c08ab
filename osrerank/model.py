"""Model folders: what a model is and where its ONNX graph comes from (scorer.py runs it).

A model is a folder with ``tokenizer.json``, ``config.json`` and ``onnx/model.onnx`` (the layout of
``cross-encoder/ms-marco-MiniLM-L-6-v2`` on the hub). A hub id is downloaded with huggingface_hub;
a folder holding only PyTorch/safetensors weights is converted to ONNX once and cached.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .errors import ModelLoadError, ToolMissingError
from .paths import cache_root

__all__ = [
    "Activation",
    "Kind",
    "Precision",
    "ScorerOptions",
    "activate",
    "check_model",
    "onnx_path",
    "quantized",
    "read_json",
    "resolve_model_dir",
]

Activation = Literal["sigmoid", "none"]
Kind = Literal["cross-encoder", "bi-encoder"]
Precision = Literal["fp32", "int8"]
HUB_FILES = [
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "onnx/model.onnx",
    "modules.json",
    "1_Pooling/config.json",
]


@dataclass(frozen=True)
class ScorerOptions:
    """How to load and run a model; the stand-in, the benchmarks and ``load_scorer`` all take this one."""

    model: str = field(metadata={"help": "Model folder or Hugging Face Hub id."})
    kind: Kind = field(default="cross-encoder", metadata={"help": "bi-encoder: cosine of mean-pooled embeddings."})
    activation: Activation = field(
        default="sigmoid", metadata={"help": "sigmoid matches SageMaker's HF text-classification; none: raw logits."}
    )
    precision: Precision = field(
        default="fp32", metadata={"help": "int8: dynamically quantized, faster on AVX-512 VNNI CPUs, not exact."}
    )
    batch_size: int = field(default=32, metadata={"help": "Pairs per model run."})
    threads: int | None = field(default=None, metadata={"help": "ONNX Runtime threads [default: all CPUs]."})


def activate(raw: np.ndarray, activation: str) -> np.ndarray:
    """Sigmoid of logits (what SageMaker's HF text-classification returns for one label), identity for
    "none", and for "softmax" what a softmax over one label gives: 1."""
    raw = np.asarray(raw, dtype=np.float64)
    if activation == "softmax":
        return np.ones_like(raw)
    return 1.0 / (1.0 + np.exp(-raw)) if activation == "sigmoid" else raw


def check_model(model: str | Path) -> Path | None:
    """The model's folder, or None for a hub id (of the form org/name); anything else is refused.
    Cheap: nothing is downloaded or loaded."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    if path.exists() or str(model).startswith((".", "/", "~")) or str(model).count("/") != 1:
        raise ModelLoadError(
            f"model {str(model)!r} is neither a model folder nor a hub id of the form org/name: pass --model with one"
        )
    return None


def resolve_model_dir(model: str | Path) -> Path:
    """A local folder as is; anything else is a hub id, downloaded (and cached) by huggingface_hub."""
    path = check_model(model)
    if path is not None:
        return path
    try:
        from huggingface_hub import snapshot_download
    except ImportError:
        raise ToolMissingError(
            f"downloading {model!r} from the Hugging Face Hub needs huggingface_hub: "
            "pip install 'osrerank[hub]' (or pass a local model folder)"
        ) from None
    try:
        return Path(snapshot_download(str(model), allow_patterns=[*HUB_FILES, "*.safetensors"], etag_timeout=10))
    except Exception as exc:  # huggingface_hub raises many types; all mean "could not get it"
        raise ModelLoadError(
            f"could not download model {model!r} from the Hugging Face Hub ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:200]}). This machine may be offline: download the model "
            "elsewhere (e.g. `hf download MODEL --local-dir DIR`) and pass the folder with --model DIR."
        ) from exc


def read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except ValueError as exc:
        raise ModelLoadError(f"{path} is not valid JSON: {exc}") from exc


def onnx_path(folder: Path) -> Path:
    for candidate in (folder / "onnx" / "model.onnx", folder / "model.onnx"):
        if candidate.exists():
            return candidate
    if (folder / "model.safetensors").exists() or (folder / "pytorch_model.bin").exists():
        return _convert_to_onnx(folder)
    raise ModelLoadError(
        f"{folder} has no onnx/model.onnx, model.onnx, model.safetensors or pytorch_model.bin; "
        "point --model at a Hugging Face model folder"
    )


def _onnx_cache(weights: Path) -> Path:
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()[:16]
    return cache_root() / "onnx" / digest


def quantized(onnx_file: Path) -> Path:
    """INT8 dynamic quantization (weights per channel, activations at run time), cached by content hash.

    About 2.6x faster than fp32 on a CPU with AVX-512 VNNI, at a cost in exactness: see the README.
    """
    target = _onnx_cache(onnx_file) / "model.int8.onnx"
    if target.exists():
        return target
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError:
        raise ToolMissingError("int8 precision needs the onnx package: pip install 'osrerank[int8]'") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp.onnx")
    quantize_dynamic(onnx_file, tmp, weight_type=QuantType.QInt8, per_channel=True)
    tmp.rename(target)
    return target


def _convert_to_onnx(folder: Path) -> Path:
    """Export PyTorch weights to ONNX once; the result is cached by folder content hash."""
    weights = folder / "model.safetensors"
    if not weights.exists():
        weights = folder / "pytorch_model.bin"
    cache = _onnx_cache(weights)
    target = cache / "model.onnx"
    if target.exists():
        return target
    try:
        import torch
        from transformers import AutoModel, AutoModelForSequenceClassification
    except ImportError:
        raise ToolMissingError(
            f"{folder} has only PyTorch weights; converting them to ONNX once needs torch and transformers: "
            "pip install 'osrerank[torch]'"
        ) from None
    config = read_json(folder / "config.json")
    is_classifier = any(a.endswith("ForSequenceClassification") for a in config.get("architectures", []))
    loader = AutoModelForSequenceClassification if is_classifier else AutoModel
    hf_model = loader.from_pretrained(folder, attn_implementation="eager").eval()
    # token types only where the model has more than one (BERT); XLM-R has one, ModernBERT none
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if config.get("type_vocab_size", 1) > 1 else [])

    class ByName(torch.nn.Module):
        """Calls the model with keyword inputs: the positional order of ``forward`` differs across versions."""

        def __init__(self) -> None:
            super().__init__()
            self.inner = hf_model

        def forward(self, *inputs: Any) -> Any:
            return self.inner(**dict(zip(names, inputs, strict=True)))[0]

    # traced on a padded batch of two, so that the graph keeps the attention mask's effect
    ids = torch.full((2, 8), int(config.get("pad_token_id", 0) or 0), dtype=torch.long)
    ids[:, 0], ids[0, 1:8], ids[1, 1:5] = 2, 5, 5
    mask = (ids != int(config.get("pad_token_id", 0) or 0)).long()
    mask[:, 0] = 1
    dummy = (ids, mask, torch.zeros_like(ids))[: len(names)]
    output = "logits" if is_classifier else "last_hidden_state"
    cache.mkdir(parents=True, exist_ok=True)
    tmp = cache / "model.onnx.tmp"
    dynamic = {n: {0: "batch", 1: "sequence"} for n in names}
    dynamic[output] = {0: "batch"} if is_classifier else {0: "batch", 1: "sequence"}
    with torch.no_grad():
        torch.onnx.export(
            ByName(),
            dummy,
            str(tmp),
            input_names=names,
            output_names=[output],
            dynamic_axes=dynamic,
            opset_version=17,
            dynamo=False,
        )
    tmp.rename(target)
    return target
