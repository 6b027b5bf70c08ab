"""A newcomer's traps, each answered in one line: a missing index, a template's missing secret, later commands
that forget what setup was given, doctor without the optional extras. Through the real CLI (CliRunner) or the
library against the in-memory cluster."""

from __future__ import annotations

import os
import sys

import pytest
from click.testing import CliRunner

from osrerank.cli import cli
from osrerank.errors import ConfigError
from osrerank.opensearch import Cluster
from osrerank.records import all_records, recorded, remember
from osrerank.reranker import Reranker
from osrerank.settings import Settings

from .fake_opensearch import FakeOpenSearch

URL = "http://127.0.0.1:9/rerank"


@pytest.fixture
def clean(monkeypatch, tmp_path):
    """No OSRERANK_*/AWS_* from the caller; a cache of the test's own (setup records live there)."""
    import os

    for name in list(os.environ):
        if name.startswith(("OSRERANK_", "AWS_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("OSRERANK_CACHE", str(tmp_path))
    return tmp_path


@pytest.fixture
def fake(monkeypatch, clean):
    fake = FakeOpenSearch()
    monkeypatch.setattr("osrerank.reranker.connect", lambda options, url=None: Cluster(fake, "http://fake"))
    monkeypatch.setenv("OSRERANK_BEARER_TOKEN", "t0ken")
    return fake


def settings(**changes) -> Settings:
    base = Settings(name="nc", cluster="http://fake", connector={"endpoint_url": URL, "template": "tei-rerank"})
    return base.updated(**changes)


def test_setup_refuses_a_missing_index_and_creates_it_when_asked(fake):
    r = Reranker(settings(index="absent"))
    with pytest.raises(ConfigError, match=r"index absent does not exist: load documents first .* --create-index"):
        r.setup(create_index=False)
    assert fake.pipelines == {} and fake.objects.get("connectors", {}) == {}, "a refused setup made something"
    steps = r.setup(create_index=True).steps
    assert steps["index"].action == "created"
    assert fake.indices["absent"]["mappings"]["properties"] == {"passage_text": {"type": "text"}}


def test_later_commands_start_from_what_setup_recorded(fake):
    made = settings(index={"name": "docs", "document_fields": "rerank_text"}, pipeline={"window": 50})
    fake.indices["docs"] = {"mappings": {"properties": {"rerank_text": {"type": "text"}}}}
    Reranker(made).setup(create_index=False)
    (record,) = all_records()
    assert record["pipeline"] == "osrerank-rerank" and "password" not in str(record)
    later = Settings.resolve({}, env={}, from_record=True)
    assert (later.index.name, later.index.document_fields, later.pipeline.window) == ("docs", ("rerank_text",), 50)
    assert later.connector.endpoint_url == URL and later.name == "nc"
    flag_wins = Settings.resolve({"pipeline.window": 10}, env={}, from_record=True)
    assert flag_wins.pipeline.window == 10 and flag_wins.index.name == "docs"
    other = Settings.resolve({"pipeline.name": "never-set-up"}, env={}, from_record=True)
    assert other.index.name == "my-test-data"  # a pipeline without a record starts from the defaults
    Reranker(later).teardown()
    assert recorded(None) is None and all_records() == []


def test_another_model_does_not_inherit_the_recorded_models_settings(clean, tiny_model_dir, tmp_path):
    """A later command naming another model starts that model from its defaults: a cross-encoder after a
    bi-encoder setup must not be loaded as a bi-encoder. The same model, however it is spelled, keeps them."""
    model = {"path": str(tiny_model_dir), "kind": "bi-encoder", "max_length": 64}
    remember("osrerank-rerank", {"name": "nc", "model": model, "index": {"name": "docs"}}, {})
    other = tmp_path / "other-model"
    other.mkdir()
    switched = Settings.resolve({"model.path": str(other)}, env={}, from_record=True)
    assert (switched.model.kind, switched.model.max_length) == ("auto", None)
    assert switched.index.name == "docs"  # the rest of the setup still applies
    same = Settings.resolve({"model.path": os.path.relpath(tiny_model_dir)}, env={}, from_record=True)
    assert (same.model.kind, same.model.max_length) == ("bi-encoder", 64)


def test_status_lists_the_setups(fake):
    runner = CliRunner()
    assert "nothing set up" in runner.invoke(cli, ["status"]).output
    fake.indices["docs"] = {"mappings": {"properties": {"passage_text": {"type": "text"}}}}
    Reranker(settings(index="docs")).setup()
    shown = runner.invoke(cli, ["status"], terminal_width=200).output
    assert "osrerank-rerank" in shown and "docs" in shown and "passage_text" in shown


def test_a_template_that_needs_a_token_is_refused_without_it_and_an_optional_one_is_said(clean):
    runner = CliRunner()
    refused = runner.invoke(cli, ["connector", "render", "--template", "cohere-rerank", "--endpoint-url", URL])
    assert refused.exit_code == 1 and "needs a bearer token: set OSRERANK_BEARER_TOKEN" in refused.output
    said = runner.invoke(cli, ["connector", "render", "--template", "tei-rerank", "--endpoint-url", URL])
    assert said.exit_code == 0 and "no OSRERANK_BEARER_TOKEN" in said.output and "Authorization" not in said.stdout


def test_doctor_without_the_optional_extras_gives_findings_not_a_traceback(clean, tiny_model_dir, monkeypatch):
    """The base install has no onnx, torch or transformers: doctor must still answer, one finding per check."""
    for module in ("onnx", "torch", "transformers", "openvino"):
        monkeypatch.setitem(sys.modules, module, None)
    result = CliRunner().invoke(
        cli,
        ["doctor", "--model", str(tiny_model_dir), "--opensearch-url", "http://127.0.0.1:9"],
        terminal_width=200,
    )
    assert result.exit_code == 1, result.output  # the cluster cannot be reached: a problem, said as one
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output
    assert "cross-encoder" in result.output and "ONNX inputs" in result.output and "cannot reach" in result.output
