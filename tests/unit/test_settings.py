"""The settings: a root of sections (osrerank/config/), filled from flags, ``OSRERANK_*`` variables, a TOML file and
the defaults, in that order; every mistake refused with the name meant; secrets never echoed.

Variables are passed to ``Settings.resolve`` as a mapping (``env=``), never read from this process, except in the
CLI tests at the end, whose environment is cleaned first.
"""

from __future__ import annotations

import os
from collections import Counter

import pytest
from click.testing import CliRunner
from pydantic import ValidationError

from osrerank.cli import cli
from osrerank.config.environment import VARIABLES
from osrerank.config.sources import leaves
from osrerank.errors import ConfigError
from osrerank.settings import Settings

SECRET = "hunter2-do-not-print"


def toml(tmp_path, text: str):
    path = tmp_path / "osrerank.toml"
    path.write_text(text)
    return path


# ------------------------------------------------------------------------------------------------ precedence
@pytest.mark.parametrize(
    ("flag", "variable", "in_file", "window"),
    [
        (30, "20", True, 30),
        (None, "20", True, 20),  # a flag not given (None) falls through
        (None, None, True, 10),
        (None, None, False, None),  # the default
        (30, None, False, 30),
    ],
)
def test_a_flag_beats_a_variable_beats_the_file_beats_the_default(tmp_path, flag, variable, in_file, window):
    config = toml(tmp_path, "[pipeline]\nwindow = 10\n") if in_file else None
    env = {"OSRERANK_PIPELINE__WINDOW": variable} if variable else {}
    settings = Settings.resolve({"pipeline.window": flag}, env=env, config_file=config)
    assert settings.pipeline.window == window


def test_each_setting_comes_from_its_own_highest_source(tmp_path):
    """Sources merge setting by setting, not section by section."""
    config = toml(tmp_path, 'name = "n-file"\nindex = "i-file"\n[pipeline]\nname = "p-file"\nwindow = 10\n')
    env = {"OSRERANK_PIPELINE__NAME": "p-env", "OSRERANK_NAME": "n-env"}
    s = Settings.resolve({"name": "n-flag", "index.name": None}, env=env, config_file=config)
    assert (s.name, s.index.name, s.pipeline.name, s.pipeline.window) == ("n-flag", "i-file", "p-env", 10)
    assert s.model.path == Settings().model.path  # untouched: the default


def test_the_config_file_can_be_named_by_a_variable(tmp_path):
    config = toml(tmp_path, "[pipeline]\nwindow = 12\n")
    assert Settings.resolve({}, env={"OSRERANK_CONFIG": str(config)}).pipeline.window == 12
    assert Settings.resolve({}, env={"OSRERANK_CONFIG": "/nonexistent.toml"}, config_file=config).pipeline.window == 12


def test_a_missing_or_broken_config_file_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"config file /nonexistent\.toml does not exist"):
        Settings.resolve({}, env={}, config_file="/nonexistent.toml")
    with pytest.raises(ConfigError, match="is not valid TOML"):
        Settings.resolve({}, env={}, config_file=toml(tmp_path, "[pipeline\nwindow = "))


# ------------------------------------------------------------------------------------------------ variables
def test_variables_are_named_by_the_settings_path():
    env = {
        "OSRERANK_NAME": "kit",
        "OSRERANK_TARGET": "sagemaker",
        "OSRERANK_MODEL__PATH": "/models/m",
        "OSRERANK_PIPELINE__WINDOW": "50",
        "OSRERANK_INDEX__DOCUMENT_FIELDS": "title, body",
        "OSRERANK_TARGETS__SAGEMAKER__INSTANCE_TYPE": "ml.c5.xlarge",
        "OSRERANK_TARGETS__STANDIN__AUTH": "false",
        "OSRERANK_CLUSTER__VERSION": "2.19.6",
    }
    s = Settings.resolve({}, env=env)
    assert (s.name, s.target, s.model.path, s.pipeline.window) == ("kit", "sagemaker", "/models/m", 50)
    assert s.index.document_fields == ("title", "body")
    assert s.targets.sagemaker.instance_type == "ml.c5.xlarge" and s.targets.standin.auth is False
    assert s.cluster.version == "2.19.6"


