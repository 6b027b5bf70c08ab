"""Templates ship as package data and render; compose file parses; every CLI command has --help."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from osrerank.cli import cli
from osrerank.config import Settings
from osrerank.connector import render_connector
from osrerank.errors import ConfigError, TemplateError
from osrerank.pipeline import render_pipeline
from osrerank.templates import connector_template, list_templates, render, validate_connector
from osrerank.types import Credentials

from ..conftest import REPO

URLS = {
    "bedrock-rerank": "https://bedrock-agent-runtime.us-east-1.amazonaws.com/rerank",
    "cohere-rerank": "https://api.cohere.com/v2/rerank",
    "sagemaker-hf-text-classification": "https://runtime.sagemaker.us-east-1.amazonaws.com/endpoints/x/invocations",
    "tei-rerank": "http://127.0.0.1:8080/rerank",
    "torchserve-pairs": "http://127.0.0.1:8080/predictions/m",
}


SAGEMAKER = "sagemaker-hf-text-classification"


def test_templates_are_package_data():
    assert list_templates("connectors") == sorted(URLS)
    assert list_templates("pipelines") == ["rerank"]


@pytest.mark.parametrize("template", sorted(URLS))
@pytest.mark.parametrize("raw", [False, True])
def test_every_connector_template_renders_valid_json(template, raw):
    if raw and not connector_template(template).raw_scores:
        with pytest.raises(ConfigError, match="--activation none is not available"):
            render_connector(Settings(activation="none"), template, URLS[template], Credentials("AK", "SK"))
        return
    settings = Settings(template=template, activation="none" if raw else "sigmoid")
    body = render_connector(settings, template, URLS[template], Credentials(access_key="AK", secret_key="SK"))
    assert validate_connector(body) == []
    action = body["actions"][0]
    assert action["url"] == URLS[template]
    assert "escape(" not in action["pre_process_function"]
    assert '"name":"similarity","data_type":"FLOAT32","shape":[1]' in action["post_process_function"]


def test_sagemaker_connector_uses_sigv4_and_the_runtime_url():
    body = render_connector(
        Settings(region="eu-west-1"),
        SAGEMAKER,
        URLS[SAGEMAKER],
        Credentials(access_key="AK", secret_key="SK", session_token="TOK"),
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
        render_connector(Settings(), SAGEMAKER, URLS[SAGEMAKER], Credentials())


def test_pipeline_renders_nested_fields():
    body = render_pipeline(Settings(document_fields="title, body.text"), "m1")
    rerank = body["response_processors"][0]["rerank"]
    assert rerank == {
        "tag": "osrerank-rerank",
        "ml_opensearch": {"model_id": "m1"},
        "context": {"document_fields": ["title", "body.text"]},
    }


def test_pipeline_window_and_failure_mode():
    plain = render_pipeline(Settings(), "m")
    script = plain["request_processors"][0]["script"]
    assert script["params"] == {"window": 0}
    assert [list(p) for p in plain["response_processors"]] == [["rerank"], ["truncate_hits"]]
    assert "ignore_failure" not in plain["response_processors"][0]["rerank"]
    tuned = render_pipeline(Settings(window=50, on_model_failure="first-stage"), "m")
    assert tuned["request_processors"][0]["script"]["params"] == {"window": 50}
    assert tuned["response_processors"][0]["rerank"]["ignore_failure"] is True


def test_a_batch_limit_makes_one_model_call_per_hit():
    """--max-batch: ml_inference (one_to_one) scores each hit into _source.osrerank_score, rerank by_field
    orders by it; the window script stays, and the document fields reach the connector as model_config."""
    body = render_pipeline(Settings(window=100, max_batch=32, document_fields="title,body.text"), "m7")
    assert [list(p) for p in body["response_processors"]] == [["ml_inference"], ["rerank"], ["truncate_hits"]]
    per_hit = body["response_processors"][0]["ml_inference"]
    assert per_hit["model_id"] == "m7" and per_hit["one_to_one"] is True and per_hit["tag"] == "osrerank-rerank"
    assert per_hit["model_config"] == {"osrerank_fields": ["title", "body.text"]}
    assert per_hit["input_map"] == [{"osrerank_doc": "$", "osrerank_query": "$._request.ext.query_context"}]
    assert per_hit["output_map"] == [{"osrerank_score": "$.inference_results[0].output[0].data[0]"}]
    order = body["response_processors"][1]["rerank"]
    assert order["by_field"] == {"target_field": "osrerank_score", "remove_target_field": True}
    assert body["request_processors"][0]["script"]["params"] == {"window": 100}


def test_what_a_batch_limit_cannot_go_with_is_refused_at_setup():
    from osrerank.pipeline import check_pipeline

    check_pipeline(Settings(window=100, max_batch=32))  # one document per call: any window fits
    with pytest.raises(ConfigError, match="4 passages of one document per model call, more than --max-batch 2"):
        check_pipeline(Settings(window=10, max_batch=2, long_documents="chunk"))
    with pytest.raises(ConfigError, match="first-stage cannot go with --max-batch"):
        check_pipeline(Settings(max_batch=32, on_model_failure="first-stage"))


def test_pipeline_validation_names_what_is_wrong():
    from osrerank.templates import validate_pipeline

    good = render_pipeline(Settings(max_batch=8), "m")
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
    body = render_connector(
        Settings(long_documents="chunk:150:75:3"), template, URLS[template], Credentials(access_key="A", secret_key="S")
    )
    pre, post = body["actions"][0]["pre_process_function"], body["actions"][0]["post_process_function"]
    assert "starts.size() <= 300" in pre and "s += 75" in pre and ">= 3" in pre and "s + 150" in pre
    assert "doc_count + " in pre and "int per = scores.length / want" in post


@pytest.mark.parametrize("spec", ["chunk:10:20", "chunk:x", "split", "truncate:5", "chunk:1:1:1:1"])
def test_bad_long_document_settings_are_refused(spec):
    with pytest.raises(ConfigError, match="truncate or chunk"):
        Settings.resolve({"long_documents": spec}, env={})


def test_settings_precedence(tmp_path, monkeypatch):
    toml = tmp_path / "c.toml"
    toml.write_text('index = "from-file"\npipeline = "p-file"\nname = "n-file"\n')
    env = {"OSRERANK_PIPELINE": "p-env", "OSRERANK_NAME": "n-env"}
    s = Settings.resolve({"name": "n-flag", "index": None}, env=env, config_file=toml)
    assert (s.index, s.pipeline, s.name) == ("from-file", "p-env", "n-flag")
    with pytest.raises(ConfigError, match="timeout_s"):
        Settings.resolve({"timeout_s": -1}, env={})


def test_docker_compose_matches_the_code():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    assert compose["services"]["opensearch"]["image"].startswith("opensearchproject/opensearch:2.19")
    assert compose["services"]["model"]["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (REPO / "deploy" / "Dockerfile").exists()
    assert "8080:8080" in compose["services"]["model"]["ports"]
    assert "--port 8080" in (REPO / "deploy" / "Dockerfile").read_text()


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
