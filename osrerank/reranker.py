"""The whole flow as one object: ``Reranker(settings).setup() / search() / teardown()``.

setup: cluster → endpoint (deploy) → connector → model group → register+deploy → smoke check →
pipeline. Each step finds its object by name first, so a second run creates nothing new.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .cluster import LocalCluster
from .config import Settings
from .connector import (
    Credentials,
    Found,
    connector_name,
    delete_connector,
    ensure_connector,
    find_connectors,
    render_connector,
)
from .endpoint import LocalEndpoint, local_credentials
from .errors import ConfigError, OpenSearchError, OsRerankError
from .eval import eval_pipeline_name
from .index import delete_index, owned_by_kit
from .local_model import register_local_model
from .opensearch import Cluster, connect
from .pipeline import delete_pipeline, ensure_pipeline, render_pipeline
from .register import delete_model, ensure_model, ensure_model_group, models_using, predict, smoke_check
from .sagemaker_deploy import SageMakerDeployment
from .search import SearchResult, search

__all__ = ["Reranker", "SetupResult", "rank"]

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


@dataclass
class SetupResult:
    """What setup made or found: step name -> Found(id, created|reused|replaced)."""

    endpoint_url: str
    steps: dict[str, Found] = field(default_factory=dict)

    @property
    def model_id(self) -> str:
        return self.steps["model"].id


class Reranker:
    """Set up, use and remove cross-encoder reranking on one cluster.

    Example::

        r = Reranker(Settings(model="./ms-marco-MiniLM-L-6-v2"))
        r.setup()
        for hit in r.search("What is the capital of the United States?").hits:
            print(hit.score, hit.source["passage_text"])
        r.teardown()
    """

    def __init__(self, settings: Settings, progress: Progress = _quiet) -> None:
        self.settings, self.progress = settings, progress
        self._cluster: Cluster | None = None

    # ----------------------------------------------------------------- connection
    def cluster(self, *, start: bool = False) -> Cluster:
        """The configured cluster, or the local one (started only when ``start``)."""
        if self._cluster is None:
            url = self.settings.opensearch_url
            if not url:
                local = LocalCluster(self.settings.opensearch_version, progress=self.progress)
                url = local.up().url if start else local.running_url()
                if not url:
                    raise ConfigError(
                        "no cluster: pass --opensearch-url, or start the local one with `osrerank cluster up`"
                    )
            self._cluster = connect(self.settings, url)
        return self._cluster

    @property
    def model_name(self) -> str:
        return f"{self.settings.name}-model"

    # ----------------------------------------------------------------- setup
    def deploy(self) -> tuple[str, Credentials, Found]:
        """Bring up the model endpoint for the target; returns URL, connector credentials, and what happened."""
        s = self.settings
        if s.endpoint_url:
            return s.endpoint_url, _env_credentials(s), Found(s.endpoint_url, "reused")
        if s.target == "local":
            self.progress(f"starting the local model endpoint for {s.model}")
            info, started = LocalEndpoint(s.name).start(s.model, kind=s.kind, activation=s.activation, region=s.region)
            local = local_credentials()
            url = (
                info.invocation_url(s.name)
                if s.connector_template == "sagemaker-hf-text-classification"
                else info.cluster_base_url
                + ("/rerank" if s.connector_template == "tei-rerank" else f"/predictions/{s.name}")
            )
            credentials = Credentials(
                access_key=local.access_key, secret_key=local.secret_key, bearer_token=local.bearer_token
            )
            return url, credentials, Found(url, "created" if started else "reused")
        if s.target == "sagemaker":
            deployed = SageMakerDeployment(s, self.progress).deploy()
            return deployed.url, _env_credentials(s), Found(deployed.url, deployed.action)
        raise ConfigError(
            f"deploying to target {s.target!r} is not built yet; deploy the model yourself and pass its URL with "
            "--endpoint-url, or use --target local"
        )

    def deploy_in_cluster(self, cluster: Cluster) -> tuple[Found, Found]:
        """Target opensearch: the model group, and the model registered and deployed inside the node."""
        group = ensure_model_group(cluster, f"{self.settings.name}-group")
        return group, register_local_model(cluster, self.settings, self.model_name, group.id, self.progress)

    def setup(self) -> SetupResult:
        """Run every step; idempotent. A failing step names itself and what already exists, so a rerun
        (after the fix) picks up from there: every earlier object is found by name and reused."""
        result = SetupResult("", {})
        step = "cluster"
        try:
            cluster = self.cluster(start=True)
            if self.settings.target == "opensearch":
                step = "model"
                result.steps["model group"], result.steps["model"] = self.deploy_in_cluster(cluster)
                result.endpoint_url = "in-cluster"
            else:
                step = "endpoint"
                url, credentials, result.steps["endpoint"] = self.deploy()
                result.endpoint_url = url
                step = "connector"
                self.progress("creating the connector")
                result.steps["connector"] = ensure_connector(cluster, render_connector(self.settings, url, credentials))
                step = "model group"
                result.steps["model group"] = ensure_model_group(cluster, f"{self.settings.name}-group")
                step = "model"
                self.progress("registering and deploying the model")
                result.steps["model"] = ensure_model(
                    cluster, self.model_name, result.steps["connector"].id, result.steps["model group"].id
                )
            step = "smoke check"
            self.progress("smoke check: one prediction through the cluster")
            smoke_check(cluster, result.model_id)
            step = "pipeline"
            result.steps["pipeline"] = ensure_pipeline(
                cluster, self.settings.pipeline, render_pipeline(self.settings, result.model_id)
            )
        except OsRerankError as exc:
            done = ", ".join(f"{name} {found.id} ({found.action})" for name, found in result.steps.items())
            exc.args = (
                f"setup stopped at step '{step}': {exc}\n"
                f"Already in place: {done or 'nothing'}. Fix the cause and rerun `osrerank setup` (it reuses "
                "what exists), or remove it all with `osrerank teardown`.",
            )
            raise
        return result

    # ----------------------------------------------------------------- use
    def model_id(self) -> str:
        """The deployed model setup registered (found by name)."""
        if self.settings.target == "opensearch":
            for model in _in_cluster_models(self.cluster(), self.model_name):
                return str(model["id"])
        for c in find_connectors(self.cluster(), connector_name(self.settings)):
            for model_id in models_using(self.cluster(), c["id"]):
                return model_id
        raise ConfigError(f"no model named {self.model_name!r} on the cluster: run `osrerank setup` first")

    def predict(self, query: str, docs: list[str]) -> list[float]:
        """One score per document, in order, from the model registered in the cluster."""
        return predict(self.cluster(), self.model_id(), query, docs, timeout=self.settings.timeout_s + 5)

    def rank(
        self, query: str, docs: list[str], *, top_k: int | None = None, return_documents: bool = False
    ) -> list[dict[str, object]]:
        """Documents sorted by score, like sentence-transformers' ``CrossEncoder.rank``:
        ``[{"corpus_id": i, "score": s, ("text": doc)}, ...]``, best first."""
        scores = self.predict(query, docs)
        order = sorted(range(len(docs)), key=lambda i: -scores[i])[:top_k]
        return [{"corpus_id": i, "score": scores[i], **({"text": docs[i]} if return_documents else {})} for i in order]

    def search(self, query: str, **options: object) -> SearchResult:
        options.setdefault("timeout", self.settings.timeout_s + 5)
        return search(self.cluster(), self.settings, query, **options)  # type: ignore[arg-type]

    # ----------------------------------------------------------------- teardown
    def teardown(self, *, keep_index: bool = False, dry_run: bool = False) -> list[str]:
        """Remove what the kit created (found by name); returns what was (or, with dry_run, would be) removed.

        One walk serves both: each object is found, then deleted unless this is a dry run."""
        s = self.settings
        done: list[str] = []
        try:
            cluster: Cluster | None = self.cluster()
        except ConfigError:
            cluster = None
        if cluster is not None:
            for pipeline in (s.pipeline, eval_pipeline_name(s.name)):
                if cluster.exists(f"/_search/pipeline/{pipeline}") if dry_run else delete_pipeline(cluster, pipeline):
                    done.append(f"pipeline {pipeline}")
            for c in find_connectors(cluster, connector_name(s)):
                models = models_using(cluster, c["id"]) if dry_run else delete_connector(cluster, c["id"])
                done += [f"model {m}" for m in models] + [f"connector {c['id']}"]
            for model in _in_cluster_models(cluster, self.model_name):
                if not dry_run:
                    delete_model(cluster, model["id"])
                done.append(f"model {model['id']}")
            for group in _groups(cluster, f"{s.name}-group"):
                if dry_run or _delete_group(cluster, group["id"]):
                    done.append(f"model group {group['id']}")
            if not keep_index:
                for index in [s.index, *self._eval_indices(cluster)]:
                    if owned_by_kit(cluster, index) if dry_run else delete_index(cluster, index):
                        done.append(f"index {index}")
        if s.target == "local" and not s.endpoint_url:
            endpoint = LocalEndpoint(s.name)
            if (endpoint.info() is not None) if dry_run else endpoint.stop():
                done.append("local model endpoint")
        if s.target == "sagemaker" and not s.endpoint_url:
            done += SageMakerDeployment(s, self.progress).teardown(dry_run=dry_run)
        return done

    def _eval_indices(self, cluster: Cluster) -> list[str]:
        """Corpora `osrerank eval` indexed (named <name>-eval-<dataset>)."""
        listed = cluster.call("GET", f"/_cat/indices/{self.settings.name}-eval-*", params={"format": "json"})
        return [row["index"] for row in listed]


def _in_cluster_models(cluster: Cluster, name: str) -> list[dict]:
    """Models of the opensearch target: local TEXT_SIMILARITY models named ``name`` (not their chunks).

    Search results lag a just-deleted model; a GET by id does not, so each hit is confirmed by id."""
    hits = cluster.find(
        "/_plugins/_ml/models/_search",
        {"bool": {"filter": [{"term": {"name.keyword": name}}, {"term": {"algorithm": "TEXT_SIMILARITY"}}]}},
    )
    return [h for h in hits if h.get("chunk_number") is None and cluster.exists(f"/_plugins/_ml/models/{h['id']}")]


def _groups(cluster: Cluster, name: str) -> list[dict]:
    return cluster.find("/_plugins/_ml/model_groups/_search", {"term": {"name.keyword": name}})


def _delete_group(cluster: Cluster, group_id: str) -> bool:
    """Delete one model group; False if it was already gone."""
    for attempt in range(20):  # ml-commons sees a just-deleted model version for a moment
        try:
            cluster.call("DELETE", f"/_plugins/_ml/model_groups/{group_id}")
            return True
        except OpenSearchError as exc:
            if exc.status == 404:
                return False
            if exc.status != 409 or attempt == 19:
                raise
            time.sleep(0.5)
    return False


def _env_credentials(settings: Settings) -> Credentials:
    """Credentials for an existing endpoint: a connector role (Amazon OpenSearch Service) or keys from the
    normal AWS chain (env, profile, instance role) for SageMaker; OSRERANK_BEARER_TOKEN for http APIs."""
    if settings.connector_template == "sagemaker-hf-text-classification":
        if settings.connector_role_arn:
            return Credentials(role_arn=settings.connector_role_arn)
        frozen = _aws_chain_credentials(settings.aws_profile)
        if frozen is not None:
            return Credentials(access_key=frozen.access_key, secret_key=frozen.secret_key, session_token=frozen.token)
        with contextlib.suppress(OSError):
            local = local_credentials()
            return Credentials(access_key=local.access_key, secret_key=local.secret_key)
        raise ConfigError(
            "no AWS credentials for the connector: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or --aws-profile, "
            "or --connector-role-arn on Amazon OpenSearch Service"
        )
    return Credentials(bearer_token=os.environ.get("OSRERANK_BEARER_TOKEN"))


def _aws_chain_credentials(profile: str | None) -> object | None:
    import botocore.session

    credentials = botocore.session.Session(profile=profile).get_credentials()
    return credentials.get_frozen_credentials() if credentials else None


def rank(
    query: str,
    docs: list[str],
    *,
    settings: Settings | None = None,
    top_k: int | None = None,
    return_documents: bool = False,
) -> list[dict[str, object]]:
    """Rank ``docs`` for ``query`` with the model ``osrerank setup`` registered (settings: flags' defaults,
    OSRERANK_* env vars). Returns ``[{"corpus_id", "score"}]`` best first, like ``CrossEncoder.rank``.

    Example::

        import osrerank
        osrerank.rank("What is the capital of the United States?", ["Carson City ...", "Washington, D.C. ..."])
    """
    settings = settings or Settings.resolve({})
    return Reranker(settings).rank(query, docs, top_k=top_k, return_documents=return_documents)
