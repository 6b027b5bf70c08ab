"""Every foreign error and user mistake reaches the user as one line naming the fix: exit code 1 (an
OsRerankError) or 2 (a usage error), and never a traceback.

The commands run in this process through click's CliRunner (the same ``cli`` the ``osrerank`` script calls);
there, "no traceback" means the command ended by ``SystemExit`` (click's own exit), not by an exception that
escaped it. Two run as a real ``python -m osrerank`` process: a missing ``mvn`` on PATH, and an error checked
end to end for what a user's terminal shows.
"""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from osrerank.cli import cli

CLOSED = "http://127.0.0.1:9"  # nothing listens there


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch, tmp_path):
    """No OSRERANK_* or AWS_* variable of the machine's reaches a command; the kit cache is the test's own."""
    for name in list(os.environ):
        if name.startswith(("OSRERANK_", "AWS_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("OSRERANK_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")  # no credentials from an instance's metadata either
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))


def runner() -> CliRunner:
    """A runner keeping stderr apart from stdout (click < 8.2 needs mix_stderr=False; later ones always do)."""
    if "mix_stderr" in inspect.signature(CliRunner.__init__).parameters:
        return CliRunner(mix_stderr=False)
    return CliRunner()


def osrerank(*args: str) -> Result:
    return runner().invoke(cli, list(args), prog_name="osrerank")


def assert_one_line_error(result: Result, code: int, *fragments: str) -> str:
    """The command exited with ``code`` through click (no exception escaped), printing one error line naming
    every fragment; returns that line."""
    assert isinstance(result.exception, SystemExit), f"an exception escaped the command: {result.exception!r}"
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    error = [line for line in lines if line.startswith("Error:")]
    assert len(error) == 1, result.stderr
    for fragment in fragments:
        assert fragment in error[0], result.stderr
    return error[0]


