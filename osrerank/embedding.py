"""Step: the embedding model of a neural or hybrid first stage, and the ingest pipeline that fills the vector
field with it.

The model is a sentence-transformers bi-encoder folder (all-MiniLM-L6-v2, say), run one of two ways:
- ``standin`` (default): the kit's stand-in serves it on TEI's ``/embed`` API (``osrerank serve --kind
  bi-encoder``), behind a ``tei-embed`` connector and a remote ml-commons model; works offline on every line;
  ``--embedding-endpoint-url`` points the connector at your own TEI instead;
- ``opensearch``: registered in ml-commons as a local ONNX ``TEXT_EMBEDDING`` model (chunked upload), with the
  pooling and normalization its folder declares; DJL inside ml-commons then embeds (OpenSearch 2.19 fetches
  libtorch from the internet at the first deploy, as the in-cluster reranker does).
Either way the model is found again by name, and the ingest pipeline (``text_embedding``, in batches) embeds
the document field into a ``knn_vector`` field: HNSW on the Lucene engine (the k-NN plugin's native faiss
libraries are not in its Maven Central zip), cosine similarity, the model's dimension.
"""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path
from typing import Any, Protocol

from .backoff import Backoff
from .config.environment import get
from .connector import ConnectorOptions, delete_connector, ensure_connector, render_connector
from .errors import ConfigError, NotFound, OpenSearchError
from .first_stage import FirstStageOptions
from .ingest import IndexOptions, create_index, knn_field, owned_by_kit
from .kinds.bi_encoder import BiEncoder
from .ml_commons import MLCommons
from .model import check_model, resolve_model_dir
from .opensearch import Cluster
from .scorer import ModelOptions
from .server.options import ServerOptions
from .server.run import ServerSpec
from .targets.local_secrets import local_secrets
from .targets.standin import StandInProcess
from .types import Credentials, Found, Progress, quiet

__all__ = ["Embedding"]

TEMPLATE = "tei-embed"


class EmbeddingSettings(Protocol):
    """What the embedding step reads of the settings."""

    @property
    def name(self) -> str: ...
    @property
    def first_stage(self) -> FirstStageOptions: ...
    @property
    def connector(self) -> ConnectorOptions: ...