def test_every_settings_variable_is_its_path():
    for leaf in leaves(Settings):
        assert leaf.variable == "OSRERANK_" + "__".join(p.upper() for p in leaf.path)


def test_process_variables_and_empty_ones_are_no_settings():
    env = {"OSRERANK_CACHE": "/tmp/cache", "OSRERANK_BEARER_TOKEN": SECRET, "OSRERANK_PIPELINE__WINDOW": ""}
    assert Settings.resolve({}, env=env) == Settings()
    assert not {leaf.variable for leaf in leaves(Settings)} & set(VARIABLES)  # no name is both


@pytest.mark.parametrize(
    ("name", "meant"),
    [
        ("OSRERANK_WINDOW", "OSRERANK_PIPELINE__WINDOW"),  # the flat name of earlier versions
        ("OSRERANK_OPENSEARCH_VERSION", "OSRERANK_CLUSTER__VERSION"),  # named like its flag
        ("OSRERANK_MODEL", "OSRERANK_MODEL__PATH"),
        ("OSRERANK_INSTANCE_TYPE", "OSRERANK_TARGETS__SAGEMAKER__INSTANCE_TYPE"),
        ("OSRERANK_PIPELINE__WINDWO", "OSRERANK_PIPELINE__WINDOW"),  # a typo
        ("OSRERANK_CAHCE", "OSRERANK_CACHE"),  # a process variable's typo
    ],
)
def test_an_unknown_variable_is_refused_with_the_one_meant(name, meant):
    with pytest.raises(ConfigError) as refused:
        Settings.resolve({}, env={name: "1"})
    assert str(refused.value).startswith(f"unknown variable {name}; did you mean {meant}?")


# ------------------------------------------------------------------------------------------------ the TOML file
def test_toml_tables_by_section_with_or_without_the_osrerank_table(tmp_path):
    text = (
        'name = "kit"\nindex = "docs"\n'  # a section given as a string: its main field
        '[pipeline]\nwindow = 50\non_model_failure = "first-stage"\n'
        '[model]\npath = "/models/m"\nmax_length = 256\n'
        "[targets.sagemaker]\ninstance_count = 2\n"
        "[targets.standin]\nport = 9001\n"
    )
    plain = Settings.resolve({}, env={}, config_file=toml(tmp_path, text))
    wrapped_text = "[osrerank]\n" + text.replace("[", "[osrerank.").replace("[osrerank.osrerank", "[osrerank")
    wrapped = Settings.resolve({}, env={}, config_file=toml(tmp_path, wrapped_text))
    assert plain == wrapped
    assert (plain.name, plain.index.name, plain.pipeline.window, plain.pipeline.on_model_failure) == (
        "kit",
        "docs",
        50,
        "first-stage",
    )
    assert (plain.model.path, plain.model.max_length) == ("/models/m", 256)
    assert plain.targets.sagemaker.instance_count == 2 and plain.targets.standin.port == 9001


@pytest.mark.parametrize(
    ("text", "refusal"),
    [
        ("[pipeline]\nwindw = 5\n", "unknown setting pipeline.windw in config file {}; did you mean pipeline.window?"),
        ("window = 5\n", "unknown setting window in config file {}; did you mean pipeline.window?"),  # a flat key
        ("timeout_s = 5\n", "unknown setting timeout_s in config file {}; did you mean connector.timeout_s?"),
        ("[targets.sagemaker]\ninstance_typ = 'x'\n", "did you mean targets.sagemaker.instance_type?"),
        ("[osrerank.modle]\npath = 'x'\n", "unknown setting modle in config file {}; did you mean model?"),
    ],
)
def test_an_unknown_toml_key_is_refused_with_the_one_meant(tmp_path, text, refusal):
    path = toml(tmp_path, text)
    with pytest.raises(ConfigError) as refused:
        Settings.resolve({}, env={}, config_file=path)
    assert refusal.format(path) in str(refused.value)


