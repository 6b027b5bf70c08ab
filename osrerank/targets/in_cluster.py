"""Target ``opensearch``: run the cross-encoder inside the OpenSearch nodes as an ml-commons local
``TEXT_SIMILARITY`` model in ONNX format, registered by chunked upload (no URL download, works offline).

ml-commons (``TextSimilarityCrossEncoderModel`` + ``TextSimilarityTranslator``) unzips the upload, loads
the one ``*.onnx`` file with DJL's ONNX Runtime engine and ``tokenizer.json`` with DJL's Hugging Face
tokenizer, encodes each (query, document) pair and returns the model's raw output: the logit. So that
this target and the SageMaker/stand-in targets return the same numbers, the packaged graph gets a
``Sigmoid`` node after the logit when the activation is ``sigmoid`` (the default). The tokenizer file
gets truncation to the model's maximum length switched on, since a pair longer than the position
embeddings would otherwise fail inside the node. A graph without ``token_type_ids`` (XLM-R, ModernBERT)
gets that input declared, unused, because ml-commons before 3.9 always feeds it.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

from ..errors import ConfigError, OpenSearchError
from ..ml_commons import MLCommons
from ..model import check_model
from ..precision import MODES, Host
from ..scorer import ModelOptions, load_scorer
from ..types import Found, Progress, quiet
from .base import Target

__all__ = ["InClusterTarget", "package_model"]

FUNCTION = "TEXT_SIMILARITY"


def package_model(options: ModelOptions, progress: Progress = quiet) -> tuple[bytes, dict[str, Any]]:
    """The zip ml-commons expects (``model.onnx`` + ``tokenizer.json`` at the root) and its model config.

    The precision is decided here, once, where the graph is made to serve: ml-commons runs ONNX Runtime's CPU
    provider (through DJL), so the candidates are the modes precision.py lets run on ``ml-commons`` (int8, when
    it passes the fidelity gate); --max-length becomes the packaged tokenizer's truncation.
    """
    import onnx
    from onnx import helper

    if options.precision != "fp32":
        progress(f"checking --precision {options.precision} against fp32 (the fidelity gate)")
    scorer = load_scorer(options, host=HOST)  # validates: one logit, tokenizer, ONNX file; decides the precision
    if options.precision != "fp32":
        progress(scorer.decision.reason)
    folder = scorer.folder
    graph_model = onnx.load(str(MODES[scorer.mode].graph(scorer.onnx_file)))  # the folder's own (host ml-commons)
    if options.activation == "sigmoid":
        graph = graph_model.graph
        logits = graph.output[0].name
        graph.node.append(helper.make_node("Sigmoid", [logits], ["similarity"], name="osrerank_sigmoid"))
        shape = graph.output[0].type
        graph.output.pop()
        out = helper.make_empty_tensor_value_info("similarity")
        out.type.CopyFrom(shape)
        graph.output.append(out)
    if "token_type_ids" not in {i.name for i in graph_model.graph.input}:
        # ml-commons 2.12-3.8 feeds token_type_ids to every local ONNX model ("Input mismatch" otherwise,
        # ml-commons #4924, fixed in 3.9): XLM-R and ModernBERT graphs get an input of that name they ignore
        graph_model.graph.input.append(
            helper.make_tensor_value_info("token_type_ids", onnx.TensorProto.INT64, ["batch", "sequence"])
        )
    tokenizer = json.loads((folder / "tokenizer.json").read_text(encoding="utf-8"))
    tokenizer["truncation"] = {
        "direction": "Right",
        "max_length": scorer.max_length,
        "strategy": "LongestFirst",
        "stride": 0,
    }
    tokenizer["padding"] = None
    buffer = io.BytesIO()
    # stored, not deflated: float weights barely compress (92 -> 84 MB for MiniLM-L6), and deflating took
    # about 4 s of every setup (which packages and hashes the zip to find the model again)
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name, content in (
            ("model.onnx", graph_model.SerializeToString()),
            ("tokenizer.json", json.dumps(tokenizer)),
        ):
            # a fixed timestamp keeps the zip, and so its hash (how setup finds it again), reproducible
            archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), content)
    config = {
        "model_type": json.loads((folder / "config.json").read_text()).get("model_type", "bert"),
        "embedding_dimension": 1,
        "framework_type": "huggingface_transformers",
    }
    return buffer.getvalue(), config


#: Where this target's model runs: ml-commons' ONNX Runtime engine.
HOST: Host = "ml-commons"


class InClusterTarget(Target):
    name = "opensearch"
    summary = "inside the OpenSearch nodes: an ml-commons ONNX TEXT_SIMILARITY model (no endpoint, no connector)"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._package: tuple[bytes, dict[str, Any]] | None = None

    @property
    def host(self) -> Host:
        return HOST

    def check_target(self) -> None:
        """Before anything is created: the model folder, chunking and a batch limit (both need a connector)."""
        check_model(self.settings.model.path)
        if self.settings.pipeline.chunk:
            raise ConfigError(
                "--long-documents chunk splits documents in the connector, and the opensearch target has none: "
                "use --long-documents truncate, or a target with an endpoint (standin, sagemaker)"
            )
        if self.settings.pipeline.max_batch:
            raise ConfigError(
                "--max-batch is a model server's per-request limit, and the opensearch target has no server: "
                "drop --max-batch (ml-commons scores an in-cluster model's documents itself)"
            )

    def prepare(self) -> dict[str, Found]:
        """Package the graph (deciding its precision) before anything is made in the cluster."""
        self._package = self._package or package_model(self.settings.model, self.progress)
        return {}

    def plan(self) -> list[str]:
        return [f"register and deploy {self.settings.model.path} inside the cluster as {self.settings.model_name}"]

    def deploy(self, ml: MLCommons | None) -> dict[str, Found]:
        if ml is None:
            raise OpenSearchError("the opensearch target deploys into a cluster: pass --opensearch-url or start one")
        group = ml.ensure_model_group(self.settings.group_name)
        return {"model group": group, **self.setup_model(ml, group.id)}

    def setup_model(self, ml: MLCommons, group_id: str) -> dict[str, Found]:
        """Register (chunked upload) and deploy the packaged model; reuse one with the same content hash."""
        s = self.settings
        self.prepare()
        assert self._package is not None
        data, config = self._package
        meta = {
            "name": s.model_name,
            "function_name": FUNCTION,
            "description": f"osrerank: {s.model.path} ({s.model.activation})",
            "model_format": "ONNX",
            "model_group_id": group_id,
            "model_config": config,
        }
        return {"model": ml.ensure_local_model(meta, data, self.progress)}

    def find_model(self, ml: MLCommons) -> str | None:
        return next((str(m["id"]) for m in ml.find_models(self.settings.model_name, algorithm=FUNCTION)), None)

    def teardown(self, ml: MLCommons | None, *, dry_run: bool) -> list[str]:
        if ml is None:
            return []
        models = [m["id"] for m in ml.find_models(self.settings.model_name, algorithm=FUNCTION)]
        if not dry_run:
            for model_id in models:
                ml.delete_model(model_id)
        return [f"model {m}" for m in models]
