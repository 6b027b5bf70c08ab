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