def test_an_unknown_flag_path_is_refused_too():
    with pytest.raises(ConfigError, match=r"unknown setting pipeline\.windw; did you mean pipeline\.window\?"):
        Settings.resolve({"pipeline.windw": 3}, env={})


# ------------------------------------------------------------------------------------------------ in Python
def test_a_string_sets_a_sections_main_field():
    s = Settings(model="DIR", index="docs", pipeline="p", cluster="http://c:9200", connector="http://e/rerank")
    assert (s.model.path, s.index.name, s.pipeline.name) == ("DIR", "docs", "p")
    assert (s.cluster.url, s.connector.endpoint_url) == ("http://c:9200", "http://e/rerank")
    assert s.model.kind == "auto" and s.pipeline.window is None  # the rest: defaults
    assert Settings(model={"path": "DIR", "precision": "int8"}).model.path == "DIR"


def test_names_of_what_the_kit_creates_derive_from_the_name():
    s = Settings(name="kit")
    assert (s.connector_name, s.model_name, s.group_name) == ("kit-connector", "kit-model", "kit-group")
    assert (s.eval_pipeline, s.eval_index("SciFact")) == ("kit-eval-rerank", "kit-eval-scifact")


def test_updated_changes_field_by_field_and_validates_again():
    base = Settings(name="kit", pipeline={"window": 20, "on_model_failure": "first-stage"})
    changed = base.updated(pipeline={"window": 50}, model="DIR")
    assert (changed.pipeline.window, changed.pipeline.on_model_failure) == (50, "first-stage")
    assert changed.model.path == "DIR"
    assert changed.name == "kit" and base.pipeline.window == 20  # the original is unchanged
    with pytest.raises(ConfigError, match=r"pipeline\.window = 0: Input should be greater than or equal to 1"):
        base.updated(pipeline={"window": 0})
    with pytest.raises(ConfigError, match="first-stage cannot go with --max-batch"):  # a rule across settings
        base.updated(pipeline={"max_batch": 8})
    with pytest.raises(ConfigError, match=r"unknown setting pipeline\.windw"):
        base.updated(pipeline={"windw": 5})
    with pytest.raises(ConfigError, match="target = 'nowhere'"):
        base.updated(target="nowhere")


def test_settings_are_frozen():
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.name = "other"  # type: ignore[misc]
    with pytest.raises(ValidationError):
        settings.pipeline.window = 3  # type: ignore[misc]


# ------------------------------------------------------------------------------------------------ flags, help
def test_no_two_settings_share_a_flag():
    flags = Counter(leaf.flag for leaf in leaves(Settings) if leaf.flag)
    assert {flag: n for flag, n in flags.items() if n > 1} == {}
    assert all(flag.startswith("--") and flag == flag.lower() and "_" not in flag for flag in flags)


def all_commands(group=cli, path=()):
    yield list(path), group
    for name, command in getattr(group, "commands", {}).items():
        yield from all_commands(command, (*path, name))


@pytest.mark.parametrize("path", [p for p, _ in all_commands()], ids=lambda p: " ".join(p) or "root")
def test_no_command_offers_a_flag_twice(path):
    command = dict((tuple(p), c) for p, c in all_commands())[tuple(path)]
    options = Counter(opt for param in command.params for opt in [*param.opts, *param.secondary_opts])
    assert {opt: n for opt, n in options.items() if n > 1} == {}


def test_every_setting_has_a_description():
    assert [leaf.dotted for leaf in leaves(Settings) if not (leaf.info.description or "").strip()] == []


def test_a_settings_help_is_its_description():
    result = CliRunner().invoke(cli, ["setup", "--help"], terminal_width=400)
    assert result.exit_code == 0
    help_text = " ".join(result.output.split())
    for dotted in ("pipeline.window", "model.precision", "targets.sagemaker.instance_type"):
        leaf = next(leaf for leaf in leaves(Settings) if leaf.dotted == dotted)
        assert leaf.flag in help_text and " ".join(leaf.info.description.split()) in help_text, dotted


