"""Templates ship as package data and render; compose file parses; every CLI command has --help."""

from __future__ import annotations

import json
import os

import pytest
import yaml
from click.testing import CliRunner

from osrerank.cli import cli
from osrerank.connector import ConnectorOptions, render_connector
from osrerank.errors import ConfigError, TemplateError
from osrerank.ingest import IndexOptions
from osrerank.pipeline import PipelineOptions, chunking, render_pipeline
from osrerank.settings import Settings
from osrerank.targets import Endpoint, get_target
from osrerank.templates import connector_template, list_templates, render, validate_connector
from osrerank.types import Credentials, Found

from ..conftest import REPO

URLS = {
    "bedrock-rerank": "https://bedrock-agent-runtime.us-east-1.amazonaws.com/rerank",
    "cohere-rerank": "https://api.cohere.com/v2/rerank",
    "sagemaker-hf-text-classification": "https://runtime.sagemaker.us-east-1.amazonaws.com/endpoints/x/invocations",
    "tei-rerank": "http://127.0.0.1:8080/rerank",
    "torchserve-pairs": "http://127.0.0.1:8080/predictions/m",
}
EMBEDDING_URLS = {"tei-embed": "http://127.0.0.1:8080/embed"}


SAGEMAKER = "sagemaker-hf-text-classification"
NAMES = {"name": "kit-connector", "description": "a test connector"}


def connector(template, url, credentials, options=None, **kwargs):
    return render_connector(options or ConnectorOptions(), template, url, credentials, **NAMES, **kwargs)


def pipeline(model_id, *, fields=("passage_text",), **options):
    return render_pipeline(PipelineOptions(**options), model_id, fields, "a test pipeline")


def test_templates_are_package_data():
    assert list_templates("connectors", "rerank") == sorted(URLS)
    assert list_templates("connectors", "embedding") == sorted(EMBEDDING_URLS)
    assert list_templates("connectors") == sorted({**URLS, **EMBEDDING_URLS})
    assert list_templates("pipelines") == ["rerank"]


@pytest.mark.parametrize("template", sorted(URLS))
@pytest.mark.parametrize("raw", [False, True])
def test_every_connector_template_renders_valid_json(template, raw):
    if raw and not connector_template(template).raw_scores:
        with pytest.raises(ConfigError, match="--activation none is not available"):
            connector(template, URLS[template], Credentials("AK", "SK"), raw_scores=True)
        return
    body = connector(template, URLS[template], Credentials(access_key="AK", secret_key="SK"), raw_scores=raw)
    assert validate_connector(body) == []
    assert (body["name"], body["description"]) == ("kit-connector", "a test connector")
    action = body["actions"][0]
    assert action["url"] == URLS[template]
    pre, post = action["pre_process_function"], action["post_process_function"]
    # the rerank processor's texts arrive JSON-escaped: taken as they are, never escaped twice
    assert "q = params.query_text;" in pre and "docs.addAll(params.text_docs);" in pre
    # each script defines escape() itself, so ml-commons skips its quadratic scan for calls to it
    assert pre.startswith("String escape(def raw) {") and post.startswith("String escape(def raw) {")
    assert '"name":"similarity","data_type":"FLOAT32","shape":[1]' in action["post_process_function"]


def test_sagemaker_connector_uses_sigv4_and_the_runtime_url():
    body = connector(
        SAGEMAKER,
        URLS[SAGEMAKER],
        Credentials(access_key="AK", secret_key="SK", session_token="TOK"),
        ConnectorOptions(region="eu-west-1"),
    )
    assert body["protocol"] == "aws_sigv4"
    assert body["parameters"]["service_name"] == "sagemaker" and body["parameters"]["region"] == "eu-west-1"
    assert body["credential"] == {"access_key": "AK", "secret_key": "SK", "session_token": "TOK"}
    assert '"truncation": true' in body["actions"][0]["request_body"]


def test_missing_variables_are_all_named_at_once():
    with pytest.raises(TemplateError, match="endpoint_url, max_retries, name"):
        render("connectors", "torchserve-pairs", {"description": "d", "bearer_token": None, "timeout_s": 1})


def test_unknown_template_lists_the_known_ones():
    with pytest.raises(TemplateError, match=r"available: .*sagemaker-hf-text-classification"):
        render("connectors", "nope", {})


