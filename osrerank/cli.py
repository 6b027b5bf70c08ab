"""The ``osrerank`` command line: a thin shell over the library.

Each command resolves :class:`~osrerank.config.Settings`, calls one library function and turns
:class:`~osrerank.errors.OsRerankError` into a one-line message with exit code 1.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click
from rich.console import Console

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
            host=host,
            port=port,  # type: ignore[arg-type]
            auth=not no_auth,
            region=region,
            record=record,
            max_batch_pairs=max_batch,
            max_wait_ms=max_wait_ms,
        )
    )


def main() -> None:
    cli(prog_name="osrerank")


if __name__ == "__main__":
    main()
