"""Render connector and pipeline templates (jinja2, StrictUndefined) and validate the JSON.

Templates are package data (``osrerank.connectors`` / ``osrerank.pipelines``, the repo's
``connectors/`` and ``pipelines/`` folders). Callers pass every variable a template uses,
optional ones as ``None``; all missing variables are reported in one error, and a rendered
document that is not valid JSON, or lacks what OpenSearch needs, fails before anything is sent.
"""

from __future__ import annotations

import json
from importlib import resources
from typing import Any, Literal

import jinja2
from jinja2 import meta

from .errors import TemplateError

__all__ = ["list_templates", "render", "validate_connector", "validate_pipeline"]

Folder = Literal["connectors", "pipelines"]


def _env(folder: Folder) -> jinja2.Environment:
    loader = jinja2.FunctionLoader(lambda name: _source(folder, name))
    return jinja2.Environment(
        loader=loader, undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True
    )


def _source(folder: Folder, name: str) -> str | None:
    path = resources.files(f"osrerank.{folder}").joinpath(name)
    return path.read_text(encoding="utf-8") if path.is_file() else None


def list_templates(folder: Folder) -> list[str]:
    """Template names (file names without ``.json.j2``) in a folder."""
    return sorted(
        p.name[: -len(".json.j2")]
        for p in resources.files(f"osrerank.{folder}").iterdir()
        if p.name.endswith(".json.j2")
    )


def required_variables(folder: Folder, name: str) -> set[str]:
    """Variables the template (and the macros it imports) reads."""
    env = _env(folder)
    source = _source(folder, f"{name}.json.j2")
    if source is None:
        raise TemplateError(f"unknown {folder[:-1]} template {name!r}; available: {', '.join(list_templates(folder))}")
    return set(meta.find_undeclared_variables(env.parse(source)))


def render(folder: Folder, name: str, variables: dict[str, Any]) -> dict[str, Any]:
    """Render template ``name`` with ``variables`` and return the parsed JSON document."""
    missing = sorted(required_variables(folder, name) - set(variables))
    if missing:
        raise TemplateError(f"template {folder}/{name}.json.j2 needs value(s) for: {', '.join(missing)}")
    try:
        text = _env(folder).get_template(f"{name}.json.j2").render(**variables)
    except jinja2.TemplateError as exc:
        raise TemplateError(f"template {folder}/{name}.json.j2 failed to render: {exc}") from exc
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise TemplateError(f"template {folder}/{name}.json.j2 rendered invalid JSON: {exc}") from exc
    validate = validate_connector if folder == "connectors" else validate_pipeline
    problems = validate(document)
    if problems:
        raise TemplateError(f"template {folder}/{name}.json.j2 rendered an invalid body: " + "; ".join(problems))
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
    """Problems in a rerank search-pipeline body."""
    problems = []
    processors = doc.get("response_processors") or []
    reranks = [p["rerank"] for p in processors if isinstance(p, dict) and "rerank" in p]
    if not reranks:
        return ["response_processors has no rerank processor"]
    for r in reranks:
        if not (r.get("ml_opensearch") or {}).get("model_id"):
            problems.append("rerank.ml_opensearch.model_id is missing")
        fields = (r.get("context") or {}).get("document_fields")
        if not fields or not all(isinstance(f, str) and f for f in fields):
            problems.append("rerank.context.document_fields must be a non-empty list of field names")
    return problems