@pytest.mark.parametrize("name", ["../pipelines/rerank", "../../../../tmp/x", "_painless", "tei-rerank.json.j2"])
def test_template_names_cannot_leave_the_folder_or_name_a_macro_file(name):
    with pytest.raises(TemplateError, match="unknown connector template"):
        connector_template(name)


def test_every_connector_template_describes_itself():
    for name in list_templates("connectors"):
        info = connector_template(name)
        assert info.auth in ("aws_sigv4", "bearer") and info.api and info.standin_path


def test_sagemaker_connector_without_credentials_is_refused():
    with pytest.raises(ConfigError, match="AWS credentials"):
        connector(SAGEMAKER, URLS[SAGEMAKER], Credentials())


def test_pipeline_renders_nested_fields():
    fields = Settings(index={"document_fields": "title, body.text"}).index.document_fields
    assert fields == IndexOptions(document_fields=" title,, body.text ").document_fields == ("title", "body.text")
    body = pipeline("m1", fields=fields)
    rerank = body["response_processors"][0]["rerank"]
    assert rerank == {
        "tag": "osrerank-rerank",
        "ml_opensearch": {"model_id": "m1"},
        "context": {"document_fields": ["title", "body.text"]},
    }


def test_pipeline_window_and_failure_mode():
    plain = pipeline("m")
    script = plain["request_processors"][0]["script"]
    assert script["params"] == {"window": 0}
    assert [list(p) for p in plain["response_processors"]] == [["rerank"], ["truncate_hits"]]
    assert "ignore_failure" not in plain["response_processors"][0]["rerank"]
    tuned = pipeline("m", window=50, on_model_failure="first-stage")
    assert tuned["request_processors"][0]["script"]["params"] == {"window": 50}
    assert tuned["response_processors"][0]["rerank"]["ignore_failure"] is True


def test_a_batch_limit_makes_one_model_call_per_hit():
    """--max-batch: ml_inference (one_to_one) scores each hit into _source.osrerank_score, rerank by_field
    orders by it; the window script stays, and the document fields reach the connector as model_config."""
    body = pipeline("m7", window=100, max_batch=32, fields=("title", "body.text"))
    assert [list(p) for p in body["response_processors"]] == [["ml_inference"], ["rerank"], ["truncate_hits"]]
    per_hit = body["response_processors"][0]["ml_inference"]
    assert per_hit["model_id"] == "m7" and per_hit["one_to_one"] is True and per_hit["tag"] == "osrerank-rerank"
    assert per_hit["model_config"] == {"osrerank_fields": ["title", "body.text"]}
    assert per_hit["input_map"] == [{"osrerank_doc": "$", "osrerank_query": "$._request.ext.query_context"}]
    assert per_hit["output_map"] == [{"osrerank_score": "$.inference_results[0].output[0].data[0]"}]
    order = body["response_processors"][1]["rerank"]
    assert order["by_field"] == {"target_field": "osrerank_score", "remove_target_field": True}
    # a failed call leaves its hit unscored and by_field fails the search: ml_inference failing itself can hang it
    assert per_hit["ignore_failure"] is True and "ignore_failure" not in order
    assert body["request_processors"][0]["script"]["params"] == {"window": 100}


def test_what_a_batch_limit_cannot_go_with_is_refused_at_setup():
    settings = Settings()
    settings.updated(pipeline={"window": 100, "max_batch": 32})  # one document per call: any window fits
    with pytest.raises(ConfigError, match="4 passages of one document per model call, more than --max-batch 2"):
        settings.updated(pipeline={"window": 10, "max_batch": 2, "long_documents": "chunk"})
    with pytest.raises(ConfigError, match="first-stage cannot go with --max-batch"):
        settings.updated(pipeline={"max_batch": 32, "on_model_failure": "first-stage"})
    with pytest.raises(ConfigError, match="first-stage cannot go with --max-batch"):  # whatever sets each of them
        Settings.resolve({"pipeline.max_batch": 32}, env={"OSRERANK_PIPELINE__ON_MODEL_FAILURE": "first-stage"})


def test_pipeline_validation_names_what_is_wrong():
    from osrerank.templates import validate_pipeline

    good = pipeline("m", max_batch=8)
    assert validate_pipeline(good) == []
    broken = json.loads(json.dumps(good))
    broken["response_processors"][0]["ml_inference"]["one_to_one"] = False
    broken["response_processors"][1]["rerank"]["by_field"]["target_field"] = "elsewhere"
    assert validate_pipeline(broken) == [
        "rerank.by_field.target_field 'elsewhere' is written by no ml_inference processor",
        "ml_inference must be one_to_one (one model call per hit)",
    ]


