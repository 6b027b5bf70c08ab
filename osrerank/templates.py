"""Render connector and pipeline templates (jinja2, StrictUndefined) and validate the JSON.

Templates are package data (``osrerank.connectors`` / ``osrerank.pipelines``, the repo's
``connectors/`` and ``pipelines/`` folders). A connector template says what it is in its first line,
``{#- osrerank: {"api": ..., "auth": "aws_sigv4"|"bearer", "standin_path": ...} -#}``, so adding a
model API is adding one file. Names are checked against the folder's listing, so a name cannot reach
outside it. Callers pass every variable a template uses, optional ones as ``None``; all missing
variables are reported in one error, and a rendered document that is not valid JSON, or lacks what
OpenSearch needs, fails before anything is sent.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Literal

import jinja2
from jinja2 import meta

from .errors import TemplateError

__all__ = [
    "ConnectorTemplate",
    "connector_template",
    "list_templates",
    "render",
    "required_variables",
    "validate_connector",
    "validate_pipeline",
]

Folder = Literal["connectors", "pipelines"]
SUFFIX = ".json.j2"
META = re.compile(r"\A\{#-?\s*osrerank:\s*(\{.*?\})\s*-?#\}")


@dataclass(frozen=True)
class ConnectorTemplate:
    """What a connector template speaks: the model API, how it authenticates, and where the stand-in
    serves that API (``{name}`` is the endpoint name)."""

    name: str
    api: str
    auth: Literal["aws_sigv4", "bearer"]
    standin_path: str | None = None
    #: whether the API refuses a call without its credential (Cohere's); else a bearer token is optional
    auth_required: bool = False
    #: what the model behind it does: reranks (the rerank pipeline's connectors) or embeds (a neural first stage's)
    purpose: Literal["rerank", "embedding"] = "rerank"
    #: whether the API can return raw logits (activation none); hosted rerank APIs give relevance in [0, 1]
    raw_scores: bool = True


def _source(folder: Folder, name: str) -> str | None:
    path = resources.files(f"osrerank.{folder}").joinpath(name)
    return path.read_text(encoding="utf-8") if path.is_file() else None


def _env(folder: Folder) -> jinja2.Environment:
    loader = jinja2.FunctionLoader(lambda name: _source(folder, name))
    return jinja2.Environment(
        loader=loader, undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True
    )


def list_templates(folder: Folder, purpose: str | None = None) -> list[str]:
    """Template names (file names without ``.json.j2``) in a folder; of connectors, those of one ``purpose``."""
    names = sorted(
        p.name[: -len(SUFFIX)] for p in resources.files(f"osrerank.{folder}").iterdir() if p.name.endswith(SUFFIX)
    )
    return [n for n in names if purpose is None or connector_template(n).purpose == purpose]


def _checked(folder: Folder, name: str) -> str:
    """The template's source; an unknown name (or one reaching outside the folder) lists the known ones."""
    known = list_templates(folder)
    source = _source(folder, f"{name}{SUFFIX}") if name in known else None
    if source is None:
        raise TemplateError(f"unknown {folder[:-1]} template {name!r}; available: {', '.join(known)}")
    return source


@cache
def connector_template(name: str) -> ConnectorTemplate:
    """The description in the template's first line."""
    match = META.match(_checked("connectors", name))
    if not match:
        raise TemplateError(f"connector template {name!r} lacks its first line {{#- osrerank: {{...}} -#}}")
    try:
        return ConnectorTemplate(name=name, **json.loads(match.group(1)))
    except (ValueError, TypeError) as exc:
        raise TemplateError(f"connector template {name!r} has a bad osrerank description: {exc}") from exc


def required_variables(folder: Folder, name: str) -> set[str]:
    """Variables the template (and the macros it imports) reads."""
    return set(meta.find_undeclared_variables(_env(folder).parse(_checked(folder, name))))


