"""Target ``standin``: the kit's own model server (ONNX Runtime, SageMaker/TorchServe/TEI APIs), run locally
as a background process and found again through a state file, so a second setup reuses it.

The process gets one :class:`~osrerank.server.run.ServerSpec` (the ``model`` section, this target's
``targets.standin`` section, the SigV4 region) and decides the model's precision itself, once, as it loads;
the target reads the decision back from ``/ping`` and reports it. A refusal (a mode that fails the gate) ends
the process before it answers, and reaches the user as that one line.

A changed spec starts a new process on a new port first; the old one is stopped only once the new one answers,
so a setup that fails (a missing model, say) leaves a working stand-in working. (Only a restart on the very
port the old one holds stops the old one first.)
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from typing import Any

import requests

from .. import process
from ..config.environment import get
from ..errors import ConfigError, EndpointError
from ..model import check_model
from ..paths import cache_root
from ..server.options import ServerOptions
from ..server.run import REFUSED, ServerSpec
from ..templates import connector_template
from ..types import Found
from .base import Endpoint, RemoteTarget
from .local_secrets import local_secrets

__all__ = ["StandInInfo", "StandInProcess", "StandInTarget"]

START_TIMEOUT_S = 300.0
#: Starts on a fresh free port before giving up, when no port was asked for and the one found was taken meanwhile.
PORT_ATTEMPTS = 3


@dataclass(frozen=True)
class StandInInfo:
    """Where a running stand-in answers, and the spec it runs with."""

    pid: int
    base_url: str
    spec: dict[str, Any]

    @property
    def server_spec(self) -> ServerSpec:
        return ServerSpec.model_validate(self.spec)

    @property
    def cluster_base_url(self) -> str:
        """The base URL as the cluster sees it: ``OSRERANK_ENDPOINT_HOST`` replaces the host when the
        cluster runs elsewhere (e.g. ``host.docker.internal`` from a container)."""
        host = get("OSRERANK_ENDPOINT_HOST")
        return self.base_url.replace("127.0.0.1", host, 1) if host else self.base_url

    def url_for(self, template: str, name: str) -> str:
        """The URL a connector made from ``template`` posts to."""
        path = connector_template(template).standin_path
        if path is None:
            raise EndpointError(f"the stand-in does not serve the API of template {template!r}")
        return self.cluster_base_url + path.format(name=name)

    def precision(self) -> dict[str, Any]:
        """The precision the server decided on as it loaded: mode, why, figures (its ``/ping``)."""
        return dict(requests.get(f"{self.base_url}/ping", timeout=10).json().get("precision") or {})


class StandInProcess:
    """One named stand-in process."""

    def __init__(self, name: str = "osrerank") -> None:
        self.name = name
        self.state_file = cache_root() / "endpoint" / f"{name}.json"
        self.log_file = self.state_file.with_suffix(".log")

    def info(self) -> StandInInfo | None:
        """The running stand-in, or None (a stale state file is ignored)."""
        try:
            info = StandInInfo(**json.loads(self.state_file.read_text()))
        except (OSError, ValueError, TypeError):
            return None
        if not process.alive(info.pid) or not process.http_ok(f"{info.base_url}/ping", timeout=3):
            return None
        return info

    def start(self, spec: ServerSpec) -> tuple[StandInInfo, bool]:
        """Start a stand-in with ``spec`` (no port: any free one), or reuse the running one if it has it;
        returns its info and whether it was newly started."""
        current = self.info()
        if current and _same(current.server_spec, spec):
            return current, False
        for attempt in range(1, PORT_ATTEMPTS + 1):
            port = spec.server.port or process.free_port()
            if current and port == current.server_spec.server.port:  # two cannot share a port: this one goes first
                process.stop(current.pid, grace_s=10)
                current = None
            started, proc, start_offset = self._spawn(spec, port)
            try:
                process.wait_ready(
                    proc,
                    lambda proc=proc, port=port: proc.poll() is None and _answers(port, proc.pid),
                    what=f"the model stand-in {self.name!r}",
                    log=self.log_file,
                    timeout_s=START_TIMEOUT_S,
                    error=EndpointError,
                )
                break
            except EndpointError:
                said = _log_since(self.log_file, start_offset)
                if not spec.server.port and attempt < PORT_ATTEMPTS and _lost_port(said):
                    continue  # another process took the free port between the probe and the bind: take another
                refused = _refusal(said)
                if refused:  # the server refused its settings: that one line is the user's message
                    raise ConfigError(refused) from None
                raise
        base_url = f"http://127.0.0.1:{port}"
        if current:  # only now that the new one answers
            process.stop(current.pid)
        info = StandInInfo(pid=proc.pid, base_url=base_url, spec=json.loads(started.model_dump_json()))
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps(info.__dict__))
        return info, True

    def _spawn(self, spec: ServerSpec, port: int) -> tuple[ServerSpec, Any, int]:
        """The server process for ``spec`` on ``port``: the spec it runs, the process, where its log lines start."""
        host = "0.0.0.0" if get("OSRERANK_ENDPOINT_HOST") else spec.server.host  # reachable from a container
        started = spec.model_copy(update={"server": spec.server.model_copy(update={"host": host, "port": port})})
        env = {**os.environ, **(local_secrets().env() if spec.server.auth else {})}
        cmd = [sys.executable, "-m", "osrerank.server", started.model_dump_json()]
        start_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
        return started, process.spawn(cmd, log=self.log_file, env=env, error=EndpointError), start_offset

    def stop(self) -> bool:
        """Stop the stand-in if it runs; True if one was stopped."""
        return process.stop_recorded(self.state_file, grace_s=10)


def _same(running: ServerSpec, wanted: ServerSpec) -> bool:
    """Whether a running stand-in serves what is wanted (any port, when no port is asked for)."""
    # the host follows OSRERANK_ENDPOINT_HOST, not the spec; no port means any
    server = wanted.server.model_copy(
        update={"host": running.server.host, "port": wanted.server.port or running.server.port}
    )
    return running == wanted.model_copy(update={"server": server})


def _log_since(log: Any, offset: int) -> list[str]:
    """The lines this start wrote to the log."""
    try:
        with open(log, "rb") as f:
            f.seek(offset)
            return f.read().decode("utf-8", errors="replace").splitlines()
    except OSError:
        return []


def _refusal(lines: list[str]) -> str | None:
    """The server's own refusal of its settings, from the lines this start wrote to its log."""
    return next((line.removeprefix(REFUSED) for line in reversed(lines) if line.startswith(REFUSED)), None)


