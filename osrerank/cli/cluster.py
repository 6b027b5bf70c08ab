"""``osrerank cluster up|down|status``: the local OpenSearch."""

from __future__ import annotations

import click

from ..launcher import LocalOpenSearch
from .common import CONTEXT, friendly_errors, out, progress

version_option = click.option(
    "--version",
    "version",
    envvar="OSRERANK_OPENSEARCH_VERSION",
    default=None,
    help="OpenSearch version [default: 3.6.0; also 2.19.6]. Env: OSRERANK_OPENSEARCH_VERSION.",
)


@click.group(context_settings=CONTEXT)
def cluster() -> None:
    """A local OpenSearch with ml-commons + neural-search (no Docker).

    \b
    Example:
        osrerank cluster up && osrerank cluster status
    """


@cluster.command("up", context_settings=CONTEXT)
@version_option
@click.option("--port", type=int, default=None, help="HTTP port of the first node [default: a free one].")
@click.option(
    "--nodes",
    type=click.Choice(["1", "3"]),
    envvar="OSRERANK_NODES",
    help="1, or 3: two data nodes and a dedicated ML node [default: 1, or what runs].",
)
@friendly_errors
def cluster_up(version: str | None, port: int | None, nodes: str | None) -> None:
    """Fetch (first time only) and start the cluster; reuse it if it already runs.

    \b
    Example:
        osrerank cluster up --version 2.19.6
        osrerank cluster up --nodes 3
    """
    info = LocalOpenSearch(version, nodes=int(nodes) if nodes else None, port=port, progress=progress).up()
    out.print(f"OpenSearch {info.version} [green]{info.health}[/green] at {info.url}: {', '.join(info.nodes)}")


@cluster.command("down", context_settings=CONTEXT)
@version_option
@friendly_errors
def cluster_down(version: str | None) -> None:
    """Stop the node and leave no process behind.

    \b
    Example:
        osrerank cluster down
    """
    stopped = LocalOpenSearch(version, progress=progress).down()
    out.print("stopped" if stopped else "no local OpenSearch was running")


@cluster.command("status", context_settings=CONTEXT)
@version_option
@friendly_errors
def cluster_status(version: str | None) -> None:
    """Print version, URL, health, plugins and log folder of the running node.

    \b
    Example:
        osrerank cluster status
    """
    cluster = LocalOpenSearch(version)
    info = cluster.status()
    out.print(f"version: {info.version}\nurl:     {info.url}\nhealth:  {info.health}\nnodes:   {', '.join(info.nodes)}")
    out.print(f"plugins: {', '.join(info.plugins)}\nlogs:    {', '.join(map(str, cluster.log_dirs))}")


COMMANDS = [cluster]
