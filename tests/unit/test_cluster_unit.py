"""Launcher argument handling and error messages (no cluster needed)."""

from __future__ import annotations

import pytest

from osrerank.errors import ClusterError, ConfigError, ToolMissingError
from osrerank.launcher import LocalOpenSearch
from osrerank.launcher.containers import ContainerOpenSearch, cluster_kind
from osrerank.launcher.java import find_java_home, java_range
from osrerank.launcher.modules import missing_modules


def test_version_must_be_x_y_z():
    with pytest.raises(ConfigError, match=r"not of the form X\.Y\.Z"):
        LocalOpenSearch("latest")


def test_port_must_be_a_port():
    with pytest.raises(ConfigError, match="port 70000 is out of range"):
        LocalOpenSearch("3.6.0", port=70000)


def test_version_from_env(monkeypatch, tmp_path):
    """The launcher takes the version it is given; the settings read it from OSRERANK_CLUSTER__VERSION (and the
    variable of earlier versions is refused, naming the new one)."""
    from osrerank.settings import Settings

    monkeypatch.setenv("OSRERANK_CACHE", str(tmp_path))
    options = Settings.resolve({}, env={"OSRERANK_CLUSTER__VERSION": "2.19.6", "OSRERANK_CLUSTER__NODES": "3"}).cluster
    assert (options.version, options.nodes) == ("2.19.6", 3)
    node = LocalOpenSearch(options.version)
    assert node.version == "2.19.6" and java_range(node.version) == (11, 21)
    with pytest.raises(ConfigError, match="did you mean OSRERANK_CLUSTER__VERSION"):
        Settings.resolve({}, env={"OSRERANK_OPENSEARCH_VERSION": "2.19.6"})
    assert node.distribution.home == tmp_path / "opensearch-2.19.6"
    assert java_range("3.6.0") == (21, None)


def test_no_suitable_java_names_what_was_found(monkeypatch):
    monkeypatch.setenv("OSRERANK_JAVA_HOME", "/nonexistent")
    with pytest.raises(ToolMissingError, match=r"Java 99 or newer.*OSRERANK_JAVA_HOME"):
        find_java_home(99)


def test_missing_mvn_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("OSRERANK_CACHE", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolMissingError, match="mvn"):
        LocalOpenSearch("3.6.0").distribution.install()


def test_status_without_a_running_node(monkeypatch, tmp_path):
    monkeypatch.setenv("OSRERANK_CACHE", str(tmp_path))
    with pytest.raises(ClusterError, match="osrerank cluster up"):
        LocalOpenSearch("3.6.0").status()


def test_modules_missing_from_the_2x_server_zip_are_detected(tmp_path):
    (tmp_path / "modules" / "transport-netty4").mkdir(parents=True)
    assert missing_modules(tmp_path) == ["lang-painless", "reindex", "search-pipeline-common"]
    for name in ("lang-painless", "reindex", "search-pipeline-common"):
        (tmp_path / "modules" / name).mkdir()
    assert missing_modules(tmp_path) == []


def test_cluster_kind_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("OSRERANK_CLUSTER", raising=False)
    assert cluster_kind() == "local"
    monkeypatch.setenv("OSRERANK_CLUSTER", "testcontainers")
    assert cluster_kind() == "testcontainers"
    monkeypatch.setenv("OSRERANK_CLUSTER", "kubernetes")
    with pytest.raises(ClusterError, match="OSRERANK_CLUSTER='kubernetes'"):
        cluster_kind()


def test_container_cluster_without_a_docker_engine_says_so(monkeypatch):
    """This machine has a Docker client but no engine, like many CI runners."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(ClusterError, match="Is a Docker engine running"):
        ContainerOpenSearch().up()


def test_stand_in_url_for_a_cluster_in_a_container(monkeypatch):
    from osrerank.targets.standin import StandInInfo

    info = StandInInfo(1, "http://127.0.0.1:8081", {})
    monkeypatch.delenv("OSRERANK_ENDPOINT_HOST", raising=False)
    assert info.url_for("sagemaker-hf-text-classification", "x") == "http://127.0.0.1:8081/endpoints/x/invocations"
    monkeypatch.setenv("OSRERANK_ENDPOINT_HOST", "host.docker.internal")
    assert info.url_for("tei-rerank", "x") == "http://host.docker.internal:8081/rerank"