# ------------------------------------------------------------------------------------------------ secrets
def test_a_secret_has_no_flag_and_is_masked():
    (password,) = [leaf for leaf in leaves(Settings) if leaf.secret]
    assert password.dotted == "cluster.password" and password.flag is None
    settings = Settings.resolve({}, env={"OSRERANK_CLUSTER__PASSWORD": SECRET})
    assert settings.cluster.password.get_secret_value() == SECRET
    assert SECRET not in repr(settings) and SECRET not in str(settings) and SECRET not in settings.model_dump_json()


@pytest.mark.parametrize(
    "make",
    [
        lambda tmp: Settings.resolve({}, env={}, config_file=toml(tmp, "[cluster]\npassword = 1234567890\n")),
        lambda tmp: Settings.resolve(
            {}, env={"OSRERANK_CLUSTER__PASSWORD": SECRET, "OSRERANK_CLUSTER__NODES": "0"}
        ),  # another setting's refusal
        lambda tmp: Settings.resolve({}, env={"OSRERANK_OPENSEARCH_PASSWORD": SECRET}),  # an unknown variable
        lambda tmp: Settings().updated(cluster={"password": 1234567890}),
        lambda tmp: Settings.resolve({}, env={}, config_file=toml(tmp, f"[cluster]\npasword = '{SECRET}'\n")),
    ],
    ids=["toml-bad-type", "other-setting", "unknown-variable", "updated", "unknown-key"],
)
def test_a_secret_value_never_appears_in_an_error(tmp_path, make):
    with pytest.raises(ConfigError) as refused:
        make(tmp_path)
    message = str(refused.value)
    assert SECRET not in message and "1234567890" not in message
    assert "password" in message.lower() or "nodes" in message


# ------------------------------------------------------------------------------------------------ through the CLI
@pytest.fixture
def clean_environment(monkeypatch):
    for name in list(os.environ):
        if name.startswith(("OSRERANK_", "AWS_")):
            monkeypatch.delenv(name)


@pytest.fixture
def served(monkeypatch, clean_environment):
    """What `osrerank serve` would run: the ServerSpec handed to osrerank.server.run.serve (replaced: nothing
    starts, no model loads)."""
    specs = []
    monkeypatch.setattr("osrerank.server.run.serve", specs.append)
    return specs


def test_serve_reads_the_model_and_server_sections_from_toml(tmp_path, tiny_model_dir, served, monkeypatch):
    config = toml(
        tmp_path,
        f'[model]\npath = "{tiny_model_dir}"\nprecision = "int8"\nmax_length = 128\nactivation = "none"\n'
        "[targets.standin]\nport = 9001\nauth = false\nmax_wait_ms = 2.5\n"
        '[connector]\nregion = "eu-west-1"\n',
    )
    monkeypatch.setenv("OSRERANK_TARGETS__STANDIN__MAX_WAIT_MS", "7")  # a variable beats the file
    result = CliRunner().invoke(cli, ["serve", "--config", str(config), "--port", "9002"])  # a flag beats both
    assert result.exit_code == 0, result.output
    (spec,) = served
    assert spec.model.path == str(tiny_model_dir)
    assert (spec.model.precision, spec.model.max_length, spec.model.activation) == ("int8", 128, "none")
    assert (spec.server.port, spec.server.auth, spec.server.max_wait_ms) == (9002, False, 7.0)
    assert spec.region == "eu-west-1" and spec.port == 9002


def test_serve_refuses_a_bad_toml_value_in_one_line(tmp_path, served):
    config = toml(tmp_path, "[targets.standin]\nport = 70000\n")
    result = CliRunner().invoke(cli, ["serve", "--config", str(config)])
    assert result.exit_code == 1 and served == []
    assert "targets.standin.port = 70000" in result.output and "--port" in result.output
    assert "OSRERANK_TARGETS__STANDIN__PORT" in result.output and "config key targets.standin.port" in result.output


def test_serve_listens_on_8080_unless_told(tiny_model_dir, served):
    result = CliRunner().invoke(cli, ["serve", "--model", str(tiny_model_dir), "--no-auth"])
    assert result.exit_code == 0, result.output
    assert served[0].server.port is None and served[0].port == 8080 and served[0].server.auth is False
