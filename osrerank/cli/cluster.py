"""``osrerank cluster up|down|status``: the local OpenSearch."""

from __future__ import annotations

from typing import Any

import click

from ..launcher import LocalOpenSearch
from .common import CONTEXT, friendly_errors, out, progress, resolve_settings, settings_options


@click.group(context_settings=CONTEXT)
def cluster() -> None:
    """A local OpenSearch with ml-commons + neural-search (no Docker).

    \b
    Example:
        osrerank cluster up && osrerank cluster status
    """


@cluster.command("up", context_settings=CONTEXT)
@click.option("--port", type=int, default=None, help="HTTP port of the first node [default: a free one].")
@settings_options("cluster.version", "cluster.nodes")
@friendly_errors
def cluster_up(port: int | None, **kwargs: Any) -> None:
    """Fetch (first time only) and start the cluster; reuse it if it already runs.

    \b
    Example:
        osrerank cluster up --opensearch-version 2.19.6
        osrerank cluster up --nodes 3
    """
    options = resolve_settings(kwargs).cluster
    info = LocalOpenSearch(options.version, nodes=options.nodes, port=port, progress=progress).up()
    out.print(f"OpenSearch {info.version} [green]{info.health}[/green] at {info.url}: {', '.join(info.nodes)}")


@cluster.command("down", context_settings=CONTEXT)
@settings_options("cluster.version")
@friendly_errors
def cluster_down(**kwargs: Any) -> None:
    """Stop the node and leave no process behind.

    \b
    Example:
        osrerank cluster down
    """
    stopped = LocalOpenSearch(resolve_settings(kwargs).cluster.version, progress=progress).down()
    out.print("stopped" if stopped else "no local OpenSearch was running")


@cluster.command("status", context_settings=CONTEXT)
@click.option(
    "--url", "url_only", is_flag=True, help="Print only the URL (for scripts: URL=$(osrerank cluster status --url))."
)
@settings_options("cluster.version")
@friendly_errors
def cluster_status(url_only: bool, **kwargs: Any) -> None:
    """Print version, URL, health, plugins and log folder of the running node.

    \b
    Example:
        osrerank cluster status
        curl -s "$(osrerank cluster status --url)/_cat/plugins"
    """
    cluster = LocalOpenSearch(resolve_settings(kwargs).cluster.version)
    if url_only:
        url = cluster.running_url()
        if not url:
            raise click.ClickException("no local OpenSearch is running: start it with `osrerank cluster up`")
        click.echo(url)
        return
    info = cluster.status()
    out.print(f"version: {info.version}\nurl:     {info.url}\nhealth:  {info.health}\nnodes:   {', '.join(info.nodes)}")
    out.print(f"plugins: {', '.join(info.plugins)}\nlogs:    {', '.join(map(str, cluster.log_dirs))}")


COMMANDS = [cluster]
