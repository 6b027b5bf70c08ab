"""Target ``torchserve``: the model on a real TorchServe (0.12.0) on loopback, spoken to by ``torchserve-pairs``.

The model folder is archived with ``torch-model-archiver`` together with osrerank's handler
(deploy/torchserve/handler.py, which scores with the kit's ONNX Runtime scorer), TorchServe is started
with every listener on 127.0.0.1, the archive registered through its management API and waited for.
TorchServe's own token authorization is off (everything listens on loopback only); its gRPC ports are
moved off their fixed defaults. TorchServe is in limited maintenance upstream: 0.12.0 is its last release.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

import requests

from .. import process
from ..errors import EndpointError, ToolMissingError
from ..kinds import KINDS, kind_of
from ..launcher.java import find_java_home
from ..model import check_model, resolve_model_dir
from ..paths import cache_root
from ..scorer import ModelOptions
from ..types import Credentials, Found
from .base import Endpoint, RemoteTarget

__all__ = ["TorchServe", "TorchServeTarget"]

START_TIMEOUT_S = 180.0
MODEL_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")

#: What the handler does not take: it serves the folder it is packed with, exactly (fp32; no precision gate).
NOT_FOR_HANDLER = {"path", "precision", "gate_pairs", "gate_qrels"}


def _tool(name: str) -> str:
    beside = Path(sys.executable).parent / name  # installed with this Python, PATH or not
    found = str(beside) if beside.exists() else shutil.which(name)
    if not found:
        raise ToolMissingError(f"the torchserve target needs {name}: pip install 'osrerank[torchserve]'")
    return found


class TorchServe:
    """One TorchServe serving one model, found again through a state file."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.run_dir = cache_root() / "torchserve" / name
        self.state_file = self.run_dir / "state.json"
        self.log = self.run_dir / "logs" / "launcher.log"

    def info(self) -> dict[str, object] | None:
        try:
            state = json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None
        alive = process.alive(state["pid"]) and process.http_ok(f"{state['inference']}/ping", timeout=3)
        return state if alive else None

    def start(self, options: ModelOptions) -> tuple[str, bool]:
        """The inference URL of the model (started now, or found running with the same model section); whether
        new. The handler gets the model section (kind, activation, a decoder's format...) in model-config.yaml."""
        folder = resolve_model_dir(options.path)
        section = options.model_dump_json(exclude={*NOT_FOR_HANDLER, "threads"})
        fingerprint = hashlib.sha256(f"{folder.resolve()}|{section}".encode()).hexdigest()[:12]
        current = self.info()
        if current and current["fingerprint"] == fingerprint:
            return f"{current['inference']}/predictions/{self.name}", False
        self.stop()
        archiver, torchserve = _tool("torch-model-archiver"), _tool("torchserve")
        for sub in ("store", "tmp", "logs", "stage"):
            (self.run_dir / sub).mkdir(parents=True, exist_ok=True)
        self._archive(archiver, folder, options)
        ports = {k: process.free_port() for k in ("inference", "management", "metrics", "grpc_i", "grpc_m", "worker")}
        config = self.run_dir / "config.properties"
        config.write_text(
            "\n".join(
                [
                    f"inference_address=http://127.0.0.1:{ports['inference']}",
                    f"management_address=http://127.0.0.1:{ports['management']}",
                    f"metrics_address=http://127.0.0.1:{ports['metrics']}",
                    "grpc_inference_address=127.0.0.1",
                    "grpc_management_address=127.0.0.1",
                    f"grpc_inference_port={ports['grpc_i']}",
                    f"grpc_management_port={ports['grpc_m']}",
                    f"initial_worker_port={ports['worker']}",
                    f"model_store={self.run_dir / 'store'}",
                    "disable_token_authorization=true",
                    "enable_model_api=true",
                    "install_py_dep_per_model=false",
                    "default_workers_per_model=1",
                    "number_of_netty_threads=2",
                    "netty_client_threads=2",
                    "max_request_size=16777216",
                    "max_response_size=16777216",
                    "default_response_timeout=120",
                    "vmargs=-Xmx512m -XX:+UseSerialGC",
                ]
            )
            + "\n"
        )
        tmp = str(self.run_dir / "tmp")  # the pid file goes here: two TorchServes must not share one
        env = {
            **os.environ,
            "JAVA_HOME": str(find_java_home(17, 21)),
            "TEMP": tmp,
            "TMPDIR": tmp,
            "LOG_LOCATION": str(self.run_dir / "logs"),
            "METRICS_LOCATION": str(self.run_dir / "logs"),
        }
        cmd = [
            torchserve,
            "--start",
            "--foreground",
            "--ncs",
            "--ts-config",
            str(config),
            "--model-store",
            str(self.run_dir / "store"),
        ]
        proc = process.spawn(cmd, log=self.log, env=env, error=EndpointError, cwd=self.run_dir)
        inference, management = f"http://127.0.0.1:{ports['inference']}", f"http://127.0.0.1:{ports['management']}"
        process.wait_ready(
            proc,
            lambda: process.http_ok(f"{inference}/ping", timeout=2),
            what="TorchServe",
            log=self.log,
            timeout_s=START_TIMEOUT_S,
            error=EndpointError,
        )
        self._register(management, proc)
        state = {"pid": proc.pid, "inference": inference, "management": management, "fingerprint": fingerprint}
        self.state_file.write_text(json.dumps(state))
        return f"{inference}/predictions/{self.name}", True

    def _archive(self, archiver: str, folder: Path, options: ModelOptions) -> None:
        """<name>.mar: the handler, the model's ONNX graph and tokenizer files (flat), and its settings."""
        stage = self.run_dir / "stage"
        handler = stage / "handler.py"
        handler.write_text(resources.files("osrerank.torchserve").joinpath("handler.py").read_text())
        (stage / "model-config.yaml").write_text(
            "minWorkers: 1\nmaxWorkers: 1\nbatchSize: 1\nmaxBatchDelay: 5\nresponseTimeout: 120\n"
            "startupTimeout: 120\nhandler:\n"
            f"  model: {json.dumps(options.model_dump(mode='json', exclude=NOT_FOR_HANDLER))}\n"
        )
        # the folder's own graph, as model.onnx: the handler's scorer makes the kit's rewrite of it there
        extra = [str(KINDS[kind_of(options.kind, folder)](folder, options).own_graph())] + [
            str(folder / f) for f in MODEL_FILES if (folder / f).exists()
        ]
        cmd = [
            archiver,
            "--model-name",
            self.name,
            "--version",
            "1.0",
            "--handler",
            str(handler),
            "--config-file",
            str(stage / "model-config.yaml"),
            "--extra-files",
            ",".join(extra),
            "--export-path",
            str(self.run_dir / "store"),
            "--archive-format",
            "zip-store",
            "--force",
        ]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise EndpointError(f"torch-model-archiver failed: {(done.stderr or done.stdout)[-800:]}")

    def _register(self, management: str, proc: subprocess.Popen[bytes]) -> None:
        params = {"url": f"{self.name}.mar", "model_name": self.name, "initial_workers": "1", "synchronous": "true"}
        try:
            reply = requests.post(f"{management}/models", params=params, timeout=START_TIMEOUT_S)
        except requests.RequestException as exc:
            process.stop(proc.pid)
            raise EndpointError(f"registering the model with TorchServe failed: {exc}") from exc
        if reply.status_code != 200:
            process.stop(proc.pid)
            raise EndpointError(
                f"TorchServe refused the model ({reply.status_code}): {reply.text[:500]}. "
                f"Its logs: {self.run_dir / 'logs'}"
            )

    def stop(self) -> bool:
        """Stop TorchServe if it runs; True if it did. Returns once its inference port no longer answers: the
        Java frontend can outlive the launcher's pid by a moment."""
        try:
            inference = json.loads(self.state_file.read_text())["inference"]
        except (OSError, ValueError, KeyError):
            inference = None
        stopped = process.stop_recorded(self.state_file, grace_s=20)
        deadline = time.monotonic() + 20
        while inference and time.monotonic() < deadline and process.http_ok(f"{inference}/ping", timeout=1):
            time.sleep(0.2)
        return stopped


class TorchServeTarget(RemoteTarget):
    name = "torchserve"
    summary = "a real TorchServe (0.12.0) on loopback, serving the model folder with osrerank's handler"
    default_template = "torchserve-pairs"

    def check_server(self) -> None:
        check_model(self.settings.model.path)
        _tool("torchserve")
        _tool("torch-model-archiver")

    def start_server(self) -> Endpoint:
        model = self.settings.model
        self.progress(f"starting TorchServe for {model.path}")
        url, started = TorchServe(self.settings.name).start(model)
        return Endpoint(url, Credentials(), Found(url, "created" if started else "reused"))

    def server_plan(self) -> list[str]:
        return [f"archive {self.settings.model.path} and serve it on TorchServe as {self.settings.name!r}"]

    def stop_server(self, *, dry_run: bool) -> list[str]:
        server = TorchServe(self.settings.name)
        running = server.info() is not None if dry_run else server.stop()
        return ["TorchServe"] if running else []
