"""Target ``standin``: the kit's own model server (ONNX Runtime, SageMaker/TorchServe/TEI APIs), run locally
as a background process and found again through a state file, so a second setup reuses it.

A changed model or option starts a new process on a new port first; the old one is stopped only once
the new one answers, so a setup that fails (a missing model, say) leaves a working stand-in working.
(Only a restart on the very port the old one holds stops the old one first.)
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .. import process
from ..errors import EndpointError
from ..model import ScorerOptions, check_model, resolve_model_dir
from ..paths import cache_root
from ..scorer import choose_precision
from ..server.run import ServeOptions
from ..templates import connector_template
from ..types import Found
from .base import Endpoint, RemoteTarget
from .local_secrets import local_secrets

__all__ = ["StandIn", "StandInInfo", "StandInTarget"]

START_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class StandInInfo:
    """Where a running stand-in answers, and with what options it runs."""

    pid: int
    base_url: str
    options: dict[str, Any]

    @property
    def serve_options(self) -> ServeOptions:
        return ServeOptions.from_json(json.dumps(self.options))

    @property
    def cluster_base_url(self) -> str:
        """The base URL as the cluster sees it: ``OSRERANK_ENDPOINT_HOST`` replaces the host when the
        cluster runs elsewhere (e.g. ``host.docker.internal`` from a container)."""
        host = os.environ.get("OSRERANK_ENDPOINT_HOST")
        return self.base_url.replace("127.0.0.1", host, 1) if host else self.base_url

    def url_for(self, template: str, name: str) -> str:
        """The URL a connector made from ``template`` posts to."""
        path = connector_template(template).standin_path
        if path is None:
            raise EndpointError(f"the stand-in does not serve the API of template {template!r}")
        return self.cluster_base_url + path.format(name=name)


class StandIn:
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

    def start(self, options: ServeOptions) -> tuple[StandInInfo, bool]:
        """Start a stand-in with ``options`` (port 0: any free port), or reuse the running one if it has
        them; returns its info and whether it was newly started."""
        wanted = ServeOptions.from_json(options.to_json())  # normalised, as it will be stored
        current = self.info()
        if current and _same(current.serve_options, wanted):
            return current, False
        port = wanted.port or process.free_port()
        if current and port == current.serve_options.port:  # two cannot share a port: this one must go first
            process.stop(current.pid, grace_s=10)
            current = None
        host = "0.0.0.0" if os.environ.get("OSRERANK_ENDPOINT_HOST") else wanted.host  # reachable from a container
        wanted = replace(wanted, host=host, port=port)
        env = {**os.environ, **(local_secrets().env() if wanted.auth else {})}
        cmd = [sys.executable, "-m", "osrerank.server", wanted.to_json()]
        proc = process.spawn(cmd, log=self.log_file, env=env, error=EndpointError)
        base_url = f"http://127.0.0.1:{port}"
        process.wait_ready(
            proc,
            lambda: proc.poll() is None and process.http_ok(f"{base_url}/ping", timeout=2),
            what=f"the model stand-in {self.name!r}",
            log=self.log_file,
            timeout_s=START_TIMEOUT_S,
            error=EndpointError,
        )
        if current:  # only now that the new one answers
            process.stop(current.pid)
        info = StandInInfo(pid=proc.pid, base_url=base_url, options=json.loads(wanted.to_json()))
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps(info.__dict__))
        return info, True

    def stop(self) -> bool:
        """Stop the stand-in if it runs; True if one was stopped."""
        return process.stop_recorded(self.state_file, grace_s=10)


def _same(running: ServeOptions, wanted: ServeOptions) -> bool:
    """Whether a running stand-in serves what is wanted (any port, when no port is asked for)."""
    # the host follows OSRERANK_ENDPOINT_HOST, not the options; port 0 means any
    return running == replace(wanted, host=running.host, port=wanted.port or running.port)


class StandInTarget(RemoteTarget):
    name = "standin"
    summary = "the kit's own model server, run locally (SigV4 or bearer-token checked)"
    default_template = "sagemaker-hf-text-classification"
    runs_kit_scorer = True

    def serve_options(self) -> ServeOptions:
        s = self.settings
        scorer = ScorerOptions(
            model=_local_path(s.model),
            kind=s.kind,
            activation=s.activation,
            precision=s.precision,
            gate_pairs=None if s.gate_pairs is None else str(Path(s.gate_pairs).resolve()),
            max_length=s.max_length,
        )
        return ServeOptions(scorer=scorer, port=0, region=s.region)

    def check_server(self) -> None:
        """Before anything is created: the model folder, and a reduced precision through its gate (the
        result is cached, so the server's own check at start is instant)."""
        check_model(self.settings.model)
        options = self.serve_options().scorer
        if options.precision != "fp32":
            self.progress(f"checking --precision {options.precision} against fp32 (the fidelity gate)")
            self.progress(choose_precision(resolve_model_dir(options.model), options).reason)

    def start_server(self) -> Endpoint:
        self.progress(f"starting the local model stand-in for {self.settings.model}")
        info, started = StandIn(self.settings.name).start(self.serve_options())
        url = info.url_for(self.template, self.settings.name)
        return Endpoint(url, local_secrets().credentials(), Found(url, "created" if started else "reused"))

    def server_plan(self) -> list[str]:
        return [f"start (or reuse) the local model stand-in {self.settings.name!r} for {self.settings.model}"]

    def stop_server(self, *, dry_run: bool) -> list[str]:
        stand_in = StandIn(self.settings.name)
        running = stand_in.info() is not None if dry_run else stand_in.stop()
        return ["local model stand-in"] if running else []


def _local_path(model: str) -> str:
    """An existing folder as an absolute path (the background process has its own working directory)."""
    path = Path(model).expanduser()
    return str(path.resolve()) if path.exists() else model
