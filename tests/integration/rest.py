"""Raw REST access to the test cluster, independent of the kit's own client and helpers.

The tests judge what the kit did by asking OpenSearch directly: these helpers use ``requests``, treat
only "the index does not exist yet" as empty, and fail the test on any other error (never read as 0).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import requests

#: ml-commons' own indices, and the ones OpenSearch keeps for itself: not user data.
SYSTEM_PREFIXES = (".",)


class RestError(AssertionError):
    """The cluster answered a test's request with an unexpected status."""


@dataclass
class Rest:
    url: str
    session: requests.Session = field(default_factory=requests.Session)

    def request(self, method: str, path: str, body: Any = None, *, ok: tuple[int, ...] = (200, 201), **kw: Any) -> Any:
        reply = self.session.request(method, f"{self.url}{path}", json=body, timeout=kw.pop("timeout", 120), **kw)
        if reply.status_code not in ok:
            raise RestError(f"{method} {path} -> {reply.status_code}: {reply.text[:600]}")
        return reply.json() if reply.content else None

    def status(self, path: str) -> int:
        """HTTP status of a GET: 200 when the object exists, 404 when it does not."""
        return self.session.get(f"{self.url}{path}", timeout=60).status_code

    def hits(self, path: str, query: dict[str, Any], size: int = 1000) -> list[dict[str, Any]]:
        """Every hit of an ml-commons ``_search``; [] only when its system index does not exist yet."""
        reply = self.session.post(f"{self.url}{path}", json={"query": query, "size": size}, timeout=60)
        if reply.status_code == 404 and "index_not_found" in reply.text:
            return []
        if reply.status_code != 200:
            raise RestError(f"POST {path} -> {reply.status_code}: {reply.text[:600]}")
        found = reply.json()["hits"]
        assert found["total"]["value"] <= size, f"{path} holds more than {size} objects: raise the size"
        return found["hits"]

    # ------------------------------------------------------------------ what the cluster holds
    def snapshot(self) -> dict[str, set[str]]:
        """Every kit-relevant object on the cluster, by kind: ids (names for pipelines and indices)."""
        every = {"match_all": {}}
        models = self.hits("/_plugins/_ml/models/_search", every)
        pipelines = self.request("GET", "/_search/pipeline", ok=(200, 404)) or {}
        indices = self.request("GET", "/_cat/indices", params={"format": "json", "expand_wildcards": "open"})
        return {
            "connectors": {h["_id"] for h in self.hits("/_plugins/_ml/connectors/_search", every)},
            "models": {h["_id"] for h in models if h["_source"].get("chunk_number") is None},
            "chunks": {h["_id"] for h in models if h["_source"].get("chunk_number") is not None},
            "groups": {h["_id"] for h in self.hits("/_plugins/_ml/model_groups/_search", every)},
            "pipelines": set(pipelines) if "error" not in pipelines else set(),
            "indices": {row["index"] for row in indices if not row["index"].startswith(SYSTEM_PREFIXES)},
        }

    def model_tasks(self, model_id: str) -> list[dict[str, Any]]:
        """The ml-commons tasks recorded for one model."""
        hits = self.hits("/_plugins/_ml/tasks/_search", {"term": {"model_id": model_id}})
        return [h["_source"] for h in hits]

    # ------------------------------------------------------------------ a model made by hand
    def remote_model(self, connector: dict[str, Any], name: str) -> tuple[str, str]:
        """Create ``connector``, register + deploy a remote model on it; returns (connector id, model id)."""
        connector_id = self.request("POST", "/_plugins/_ml/connectors/_create", connector)["connector_id"]
        body = {"name": name, "function_name": "remote", "connector_id": connector_id}
        model_id = self.request("POST", "/_plugins/_ml/models/_register", body)["model_id"]
        task = self.request("POST", f"/_plugins/_ml/models/{model_id}/_deploy")["task_id"]
        self.wait(lambda: self.request("GET", f"/_plugins/_ml/tasks/{task}")["state"] == "COMPLETED", "deploy")
        return connector_id, model_id

    def remove_remote_model(self, connector_id: str, model_id: str) -> None:
        """Remove the model, its connector and the model group ml-commons made for it (named like the model)."""
        group = self.request("GET", f"/_plugins/_ml/models/{model_id}").get("model_group_id")
        self.request("POST", f"/_plugins/_ml/models/{model_id}/_undeploy")
        self.wait(lambda: self.status_of_delete(f"/_plugins/_ml/models/{model_id}") in (200, 404), "model delete")
        self.request("DELETE", f"/_plugins/_ml/connectors/{connector_id}", ok=(200, 404))
        if group:
            self.request("DELETE", f"/_plugins/_ml/model_groups/{group}", ok=(200, 404))

    def status_of_delete(self, path: str) -> int:
        return self.session.delete(f"{self.url}{path}", timeout=60).status_code

    def predict(self, model_id: str, query: str, docs: list[str]) -> requests.Response:
        return self.session.post(
            f"{self.url}/_plugins/_ml/_predict/text_similarity/{model_id}",
            json={"query_text": query, "text_docs": docs},
            timeout=120,
        )

    @staticmethod
    def wait(done: Any, what: str, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not done():
            if time.monotonic() > deadline:
                raise RestError(f"{what} did not finish within {timeout_s:.0f}s")
            time.sleep(0.5)


def scores_of(reply: requests.Response) -> list[float]:
    """Scores of a successful text_similarity prediction, in document order."""
    if reply.status_code != 200:
        raise RestError(f"prediction failed with {reply.status_code}: {reply.text[:600]}")
    results = reply.json()["inference_results"]
    return [float(o["data"][0]) for result in results for o in result["output"]]


def diff(after: dict[str, set[str]], before: dict[str, set[str]]) -> dict[str, set[str]]:
    """What ``after`` holds that ``before`` did not, by kind (kinds with nothing new left out)."""
    return {kind: after[kind] - before[kind] for kind in after if after[kind] - before[kind]}