@pytest.mark.parametrize("template", sorted(URLS))
def test_chunked_templates_render_the_passage_split(template):
    body = connector(
        template, URLS[template], Credentials(access_key="A", secret_key="S"), chunk=chunking("chunk:150:75:3")
    )
    pre, post = body["actions"][0]["pre_process_function"], body["actions"][0]["post_process_function"]
    assert "starts.size() <= 300" in pre and "s += 75" in pre and ">= 3" in pre and "s + 150" in pre
    assert "doc_count + " in pre and "int per = scores.length / want" in post


@pytest.mark.parametrize("spec", ["chunk:10:20", "chunk:x", "split", "truncate:5", "chunk:1:1:1:1"])
def test_bad_long_document_settings_are_refused(spec):
    with pytest.raises(ConfigError, match=r"pipeline\.long_documents = .*truncate or chunk.*--long-documents"):
        Settings.resolve({"pipeline.long_documents": spec}, env={})


def test_what_setup_sends_follows_the_settings():
    """The target renders the connector from the settings: activation none asks for raw scores (which the
    SageMaker API cannot give), chunked long documents cut passages in the pre-process."""
    endpoint = Endpoint(URLS["tei-rerank"], Credentials(bearer_token="t"), Found(URLS["tei-rerank"], "created"))
    settings = Settings(name="kit", target="standin", connector={"template": "tei-rerank"})
    raw = get_target(settings.updated(model={"activation": "none"})).connector_body(endpoint)
    assert raw["name"] == "kit-connector" and '"raw_scores":true' in raw["actions"][0]["pre_process_function"]
    chunked = get_target(settings.updated(pipeline={"long_documents": "chunk:150:75:3"})).connector_body(endpoint)
    assert "s += 75" in chunked["actions"][0]["pre_process_function"]
    cohere = settings.updated(connector={"template": "cohere-rerank"}, model={"activation": "none"})
    with pytest.raises(ConfigError, match="--activation none is not available"):
        get_target(cohere).connector_body(endpoint)


def test_docker_compose_matches_the_code():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert compose["services"]["opensearch"]["image"].startswith("opensearchproject/opensearch:2.19")
    assert compose["services"]["model"]["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (REPO / "deploy" / "Dockerfile").exists()
    assert "8080:8080" in compose["services"]["model"]["ports"]


def test_the_images_command_is_a_serve_the_cli_accepts(monkeypatch):
    """deploy/Dockerfile's CMD, run through the CLI with the server replaced: it listens on 0.0.0.0:8080."""
    dockerfile = (REPO / "deploy" / "Dockerfile").read_text().splitlines()
    command = json.loads(next(line for line in dockerfile if line.startswith("CMD "))[4:])
    assert command[:2] == ["osrerank", "serve"]
    for name in [n for n in os.environ if n.startswith("OSRERANK_")]:
        monkeypatch.delenv(name)
    served = []
    monkeypatch.setattr("osrerank.server.run.serve", served.append)
    result = CliRunner().invoke(cli, command[1:])
    assert result.exit_code == 0, result.output
    (spec,) = served
    assert (spec.server.host, spec.port, spec.model.path) == ("0.0.0.0", 8080, "/model")


def all_commands(group=cli, path=()):
    """Every command path of the CLI, groups included (found by walking it, so none is forgotten)."""
    yield list(path)
    for name, command in getattr(group, "commands", {}).items():
        yield from all_commands(command, (*path, name))


COMMANDS = list(all_commands())


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "root")
def test_every_command_has_help_with_an_example(command):
    result = CliRunner().invoke(cli, [*command, "--help"])
    assert result.exit_code == 0
    assert "Usage:" in result.output and ("Example" in result.output or command == [])


def test_connector_render_masks_secrets(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAVISIBLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "super-secret-value")
    result = CliRunner().invoke(
        cli, ["connector", "render", "--endpoint-url", URLS["sagemaker-hf-text-classification"]]
    )
    assert result.exit_code == 0, result.output
    assert "super-secret-value" not in result.output
    assert json.loads(result.output)["credential"]["secret_key"] == "***"
