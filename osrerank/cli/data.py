"""``osrerank index load | connector render|create | pipeline create``: the pieces one at a time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from rich.progress import Progress

from ..connector import ensure_connector, passes_inputs_through
from ..errors import ConfigError
from ..ingest import count_lines, load_jsonl
from ..pipeline import set_default_pipeline, set_up_pipeline
from ..reranker import Reranker
from ..settings import Settings
from ..targets import RemoteTarget
from .common import CONTEXT, console, friendly_errors, out, progress, resolve_settings, settings_options


@click.group(context_settings=CONTEXT)
def index() -> None:
    """Create indices the kit owns and load documents into them.

    \b
    Example:
        osrerank index load corpus.jsonl --index my-docs
    """


@index.command("load", context_settings=CONTEXT)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--recreate", is_flag=True, help="Delete and recreate the index first.")
@click.option("--combine", help="Also index these fields joined with '. ' as rerank_text (then rerank on rerank_text).")
@settings_options("cluster", "index", "first_stage")
@friendly_errors
def index_load(file: Path, recreate: bool, combine: str | None, **kwargs: Any) -> None:
    """Bulk-load a JSONL file (one document per line; BEIR corpus.jsonl works: _id, title, text). After a setup
    with a neural or hybrid first stage (its record), a new index gets the vector field and every document is
    embedded on the way in.

    The rerank processor joins several document_fields with no separator ("Title"+"Body" ->
    "TitleBody"); --combine title,text builds one rerank_text field with a separator instead.

    \b
    Example:
        osrerank index load corpus.jsonl --index scifact --combine title,text --document-fields rerank_text
    """
    settings = resolve_settings(kwargs, from_record=True)
    parts = [f.strip() for f in combine.split(",") if f.strip()] if combine else []
    reranker = Reranker(settings, progress)
    cluster = reranker.cluster(start=True)
    vectors = reranker.vector_index() if settings.first_stage.embeds else {}
    with Progress(console=console) as bar:
        task = bar.add_task(f"indexing into {settings.index.name}", total=count_lines(file))
        n = load_jsonl(
            cluster, settings.index.name, file, text_fields=settings.index.document_fields, combine=parts,
            recreate=recreate, on_progress=lambda k: bar.advance(task, k), **vectors,
        )  # fmt: skip
    out.print(f"indexed {n} documents into {settings.index.name}")


@click.group(context_settings=CONTEXT)
def connector() -> None:
    """Render or create the ml-commons connector from a template.

    \b
    Example:
        osrerank connector render --template tei-rerank --endpoint-url http://127.0.0.1:8080/rerank
    """


def _connector_body(settings: Settings, passthrough: bool = False) -> dict[str, Any]:
    """The connector for --endpoint-url, made as the target would make it (``passthrough``: for ml-commons 3.0+;
    what ``render`` prints leaves it off, so it suits every line)."""
    if not settings.connector.endpoint_url:
        raise ConfigError("--endpoint-url is required: the model endpoint the connector calls")
    target = Reranker(settings, progress).target
    if not isinstance(target, RemoteTarget):
        raise ConfigError(f"target {settings.target!r} runs the model inside the cluster: it has no connector")
    target.check()
    return target.connector_body(target.endpoint(), passthrough)


@connector.command("render", context_settings=CONTEXT)
@click.option("--show-secrets", is_flag=True, help="Print credentials instead of ***.")
@settings_options("name", "target", "model", "pipeline.long_documents", "connector")
@friendly_errors
def connector_render(show_secrets: bool, **kwargs: Any) -> None:
    """Print the connector JSON (credentials masked unless --show-secrets).

    \b
    Example:
        osrerank connector render --template tei-rerank --endpoint-url http://127.0.0.1:8080/rerank
    """
    body = _connector_body(resolve_settings(kwargs))
    if not show_secrets and "credential" in body:
        body["credential"] = dict.fromkeys(body["credential"], "***")
    click.echo(json.dumps(body, indent=2, ensure_ascii=False))


@connector.command("create", context_settings=CONTEXT)
@settings_options("name", "target", "cluster", "model", "pipeline.long_documents", "connector")
@friendly_errors
def connector_create(**kwargs: Any) -> None:
    """Create (or reuse) the connector on the cluster and print its id.

    \b
    Example:
        osrerank connector create --endpoint-url https://runtime.sagemaker.us-east-1.amazonaws.com/endpoints/x/invocations
    """
    settings = resolve_settings(kwargs)
    ml = Reranker(settings).ml()
    found = ensure_connector(ml, _connector_body(settings, passes_inputs_through(ml)))
    out.print(f"connector {found.id} ({found.action})")


@click.group(context_settings=CONTEXT)
def pipeline() -> None:
    """Create the rerank search pipeline.

    \b
    Example:
        osrerank pipeline create --model-id abc123
    """


@pipeline.command("create", context_settings=CONTEXT)
@click.option("--model-id", required=True, help="The deployed ml-commons model to rerank with.")
@click.option("--set-default", is_flag=True, help="Also make it the index's default search pipeline.")
@settings_options("cluster", "model.path", "index", "pipeline")
@friendly_errors
def pipeline_create(model_id: str, set_default: bool, **kwargs: Any) -> None:
    """Create (or update) the rerank pipeline for MODEL_ID.

    \b
    Example:
        osrerank pipeline create --model-id abc123 --document-fields title,body --set-default
    """
    settings = resolve_settings(kwargs)
    cluster = Reranker(settings).cluster()
    s = settings
    description = f"osrerank: rerank {', '.join(s.index.document_fields)} with {s.model.path}"
    found = set_up_pipeline(cluster, s.pipeline, model_id, s.index.document_fields, description)
    if set_default:
        set_default_pipeline(cluster, s.index.name, s.pipeline.name)
    out.print(f"pipeline {found.id} ({found.action})" + (f", default for {s.index.name}" if set_default else ""))


COMMANDS = [index, connector, pipeline]
