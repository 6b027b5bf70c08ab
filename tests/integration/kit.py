"""The one set-up of the integration suite: the settings a test runs the kit with."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from osrerank.settings import Settings


def settings_for(url: str, model: str | Path, name: str, /, **changes: Any) -> Settings:
    """Settings for one test: the cluster at ``url``, ``model``, every object named from ``name`` (pipeline
    ``NAME-rerank``, index ``NAME-docs``), then ``changes`` as :meth:`Settings.updated` takes them: root fields,
    or sections as mappings or shorthand strings (``target="opensearch", pipeline={"window": 50}, index="x"``)."""
    settings = Settings(name=name, cluster=url, model=str(model), pipeline=f"{name}-rerank", index=f"{name}-docs")
    return settings.updated(**changes) if changes else settings


def one_node_only(why: str) -> pytest.MarkDecorator:
    """Skip a module on the three-node line (``OSRERANK_CLUSTER__NODES=3``) at collection, before its module fixtures
    build anything: for what depends on no cluster shape and is run on the one-node lines (CI's time budget)."""
    return pytest.mark.skipif((Settings.resolve({}).cluster.nodes or 1) > 1, reason=why)


def one_line_only(why: str) -> pytest.MarkDecorator:
    """Run only on the 3.x line, one node (skip the 2.x line and the three-node line at collection): for what
    depends on neither the OpenSearch line nor the cluster's shape (CI's time budget)."""
    cluster = Settings.resolve({}).cluster
    older = cluster.version is not None and not str(cluster.version).startswith("3.")
    return pytest.mark.skipif((cluster.nodes or 1) > 1 or older, reason=why)
