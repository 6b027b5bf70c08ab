"""An in-memory OpenSearch with just enough ml-commons and search pipelines for the kit's orchestration.

It stands where opensearch-py's client stands (``client.transport.perform_request``), like httpx's
``MockTransport``: the kit's own Cluster wrapper, error mapping and every step above it run for real.
It is no reference for ml-commons' behaviour: the real-cluster suite is.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable
from typing import Any

from opensearchpy.exceptions import NotFoundError, RequestError

ML = "/_plugins/_ml"


class FakeOpenSearch:
    def __init__(self, version: str = "3.6.0") -> None:
        self.version = version
        self.transport = self  # the Cluster wrapper calls client.transport.perform_request
        self.ids = (f"id{n}" for n in itertools.count(1))
        self.objects: dict[str, dict[str, dict[str, Any]]] = {"connectors": {}, "models": {}, "model_groups": {}}
        self.tasks: dict[str, dict[str, Any]] = {}
        self.pipelines: dict[str, Any] = {}
        self.indices: dict[str, Any] = {}
        self.ingest: dict[str, Any] = {}  # ingest pipelines by name  # name -> its body ({"mappings": ...}), as created
        self.calls: list[tuple[str, str]] = []
        # what _search still shows for an object before the index refreshes (a GET is realtime): {id: fields}
        self.unrefreshed: dict[str, dict[str, Any]] = {}
        self.routes: list[tuple[str, re.Pattern[str], Callable[..., Any]]] = [
            (m, re.compile(p + "$"), f)
            for m, p, f in [
                ("GET", r"/", self.root),
                ("POST", ML + r"/(?P<kind>connectors|models|model_groups)/_search", self.search),
                ("POST", ML + r"/connectors/_create", self.create_connector),
                ("POST", ML + r"/model_groups/_register", self.register_group),
                ("POST", ML + r"/models/_register", self.register_model),
                ("POST", ML + r"/models/(?P<id>[^/]+)/_deploy", self.deploy),
                ("POST", ML + r"/models/(?P<id>[^/]+)/_undeploy", self.undeploy),
                ("GET", ML + r"/tasks/(?P<id>[^/]+)", self.task),
                ("POST", ML + r"/_predict/text_similarity/(?P<id>[^/]+)", self.predict),
                ("GET", ML + r"/(?P<kind>connectors|models|model_groups)/(?P<id>[^/]+)", self.get),
                ("DELETE", ML + r"/(?P<kind>connectors|models|model_groups)/(?P<id>[^/]+)", self.delete),
                ("GET", r"/_search/pipeline", lambda body: dict(self.pipelines)),
                ("GET", r"/_search/pipeline/(?P<name>[^/]+)", self.get_pipeline),
                ("PUT", r"/_search/pipeline/(?P<name>[^/]+)", self.put_pipeline),
                ("DELETE", r"/_search/pipeline/(?P<name>[^/]+)", self.delete_pipeline),
                ("GET", r"/_cat/indices/(?P<pattern>[^/]+)", lambda body, pattern: []),
                ("GET", r"/_cluster/health", lambda body: {"number_of_data_nodes": 1}),
                ("GET", r"/_ingest/pipeline/(?P<name>[^/]+)", self.get_ingest),
                ("PUT", r"/_ingest/pipeline/(?P<name>[^/]+)", self.put_ingest),
                ("DELETE", r"/_ingest/pipeline/(?P<name>[^/]+)", self.delete_ingest),
                ("GET", r"/(?P<index>[^_/][^/]*)/_mapping", self.mapping),
                ("GET", r"/(?P<index>[^_/][^/]*)", self.index),
                ("PUT", r"/(?P<index>[^_/][^/]*)", self.create_index),
                ("DELETE", r"/(?P<index>[^_/][^/]*)", self.delete_index),
            ]
        ]

    def perform_request(self, method: str, path: str, body: Any = None, params: Any = None) -> Any:
        self.calls.append((method, path))
        for m, pattern, handler in self.routes:
            match = pattern.match(path)
            if m == method and match:
                return handler(body, **match.groupdict())
        raise RequestError(400, "fake_not_implemented", {"error": f"the fake has no {method} {path}"})

    def missing(self, body: Any, **ids: str) -> Any:
        raise NotFoundError(404, "not_found", {"error": {"root_cause": [{"reason": f"no {ids}"}]}})

    def get_ingest(self, body: Any, name: str) -> Any:
        if name not in self.ingest:
            self.missing(body, name=name)
        return {name: self.ingest[name]}

    def put_ingest(self, body: Any, name: str) -> Any:
        self.ingest[name] = body
        return {"acknowledged": True}

    def delete_ingest(self, body: Any, name: str) -> Any:
        self.get_ingest(body, name)
        del self.ingest[name]
        return {"acknowledged": True}

    def index(self, body: Any, index: str) -> Any:
        if index not in self.indices:
            self.missing(body, index=index)
        return {index: self.indices[index]}

    def mapping(self, body: Any, index: str) -> Any:
        return {index: {"mappings": self.index(body, index)[index].get("mappings", {})}}

    def create_index(self, body: Any, index: str) -> Any:
        if index in self.indices:
            raise RequestError(400, "resource_already_exists_exception", {"error": f"index {index} exists"})
        self.indices[index] = body or {}
        return {"acknowledged": True}

    def delete_index(self, body: Any, index: str) -> Any:
        self.index(body, index)
        del self.indices[index]
        return {"acknowledged": True}

    def root(self, body: Any) -> Any:
        return {"version": {"number": self.version}}

    def search(self, body: Any, kind: str) -> Any:
        """Term filters on name.keyword; a must_not on chunk_number is ignored (the fake holds no chunks)."""
        query = body.get("query", {})
        terms = [query["term"]] if "term" in query else [f["term"] for f in query.get("bool", {}).get("filter", [])]
        wanted = {k.removesuffix(".keyword"): v for t in terms for k, v in t.items() if k != "algorithm"}
        hits = [
            {"_id": i, "_source": {**doc, **self.unrefreshed.get(i, {})}}
            for i, doc in self.objects[kind].items()
            if all(doc.get(k) == v for k, v in wanted.items())
        ]
        return {"hits": {"total": {"value": len(hits)}, "hits": hits}}

    def _new(self, kind: str, doc: dict[str, Any]) -> str:
        new_id = next(self.ids)
        self.objects[kind][new_id] = doc
        return new_id

    def _task(self, **fields: Any) -> str:
        task_id = next(self.ids)
        self.tasks[task_id] = {"state": "COMPLETED", **fields}
        return task_id

    def create_connector(self, body: Any) -> Any:
        return {"connector_id": self._new("connectors", dict(body))}

    def register_group(self, body: Any) -> Any:
        return {"model_group_id": self._new("model_groups", dict(body))}

    def register_model(self, body: Any) -> Any:
        if body.get("connector_id") not in self.objects["connectors"]:
            raise RequestError(400, "illegal_argument", {"error": "connector not found"})
        model_id = self._new("models", {**body, "model_state": "REGISTERED"})
        return {"model_id": model_id, "task_id": self._task(task_type="REGISTER_MODEL", model_id=model_id)}

    def deploy(self, body: Any, id: str) -> Any:
        self.objects["models"][id]["model_state"] = "DEPLOYED"
        return {"task_id": self._task(task_type="DEPLOY_MODEL", model_id=id)}

    def undeploy(self, body: Any, id: str) -> Any:
        if id not in self.objects["models"]:
            self.missing(body, id=id)
        self.objects["models"][id]["model_state"] = "UNDEPLOYED"
        return {}

    def task(self, body: Any, id: str) -> Any:
        return self.tasks[id]

    def predict(self, body: Any, id: str) -> Any:
        if self.objects["models"].get(id, {}).get("model_state") != "DEPLOYED":
            raise RequestError(400, "illegal_argument", {"error": "model not deployed"})
        outputs = [{"name": "similarity", "data": [1.0 / (1 + i)]} for i, _ in enumerate(body["text_docs"])]
        return {"inference_results": [{"output": outputs}]}

    def get(self, body: Any, kind: str, id: str) -> Any:
        if id not in self.objects[kind]:
            self.missing(body, id=id)
        return self.objects[kind][id]

    def delete(self, body: Any, kind: str, id: str) -> Any:
        if id not in self.objects[kind]:
            self.missing(body, id=id)
        if kind == "models" and self.objects[kind][id]["model_state"] == "DEPLOYED":
            raise RequestError(400, "illegal_argument", {"error": "model is in deployed state"})
        del self.objects[kind][id]
        return {"result": "deleted"}

    def get_pipeline(self, body: Any, name: str) -> Any:
        if name not in self.pipelines:
            self.missing(body, name=name)
        return {name: self.pipelines[name]}

    def put_pipeline(self, body: Any, name: str) -> Any:
        self.pipelines[name] = body
        return {"acknowledged": True}

    def delete_pipeline(self, body: Any, name: str) -> Any:
        self.get_pipeline(body, name)
        del self.pipelines[name]
        return {"acknowledged": True}
