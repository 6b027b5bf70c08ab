"""The ``osrerank`` command line: a thin shell over the library.

Each command resolves :class:`~osrerank.config.Settings` from its flags, calls one library function,
and prints; :class:`~osrerank.errors.OsRerankError` becomes a one-line message with exit code 1.
Commands live by noun: cluster.py, serve.py, lifecycle.py (deploy, setup, teardown, demo), query.py
(predict, search), compare.py, evaluate.py, data.py (index, connector, pipeline),
export.py (a text pipeline file).
"""

from __future__ import annotations

import click

from . import cluster, compare, data, evaluate, export, lifecycle, query, serve, training
from .common import CONTEXT

__all__ = ["cli", "main"]


@click.group(context_settings=CONTEXT)
@click.version_option(package_name="osrerank")
def cli() -> None:
    """Cross-encoder reranking for OpenSearch: deploy a model, wire it into a rerank
    search pipeline, search, and tear it all down again.

    \b
    Example:
        osrerank demo --model ./models/ms-marco-MiniLM-L-6-v2
    """


for module in (cluster, serve, lifecycle, query, compare, evaluate, training, data, export):
    for command in module.COMMANDS:
        cli.add_command(command)


def main() -> None:
    cli(prog_name="osrerank")