def render(folder: Folder, name: str, variables: dict[str, Any]) -> dict[str, Any]:
    """Render template ``name`` with ``variables`` and return the parsed JSON document."""
    missing = sorted(required_variables(folder, name) - set(variables))
    where = f"{folder}/{name}{SUFFIX}"
    if missing:
        raise TemplateError(f"template {where} needs value(s) for: {', '.join(missing)}")
    try:
        text = _env(folder).get_template(f"{name}{SUFFIX}").render(**variables)
    except jinja2.TemplateError as exc:
        raise TemplateError(f"template {where} failed to render: {exc}") from exc
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise TemplateError(f"template {where} rendered invalid JSON: {exc}") from exc
    validate = validate_connector if folder == "connectors" else validate_pipeline
    problems = validate(document)
    if problems:
        raise TemplateError(f"template {where} rendered an invalid body: " + "; ".join(problems))
    return document


def validate_connector(doc: dict[str, Any]) -> list[str]:
    """Problems that would make ``_plugins/_ml/connectors/_create`` fail or the rerank misbehave."""
    problems = []
    for key in ("name", "protocol", "actions"):
        if not doc.get(key):
            problems.append(f"{key} is missing or empty")
    protocol = doc.get("protocol")
    if protocol not in ("http", "aws_sigv4"):
        problems.append(f"protocol is {protocol!r}, expected 'http' or 'aws_sigv4'")
    if protocol == "aws_sigv4":
        cred = doc.get("credential") or {}
        if not (cred.get("roleArn") or (cred.get("access_key") and cred.get("secret_key"))):
            problems.append("credential needs access_key and secret_key, or roleArn")
        params = doc.get("parameters") or {}
        for key in ("region", "service_name"):
            if not params.get(key):
                problems.append(f"parameters.{key} is required for aws_sigv4")
    for i, action in enumerate(doc.get("actions") or []):
        where = f"actions[{i}]"
        if action.get("action_type") != "predict":
            problems.append(f"{where}.action_type must be 'predict'")
        url = action.get("url") or ""
        if not url.startswith(("http://", "https://")):
            problems.append(f"{where}.url {url!r} is not an http(s) URL")
        for key in ("request_body", "pre_process_function", "post_process_function"):
            if not isinstance(action.get(key), str) or not action[key].strip():
                problems.append(f"{where}.{key} is missing")
    return problems


def validate_pipeline(doc: dict[str, Any]) -> list[str]:
    """Problems in a rerank search-pipeline body: one model call per search (``rerank`` with
    ``ml_opensearch``), or one per hit (``ml_inference`` one_to_one, then ``rerank`` ``by_field``)."""
    problems = []
    processors = [p for p in doc.get("response_processors") or [] if isinstance(p, dict)]
    reranks = [p["rerank"] for p in processors if "rerank" in p]
    if not reranks:
        return ["response_processors has no rerank processor"]
    per_hit = [p["ml_inference"] for p in processors if "ml_inference" in p]
    for r in reranks:
        if "by_field" in r:
            target = (r["by_field"] or {}).get("target_field")
            if not any(target in m for inference in per_hit for m in inference.get("output_map") or []):
                problems.append(f"rerank.by_field.target_field {target!r} is written by no ml_inference processor")
            continue
        if not (r.get("ml_opensearch") or {}).get("model_id"):
            problems.append("rerank.ml_opensearch.model_id is missing")
        fields = (r.get("context") or {}).get("document_fields")
        if not fields or not all(isinstance(f, str) and f for f in fields):
            problems.append("rerank.context.document_fields must be a non-empty list of field names")
    for inference in per_hit:
        if not inference.get("model_id"):
            problems.append("ml_inference.model_id is missing")
        if inference.get("one_to_one") is not True:
            problems.append("ml_inference must be one_to_one (one model call per hit)")
        fields = (inference.get("model_config") or {}).get("osrerank_fields")
        if not fields or not all(isinstance(f, str) and f for f in fields):
            problems.append("ml_inference.model_config.osrerank_fields must be a non-empty list of field names")
    return problems
