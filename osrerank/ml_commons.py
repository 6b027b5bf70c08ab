"""ml-commons' REST API in one place, shaped like opensearch-py's ``client.plugins.ml`` namespace.

Connectors, model groups, models (register, upload, deploy, predict, undeploy, delete) and tasks.
Each method is one ml-commons call, or one call plus the waiting ml-commons needs around it; create
or reuse decisions live with the steps that make them (connector.py, the targets).
"""

from __future__ import annotations

import contextlib
import hashlib
import time
import warnings
from typing import Any

from opensearchpy.exceptions import OpenSearchWarning

from .backoff import Backoff
from .errors import Conflict, NotFound, OpenSearchError
from .opensearch import Cluster
from .types import Found, Progress, quiet

__all__ = ["CHUNK_BYTES", "MLCommons"]

ML = "/_plugins/_ml"
CONNECTOR_INDEX = ".plugins-ml-connector"
CHUNK_BYTES = 9 * 1024 * 1024  # ml-commons refuses chunks of 10 MB or more
#: States in which a registered local model can be deployed as it is (anything else: an upload cut short).
USABLE = ("REGISTERED", "DEPLOYED", "DEPLOYING", "PARTIALLY_DEPLOYED", "DEPLOY_FAILED", "UNDEPLOYED")


