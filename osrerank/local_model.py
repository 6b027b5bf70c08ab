"""Step (target ``opensearch``): run the cross-encoder inside the OpenSearch nodes as an ml-commons local
``TEXT_SIMILARITY`` model in ONNX format, registered by chunked upload (no URL download, works offline).

ml-commons (``TextSimilarityCrossEncoderModel`` + ``TextSimilarityTranslator``) unzips the upload, loads
the one ``*.onnx`` file with DJL's ONNX Runtime engine and ``tokenizer.json`` with DJL's Hugging Face
tokenizer, encodes each (query, document) pair and returns the model's raw output: the logit. So that
this target and the SageMaker/stand-in targets return the same numbers, the packaged graph gets a
``Sigmoid`` node after the logit when the activation is ``sigmoid`` (the default). The tokenizer file
gets truncation to the model's maximum length switched on, since a pair longer than the position
embeddings would otherwise fail inside the node.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
import zipfile
from collections.abc import Callable
from typing import Any

from .config import Settings
from .connector import Found
from .errors import OpenSearchError, ToolMissingError
from .model import PairScorer, onnx_path, resolve_model_dir
from .opensearch import Cluster
from .register import delete_model

__all__ = ["CHUNK_BYTES", "package_model", "register_local_model"]

CHUNK_BYTES = 9 * 1024 * 1024  # ml-commons refuses chunks of 10 MB or more
FUNCTION = "TEXT_SIMILARITY"


def package_model(model: str, activation: str = "sigmoid") -> tuple[bytes, dict[str, Any]]:
    """The zip ml-commons expects (``model.onnx`` + ``tokenizer.json`` at the root) and its model config."""
    try:
        import onnx
        from onnx import helper
    except ImportError:
        raise ToolMissingError("the opensearch target needs the onnx package: pip install 'osrerank[int8]'") from None
    folder = resolve_model_dir(model)
    scorer = PairScorer(folder)  # validates the folder: one logit, tokenizer, ONNX file present
    graph_model = onnx.load(str(onnx_path(folder)))
    if activation == "sigmoid":
        graph = graph_model.graph
        logits = graph.output[0].name
        graph.node.append(helper.make_node("Sigmoid", [logits], ["similarity"], name="osrerank_sigmoid"))
        shape = graph.output[0].type
        graph.output.pop()
        out = helper.make_empty_tensor_value_info("similarity")
        out.type.CopyFrom(shape)
        graph.output.append(out)
    tokenizer = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    tokenizer["truncation"] = {
        "direction": "Right",
        "max_length": scorer.max_length,
        "strategy": "LongestFirst",
        "stride": 0,
    }
    tokenizer["padding"] = None
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in (
            ("model.onnx", graph_model.SerializeToString()),
            ("tokenizer.json", json.dumps(tokenizer)),
        ):
            # a fixed timestamp keeps the zip, and so its hash (how setup finds it again), reproducible
            archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), content, zipfile.ZIP_DEFLATED)
    config = {
        "model_type": json.loads((folder / "config.json").read_text()).get("model_type", "bert"),
        "embedding_dimension": 1,
        "framework_type": "huggingface_transformers",
    }
    return buffer.getvalue(), config


def register_local_model(
    cluster: Cluster,
    settings: Settings,
    name: str,
    group_id: str,
    progress: Callable[[str], None] = lambda _: None,
) -> Found:
    """Register (chunked upload) and deploy the packaged model; reuse one with the same content hash."""
    data, config = package_model(settings.model, settings.activation)
    digest = hashlib.sha256(data).hexdigest()
    for existing in cluster.find("/_plugins/_ml/models/_search", {"term": {"name.keyword": name}}):
        if existing.get("chunk_number") is not None or existing.get("model_content_hash_value") != digest:
            continue  # a chunk, or another model version of that name
        if existing.get("model_state") in (
            "REGISTERED",
            "DEPLOYED",
            "DEPLOYING",
            "PARTIALLY_DEPLOYED",
            "DEPLOY_FAILED",
        ):
            _deploy(cluster, existing["id"], progress)
            return Found(existing["id"], "reused")
        delete_model(cluster, existing["id"])  # an upload that stopped halfway: start again
    chunks = [data[i : i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES)]
    progress(f"registering {name} in the cluster: {len(data) / 1e6:.0f} MB in {len(chunks)} chunks")
    meta = cluster.call(
        "POST",
        "/_plugins/_ml/models/_register_meta",
        {
            "name": name,
            "version": "1.0.0",
            "description": f"osrerank: {settings.model} ({settings.activation})",
            "model_format": "ONNX",
            "function_name": FUNCTION,
            "model_group_id": group_id,
            "model_content_hash_value": digest,
            "model_content_size_in_bytes": len(data),
            "total_chunks": len(chunks),
            "model_config": config,
        },
    )
    model_id = meta["model_id"]
    for n, chunk in enumerate(chunks):
        cluster.call("POST", f"/_plugins/_ml/models/{model_id}/upload_chunk/{n}", chunk)  # raw bytes
    _deploy(cluster, model_id, progress)
    return Found(model_id, "created")


def _deploy(cluster: Cluster, model_id: str, progress: Callable[[str], None], timeout_s: float = 300.0) -> None:
    if _state(cluster, model_id) == "DEPLOYED":
        return
    progress("deploying the model inside the cluster")
    task = cluster.call("POST", f"/_plugins/_ml/models/{model_id}/_deploy")["task_id"]
    try:
        cluster.wait_task(task, timeout_s)
    except OpenSearchError as exc:
        if "publish.djl.ai" in str(exc):
            raise OpenSearchError(
                f"deploying the in-cluster model {model_id} failed: DJL inside ml-commons wanted to download "
                "libtorch from publish.djl.ai and the node cannot reach it. The local 3.x node osrerank starts has "
                "it from Maven Central; OpenSearch 2.19 pins PyTorch 1.13.1, which is not there. Give the node "
                "internet access for the first deploy, or pre-fill its DJL cache (see the README)."
            ) from exc
        raise OpenSearchError(
            f"deploying the in-cluster model {model_id} failed: {exc}. "
            "The node log has the details (osrerank cluster status prints its location)."
        ) from exc
    deadline = time.monotonic() + 30
    while _state(cluster, model_id) != "DEPLOYED":  # the task ends a moment before the model's state says so
        if time.monotonic() > deadline:
            raise OpenSearchError(f"the in-cluster model {model_id} is not DEPLOYED 30 s after its deploy task ended")
        time.sleep(0.5)


def _state(cluster: Cluster, model_id: str) -> str | None:
    return cluster.call("GET", f"/_plugins/_ml/models/{model_id}").get("model_state")
