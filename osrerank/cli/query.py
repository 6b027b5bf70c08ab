"""``osrerank predict | search``: score through the cluster."""

from __future__ import annotations

import json
from typing import Any

import click

from ..reranker import Reranker
from .common import CONTEXT, friendly_errors, out, print_hits, resolve_settings, settings_options

#: What finds the model and the pipeline setup made: the names, the target, the model, the cluster.
QUERYING = ("name", "target", "cluster", "model", "index", "pipeline.name", "connector", "first_stage")


@click.command(context_settings=CONTEXT)
@click.argument("query")
@click.argument("docs", nargs=-1, required=True)
@settings_options(*QUERYING)
@friendly_errors
def predict(query: str, docs: tuple[str, ...], **kwargs: Any) -> None:
    """Score DOCS against QUERY through the cluster (_predict/text_similarity).

    \b
    Example:
        osrerank predict "I like you" "I hate you" "I love you"
    """
    scores = Reranker(resolve_settings(kwargs, from_record=True)).predict(query, list(docs))
    for doc, score in zip(docs, scores, strict=True):
        out.print(f"{score:.8g}\t{doc}", highlight=False)


def _at_least_one(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    if value is not None and value < 1:
        raise click.BadParameter("must be at least 1")
    return value


@click.command(context_settings=CONTEXT)
@click.argument("query")
@click.option("--size", type=int, default=10, show_default=True, callback=_at_least_one, help="Hits to return.")
@click.option(
    "--top-k", type=int, callback=_at_least_one, help="First-stage hits to rerank (>= --size) [default: size]."
)
@click.option("--min-score", type=float, help="Drop reranked hits scoring below this.")
@click.option("--match-all", is_flag=True, help="First stage match_all instead of BM25 (as in the tutorial).")
@click.option("--query-text-path", help="Take the rerank query from this path of the search request instead.")
@click.option(
    "--blend",
    "blend_weight",
    type=click.FloatRange(0, 1),
    help="Order by this share of the normalised BM25 score plus the rest of the model's (0: pure rerank).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the raw OpenSearch response.")
@click.option(
    "--show-body", is_flag=True, help="Print the plain _search request an application sends for this; send nothing."
)
@settings_options(*QUERYING)
@friendly_errors
def search(query: str, size: int, top_k: int | None, as_json: bool, show_body: bool, **kwargs: Any) -> None:
    """Search the index with BM25 and rerank the top --top-k hits with the cross-encoder (a pipeline with a
    rank window reranks its window whatever --top-k says). Starts from what setup recorded for the pipeline
    (--pipeline, else the latest setup): its index, fields, model and first stage (bm25, neural or hybrid).

    \b
    Example:
        osrerank search "What is the capital of the United States?" --top-k 50 --size 5
        osrerank search "vitamin D and birth weight" --show-body
    """
    if top_k is not None and top_k < size:
        raise click.BadParameter(
            f"--top-k {top_k} is smaller than --size {size}: it must be >= --size", param_hint="--top-k"
        )
    settings = resolve_settings(kwargs, from_record=True)
    if show_body:
        path, body = Reranker(settings).application_request(query, size)
        click.echo(f"POST {path}\n{json.dumps(body, indent=2, ensure_ascii=False)}")
        return
    result = Reranker(settings).search(query, size=size, top_k=top_k, **kwargs)
    if as_json:
        click.echo(json.dumps(result.raw, indent=2, ensure_ascii=False))
    else:
        print_hits(result, settings.index.document_fields)
    if not result.reranked:
        out.print(f"[yellow]not reranked[/yellow]: the model failed ({result.fallback}); first-stage order shown")


COMMANDS = [predict, search]
