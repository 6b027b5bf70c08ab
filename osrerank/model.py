"""Model folders: where a model comes from and where its ONNX graph comes from (kinds/ say how each family
is exported and scored, scorer.py runs it).

A model is a folder with ``tokenizer.json``, ``config.json`` and ``onnx/model.onnx`` (the layout of
``cross-encoder/ms-marco-MiniLM-L-6-v2`` on the hub). A hub id is downloaded with huggingface_hub;
a folder holding only PyTorch/safetensors weights is converted to ONNX once (by its kind) and cached.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .errors import ModelLoadError, ToolMissingError
from .paths import cache_root

__all__ = [
    "DEFAULT_MODEL",
    "Activation",
    "Export",
    "activate",
    "check_model",
    "export_onnx",
    "onnx_cache",
    "onnx_path",
    "pytorch_folder",
    "quantized",
    "read_json",
    "resolve_model_dir",
]

DEFAULT_MODEL = "cross-encoder/ms-marco-MiniLM-L-6-v2"
Activation = Literal["sigmoid", "none"]
#: How a kind turns a folder's PyTorch weights into an ONNX file: export(folder, target) -> target
Export = Callable[[Path, Path], Path]
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


def activate(raw: np.ndarray, activation: str) -> np.ndarray:
    """Sigmoid of logits (what SageMaker's HF text-classification returns for one label), identity for
    "none", and for "softmax" what a softmax over one label gives: 1."""
    raw = np.asarray(raw, dtype=np.float64)
    if activation == "softmax":
        return np.ones_like(raw)
    return 1.0 / (1.0 + np.exp(-raw)) if activation == "sigmoid" else raw


def check_model(model: str | Path) -> Path | None:
    """The model's folder (or the ONNX file ``osrerank export`` wrote), or None for a hub id (of the form org/name);
    anything else is refused.
    Cheap: nothing is downloaded or loaded."""
    path = Path(model).expanduser()
    if path.is_dir() or (path.is_file() and path.suffix == ".onnx"):  # a folder, or a text pipeline file
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


def onnx_path(folder: Path, export: Export | None = None, tag: str = "") -> Path:
    """The folder's ONNX graph: its own, or its PyTorch weights converted once by ``export`` (cached; ``tag``
    names a conversion that is not the folder's plain graph: a decoder's scoring head)."""
    own = [folder / f"model.{tag}.onnx"] if tag else [folder / "onnx" / "model.onnx", folder / "model.onnx"]
    for candidate in own:
        if candidate.exists():
            return candidate
    if export is not None and ((folder / "model.safetensors").exists() or (folder / "pytorch_model.bin").exists()):
        return _convert_to_onnx(folder, export, tag)
    raise ModelLoadError(
        f"{folder} has no onnx/model.onnx, model.onnx, model.safetensors or pytorch_model.bin; "
        "point --model at a Hugging Face model folder"
    )


def onnx_cache(weights: Path) -> Path:
    """The cache folder of what the kit makes from one file (a conversion, a quantization, a rewrite), named by
    the file's content so that a changed file gets new ones."""
    stat = weights.stat()
    return cache_root() / "onnx" / _content_digest(str(weights.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=64)
def _content_digest(path: str, size: int, mtime_ns: int) -> str:
    """The file's SHA-256, once per process for a file unchanged (its size and time): every scorer a process
    builds (auto builds one per mode) looks its graph's cache folder up, and a 90 MB graph takes 0.3-1.1 s to read
    and hash on 2 cores."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def quantized(onnx_file: Path) -> Path:
    """INT8 dynamic quantization (weights per channel, activations at run time), cached by content hash.

    1.5x fp32's speed on SciFact passages on 2 Zen 3 cores (README, speed section); it moves scores, so it is
    used only through the fidelity gate (precision.py).
    """
    target = onnx_cache(onnx_file) / "model.int8.onnx"
    if target.exists():
        return target
    try:
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError:
        raise ToolMissingError("int8 precision needs the onnx package: pip install 'osrerank[int8]'") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp.onnx")
    logging.disable(logging.WARNING)  # its "consider pre-processing" advice is for static quantization
    try:
        quantize_dynamic(onnx_file, tmp, weight_type=QuantType.QInt8, per_channel=True)
    finally:
        logging.disable(logging.NOTSET)
    tmp.rename(target)
    return target


def _convert_to_onnx(folder: Path, export: Export, tag: str = "") -> Path:
    """Export PyTorch weights to ONNX once; the result is cached by folder content hash."""
    weights = folder / "model.safetensors"
    if not weights.exists():
        weights = folder / "pytorch_model.bin"
    target = onnx_cache(weights) / (f"model.{tag}.onnx" if tag else "model.onnx")
    return target if target.exists() else export(folder, target)


def export_onnx(folder: Path, target: Path, *, classifier: bool) -> Path:
    """Export a folder's PyTorch encoder to ``target`` with the inputs the model has: token types only where it
    has more than one (BERT; XLM-R has one, ModernBERT none), traced on a padded batch so that the graph
    keeps the attention mask's effect. ``classifier``: its sequence-classification logits, else its last
    hidden state."""
    try:
        import torch
        from transformers import AutoModel, AutoModelForSequenceClassification
    except ImportError:
        raise ToolMissingError(
            f"{folder} has only PyTorch weights; converting them to ONNX needs torch and transformers: "
            "pip install 'osrerank[torch]'"
        ) from None
    config = read_json(folder / "config.json")
    is_classifier = classifier
    loader = AutoModelForSequenceClassification if is_classifier else AutoModel
    hf_model = loader.from_pretrained(folder, attn_implementation="eager").eval()
    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if config.get("type_vocab_size", 1) > 1 else [])

    class ByName(torch.nn.Module):
        """Calls the model with keyword inputs: the positional order of ``forward`` differs across versions."""

        def __init__(self) -> None:
            super().__init__()
            self.inner = hf_model

        def forward(self, *inputs: Any) -> Any:
            return self.inner(**dict(zip(names, inputs, strict=True)))[0]

    pad = int(config.get("pad_token_id", 0) or 0)
    ids = torch.full((2, 8), pad, dtype=torch.long)
    ids[:, 0], ids[0, 1:8], ids[1, 1:5] = 2, 5, 5
    mask = (ids != pad).long()
    mask[:, 0] = 1
    dummy = (ids, mask, torch.zeros_like(ids))[: len(names)]
    output = "logits" if is_classifier else "last_hidden_state"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
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


def pytorch_folder(model: str | Path) -> Path:
    """A folder with PyTorch weights for ``model``: its own, or for an ONNX-only BERT export (like the shared
    test model) a twin rebuilt once from the graph's weights (cached). torch.onnx keeps the state_dict names
    except for Linear weights, stored transposed under generated names: each is found through the Add that
    takes its bias."""
    folder = resolve_model_dir(model)
    if (folder / "model.safetensors").exists() or (folder / "pytorch_model.bin").exists():
        return folder
    graph_file = onnx_path(folder)
    twin = onnx_cache(graph_file) / "pytorch"
    if (twin / "model.safetensors").exists():
        return twin
    try:
        import onnx
        import torch
        from onnx import numpy_helper
        from transformers import AutoConfig, AutoModelForSequenceClassification
    except ImportError:
        raise ToolMissingError("training from an ONNX-only folder needs: pip install 'osrerank[train]'") from None
    config = AutoConfig.from_pretrained(folder)
    if config.model_type != "bert":
        raise ModelLoadError(f"{folder} has only an ONNX graph: PyTorch weights can be rebuilt from BERT graphs only")
    graph = onnx.load(str(graph_file)).graph
    weights = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    users: dict[str, list[Any]] = {}
    for node in graph.node:
        for name in node.input:
            users.setdefault(name, []).append(node)
    state = {k: v for k, v in weights.items() if not k.startswith("onnx::")}
    for node in graph.node:
        if node.op_type == "MatMul" and node.input[1].startswith("onnx::") and node.input[1] in weights:
            add = next(n for n in users[node.output[0]] if n.op_type == "Add")
            bias = next(i for i in add.input if i in weights)
            state[bias.removesuffix("bias") + "weight"] = weights[node.input[1]].T
    hf_model = AutoModelForSequenceClassification.from_config(config)
    import numpy as np

    missing, unexpected = hf_model.load_state_dict(
        {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()}, strict=False
    )
    missing = [k for k in missing if not k.endswith("position_ids")]
    if missing or unexpected:
        raise ModelLoadError(
            f"rebuilding PyTorch weights from {graph_file} failed: missing {missing[:3]}, extra {unexpected[:3]}"
        )
    hf_model.save_pretrained(twin)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        if (folder / name).exists():
            (twin / name).write_bytes((folder / name).read_bytes())
    return twin
