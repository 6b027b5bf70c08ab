"""Launcher argument handling and error messages (no cluster needed)."""

from __future__ import annotations

import pytest

from osrerank.cluster import LocalCluster, find_java_home
from osrerank.errors import ConfigError, ToolMissingError


def test_version_must_be_x_y_z():
    with pytest.raises(ConfigError, match=r"not of the form X\.Y\.Z"):
        LocalCluster("latest")


def test_version_from_env(monkeypatch, tmp_path):
    monkeypatch.setenv("OSRERANK_OPENSEARCH_VERSION", "2.19.6")
    monkeypatch.setenv("OSRERANK_CACHE", str(tmp_path))
    cluster = LocalCluster()
    assert cluster.version == "2.19.6" and cluster.java_range == (11, 21)
    assert cluster.home == tmp_path / "opensearch-2.19.6"
    assert LocalCluster("3.6.0").java_range == (21, None)


def test_no_suitable_java_names_what_was_found(monkeypatch):
    monkeypatch.setenv("OSRERANK_JAVA_HOME", "/nonexistent")
    with pytest.raises(ToolMissingError, match=r"Java 99 or newer.*OSRERANK_JAVA_HOME"):
        find_java_home(99)


def test_missing_mvn_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("OSRERANK_CACHE", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolMissingError, match="mvn"):
        LocalCluster("3.6.0").fetch()


def test_status_without_a_running_node(monkeypatch, tmp_path):
    monkeypatch.setenv("OSRERANK_CACHE", str(tmp_path))
    with pytest.raises(Exception, match="osrerank cluster up"):
        LocalCluster("3.6.0").status()


def test_modules_missing_from_the_2x_server_zip_are_detected(tmp_path):
    (tmp_path / "modules" / "transport-netty4").mkdir(parents=True)
    assert LocalCluster("2.19.6")._missing_modules(tmp_path) == ["lang-painless", "reindex"]
    (tmp_path / "modules" / "lang-painless").mkdir()
    (tmp_path / "modules" / "reindex").mkdir()
    assert LocalCluster("2.19.6")._missing_modules(tmp_path) == []


def test_cluster_kind_comes_from_the_environment(monkeypatch):
    from osrerank.containers import cluster_kind
    from osrerank.errors import ClusterError

    monkeypatch.delenv("OSRERANK_CLUSTER", raising=False)
    assert cluster_kind() == "local"
    monkeypatch.setenv("OSRERANK_CLUSTER", "testcontainers")
    assert cluster_kind() == "testcontainers"
    monkeypatch.setenv("OSRERANK_CLUSTER", "kubernetes")
    with pytest.raises(ClusterError, match="OSRERANK_CLUSTER='kubernetes'"):
        cluster_kind()


def test_container_cluster_without_a_docker_engine_says_so(monkeypatch):
    """This machine has a Docker client but no engine, like many CI runners."""
    from osrerank.containers import ContainerCluster
    from osrerank.errors import ClusterError

    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(ClusterError, match="Is a Docker engine running"):
        ContainerCluster().up()


def test_endpoint_url_for_a_cluster_in_a_container(monkeypatch):
    from osrerank.endpoint import EndpointInfo

    info = EndpointInfo(1, "http://127.0.0.1:8081", "m", "cross-encoder", "sigmoid", True, "us-east-1")
    monkeypatch.delenv("OSRERANK_ENDPOINT_HOST", raising=False)
    assert info.invocation_url("x") == "http://127.0.0.1:8081/endpoints/x/invocations"
    monkeypatch.setenv("OSRERANK_ENDPOINT_HOST", "host.docker.internal")
    assert info.invocation_url("x") == "http://host.docker.internal:8081/endpoints/x/invocations"
