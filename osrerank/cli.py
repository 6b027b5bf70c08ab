"""The ``osrerank`` command line: a thin shell over the library.

Each command resolves :class:`~osrerank.config.Settings`, calls one library function and turns
:class:`~osrerank.errors.OsRerankError` into a one-line message with exit code 1.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from .config import Settings
from .errors import OsRerankError

console = Console(stderr=True)
out = Console()

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def friendly_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Print OsRerankError as one line (no stack trace) and exit 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except OsRerankError as exc:
            raise click.ClickException(str(exc)) from exc

    return wrapper


def progress(message: str) -> None:
    console.print(f"[dim]•[/dim] {message}", highlight=False)


@click.group(context_settings=CONTEXT)
@click.version_option(package_name="osrerank")
def cli() -> None:
    """Cross-encoder reranking for OpenSearch: deploy a model, wire it into a rerank
    search pipeline, search, and tear it all down again.

    \b
    Example:
        osrerank demo --model ./models/ms-marco-MiniLM-L-6-v2
    """


# ---------------------------------------------------------------- cluster
@cli.group(context_settings=CONTEXT)
def cluster() -> None:
    """A local single-node OpenSearch with ml-commons + neural-search (no Docker).

    \b
    Example:
        osrerank cluster up && osrerank cluster status
    """


version_option = click.option(
    "--version",
    "version",
    envvar="OSRERANK_OPENSEARCH_VERSION",
    default=None,
    help="OpenSearch version [default: 3.6.0; also 2.19.6]. Env: OSRERANK_OPENSEARCH_VERSION.",
)


@cluster.command("up", context_settings=CONTEXT)
@version_option
@click.option("--port", type=int, default=None, help="HTTP port [default: a free one].")
@friendly_errors
def cluster_up(version: str | None, port: int | None) -> None:
    """Fetch (first time only) and start the node; reuse it if it already runs.

    \b
    Example:
        osrerank cluster up --version 2.19.6
    """
    from .cluster import LocalCluster

    info = LocalCluster(version, port=port, progress=progress).up()
    out.print(f"OpenSearch {info.version} [green]{info.health}[/green] at {info.url}")


@cluster.command("down", context_settings=CONTEXT)
@version_option
@friendly_errors
def cluster_down(version: str | None) -> None:
    """Stop the node and leave no process behind.

    \b
    Example:
        osrerank cluster down
    """
    from .cluster import LocalCluster

    stopped = LocalCluster(version, progress=progress).down()
    out.print("stopped" if stopped else "no local OpenSearch was running")


@cluster.command("status", context_settings=CONTEXT)
@version_option
@friendly_errors
def cluster_status(version: str | None) -> None:
    """Print version, URL, health and installed plugins of the running node.

    \b
    Example:
        osrerank cluster status
    """
    from .cluster import LocalCluster

    info = LocalCluster(version).status()
    out.print(f"version: {info.version}\nurl:     {info.url}\nhealth:  {info.health}\npid:     {info.pid}")
    out.print("plugins: " + ", ".join(info.plugins))


# ---------------------------------------------------------------- serve
@cli.command(context_settings=CONTEXT)
@click.option("--model", required=True, envvar="OSRERANK_MODEL", help="Model folder or hub id.")
@click.option(
    "--kind",
    type=click.Choice(["cross-encoder", "bi-encoder"]),
    default="cross-encoder",
    show_default=True,
    help="bi-encoder: cosine of mean-pooled embeddings.",
)
@click.option(
    "--activation",
    type=click.Choice(["sigmoid", "none"]),
    default="sigmoid",
    show_default=True,
    help="sigmoid matches SageMaker's HF text-classification; none returns raw logits.",
)
@click.option(
    "--precision",
    type=click.Choice(["fp32", "int8"]),
    default="fp32",
    show_default=True,
    help="int8: dynamically quantized, ~2.6x faster on AVX-512 VNNI CPUs, scores no longer exact.",
)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=int, default=8080, show_default=True)
@click.option("--no-auth", is_flag=True, help="Accept unsigned SageMaker-route requests (local use only).")
@click.option("--region", default="us-east-1", show_default=True, help="SigV4 region to accept.")
@click.option("--record", is_flag=True, help="Keep the texts received, readable at /_osrerank/received (tests).")
@click.option("--max-batch", type=int, default=256, show_default=True, help="Max pairs merged into one batch.")
@click.option("--max-wait-ms", type=float, default=5.0, show_default=True, help="Max wait to fill a batch.")
@friendly_errors
def serve(
    model: str,
    kind: str,
    activation: str,
    precision: str,
    host: str,
    port: int,
    no_auth: bool,
    region: str,
    record: bool,
    max_batch: int,
    max_wait_ms: float,
) -> None:
    """Serve a cross-encoder over SageMaker-runtime, TorchServe and TEI-style APIs.

    SageMaker-route requests must be SigV4-signed with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY
    unless --no-auth is given.

    \b
    Example:
        osrerank serve --model ./ms-marco-MiniLM-L-6-v2 --port 8080 --no-auth
        curl -s localhost:8080/rerank -d '{"query":"q","texts":["a","b"]}'
    """
    from .server.run import ServeOptions
    from .server.run import serve as run

    run(
        ServeOptions(
            model=model,
            kind=kind,
            activation=activation,
            precision=precision,  # type: ignore[arg-type]
            host=host,
            port=port,  # type: ignore[arg-type]
            auth=not no_auth,
            region=region,
            record=record,
            max_batch_pairs=max_batch,
            max_wait_ms=max_wait_ms,
        )
    )


# ---------------------------------------------------------------- shared settings flags
def settings_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Flags that map onto Settings fields; unset flags fall through to OSRERANK_* and --config."""
    options = [
        click.option("--config", "config_file", type=click.Path(dir_okay=False), help="TOML settings file."),
        click.option("--opensearch-url", help="Cluster URL [default: the local cluster]."),
        click.option("--opensearch-user", help="Basic-auth user (password: OSRERANK_OPENSEARCH_PASSWORD)."),
        click.option("--aws-region", help="Sign cluster requests with SigV4 (Amazon OpenSearch Service)."),
        click.option("--aws-profile", help="AWS profile for --aws-region."),
        click.option("--opensearch-version", help="Local cluster version [default: 3.6.0]."),
        click.option("--target", type=click.Choice(["local", "sagemaker", "opensearch"]), help="Where the model runs."),
        click.option("--model", help="Model folder or hub id [default: cross-encoder/ms-marco-MiniLM-L-6-v2]."),
        click.option("--kind", type=click.Choice(["cross-encoder", "bi-encoder"])),
        click.option("--activation", type=click.Choice(["sigmoid", "none"])),
        click.option("--endpoint-url", help="Use this model endpoint instead of deploying one."),
        click.option("--template", help="Connector template [default: sagemaker-hf-text-classification]."),
        click.option("--name", help="Prefix of the objects the kit creates [default: osrerank]."),
        click.option("--pipeline", help="Search pipeline name [default: osrerank-rerank]."),
        click.option("--index", help="Index [default: my-test-data]."),
        click.option("--document-fields", help="Comma-separated fields to rerank on [default: passage_text]."),
        click.option("--timeout", "timeout_s", type=float, help="Model call timeout in seconds [default: 30]."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def sagemaker_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Flags of the SageMaker target (deploy, setup, teardown)."""
    options = [
        click.option("--region", help="AWS region of the SageMaker endpoint [default: us-east-1]."),
        click.option("--endpoint-name", help="SageMaker endpoint name [default: <name>-cross-encoder]."),
        click.option("--instance-type", help="[default: ml.m5.xlarge]"),
        click.option("--instance-count", type=int, help="[default: 1]"),
        click.option("--role-arn", help="Execution role the SageMaker endpoint runs as."),
        click.option("--connector-role-arn", help="Role the connector assumes (Amazon OpenSearch Service)."),
        click.option("--transformers-version", help="HF DLC transformers version [default: 4.37]."),
        click.option("--pytorch-version", help="HF DLC PyTorch version [default: 2.1]."),
        click.option("--py-version", help="HF DLC Python version [default: py310]."),
        click.option("--serverless-memory-mb", type=int, help="Serverless inference with this memory (1024-6144)."),
        click.option("--serverless-max-concurrency", type=int, help="Serverless max concurrency [default: 5]."),
        click.option("--autoscale-target", type=int, help="Autoscale on invocations per instance per minute."),
        click.option("--autoscale-max-instances", type=int, help="Autoscaling upper bound [default: 4]."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def resolve_settings(kwargs: dict[str, Any]) -> Settings:
    """Pop the settings flags out of a command's kwargs (they are named like Settings fields)."""
    config_file = kwargs.pop("config_file", None)
    values = {k: kwargs.pop(k) for k in list(kwargs) if k in Settings.model_fields}
    return Settings.resolve(values, config_file=config_file)


def print_setup(result: Any) -> None:
    table = Table(title="osrerank setup", show_header=True)
    for col in ("step", "action", "id"):
        table.add_column(col)
    for step, found in result.steps.items():
        colour = {"created": "green", "reused": "cyan", "replaced": "yellow"}[found.action]
        table.add_row(step, f"[{colour}]{found.action}[/{colour}]", found.id)
    out.print(table)


def print_hits(result: Any, fields: tuple[str, ...], width: int = 90) -> None:
    table = Table(show_header=True)
    table.add_column("#", justify="right")
    table.add_column("score", justify="right")
    table.add_column("id")
    table.add_column(" + ".join(fields))
    for rank, hit in enumerate(result.hits, 1):
        text = hit.text(fields)
        table.add_row(str(rank), f"{hit.score:.8g}", hit.id, text if len(text) <= width else text[: width - 1] + "…")
    out.print(table)


# ---------------------------------------------------------------- deploy / setup / predict / search / teardown
@cli.command(context_settings=CONTEXT)
@click.option("--update", is_flag=True, help="Move an existing SageMaker endpoint to changed settings.")
@click.option("--dry-run", is_flag=True, help="Show what would be created or reused; change nothing.")
@settings_options
@sagemaker_options
@friendly_errors
def deploy(update: bool, dry_run: bool, **kwargs: Any) -> None:
    """Deploy the model only (local stand-in, SageMaker, or inside the cluster) and say where it is.

    Idempotent: an endpoint with this name and the same settings is reused.

    \b
    Example:
        osrerank deploy --target sagemaker --role-arn arn:aws:iam::123456789012:role/sm --region us-west-2
    """
    from .reranker import Reranker
    from .sagemaker_deploy import SageMakerDeployment

    settings = resolve_settings(kwargs)
    if settings.target == "sagemaker":
        deployment = SageMakerDeployment(settings, progress)
        if dry_run:
            for line in deployment.plan():
                out.print(f"would {line}")
            return
        deployed = deployment.deploy(update=update)
        out.print(f"{deployed.action}: {deployed.url}")
        return
    if settings.target == "opensearch":
        if dry_run:
            out.print(f"would register and deploy {settings.model} inside the cluster as {settings.name}-model")
            return
        reranker = Reranker(settings, progress)
        _, found = reranker.deploy_in_cluster(reranker.cluster(start=True))
        out.print(f"{found.action}: model {found.id} (in the cluster)")
        return
    if dry_run:
        out.print(f"would start (or reuse) the local model endpoint {settings.name!r} for {settings.model}")
        return
    url, _, found = Reranker(settings, progress).deploy()
    out.print(f"{found.action}: {url}")


@cli.command(context_settings=CONTEXT)
@settings_options
@sagemaker_options
@friendly_errors
def setup(**kwargs: Any) -> None:
    """Deploy the model endpoint, then create connector, model group, model and rerank pipeline.

    Idempotent: a second run finds every object by name and reuses it.

    \b
    Example:
        osrerank setup --model ./ms-marco-MiniLM-L-6-v2 --index my-docs --document-fields title,body
    """
    from .reranker import Reranker

    print_setup(Reranker(resolve_settings(kwargs), progress).setup())


@cli.command(context_settings=CONTEXT)
@click.argument("query")
@click.argument("docs", nargs=-1, required=True)
@settings_options
@friendly_errors
def predict(query: str, docs: tuple[str, ...], **kwargs: Any) -> None:
    """Score DOCS against QUERY through the cluster (_predict/text_similarity).

    \b
    Example:
        osrerank predict "I like you" "I hate you" "I love you"
    """
    from .reranker import Reranker

    for doc, score in zip(docs, Reranker(resolve_settings(kwargs)).predict(query, list(docs)), strict=True):
        out.print(f"{score:.8g}\t{doc}", highlight=False)


@cli.command(context_settings=CONTEXT)
@click.argument("query")
@click.option("--size", type=int, default=10, show_default=True, help="Hits to return.")
@click.option("--window", type=int, help="Hits to rerank (>= size) [default: size].")
@click.option("--min-score", type=float, help="Drop reranked hits scoring below this.")
@click.option("--match-all", is_flag=True, help="First stage match_all instead of BM25 (as in the tutorial).")
@click.option("--query-text-path", help="Take the rerank query from this path of the search request instead.")
@click.option("--json", "as_json", is_flag=True, help="Print the raw OpenSearch response.")
@settings_options
@friendly_errors
def search(
    query: str,
    size: int,
    window: int | None,
    min_score: float | None,
    match_all: bool,
    query_text_path: str | None,
    as_json: bool,
    **kwargs: Any,
) -> None:
    """Search INDEX with BM25 and rerank the top --window hits with the cross-encoder.

    \b
    Example:
        osrerank search "What is the capital of the United States?" --window 50 --size 5
    """
    import json

    from .reranker import Reranker

    settings = resolve_settings(kwargs)
    result = Reranker(settings).search(
        query, size=size, window=window, min_score=min_score, match_all=match_all, query_text_path=query_text_path
    )
    if as_json:
        click.echo(json.dumps(result.raw, indent=2, ensure_ascii=False))
    else:
        print_hits(result, settings.document_fields)


@cli.command(context_settings=CONTEXT)
@click.option("--keep-index", is_flag=True, help="Leave the index in place.")
@click.option("--dry-run", is_flag=True, help="List what would be removed; remove nothing.")
@settings_options
@sagemaker_options
@friendly_errors
def teardown(keep_index: bool, dry_run: bool, **kwargs: Any) -> None:
    """Remove pipeline, model, model group, connector, endpoint (local or SageMaker, only if tagged
    created-by=osrerank) and the kit-created index.

    \b
    Example:
        osrerank teardown --keep-index --dry-run
    """
    from .reranker import Reranker

    removed = Reranker(resolve_settings(kwargs), progress).teardown(keep_index=keep_index, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    out.print(f"{verb}: " + (", ".join(removed) if removed else "nothing (no kit-created objects found)"))


@cli.command(name="eval", context_settings=CONTEXT)
@click.option("--dataset", type=click.Path(file_okay=False, path_type=Path), required=True, help="BEIR folder.")
@click.option("--split", default="test", show_default=True, help="qrels/<split>.tsv to score against.")
@click.option("--top-k", type=int, default=100, show_default=True, help="BM25 hits the pipeline reranks.")
@click.option("--max-queries", type=int, help="Only the first N judged queries (a quick look).")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("eval-results"),
    show_default=True,
    help="Folder for results.json and results.png.",
)
@settings_options
@friendly_errors
def eval_command(dataset: Path, split: str, top_k: int, max_queries: int | None, out_dir: Path, **kwargs: Any) -> None:
    """BM25 vs BM25 + rerank on a BEIR dataset: nDCG@10, MRR@10, Recall@100 and latency.

    Sets up the model first (idempotent), indexes the corpus once (title + text), runs every judged
    query through both arms, and writes OUT/results.json and OUT/results.png.

    \b
    Example:
        osrerank eval --dataset ../shared/data/beir/scifact --model DIR --kind bi-encoder --top-k 100
    """
    from rich.progress import Progress

    from .eval import MEASURES, run_eval, write_report
    from .reranker import Reranker

    settings = resolve_settings(kwargs)
    reranker = Reranker(settings, progress)
    model_id = reranker.setup().model_id
    with Progress(console=console) as bar:
        tasks: dict[str, Any] = {}

        def tick(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done)

        result = run_eval(
            reranker.cluster(),
            settings,
            model_id,
            dataset,
            split=split,
            top_k=top_k,
            max_queries=max_queries,
            progress=tick,
        )
    table = Table(title=f"{dataset.name}: {result.queries} queries, top-{top_k}, {result.wall_s:.0f} s")
    table.add_column("arm")
    for m in MEASURES:
        table.add_column(m, justify="right")
    table.add_column("p50 ms", justify="right")
    table.add_column("p95 ms", justify="right")
    for name, arm in result.arms.items():
        lat = arm.latency_summary()
        table.add_row(name, *(f"{arm.metrics[m]:.4f}" for m in MEASURES), f"{lat['p50']:.0f}", f"{lat['p95']:.0f}")
    out.print(table)
    json_path, png_path = write_report(result, out_dir)
    out.print(f"wrote {json_path} and {png_path}")


@cli.command(context_settings=CONTEXT)
@settings_options
@friendly_errors
def demo(**kwargs: Any) -> None:
    """The OpenSearch tutorial, end to end on this machine: local cluster, local model endpoint
    (SigV4-checked), the tutorial's four passages, setup, and the reranked search.

    \b
    Example:
        osrerank demo --model ../shared/models/minilm-l6-random-head
    """
    from .demo import TUTORIAL_QUERY, run_demo

    settings = resolve_settings(kwargs)
    result, hits = run_demo(settings, progress)
    print_setup(result)
    out.print(f"\nquery: {TUTORIAL_QUERY}")
    print_hits(hits, settings.document_fields, width=200)


# ---------------------------------------------------------------- index / connector / pipeline
@cli.group(context_settings=CONTEXT)
def index() -> None:
    """Create indices the kit owns and load documents into them."""


@index.command("load", context_settings=CONTEXT)
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--recreate", is_flag=True, help="Delete and recreate the index first.")
@click.option(
    "--combine",
    help="Also index these fields joined with '. ' as rerank_text (then rerank on --document-fields rerank_text).",
)
@settings_options
@friendly_errors
def index_load(file: Path, recreate: bool, combine: str | None, **kwargs: Any) -> None:
    """Bulk-load a JSONL file (one document per line; BEIR corpus.jsonl works: _id, title, text).

    The rerank processor joins several document_fields with no separator ("Title"+"Body" ->
    "TitleBody"); --combine title,text builds one rerank_text field with a separator instead.

    \b
    Example:
        osrerank index load corpus.jsonl --index scifact --combine title,text --document-fields rerank_text
    """
    from rich.progress import Progress

    from .index import RERANK_FIELD, combine_fields, create_index, load_documents, read_jsonl
    from .reranker import Reranker

    settings = resolve_settings(kwargs)
    parts = [f.strip() for f in combine.split(",") if f.strip()] if combine else []
    cluster = Reranker(settings, progress).cluster(start=True)
    fields = [*settings.document_fields, *parts, *([RERANK_FIELD] if parts else [])]
    create_index(cluster, settings.index, list(dict.fromkeys(fields)), recreate=recreate)
    total = sum(1 for line in file.open(encoding="utf-8") if line.strip())
    docs = (combine_fields(d, parts) if parts else d for d in read_jsonl(file))
    with Progress(console=console) as bar:
        task = bar.add_task(f"indexing into {settings.index}", total=total)
        n = load_documents(cluster, settings.index, docs, on_progress=lambda k: bar.advance(task, k))
    out.print(f"indexed {n} documents into {settings.index}")


@cli.group(context_settings=CONTEXT)
def connector() -> None:
    """Render or create the ml-commons connector from a template."""


def _connector_body(kwargs: dict[str, Any]) -> tuple[Settings, dict[str, Any]]:
    from .connector import render_connector
    from .reranker import _env_credentials

    url = kwargs.get("endpoint_url")
    if not url:
        raise click.UsageError("--endpoint-url is required (the model endpoint the connector calls)")
    settings = resolve_settings(kwargs)
    return settings, render_connector(settings, url, _env_credentials(settings))


@connector.command("render", context_settings=CONTEXT)
@click.option("--show-secrets", is_flag=True, help="Print credentials instead of ***.")
@settings_options
@friendly_errors
def connector_render(show_secrets: bool, **kwargs: Any) -> None:
    """Print the connector JSON (credentials masked unless --show-secrets).

    \b
    Example:
        osrerank connector render --template tei-rerank --endpoint-url http://127.0.0.1:8080/rerank
    """
    import json

    _, body = _connector_body(kwargs)
    if not show_secrets and "credential" in body:
        body["credential"] = {k: "***" for k in body["credential"]}
    click.echo(json.dumps(body, indent=2, ensure_ascii=False))


@connector.command("create", context_settings=CONTEXT)
@settings_options
@friendly_errors
def connector_create(**kwargs: Any) -> None:
    """Create (or reuse) the connector on the cluster and print its id.

    \b
    Example:
        osrerank connector create --endpoint-url https://runtime.sagemaker.us-east-1.amazonaws.com/endpoints/x/invocations
    """
    from .connector import ensure_connector
    from .reranker import Reranker

    settings, body = _connector_body(kwargs)
    found = ensure_connector(Reranker(settings).cluster(), body)
    out.print(f"connector {found.id} ({found.action})")


@cli.group(context_settings=CONTEXT)
def pipeline() -> None:
    """Create the rerank search pipeline."""


@pipeline.command("create", context_settings=CONTEXT)
@click.option("--model-id", required=True, help="The deployed ml-commons model to rerank with.")
@click.option("--set-default", is_flag=True, help="Also make it the index's default search pipeline.")
@settings_options
@friendly_errors
def pipeline_create(model_id: str, set_default: bool, **kwargs: Any) -> None:
    """Create (or update) the rerank pipeline for MODEL_ID.

    \b
    Example:
        osrerank pipeline create --model-id abc123 --document-fields title,body --set-default
    """
    from .pipeline import ensure_pipeline, render_pipeline, set_default_pipeline
    from .reranker import Reranker

    settings = resolve_settings(kwargs)
    cluster = Reranker(settings).cluster()
    found = ensure_pipeline(cluster, settings.pipeline, render_pipeline(settings, model_id))
    if set_default:
        set_default_pipeline(cluster, settings.index, settings.pipeline)
    out.print(f"pipeline {found.id} ({found.action})" + (f", default for {settings.index}" if set_default else ""))


def main() -> None:
    cli(prog_name="osrerank")


if __name__ == "__main__":
    main()
