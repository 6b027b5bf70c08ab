"""The real OpenSearch node the suite runs on: plugins, ml-commons settings, a rerank pipeline."""

from __future__ import annotations

import pytest

from osrerank.errors import OpenSearchError
from osrerank.launcher import ml_commons_settings

pytestmark = pytest.mark.integration


def test_plugins_are_installed(os_client):
    names = {p["component"] for p in os_client.call("GET", "/_cat/plugins", params={"format": "json"})}
    assert {"opensearch-ml", "opensearch-neural-search", "opensearch-knn", "opensearch-job-scheduler"} <= names


def test_ml_commons_settings_are_in_effect(os_client):
    persistent = os_client.call("GET", "/_cluster/settings", params={"flat_settings": "true"})["persistent"]
    nodes = len(os_client.call("GET", "/_cat/nodes", params={"format": "json"}))
    for key, value in ml_commons_settings(nodes).items():
        assert persistent[key] == (value if isinstance(value, list) else str(value).lower())


def test_rerank_pipeline_can_be_created_read_and_deleted(os_client):
    body = {
        "response_processors": [
            {"rerank": {"ml_opensearch": {"model_id": "some-model"}, "context": {"document_fields": ["passage_text"]}}}
        ]
    }
    os_client.call("PUT", "/_search/pipeline/osrerank-smoke", body)
    read = os_client.call("GET", "/_search/pipeline/osrerank-smoke")["osrerank-smoke"]
    assert read["response_processors"][0]["rerank"]["ml_opensearch"]["model_id"] == "some-model"
    os_client.call("DELETE", "/_search/pipeline/osrerank-smoke")
    with pytest.raises(OpenSearchError) as err:
        os_client.call("GET", "/_search/pipeline/osrerank-smoke")
    assert err.value.status == 404