def osrerank_process(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OSRERANK_", "AWS_"))}
    command = [sys.executable, "-m", "osrerank", *args]
    return subprocess.run(command, capture_output=True, text=True, env={**clean, **env}, timeout=300)


def test_unreachable_cluster_opensearch_py():
    result = osrerank("search", "q", "--opensearch-url", CLOSED)
    assert_one_line_error(result, 1, f"cannot reach OpenSearch at {CLOSED}", "--opensearch-url")


def test_a_real_process_prints_the_one_line_and_no_traceback(tmp_path):
    """The console script end to end: stderr holds the error line and nothing else (no traceback, no log)."""
    proc = osrerank_process("search", "q", "--opensearch-url", CLOSED, OSRERANK_CACHE=str(tmp_path))
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("Error: cannot reach OpenSearch at http://127.0.0.1:9")
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr + proc.stdout


def test_no_local_cluster_running():
    result = osrerank("cluster", "status")
    assert_one_line_error(result, 1, "no local OpenSearch 3.6.0 is running", "osrerank cluster up")


def test_missing_maven_subprocess(tmp_path):
    """A separate process, for a PATH without mvn (and nothing else of the machine's)."""
    python = Path(sys.executable).parent
    proc = osrerank_process("cluster", "up", OSRERANK_CACHE=str(tmp_path), PATH=f"{python}:/usr/bin/nonexistent")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    assert "mvn (Apache Maven) is needed" in proc.stderr and "apt-get install maven" in proc.stderr


def test_no_aws_credentials_botocore():
    result = osrerank(
        "deploy", "--target", "sagemaker", "--model", "cross-encoder/ms-marco-MiniLM-L-6-v2",
        "--role-arn", "arn:aws:iam::123456789012:role/x",
    )  # fmt: skip
    assert_one_line_error(result, 1, "no AWS credentials", "AWS_ACCESS_KEY_ID")


@pytest.fixture
def no_server(monkeypatch):
    """`osrerank serve` must fail before it listens: a server that started would fail the test, not hang it."""

    def refuse(*args, **kwargs):
        raise AssertionError("the server started")

    monkeypatch.setattr("uvicorn.run", refuse)


def test_broken_onnx_file_onnxruntime(tmp_path, tiny_model_dir, no_server):
    model = tmp_path / "model"
    (model / "onnx").mkdir(parents=True)
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (model / name).write_bytes((tiny_model_dir / name).read_bytes())
    (model / "onnx" / "model.onnx").write_bytes(b"not an onnx graph")
    result = osrerank("serve", "--model", str(model), "--no-auth", "--port", "0")
    assert_one_line_error(result, 1, "ONNX Runtime cannot load", "model.onnx")


@pytest.mark.parametrize(("port", "bound"), [("70000", "less than or equal to 65535"), ("-1", "greater than or equal")])
def test_port_out_of_range(port, bound, tiny_model_dir, no_server):
    result = osrerank("serve", "--model", str(tiny_model_dir), "--no-auth", "--port", port)
    assert_one_line_error(result, 1, f"targets.standin.port = {port}: Input should be {bound}", "--port")


def test_top_k_smaller_than_size_is_a_usage_error():
    result = osrerank("search", "x", "--top-k", "2", "--size", "5")
    assert isinstance(result.exception, SystemExit) and result.exit_code == 2, result.output
    assert "--top-k 2 is smaller than --size 5" in result.stderr and "Traceback" not in result.output


def test_the_old_window_flag_of_search_is_a_usage_error():
    result = osrerank("search", "x", "--window", "2")
    assert isinstance(result.exception, SystemExit) and result.exit_code == 2
    assert "No such option" in result.stderr and "--window" in result.stderr


def test_unknown_template_starts_nothing(tmp_path):
    result = osrerank("setup", "--template", "nosuch", "--opensearch-url", CLOSED)
    assert_one_line_error(
        result, 1, "unknown connector template 'nosuch'", "sagemaker-hf-text-classification, tei-embed, tei-rerank"
    )
    assert not (tmp_path / "cache" / "endpoint").exists()  # no stand-in was started


def test_missing_model_folder_starts_nothing(tmp_path):
    result = osrerank("setup", "--model", "/nonexistent", "--opensearch-url", CLOSED)
    assert_one_line_error(result, 1, "'/nonexistent' is neither a model folder nor a hub id")
    assert not (tmp_path / "cache" / "endpoint").exists()


def test_config_errors_name_flag_variable_and_key_and_never_echo_a_secret(tmp_path):
    (tmp_path / "bad.toml").write_text("[cluster]\npassword = 123456789\n\n[connector]\ntimeout_s = -1\n")
    result = osrerank("search", "x", "--config", str(tmp_path / "bad.toml"))
    line = assert_one_line_error(result, 1, "variable OSRERANK_CLUSTER__PASSWORD", "config key cluster.password")
    assert "123456789" not in result.output
    assert "connector.timeout_s = -1" in line and "--timeout" in line and "OSRERANK_CONNECTOR__TIMEOUT_S" in line


def test_a_flat_variable_of_earlier_versions_is_refused_with_its_new_name(monkeypatch):
    monkeypatch.setenv("OSRERANK_WINDOW", "50")
    result = osrerank("search", "x", "--opensearch-url", CLOSED)
    assert_one_line_error(result, 1, "unknown variable OSRERANK_WINDOW; did you mean OSRERANK_PIPELINE__WINDOW?")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--max-batch", "32", "--on-model-failure", "first-stage"], "first-stage cannot go with --max-batch"),
        (["--target", "opensearch", "--max-batch", "32"], "the opensearch target has no server: drop --max-batch"),
    ],
    ids=["fail-open-per-hit", "in-cluster-batch-limit"],
)
def test_what_a_batch_limit_cannot_go_with_starts_nothing(tmp_path, tiny_model_dir, flags, message):
    """Refused before a cluster is asked or a stand-in starts (the cluster URL is a closed port)."""
    result = osrerank("setup", "--model", str(tiny_model_dir), "--opensearch-url", CLOSED, *flags)
    assert_one_line_error(result, 1, message)
    assert not (tmp_path / "cache" / "endpoint").exists()
