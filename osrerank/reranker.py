"""The whole flow as one object: ``Reranker(settings).setup() / search() / teardown()``.

setup: the model server (or the packaged graph) → cluster → model group → the target's model (connector,
model; or the model inside the cluster) → smoke check → pipeline, and the record of what it was given
(records.py), which later commands start from. Each step finds its object by name first, so a second run
creates nothing new. Where the model runs is the target's business (osrerank/targets/): nothing here
depends on which target it is.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from .embedding import Embedding
from .errors import ConfigError, NotFound, OpenSearchError, OsRerankError
from .first_stage import phase_processor
from .ingest import create_index as create_index_
from .ingest import delete_index, knn_field, owned_by_kit
from .launcher import LocalOpenSearch
from .ml_commons import MLCommons
from .opensearch import Cluster, connect
from .pipeline import delete_pipeline, set_up_pipeline, their_pipeline
from .records import forget, remember
from .search import SearchResult, application_request, search
from .settings import Settings
from .targets import Target, get_target
from .types import Found, Progress, quiet

__all__ = ["Reranker", "SetupResult", "rank"]

SMOKE_QUERY = "What is the capital of the United States?"
SMOKE_DOCS = ["Washington, D.C. is the capital of the United States.", "Carson City is the capital of Nevada."]


@dataclass
class SetupResult:
    """What setup made or found: step name -> Found(id, created|reused|replaced|updated)."""

    steps: dict[str, Found] = field(default_factory=dict)

    @property
    def model_id(self) -> str:
        return self.steps["model"].id


class Reranker:
    """Set up, use and remove cross-encoder reranking on one cluster.

    Example::

        r = Reranker(Settings(model="./ms-marco-MiniLM-L-6-v2", index="my-docs"))
        r.setup()
        for hit in r.search("What is the capital of the United States?").hits:
            print(hit.score, hit.source["passage_text"])
        r.teardown()
    """

    def __init__(self, settings: Settings, progress: Progress = quiet) -> None:
        self.settings, self.progress = settings, progress
        self._cluster: Cluster | None = None

    @cached_property
    def target(self) -> Target:
        return get_target(self.settings, self.progress)

    # ----------------------------------------------------------------- connection
    def cluster(self, *, start: bool = False) -> Cluster:
        """The configured cluster, or the local one (started only when ``start``)."""
        if self._cluster is None:
            options = self.settings.cluster
            url = options.url
            if not url:
                local = LocalOpenSearch(options.version, nodes=options.nodes, progress=self.progress)
                url = local.up().url if start else local.running_url()
                if not url:
                    raise ConfigError(
                        "no cluster: pass --opensearch-url, or start the local one with `osrerank cluster up`"
                    )
            self._cluster = connect(options, url)
        return self._cluster

    def ml(self) -> MLCommons:
        return MLCommons(self.cluster())

    def _ml_if_any(self) -> MLCommons | None:
        """ml-commons on the configured or running local cluster; None when there is no cluster at all."""
        try:
            return self.ml()
        except ConfigError:
            return None

    # ----------------------------------------------------------------- setup
    def deploy(self) -> dict[str, Found]:
        """Bring up what serves the model, without the pipeline (``osrerank deploy``)."""
        self.target.check()
        return self.target.deploy(self._ml_if_any())

    def setup(self, *, create_index: bool | None = None) -> SetupResult:
        """Run every step; idempotent. Settings are checked before anything starts. A failing step names
        itself and what already exists, so a rerun (after the fix) picks up from there: every earlier
        object is found by name and reused. ``create_index``: True creates a missing index (empty, text
        mappings for the document fields), False refuses one; None (eval, the demo: they load their own)
        does not look."""
        s = self.settings
        self.target.check()
        embedding = self.embedding
        if embedding is not None:
            embedding.check()
            if len(s.index.document_fields) != 1:
                raise ConfigError(
                    f"--first-stage {s.first_stage.kind} embeds one field, not {', '.join(s.index.document_fields)}: "
                    "join them into one (osrerank index load --combine title,text) and pass it as --document-fields"
                )
        result = SetupResult()
        # what can be checked before anything is made: the line, the pipeline it extends, the index's vectors
        ml = MLCommons(self.cluster(start=True))
        phase = self._phase(ml.cluster)
        if s.pipeline.extend:
            their_pipeline(ml.cluster, s.pipeline.extend)
        if embedding is not None:
            embedding.check_index(ml.cluster, s.index, create_index)
        step = "index"
        try:
            if create_index is not None:
                self._ensure_index(ml.cluster, create=create_index, steps=result.steps)
            step = "model server"
            result.steps.update(self.target.prepare())  # before the objects in the cluster: a refusal leaves none
            if embedding is not None:
                step = "embedding server"
                result.steps.update(embedding.prepare())
            step = "model group"
            result.steps["model group"] = ml.ensure_model_group(self.settings.group_name)
            if embedding is not None:
                step = "embedding model"
                found = result.steps["embedding model"] = embedding.setup_model(ml, result.steps["model group"].id)
                step = "ingest pipeline"
                result.steps["ingest pipeline"] = embedding.ensure_ingest(
                    ml.cluster, found.id, s.index.document_fields[0]
                )
                step = "index"
                made = embedding.ensure_index(ml.cluster, s.index, create_index)
                if made:
                    result.steps["index"] = made
            step = "model"
            result.steps.update(self.target.setup_model(ml, result.steps["model group"].id))
            step = "smoke check"
            self.progress("smoke check: one prediction through the cluster")
            self._smoke_check(ml, result.model_id)
            step = "pipeline"
            description = f"osrerank: rerank {', '.join(s.index.document_fields)} with {s.model.path}"
            fields = s.index.document_fields
            result.steps["pipeline"] = set_up_pipeline(
                ml.cluster, s.pipeline, result.model_id, fields, description, phase=phase
            )
        except OsRerankError as exc:
            done = ", ".join(f"{name} {found.id} ({found.action})" for name, found in result.steps.items())
            exc.args = (
                f"setup stopped at step '{step}': {exc}\n"
                f"Already in place: {done or 'nothing'}. Fix the cause and rerun `osrerank setup` (it reuses "
                "what exists), or remove it all with `osrerank teardown`.",
            )
            raise
        remember(s.pipeline.name, s.recordable(), {step: found.id for step, found in result.steps.items()})
        return result

    @cached_property
    def embedding(self) -> Embedding | None:
        """The first stage's embedding model, when it has one (neural, hybrid)."""
        return Embedding(self.settings, self.progress) if self.settings.first_stage.embeds else None

    def _phase(self, cluster: Cluster) -> dict[str, Any] | None:
        """The hybrid first stage's phase-results processor, as this cluster's line takes it."""
        if self.settings.first_stage.kind != "hybrid":
            return None
        try:
            return phase_processor(self.settings.first_stage, cluster.version)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None

    def _ensure_index(self, cluster: Cluster, *, create: bool, steps: dict[str, Found]) -> None:
        index = self.settings.index
        if cluster.exists(f"/{index.name}") or (create and self.embedding is not None):
            return  # an index to make with a vector field is made once the ingest pipeline exists
        if not create:
            fields = ", ".join(index.document_fields)
            raise ConfigError(
                f"index {index.name} does not exist: load documents first (osrerank index load FILE --index "
                f"{index.name}), or pass --create-index to create it empty with text fields {fields}"
            )
        create_index_(cluster, index.name, index.document_fields)
        steps["index"] = Found(index.name, "created")

    def _smoke_check(self, ml: MLCommons, model_id: str) -> None:
        """One real prediction through the cluster; fails loudly if the wiring is wrong."""
        scores = ml.predict(model_id, SMOKE_QUERY, SMOKE_DOCS, timeout=self.settings.connector.timeout_s + 5)
        if len(scores) != len(SMOKE_DOCS):
            raise OpenSearchError(f"model {model_id} returned {len(scores)} scores for {len(SMOKE_DOCS)} documents")

    # ----------------------------------------------------------------- use
    def model_id(self) -> str:
        """The deployed model setup registered (found by name)."""
        model_id = self.target.find_model(self.ml())
        if model_id is None:
            raise ConfigError(f"no model named {self.settings.model_name!r} on the cluster: run `osrerank setup` first")
        return model_id

    def predict(self, query: str, docs: list[str]) -> list[float]:
        """One score per document, in order, from the model registered in the cluster."""
        return self.ml().predict(self.model_id(), query, docs, timeout=self.settings.connector.timeout_s + 5)

    def rank(
        self, query: str, docs: list[str], *, top_k: int | None = None, return_documents: bool = False
    ) -> list[dict[str, object]]:
        """Documents sorted by score, like sentence-transformers' ``CrossEncoder.rank``:
        ``[{"corpus_id": i, "score": s, ("text": doc)}, ...]``, best first."""
        scores = self.predict(query, docs)
        order = sorted(range(len(docs)), key=lambda i: -scores[i])[:top_k]
        return [{"corpus_id": i, "score": scores[i], **({"text": docs[i]} if return_documents else {})} for i in order]

    def search(self, query: str, **options: object) -> SearchResult:
        options.setdefault("timeout", self.settings.connector.timeout_s + 5)
        if self.embedding is not None:
            options.setdefault("embedding_model_id", self.embedding_model_id())
        return search(self.cluster(), self.settings, query, **options)  # type: ignore[arg-type]

    def application_request(self, query: str, size: int = 10) -> tuple[str, dict[str, Any]]:
        """The plain ``_search`` (path, body) an application sends for this search through the pipeline."""
        model_id = self.embedding_model_id() if self.embedding is not None else None
        return application_request(self.settings, query, size, model_id)

    def vector_index(self) -> dict[str, Any]:
        """What a new index needs for this setup's first stage: its vector field and ingest pipeline (setup made
        the pipeline; refused until it has)."""
        assert self.embedding is not None
        if not self.cluster().exists(f"/_ingest/pipeline/{self.embedding.ingest_pipeline}"):
            raise ConfigError(
                f"no ingest pipeline {self.embedding.ingest_pipeline} yet: run osrerank setup --first-stage "
                f"{self.settings.first_stage.kind} first, so documents are embedded as they are loaded"
            )
        field = self.settings.first_stage.vector_field
        return {"vectors": {field: knn_field(self.embedding.dimension())}, "pipeline": self.embedding.ingest_pipeline}

    def embedding_model_id(self) -> str:
        """The first stage's embedding model setup deployed (found by name)."""
        found = self.embedding.find_model(self.ml()) if self.embedding else None
        if found is None:
            raise ConfigError(
                f"no embedding model {self.settings.name}-embedding on the cluster: run `osrerank setup` with "
                f"--first-stage {self.settings.first_stage.kind} first"
            )
        return found

    # ----------------------------------------------------------------- teardown
    def teardown(self, *, keep_index: bool = False, dry_run: bool = False) -> list[str]:
        """Remove what the kit created (found by name); returns what was (or, with dry_run, would be) removed.

        One walk serves both: each object is found, then deleted unless this is a dry run."""
        s = self.settings
        ml = self._ml_if_any()
        done: list[str] = []
        if ml is not None:
            cluster = ml.cluster
            for pipeline in [s.pipeline.name, *self._eval_pipelines(cluster)]:
                if cluster.exists(f"/_search/pipeline/{pipeline}") if dry_run else delete_pipeline(cluster, pipeline):
                    done.append(f"pipeline {pipeline}")
        done += self.target.teardown(ml, dry_run=dry_run)
        done += Embedding(s, self.progress).teardown(ml, dry_run=dry_run)  # by name, whatever the first stage now
        if ml is not None:
            for group in ml.find_model_groups(s.group_name):
                if dry_run or ml.delete_model_group(group["id"]):
                    done.append(f"model group {group['id']}")
            if not keep_index:
                for index in [s.index.name, *self._eval_indices(ml.cluster)]:
                    if owned_by_kit(ml.cluster, index) if dry_run else delete_index(ml.cluster, index):
                        done.append(f"index {index}")
        if not dry_run:
            forget(s.pipeline.name)
        return done

    def _eval_pipelines(self, cluster: Cluster) -> list[str]:
        """Pipelines `osrerank eval` made (named <name>-eval-rerank, and -w<window> for its window study)."""
        try:
            every = cluster.call("GET", "/_search/pipeline")
        except NotFound:  # 2.x, when there is none at all
            return []
        return sorted(
            p for p in every if p == self.settings.eval_pipeline or p.startswith(self.settings.eval_pipeline + "-")
        )

    def _eval_indices(self, cluster: Cluster) -> list[str]:
        """Corpora `osrerank eval` indexed (named <name>-eval-<dataset>)."""
        try:
            listed = cluster.call("GET", f"/_cat/indices/{self.settings.eval_index('*')}", params={"format": "json"})
        except NotFound:
            return []
        return [row["index"] for row in listed]


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