class Embedding:
    """The embedding model of one setup: names derived from the setup's name, the model from first_stage."""

    def __init__(self, settings: EmbeddingSettings, progress: Progress = quiet) -> None:
        self.settings, self.options, self.progress = settings, settings.first_stage, progress
        self.model_name = f"{settings.name}-embedding"
        self.connector_name = f"{settings.name}-embedding-connector"
        self.ingest_pipeline = f"{settings.name}-embed"
        self.eval_ingest_pipeline = f"{settings.name}-eval-embed"  # osrerank eval's corpus
        self.process = StandInProcess(f"{settings.name}-embed")
        self._package: bytes | None = None

    # ------------------------------------------------------------------ the folder
    def folder(self) -> Path:
        return resolve_model_dir(self.options.embedding_model or "")

    def kind(self) -> BiEncoder:
        """The folder as an embedding model (a cross-encoder's folder is refused, naming what it is)."""
        return BiEncoder(self.folder())

    @property
    def remote(self) -> bool:
        return self.options.embedding_target == "standin" or bool(self.options.embedding_endpoint_url)

    def check(self) -> None:
        """Before anything starts: the folder is there and is an embedding model the chosen runner can run."""
        check_model(self.options.embedding_model or "")
        if self.options.embedding_endpoint_url:
            return
        kind = self.kind()
        if self.remote:
            kind.check_kit()  # the stand-in pools by mean: other poolings are refused here

    def dimension(self) -> int:
        return self.kind().dimension

    # ------------------------------------------------------------------ setup
    def prepare(self) -> dict[str, Found]:
        """Bring up what serves the model before anything is made in the cluster."""
        if self.options.embedding_endpoint_url:
            return {}
        if self.remote:
            model = ModelOptions(path=str(self.folder()), kind="bi-encoder")
            spec = ServerSpec(model=model, server=ServerOptions(), region=self.settings.connector.region)
            self.progress(f"starting the embedding stand-in for {model.path}")
            info, started = self.process.start(spec)
            return {"embedding server": Found(info.base_url, "created" if started else "reused")}
        self._package = self._package or self._zip()
        return {}

    def setup_model(self, ml: MLCommons, group_id: str) -> Found:
        """The deployed embedding model (remote behind a connector, or local), found again by name."""
        if not self.remote:
            self._package = self._package or self._zip()
            meta = {
                "name": self.model_name,
                "function_name": "TEXT_EMBEDDING",
                "description": f"osrerank: embeddings of {self.options.embedding_model}",
                "model_format": "ONNX",
                "model_group_id": group_id,
                "model_config": self._model_config(),
            }
            return ml.ensure_local_model(meta, self._package, self.progress)
        url, credentials = self._endpoint()
        # embedding at ingest is throughput work: a bulk load queues many batches of 32 on the server at once
        options = self.settings.connector.model_copy(update={"timeout_s": max(self.settings.connector.timeout_s, 300)})
        body = render_connector(
            options, TEMPLATE, url, credentials, name=self.connector_name,
            description=f"osrerank: embeddings of {self.options.embedding_model}",
        )  # fmt: skip
        connector = ensure_connector(ml, body)
        for model in ml.find_models(self.model_name):
            if model.get("connector_id") == connector.id:
                if ml.model(model["id"]).get("model_state") != "DEPLOYED":
                    ml.deploy(model["id"])
                return Found(model["id"], "reused")
        model_id = ml.register_remote(self.model_name, connector.id, group_id, str(body["description"]))
        ml.deploy(model_id)
        return Found(model_id, "created")

    def ensure_ingest(self, cluster: Cluster, model_id: str, source_field: str, name: str | None = None) -> Found:
        """The ingest pipeline (``name``, else the setup's) that embeds ``source_field`` into the vector field,
        in batches."""
        name = name or self.ingest_pipeline
        body = {
            "description": f"osrerank: embeddings of {source_field} by {self.options.embedding_model}",
            "processors": [
                {
                    "text_embedding": {
                        "model_id": model_id,
                        "field_map": {source_field: self.options.vector_field},
                        "batch_size": 32,
                    }
                }
            ],
        }
        try:
            current = cluster.call("GET", f"/_ingest/pipeline/{name}").get(name)
        except NotFound:
            current = None
        if current == body:
            return Found(name, "reused")
        cluster.call("PUT", f"/_ingest/pipeline/{name}", body)
        return Found(name, "replaced" if current else "created")

    def check_index(self, cluster: Cluster, index: IndexOptions, create: bool | None) -> None:
        """Refuse, before anything is made, an index that cannot take this model's vectors (read-only)."""
        self._index_plan(cluster, index, create)

    def _index_plan(self, cluster: Cluster, index: IndexOptions, create: bool | None) -> str:
        """What ensure_index will do: "create", "add" (the field, to a kit index), "none"; or refuse."""
        dimension, field = self.dimension(), self.options.vector_field
        try:
            mapping = next(iter(cluster.call("GET", f"/{index.name}/_mapping").values()))["mappings"]
        except NotFound:
            if create:
                return "create"
            if create is None:
                return "none"
            raise ConfigError(
                f"index {index.name} does not exist: pass --create-index to create it (with the {field} vector "
                f"field, embedded on the way in), then load documents (osrerank index load FILE)"
            ) from None
        current = (mapping.get("properties") or {}).get(field)
        if current:
            if current.get("type") != "knn_vector" or int(current.get("dimension", -1)) != dimension:
                raise ConfigError(
                    f"index {index.name}'s field {field} is a {current.get('type')} of dimension "
                    f"{current.get('dimension')}; {self.options.embedding_model} makes {dimension}: pass "
                    f"--vector-field with a knn_vector field of dimension {dimension}, or the --embedding-model that "
                    f"fills {field}"
                )
            return "none"
        if not owned_by_kit(cluster, index.name):
            raise ConfigError(
                f"index {index.name} has no {field} vector field, and osrerank does not change indices it did not "
                f"make: map a knn_vector field of dimension {dimension} filled by your ingest pipeline and pass "
                "--vector-field, or load the documents into an index osrerank makes (setup --create-index)"
            )
        knn = cluster.call("GET", f"/{index.name}/_settings").get(index.name, {}).get("settings", {})
        if str(knn.get("index", {}).get("knn", "false")).lower() != "true":
            raise ConfigError(
                f"index {index.name} was made without k-NN (index.knn is fixed when an index is made), so it cannot "
                f"take the {field} vector field: delete it and load it again once setup has made it (osrerank "
                f"teardown, then setup --create-index and osrerank index load FILE --index {index.name})"
            )
        return "add"

    def ensure_index(self, cluster: Cluster, index: IndexOptions, create: bool | None) -> Found | None:
        """The index with the vector field of the model's dimension: made when missing (``create``), the field
        added and the documents embedded when it is a kit index without it; a user's index is only checked."""
        plan, dimension, field = self._index_plan(cluster, index, create), self.dimension(), self.options.vector_field
        if plan == "none":
            return None
        if plan == "create":
            create_index(cluster, index.name, index.document_fields, vectors={field: knn_field(dimension)},
                         pipeline=self.ingest_pipeline)  # fmt: skip
            return Found(index.name, "created")
        self.progress(f"adding the {field} vector field to {index.name} and embedding its documents")
        cluster.call("PUT", f"/{index.name}/_mapping", {"properties": {field: knn_field(dimension)}})
        cluster.call("PUT", f"/{index.name}/_settings", {"index.default_pipeline": self.ingest_pipeline})
        task = cluster.call(
            "POST",
            f"/{index.name}/_update_by_query",
            params={"pipeline": self.ingest_pipeline, "wait_for_completion": "false"},
        )["task"]
        self._wait(cluster, task, index.name)
        return Found(index.name, "updated")

    def _wait(self, cluster: Cluster, task: str, index: str) -> None:
        """Wait for an update-by-query task, saying how far it is every few seconds."""
        pause, shown = Backoff(longest_s=5.0), 0.0
        while True:
            status = cluster.call("GET", f"/_tasks/{task}")
            if status.get("completed"):
                failures = (status.get("response") or {}).get("failures") or []
                if failures or status.get("error"):
                    raise OpenSearchError(f"embedding the documents failed: {(failures or [status.get('error')])[0]}")
                cluster.call("POST", f"/{index}/_refresh")
                return
            done = status["task"]["status"]
            if time.monotonic() - shown > 10:
                self.progress(f"embedded {done.get('updated', 0)} of {done.get('total', '?')} documents")
                shown = time.monotonic()
            pause.sleep()

    def find_model(self, ml: MLCommons) -> str | None:
        return next((str(m["id"]) for m in ml.find_models(self.model_name)), None)

    def teardown(self, ml: MLCommons | None, *, dry_run: bool) -> list[str]:
        """Remove (or list) the ingest pipeline, the model, its connector and stand-in."""
        done: list[str] = []
        if ml is not None:
            cluster = ml.cluster
            for pipeline in (self.ingest_pipeline, self.eval_ingest_pipeline):
                if cluster.exists(f"/_ingest/pipeline/{pipeline}"):
                    if not dry_run:
                        cluster.call("DELETE", f"/_ingest/pipeline/{pipeline}")
                    done.append(f"ingest pipeline {pipeline}")
            for c in ml.find_connectors(self.connector_name):
                models = ml.models_using(c["id"]) if dry_run else delete_connector(ml, c["id"])
                done += [f"embedding model {m}" for m in models] + [f"connector {c['id']}"]
            for model in ml.find_models(self.model_name):
                if not dry_run:
                    ml.delete_model(model["id"])
                done.append(f"embedding model {model['id']}")
        running = self.process.info() is not None if dry_run else self.process.stop()
        return done + (["embedding stand-in"] if running else [])

    # ------------------------------------------------------------------ internals
    def _endpoint(self) -> tuple[str, Credentials]:
        url = self.options.embedding_endpoint_url
        if url:
            return url, Credentials(bearer_token=get("OSRERANK_BEARER_TOKEN"))
        info = self.process.info()
        if info is None:
            raise ConfigError(f"the embedding stand-in {self.process.name!r} is not running: rerun osrerank setup")
        return info.url_for(TEMPLATE, self.process.name), local_secrets().credentials()

    def _model_config(self) -> dict[str, Any]:
        kind = self.kind()
        return {
            "model_type": kind.config.get("model_type", "bert"),
            "embedding_dimension": kind.dimension,
            "framework_type": "sentence_transformers",
            "pooling_mode": kind.pooling,
            "normalize_result": kind.normalized,
            "model_max_length": min(kind.limits()),
        }

    def _zip(self) -> bytes:
        """``model.onnx`` (the encoder's last hidden state: ml-commons pools) and ``tokenizer.json`` cutting at the
        model's limit, as ml-commons loads a local TEXT_EMBEDDING model."""
        kind = self.kind()
        tokenizer = json.loads((kind.folder / "tokenizer.json").read_text(encoding="utf-8"))
        tokenizer["truncation"] = {
            "direction": "Right",
            "max_length": min(kind.limits()),
            "strategy": "LongestFirst",
            "stride": 0,
        }
        tokenizer["padding"] = None
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
            for name, content in (("model.onnx", kind.graph().read_bytes()), ("tokenizer.json", json.dumps(tokenizer))):
                archive.writestr(zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0)), content)
        return buffer.getvalue()