class MLCommons:
    """ml-commons on one cluster.

    Example::

        ml = MLCommons(connect(settings))
        ml.predict(model_id, "What is the capital of the United States?", ["Washington, D.C. ..."])
    """

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster

    # ------------------------------------------------------------------ connectors
    def find_connectors(self, name: str) -> list[dict[str, Any]]:
        return self.cluster.find(f"{ML}/connectors/_search", {"term": {"name.keyword": name}})

    def create_connector(self, body: dict[str, Any]) -> str:
        return str(self.cluster.call("POST", f"{ML}/connectors/_create", body)["connector_id"])

    def delete_connector(self, connector_id: str) -> bool:
        """Delete one connector; False if it was already gone. One attempt: a 409 (a model on it, or what
        ml-commons takes for one) is for the caller to resolve (connector.delete_connector)."""
        try:
            self.cluster.call("DELETE", f"{ML}/connectors/{connector_id}")
            return True
        except NotFound:
            return False

    def connectors_of(self, model_ids: list[str]) -> dict[str, str | None]:
        """Each model's ``connector_id`` as stored (None for a model without one), read by id."""
        hits = self.cluster.find(f"{ML}/models/_search", {"ids": {"values": model_ids}}, size=len(model_ids))
        return {h["id"]: h.get("connector_id") for h in hits}

    def delete_connector_document(self, connector_id: str) -> None:
        """Remove a connector's document from ml-commons' connector index: what ml-commons' own delete does
        after its check for models on the connector, for when that check is wrong (connector.delete_connector
        says when). A cluster with the security plugin refuses direct writes to system indices."""
        with contextlib.suppress(NotFound), warnings.catch_warnings():
            warnings.simplefilter("ignore", OpenSearchWarning)  # "this request accesses system indices": we know
            self.cluster.call("DELETE", f"/{CONNECTOR_INDEX}/_doc/{connector_id}", params={"refresh": "true"})

    # ------------------------------------------------------------------ model groups
    def find_model_groups(self, name: str) -> list[dict[str, Any]]:
        return self.cluster.find(f"{ML}/model_groups/_search", {"term": {"name.keyword": name}})

    def ensure_model_group(self, name: str) -> Found:
        """The model group of that name, registered if there is none."""
        for group in self.find_model_groups(name):
            return Found(group["id"], "reused")
        body = {"name": name, "description": "created by osrerank"}
        return Found(self.cluster.call("POST", f"{ML}/model_groups/_register", body)["model_group_id"], "created")

    def delete_model_group(self, group_id: str) -> bool:
        """Delete one model group; False if it was already gone."""
        return self._delete_once_unused(f"{ML}/model_groups/{group_id}")

    def _delete_once_unused(self, path: str, wait_s: float = 10.0) -> bool:
        """DELETE a model group; False if it was already gone. ml-commons finds a group's models by
        searching the model index, which still holds a just-deleted model until its next refresh, and
        answers 409 meanwhile (seen in CI), so a 409 is retried a while."""
        deadline, pause = time.monotonic() + wait_s, Backoff()
        while True:
            try:
                self.cluster.call("DELETE", path)
                return True
            except NotFound:
                return False
            except Conflict:
                if time.monotonic() > deadline:
                    raise
                pause.sleep()

    # ------------------------------------------------------------------ models
    def find_models(self, name: str, *, algorithm: str | None = None) -> list[dict[str, Any]]:
        """Models named ``name`` (not their chunks). Search results lag a just-deleted model and a GET by
        id does not, so each hit is confirmed by id."""
        filters: list[dict[str, Any]] = [{"term": {"name.keyword": name}}]
        if algorithm:
            filters.append({"term": {"algorithm": algorithm}})
        hits = self.cluster.find(f"{ML}/models/_search", {"bool": {"filter": filters}})
        return [h for h in hits if h.get("chunk_number") is None and self.cluster.exists(f"{ML}/models/{h['id']}")]

    def models_using(self, connector_id: str) -> list[str]:
        """Models registered on a connector. Filtered here: connector_id is an analysed text field,
        so a term query on a mixed-case id finds nothing."""
        query = {"bool": {"must_not": {"exists": {"field": "chunk_number"}}}}
        found = self.cluster.find(f"{ML}/models/_search", query, size=10000)
        return [m["id"] for m in found if m.get("connector_id") == connector_id]

    def model(self, model_id: str) -> dict[str, Any]:
        return dict(self.cluster.call("GET", f"{ML}/models/{model_id}"))

    def register_remote(self, name: str, connector_id: str, group_id: str, description: str) -> str:
        """Register (not deploy) a remote model on a connector; returns its id."""
        body = {
            "name": name,
            "function_name": "remote",
            "model_group_id": group_id,
            "connector_id": connector_id,
            "description": description,
        }
        created = self.cluster.call("POST", f"{ML}/models/_register", body)
        self.wait_task(created["task_id"])
        return str(created["model_id"])

    def register_meta(self, body: dict[str, Any]) -> str:
        """Start a chunked upload of a local model; returns its id."""
        return str(self.cluster.call("POST", f"{ML}/models/_register_meta", body)["model_id"])

    def upload_chunk(self, model_id: str, number: int, data: bytes) -> None:
        self.cluster.call("POST", f"{ML}/models/{model_id}/upload_chunk/{number}", data)

    def ensure_local_model(self, meta: dict[str, Any], data: bytes, progress: Progress = quiet) -> Found:
        """A local model (a zip ml-commons runs itself) registered by chunked upload and deployed: the one of
        that name and content hash if it exists (``meta`` needs name, function_name, model_format,
        model_config...; the hash, size and chunk count are filled in here)."""
        digest = hashlib.sha256(data).hexdigest()
        for existing in self.find_models(meta["name"]):
            if existing.get("model_content_hash_value") != digest:
                continue  # another model version of that name
            if self.model(existing["id"]).get("model_state") in USABLE:  # a GET: the search lags a refresh
                self.deploy_local(existing["id"], progress)
                return Found(existing["id"], "reused")
            self.delete_model(existing["id"])  # an upload that stopped halfway: start again
        chunks = [data[i : i + CHUNK_BYTES] for i in range(0, len(data), CHUNK_BYTES)]
        progress(f"registering {meta['name']} in the cluster: {len(data) / 1e6:.0f} MB in {len(chunks)} chunks")
        model_id = self.register_meta(
            {
                "name": meta["name"],
                "version": "1.0.0",
                "function_name": meta["function_name"],  # before model_config: ml-commons parses in order
                **{k: v for k, v in meta.items() if k not in ("name", "function_name", "model_config")},
                "model_content_hash_value": digest,
                "model_content_size_in_bytes": len(data),
                "total_chunks": len(chunks),
                "model_config": meta["model_config"],
            }
        )
        for n, chunk in enumerate(chunks):
            self.upload_chunk(model_id, n, chunk)
        self.deploy_local(model_id, progress)
        return Found(model_id, "created")

    def deploy_local(self, model_id: str, progress: Progress = quiet) -> None:
        """Deploy a local model unless it is DEPLOYED, with the failure DJL's libtorch download causes named."""
        if self.model(model_id).get("model_state") == "DEPLOYED":
            return
        progress(f"deploying model {model_id} inside the cluster")
        try:
            self.deploy(model_id, timeout_s=300)
        except OpenSearchError as exc:
            if "publish.djl.ai" in str(exc):
                raise OpenSearchError(
                    f"deploying the in-cluster model {model_id} failed: DJL inside ml-commons wanted to download "
                    "libtorch from publish.djl.ai and the node cannot reach it. The local 3.x node osrerank starts "
                    "has it from Maven Central; OpenSearch 2.19 pins PyTorch 1.13.1, which is not there. Give the "
                    "node internet access for the first deploy, or pre-fill its DJL cache (see the README)."
                ) from exc
            raise OpenSearchError(
                f"deploying the in-cluster model {model_id} failed: {exc}. "
                "The node log has the details (osrerank cluster status prints its location)."
            ) from exc

    def deploy(self, model_id: str, timeout_s: float = 120.0) -> None:
        """Deploy once and wait until the model says DEPLOYED.

        Not ``_register?deploy=true``: its task id is the register task's, which completes before the
        deploy does, and a prediction sent then makes ml-commons auto-deploy the model a second time; the
        two deploys race on the model document and one fails with a version conflict, leaving a FAILED
        task or even ``model_state: DEPLOY_FAILED`` on a model the node serves."""
        task = self.cluster.call("POST", f"{ML}/models/{model_id}/_deploy")["task_id"]
        self.wait_task(task, timeout_s)
        deadline, pause = time.monotonic() + 30, Backoff()
        while self.model(model_id).get("model_state") != "DEPLOYED":
            if time.monotonic() > deadline:  # the task ends a moment before the model's state says so
                raise OpenSearchError(f"model {model_id} is not DEPLOYED 30 s after its deploy task ended")
            pause.sleep()

    def predict(self, model_id: str, query: str, docs: list[str], timeout: float | None = None) -> list[float]:
        """Scores for ``docs`` against ``query``, in document order."""
        reply = self.cluster.call(
            "POST",
            f"{ML}/_predict/text_similarity/{model_id}",
            {"query_text": query, "text_docs": docs},
            timeout=timeout,
        )
        # a remote model answers with one result holding one output per document; an in-cluster
        # TEXT_SIMILARITY model with one result per document: flattening keeps document order for both
        return [float(o["data"][0]) for result in reply["inference_results"] for o in result["output"]]

    def delete_model(self, model_id: str, wait_s: float = 30.0) -> None:
        """Undeploy, then delete. ml-commons updates the model's state after _undeploy returns, and an
        undeploy that lands while a deploy is still running is lost, so both are repeated until the
        delete goes through."""
        deadline, pause = time.monotonic() + wait_s, Backoff(longest_s=1.0)
        while True:
            try:
                self.cluster.call("POST", f"{ML}/models/{model_id}/_undeploy")
                self.cluster.call("DELETE", f"{ML}/models/{model_id}")
                return
            except NotFound:
                return
            except OpenSearchError as exc:
                if exc.status != 400 or "deployed state" not in str(exc) or time.monotonic() > deadline:
                    raise
                pause.sleep()

    # ------------------------------------------------------------------ tasks
    def model_tasks(self, model_id: str) -> list[dict[str, Any]]:
        """The tasks ml-commons recorded for a model (register, deploy, ...)."""
        return self.cluster.find(f"{ML}/tasks/_search", {"term": {"model_id": model_id}}, size=100)

    def wait_task(self, task_id: str, timeout_s: float = 120.0) -> dict[str, Any]:
        """Poll a task until it completes; raise with its error if it fails."""
        deadline, pause = time.monotonic() + timeout_s, Backoff()
        while time.monotonic() < deadline:
            task = self.cluster.call("GET", f"{ML}/tasks/{task_id}")
            state = task.get("state")
            if state == "COMPLETED":
                return dict(task)
            if state in ("FAILED", "CANCELLED", "COMPLETED_WITH_ERROR"):
                raise OpenSearchError(f"ml-commons task {task_id} {state}: {task.get('error', 'no error given')}")
            pause.sleep()
        raise OpenSearchError(f"ml-commons task {task_id} did not finish within {timeout_s:.0f}s")