def _answers(port: int, pid: int) -> bool:
    """Whether the server process ``pid`` answers on ``port``: its /ping names its pid, so another stand-in that
    holds the port (the one that won a race for it) is not taken for this one while this one still loads."""
    try:
        return requests.get(f"http://127.0.0.1:{port}/ping", timeout=2).json().get("pid") == pid
    except (requests.RequestException, ValueError, AttributeError):
        return False


def _lost_port(lines: list[str]) -> bool:
    """Whether this start (the lines it wrote to its log) failed because its port was taken after ``free_port``
    found it free (uvicorn's "[Errno 98] ... address already in use"): seen in CI when two stand-ins started side
    by side."""
    return any("address already in use" in line for line in lines)


class StandInTarget(RemoteTarget):
    name = "standin"
    summary = "the kit's own model server, run locally (SigV4 or bearer-token checked)"
    default_template = "sagemaker-hf-text-classification"
    runs_kit_scorer = True
    Options = ServerOptions

    def spec(self) -> ServerSpec:
        """What the stand-in process runs: the model section, this target's section, the SigV4 region."""
        return ServerSpec(model=self.settings.model, server=self.options, region=self.settings.connector.region)

    def check_server(self) -> None:
        """Before anything starts: the model folder (cheap). The precision is the server's to decide."""
        check_model(self.settings.model.path)

    def start_server(self) -> Endpoint:
        self.progress(f"starting the local model stand-in for {self.settings.model.path}")
        info, started = StandInProcess(self.settings.name).start(self.spec())
        if self.settings.model.precision != "fp32":
            decided = info.precision()
            self.progress(f"precision {decided.get('mode')}: {decided.get('why')}")
        url = info.url_for(self.template, self.settings.name)
        return Endpoint(url, local_secrets().credentials(), Found(url, "created" if started else "reused"))

    def server_plan(self) -> list[str]:
        return [f"start (or reuse) the local model stand-in {self.settings.name!r} for {self.settings.model.path}"]

    def stop_server(self, *, dry_run: bool) -> list[str]:
        stand_in = StandInProcess(self.settings.name)
        running = stand_in.info() is not None if dry_run else stand_in.stop()
        return ["local model stand-in"] if running else []
