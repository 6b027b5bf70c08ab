"""Step: model group, then register + deploy the remote model, then a ``_predict`` smoke check."""

from __future__ import annotations

import time

from .connector import Found
from .errors import OpenSearchError
from .opensearch import Cluster

__all__ = ["delete_model", "deploy", "ensure_model", "ensure_model_group", "models_using", "predict", "smoke_check"]


def ensure_model_group(cluster: Cluster, name: str) -> Found:
    for group in cluster.find("/_plugins/_ml/model_groups/_search", {"term": {"name.keyword": name}}):
        return Found(group["id"], "reused")
    created = cluster.call(
        "POST", "/_plugins/_ml/model_groups/_register", {"name": name, "description": "created by osrerank"}
    )
    return Found(created["model_group_id"], "created")


def models_using(cluster: Cluster, connector_id: str) -> list[str]:
    """Models registered on a connector. Filtered here: connector_id is an analysed text field,
    so a term query on a mixed-case id finds nothing."""
    query = {"bool": {"must_not": {"exists": {"field": "chunk_number"}}}}
    found = cluster.find("/_plugins/_ml/models/_search", query, size=10000)
    return [m["id"] for m in found if m.get("connector_id") == connector_id]


def ensure_model(cluster: Cluster, name: str, connector_id: str, group_id: str) -> Found:
    """Register + deploy the remote model, or reuse (and if needed redeploy) the one of that name."""
    for model in cluster.find("/_plugins/_ml/models/_search", {"term": {"name.keyword": name}}):
        if model.get("connector_id") != connector_id:
            continue
        if model.get("model_state") != "DEPLOYED":
            deploy(cluster, model["id"])
        return Found(model["id"], "reused")
    body = {
        "name": name,
        "function_name": "remote",
        "model_group_id": group_id,
        "connector_id": connector_id,
        "description": "cross-encoder reranker registered by osrerank",
    }
    created = cluster.call("POST", "/_plugins/_ml/models/_register", body)
    cluster.wait_task(created["task_id"])
    deploy(cluster, created["model_id"])
    return Found(created["model_id"], "created")


def deploy(cluster: Cluster, model_id: str, timeout_s: float = 120.0) -> None:
    """Deploy once and wait until the model says DEPLOYED.

    Not ``_register?deploy=true``: its task id is the register task's, which completes before the
    deploy does, and a prediction sent then makes ml-commons auto-deploy the model a second time; the
    two deploys race on the model document and one fails with a version conflict, leaving a FAILED
    task or even ``model_state: DEPLOY_FAILED`` on a model the node serves."""
    task = cluster.call("POST", f"/_plugins/_ml/models/{model_id}/_deploy")["task_id"]
    cluster.wait_task(task, timeout_s)
    deadline = time.monotonic() + 30
    while cluster.call("GET", f"/_plugins/_ml/models/{model_id}").get("model_state") != "DEPLOYED":
        if time.monotonic() > deadline:  # the task ends a moment before the model's state says so
            raise OpenSearchError(f"model {model_id} is not DEPLOYED 30 s after its deploy task ended")
        time.sleep(0.5)


def predict(cluster: Cluster, model_id: str, query: str, docs: list[str], timeout: float | None = None) -> list[float]:
    """Scores for ``docs`` against ``query`` through ml-commons, in document order."""
    reply = cluster.call(
        "POST",
        f"/_plugins/_ml/_predict/text_similarity/{model_id}",
        {"query_text": query, "text_docs": docs},
        timeout=timeout,
    )
    # a remote model answers with one result holding one output per document; an in-cluster
    # TEXT_SIMILARITY model with one result per document: flattening keeps document order for both
    return [float(o["data"][0]) for result in reply["inference_results"] for o in result["output"]]


def smoke_check(cluster: Cluster, model_id: str) -> list[float]:
    """One real prediction through the cluster; fails loudly if the wiring is wrong."""
    docs = ["Washington, D.C. is the capital of the United States.", "Carson City is the capital of Nevada."]
    scores = predict(cluster, model_id, "What is the capital of the United States?", docs)
    if len(scores) != len(docs):
        raise OpenSearchError(f"smoke check: model {model_id} returned {len(scores)} scores for {len(docs)} documents")
    return scores


def delete_model(cluster: Cluster, model_id: str, wait_s: float = 30.0) -> None:
    """Undeploy, then delete. ml-commons updates the model's state after _undeploy returns, and an
    undeploy that lands while a deploy is still running is lost, so both are repeated until the
    delete goes through."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            cluster.call("POST", f"/_plugins/_ml/models/{model_id}/_undeploy")
        except OpenSearchError as exc:
            if exc.status != 404:
                raise
        try:
            cluster.call("DELETE", f"/_plugins/_ml/models/{model_id}")
            return
        except OpenSearchError as exc:
            if exc.status != 400 or "deployed state" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(1.0)
