"""Amazon OpenSearch Service auth: the opensearch-py client signs with SigV4 (service ``es``), checked by
a local HTTP server that recomputes the signature (the kit's SigV4Verifier, for service ``es``: the stand-in's own
middleware picks the services of its routes, sagemaker and bedrock). Plus the connector side for SageMaker."""

from __future__ import annotations

import json

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from osrerank.connector import ConnectorOptions, render_connector
from osrerank.errors import OpenSearchError
from osrerank.opensearch import ClusterOptions, connect
from osrerank.server.sigv4 import SignatureError, SigV4Verifier
from osrerank.types import Credentials

from ..conftest import ServerThread

KEY, SECRET, REGION = "AKIAOPENSEARCHTEST", "opensearch-test-secret", "eu-west-1"
TEMPLATE = "sagemaker-hf-text-classification"


VERIFIER = SigV4Verifier(KEY, SECRET, REGION, "es")


async def fake_opensearch(request: Request) -> JSONResponse:
    """Answers only requests signed for Amazon OpenSearch Service in REGION with KEY/SECRET (403 otherwise)."""
    body = await request.body()
    try:
        VERIFIER.verify(request.method, str(request.url), request.headers.items(), body)
    except SignatureError as exc:
        return JSONResponse({"error": str(exc)}, status_code=403)
    return JSONResponse({"path": request.url.path, "body": json.loads(body) if body else None})


@pytest.fixture(scope="module")
def signed_cluster():
    app = Starlette(routes=[Route("/{path:path}", fake_opensearch, methods=["GET", "POST", "PUT"])])
    with ServerThread(app) as s:
        yield s


def test_opensearch_py_signs_requests_for_amazon_opensearch_service(signed_cluster, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    cluster = connect(ClusterOptions(url=signed_cluster.url, aws_region=REGION))
    reply = cluster.call("POST", "/my-index/_search", {"query": {"match": {"t": 'ünïcode "quoted"'}}})
    assert reply["body"] == {"query": {"match": {"t": 'ünïcode "quoted"'}}}
    assert cluster.call("GET", "/_cat/plugins", params={"format": "json"})["path"] == "/_cat/plugins"


def test_wrong_secret_is_rejected_by_the_verifier(signed_cluster, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    cluster = connect(ClusterOptions(url=signed_cluster.url, aws_region=REGION))
    with pytest.raises(OpenSearchError) as failure:
        cluster.call("GET", "/")
    assert failure.value.status == 403


def test_sagemaker_connector_uses_runtime_url_and_service_sagemaker():
    url = "https://runtime.sagemaker.us-west-2.amazonaws.com/endpoints/kit-cross-encoder/invocations"
    options, names = ConnectorOptions(region="us-west-2"), {"name": "kit-connector", "description": "d"}
    body = render_connector(
        options, TEMPLATE, url, Credentials(access_key="AKIA", secret_key="s", session_token="t"), **names
    )
    assert body["protocol"] == "aws_sigv4"
    assert body["parameters"]["service_name"] == "sagemaker" and body["parameters"]["region"] == "us-west-2"
    assert body["actions"][0]["url"] == url
    role = render_connector(options, TEMPLATE, url, Credentials(role_arn="arn:aws:iam::1:role/c"), **names)
    assert role["credential"] == {"roleArn": "arn:aws:iam::1:role/c"}
