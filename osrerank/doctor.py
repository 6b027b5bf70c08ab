"""``osrerank doctor``: the known traps of reranking in OpenSearch, checked on a cluster and model.

Each check returns findings that name what is wrong and the fix. Before setup it checks the cluster,
the model folder and the index; after setup also the model's deploy state, the pipeline, and the
model server's batch limit against the window (one real prediction through the cluster).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from .errors import ModelLoadError, NotFound, OpenSearchError, OsRerankError
from .kinds import KINDS, kind_of
from .ml_commons import MLCommons
from .model import check_model, onnx_path, read_json
from .reranker import Reranker
from .settings import Settings

__all__ = ["Finding", "diagnose"]

#: ml-commons sends token_type_ids to every local ONNX cross-encoder from 2.12 until 3.9 (issue #4924).
TOKEN_TYPES_FIXED = (3, 9, 0)


@dataclass(frozen=True)
class Finding:
    check: str
    level: Literal["ok", "warning", "problem"]
    message: str
    fix: str = ""


Check = Callable[["Context"], list[Finding]]


@dataclass
class Context:
    settings: Settings
    reranker: Reranker

    @property
    def ml(self) -> MLCommons:
        return self.reranker.ml()

    def version(self) -> tuple[int, int, int]:
        return self.reranker.cluster().version


def _version(c: Context) -> list[Finding]:
    v = c.version()
    shown = ".".join(map(str, v))
    dotted = [f for f in c.settings.index.document_fields if "." in f]
    findings = [Finding("opensearch", "ok", f"OpenSearch {shown}")]
    if dotted and v < (3, 6, 0):
        findings.append(
            Finding(
                "document_fields",
                "problem",
                f"{', '.join(dotted)} is a dotted path: OpenSearch {shown} reads it from _source as empty text (a "
                "remote model's connector refuses such a search with a 400; the in-cluster model reranks on it)",
                f'ask for it in each request ("fields": {list(dotted)}), index the text in a top-level field '
                "(osrerank index load --combine), or use OpenSearch 3.6+",
            )
        )
    fields = c.settings.index.document_fields
    if len(fields) > 1:
        findings.append(
            Finding(
                "document_fields",
                "warning",
                f"{len(fields)} fields are joined with no separator: 'Title'+'Body' is 'TitleBody'",
                "rerank one combined field: osrerank index load --combine title,body --document-fields rerank_text",
            )
        )
    processors = c.reranker.cluster().call("GET", "/_nodes/search_pipelines")
    names = {p["type"] for node in processors["nodes"].values() for p in node["search_pipelines"]["request_processors"]}
    if "script" not in names:
        findings.append(
            Finding(
                "search pipelines",
                "problem",
                "the script and truncate_hits processors are missing (module search-pipeline-common)",
                "install the full OpenSearch distribution, or the module (osrerank cluster up assembles it on 2.x)",
            )
        )
    return findings


def _model(c: Context) -> list[Finding]:
    s = c.settings
    try:
        folder = check_model(s.model.path)
    except OsRerankError as exc:
        return [Finding("model", "problem", str(exc), "pass --model with a model folder or a hub id")]
    if folder is None:
        return [Finding("model", "ok", f"{s.model.path} is a hub id (not downloaded by doctor)")]
    try:
        kind = KINDS[kind_of(s.model.kind, folder)](
            folder, s.model
        )  # refuses a folder that is not this kind (a bi-encoder as --model...)
    except ModelLoadError as exc:
        return [Finding("model", "problem", str(exc), "pass --model with a folder of this --kind, or the right --kind")]
    findings = [
        Finding("model", "ok", f"{folder} is a {kind.name} ({', '.join(kind.architectures) or 'no architectures'})")
    ]
    if kind.takes_text:
        return [*findings, Finding("model", "ok", "a text pipeline: its tokenizer and truncation are in the graph")]
    import onnxruntime

    graph = onnx_path(folder, kind.export)
    session = onnxruntime.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    inputs = {i.name for i in session.get_inputs()}
    findings.append(Finding("model", "ok", f"ONNX inputs: {', '.join(sorted(inputs))}"))
    if s.target == "opensearch" and "token_type_ids" not in inputs and c.version() < TOKEN_TYPES_FIXED:
        findings.append(
            Finding(
                "model",
                "ok",
                "the graph has no token_type_ids, which ml-commons before 3.9 always sends (#4924): the kit's package "
                "adds an input of that name the graph ignores",
            )
        )
    truncation = read_json(folder / "tokenizer.json").get("truncation")
    if s.target == "opensearch" and truncation is None:
        findings.append(
            Finding(
                "tokenizer",
                "ok",
                "tokenizer.json does not truncate: the kit's package switches "
                "truncation on (ml-commons would fail on documents over the model's limit)",
            )
        )
    return findings


def _index(c: Context) -> list[Finding]:
    s, cluster = c.settings.index, c.reranker.cluster()
    try:
        mapping: Any = next(iter(cluster.call("GET", f"/{s.name}/_mapping").values()))["mappings"]
    except NotFound:
        return [
            Finding(
                "index",
                "warning",
                f"index {s.name} does not exist yet",
                "create it (osrerank index load FILE) before searching",
            )
        ]
    findings = []
    if mapping.get("_source", {}).get("enabled") is False:
        findings.append(
            Finding(
                "index",
                "problem",
                f"{s.name} keeps no _source: the rerank processor reads "
                "document_fields from it and would rerank empty text",
                "re-create the index with _source on",
            )
        )
    for field in s.document_fields:
        node: Any = mapping
        for part in field.split("."):
            node = (node.get("properties") or {}).get(part) or {}
        if not node:
            findings.append(
                Finding(
                    "document_fields",
                    "problem",
                    f"{field} is not in the mapping of {s.name}: every document would be reranked on empty text",
                    f"pass --document-fields with fields of {s.name}",
                )
            )
    return findings or [Finding("index", "ok", f"{s.name}: {', '.join(s.document_fields)} mapped, _source kept")]


def _deployed(c: Context) -> list[Finding]:
    model_id = c.reranker.target.find_model(c.ml)
    if model_id is None:
        return [Finding("model state", "warning", "no model set up yet", "run osrerank setup")]
    state = c.ml.model(model_id).get("model_state")
    findings = [
        Finding(
            "model state",
            "ok" if state == "DEPLOYED" else "problem",
            f"model {model_id} is {state}",
            "" if state == "DEPLOYED" else f"POST /_plugins/_ml/models/{model_id}/_deploy, or rerun setup",
        )
    ]
    failed = [
        t for t in c.ml.model_tasks(model_id) if t.get("task_type") == "DEPLOY_MODEL" and t.get("state") == "FAILED"
    ]
    if failed:
        findings.append(
            Finding(
                "model state",
                "warning",
                f"{len(failed)} FAILED deploy task(s) for {model_id}: {failed[0].get('error', '')[:200]}",
                "tear down and set up again",
            )
        )
    pipeline = c.settings.pipeline
    passages = pipeline.chunk.passages if pipeline.chunk else 1
    # with --max-batch the pipeline sends one document (its passages) per call; else the whole window at once
    texts = passages if pipeline.per_document else max(pipeline.window or 10, 10) * passages
    what = "one document" if pipeline.per_document else "the window"
    try:
        c.ml.predict(model_id, "osrerank doctor", ["a document"] * texts, timeout=c.settings.connector.timeout_s + 5)
        findings.append(Finding("batch limit", "ok", f"the model server scored {texts} texts in one call ({what})"))
    except OpenSearchError as exc:
        findings.append(
            Finding(
                "batch limit",
                "problem",
                f"the model server failed on {texts} texts in one call: {str(exc)[:300]}",
                "raise the server's per-request limit (TEI: --max-client-batch-size), "
                "or set --max-batch to it (the pipeline then calls the model once per hit)",
            )
        )
    return findings


def _first_stage(c: Context) -> list[Finding]:
    """A neural or hybrid first stage: the embedding model, the vector field, k against the window, the phase
    processor a hybrid query needs."""
    first, s = c.settings.first_stage, c.settings
    if not first.embeds:
        return []
    embedding = c.reranker.embedding
    assert embedding is not None
    try:
        kind = embedding.kind()
    except OsRerankError as exc:
        return [Finding("embedding model", "problem", str(exc), "pass --embedding-model with an embedding model")]
    findings = [Finding("embedding model", "ok", f"{first.embedding_model}: {kind.dimension} dimensions")]
    if first.k is not None and s.pipeline.window and first.k < s.pipeline.window:
        findings.append(
            Finding(
                "first stage",
                "problem",
                f"neural k {first.k} is smaller than the rank window {s.pipeline.window}: the window has fewer hits "
                "to rerank than it says",
                f"raise --k to at least {s.pipeline.window}, or leave it unset (then it follows the window)",
            )
        )
    model_id = embedding.find_model(c.ml)
    state = c.ml.model(model_id).get("model_state") if model_id else None
    if state != "DEPLOYED":
        findings.append(
            Finding(
                "embedding model",
                "problem",
                f"the embedding model is {state or 'not set up'}: no document or query can be embedded",
                f"POST /_plugins/_ml/models/{model_id}/_deploy, or rerun setup" if model_id else "run osrerank setup",
            )
        )
    try:
        mapping: Any = next(iter(c.reranker.cluster().call("GET", f"/{s.index.name}/_mapping").values()))["mappings"]
        vector = (mapping.get("properties") or {}).get(first.vector_field) or {}
    except NotFound:
        vector = None
    if (vector is not None and int(vector.get("dimension", kind.dimension)) != kind.dimension) or vector == {}:
        findings.append(
            Finding(
                "vector field",
                "problem",
                f"{s.index.name}.{first.vector_field} is {vector.get('type', 'missing')} of dimension "
                f"{vector.get('dimension', '-')}; the embedding model makes {kind.dimension}",
                "pass --vector-field with a knn_vector field of the model's dimension, or rerun setup on an index "
                "osrerank makes",
            )
        )
    if first.kind == "hybrid":
        try:
            pipeline = c.reranker.cluster().call("GET", f"/_search/pipeline/{s.pipeline.name}")[s.pipeline.name]
        except NotFound:
            pipeline = None
        if pipeline is not None and not pipeline.get("phase_results_processors"):
            findings.append(
                Finding(
                    "first stage",
                    "problem",
                    f"pipeline {s.pipeline.name} has no phase-results processor: a hybrid query through it answers "
                    "neural-search's raw format (marker hits scored near -9.5e9)",
                    "rerun osrerank setup --first-stage hybrid (it puts normalization first)",
                )
            )
    return findings


CHECKS: list[Check] = [_version, _model, _index, _first_stage, _deployed]


#: Optional modules a check may need, and the extra that installs each.
EXTRAS = {"onnx": "int8", "torch": "torch", "transformers": "torch", "openvino": "openvino", "boto3": "aws"}


def diagnose(settings: Settings) -> list[Finding]:
    """Run every check; a check that cannot run says so instead of stopping the others (a missing optional
    module is a finding with its install command, never a traceback)."""
    context = Context(settings, Reranker(settings))
    findings: list[Finding] = []
    for check in CHECKS:
        name = check.__name__.strip("_")
        try:
            findings += check(context)
        except OsRerankError as exc:
            findings.append(Finding(name, "problem", str(exc).splitlines()[0]))
        except ImportError as exc:
            module = (exc.name or "").split(".")[0]
            fix = f"pip install 'osrerank[{EXTRAS[module]}]'" if module in EXTRAS else f"pip install {module}"
            findings.append(
                Finding(name, "problem", f"this check needs the {module} module, which is not installed", fix)
            )
    return findings
