"""OpenSearch in Docker through testcontainers, for machines that have a Docker engine.

Selected with ``OSRERANK_CLUSTER=testcontainers`` (the test suite's session fixture reads it); the
default stays the Maven-fetched local node of :mod:`osrerank.launcher.node`, which needs no Docker. The
image (``OSRERANK_OPENSEARCH_IMAGE``, default ``opensearchproject/opensearch:2.19.4``) already carries
ml-commons, neural-search, k-NN and job-scheduler.

The node runs inside a container, so it reaches a stand-in on the host through
``host.docker.internal`` (mapped to the host gateway here). Set ``OSRERANK_ENDPOINT_HOST`` to that name:
the stand-in then listens on all interfaces and connectors get that host in their URL.
"""

from __future__ import annotations

import time

import requests

from ..config.environment import get
from ..errors import ClusterError, ToolMissingError
from .node import ClusterInfo, ml_commons_settings

__all__ = ["DEFAULT_IMAGE", "ContainerOpenSearch", "cluster_kind"]

DEFAULT_IMAGE = "opensearchproject/opensearch:2.19.4"
BOOT_TIMEOUT_S = 180.0


def cluster_kind() -> str:
    """``local`` (default: Maven-fetched node, no Docker) or ``testcontainers``, from OSRERANK_CLUSTER."""
    kind = get("OSRERANK_CLUSTER") or "local"
    if kind not in ("local", "testcontainers"):
        raise ClusterError(f"OSRERANK_CLUSTER={kind!r} is not supported: use 'local' or 'testcontainers'")
    return kind


class ContainerOpenSearch:
    """One throw-away OpenSearch container; ``up`` starts it, ``down`` removes it."""

    def __init__(self, image: str | None = None) -> None:
        self.image = image or get("OSRERANK_OPENSEARCH_IMAGE") or DEFAULT_IMAGE
        self.container = None

    def up(self) -> ClusterInfo:
        try:
            from testcontainers.community.opensearch import OpenSearchContainer
        except ImportError:
            raise ToolMissingError(
                "OSRERANK_CLUSTER=testcontainers needs: pip install 'osrerank[containers]'"
            ) from None
        try:
            container = OpenSearchContainer(self.image, mem_limit="3g")
            container.with_env("OPENSEARCH_JAVA_OPTS", "-Xms1g -Xmx1g")
            container.with_kwargs(extra_hosts={"host.docker.internal": "host-gateway"})
            container.start()
        except Exception as exc:  # docker.errors.DockerException and friends: no engine, no image, ...
            raise ClusterError(
                f"could not start the {self.image} container ({type(exc).__name__}: {str(exc)[:300]}). "
                "Is a Docker engine running? Without one, unset OSRERANK_CLUSTER to use the local node."
            ) from exc
        self.container = container
        url = f"http://{container.get_container_host_ip()}:{container.get_exposed_port(9200)}"
        self._wait_green(url)
        try:
            requests.put(
                f"{url}/_cluster/settings", json={"persistent": ml_commons_settings()}, timeout=30
            ).raise_for_status()
            plugins = requests.get(f"{url}/_cat/plugins", params={"format": "json"}, timeout=30).json()
            version = requests.get(url, timeout=30).json()["version"]["number"]
        except (requests.RequestException, ValueError) as exc:
            raise ClusterError(f"the OpenSearch container at {url} did not answer properly: {exc}") from exc
        return ClusterInfo(url, version, 0, sorted({p["component"] for p in plugins}), "green")

    def down(self) -> bool:
        if self.container is None:
            return False
        self.container.stop()
        self.container = None
        return True

    @staticmethod
    def _wait_green(url: str) -> None:
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                health = requests.get(f"{url}/_cluster/health", timeout=5).json()
                if health.get("status") in ("green", "yellow"):
                    return
            except (requests.RequestException, ValueError):
                pass
            time.sleep(2)
        raise ClusterError(f"the OpenSearch container at {url} was not healthy within {BOOT_TIMEOUT_S:.0f}s")
