"""Run the stand-in model server as a background process (``deploy --target local``).

The process is found again through a state file, so a second ``setup`` reuses a running
endpoint that serves the same model. The key pair the endpoint verifies SigV4 with comes from
AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY when set; otherwise a local-only pair is generated once and
kept in a 0600 file. It reaches the child through its environment, never its command line.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import requests

from .cluster import _free_port
from .errors import ClusterError
from .paths import cache_root

__all__ = ["EndpointInfo", "LocalEndpoint", "LocalSecrets", "local_credentials"]

START_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class EndpointInfo:
    """Where a running stand-in answers, and what it serves."""

    pid: int
    base_url: str
    model: str
    kind: str
    activation: str
    auth: bool
    region: str

    @property
    def cluster_base_url(self) -> str:
        """The base URL as the cluster sees it: ``OSRERANK_ENDPOINT_HOST`` replaces the host when the
        cluster runs elsewhere (e.g. ``host.docker.internal`` from a container)."""
        host = os.environ.get("OSRERANK_ENDPOINT_HOST")
        return self.base_url.replace("127.0.0.1", host, 1) if host else self.base_url

    def invocation_url(self, endpoint_name: str) -> str:
        """The SageMaker-runtime style URL the connector posts to."""
        return f"{self.cluster_base_url}/endpoints/{endpoint_name}/invocations"


@dataclass(frozen=True)
class LocalSecrets:
    """What the local stand-in verifies and its connectors send: a SigV4 key pair and a bearer token."""

    access_key: str
    secret_key: str = field(repr=False)
    bearer_token: str = field(repr=False)


def local_credentials() -> LocalSecrets:
    """The secrets shared by the local endpoint (verifier) and the connector (signer).

    The key pair is AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY when set, the token OSRERANK_BEARER_TOKEN;
    what is not set is generated once and kept in a 0600 file."""
    path = cache_root() / "endpoint" / "local-credentials.json"
    stored = json.loads(path.read_text()) if path.exists() else {}
    if not {"access_key", "secret_key", "bearer_token"} <= set(stored):
        stored = {
            "access_key": "AKIALOCAL" + secrets.token_hex(6).upper(),
            "secret_key": secrets.token_urlsafe(30),
            "bearer_token": secrets.token_urlsafe(30),
            **stored,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(stored, f)
    key, secret = os.environ.get("AWS_ACCESS_KEY_ID"), os.environ.get("AWS_SECRET_ACCESS_KEY")
    if not (key and secret):
        key, secret = stored["access_key"], stored["secret_key"]
    return LocalSecrets(key, secret, os.environ.get("OSRERANK_BEARER_TOKEN") or stored["bearer_token"])


class LocalEndpoint:
    """One named stand-in process. ``start`` reuses a live one serving the same model."""

    def __init__(self, name: str = "osrerank") -> None:
        self.name = name
        self.state_file = cache_root() / "endpoint" / f"{name}.json"
        self.log_file = self.state_file.with_suffix(".log")

    def info(self) -> EndpointInfo | None:
        """The running endpoint, or None if there is none (a stale state file is ignored)."""
        try:
            info = EndpointInfo(**json.loads(self.state_file.read_text()))
        except (OSError, ValueError, TypeError):
            return None
        try:
            os.kill(info.pid, 0)
            requests.get(f"{info.base_url}/ping", timeout=3).raise_for_status()
        except (OSError, requests.RequestException):
            return None
        return info

    def start(
        self,
        model: str,
        *,
        kind: str = "cross-encoder",
        activation: str = "sigmoid",
        auth: bool = True,
        region: str = "us-east-1",
        port: int | None = None,
        record: bool = False,
    ) -> tuple[EndpointInfo, bool]:
        """Start (or reuse) the endpoint; returns its info and whether it was newly started."""
        model = str(Path(model).resolve()) if Path(model).exists() else model
        current = self.info()
        wanted = {"model": model, "kind": kind, "activation": activation, "auth": auth, "region": region}
        if current and all(getattr(current, k) == v for k, v in wanted.items()):
            return current, False
        if current:
            self.stop()
        port = port or _free_port()
        env = dict(os.environ)
        if auth:
            local = local_credentials()
            env.update(
                AWS_ACCESS_KEY_ID=local.access_key,
                AWS_SECRET_ACCESS_KEY=local.secret_key,
                OSRERANK_BEARER_TOKEN=local.bearer_token,
            )
        cmd = [
            sys.executable,
            "-m",
            "osrerank",
            "serve",
            "--model",
            model,
            "--kind",
            kind,
            "--activation",
            activation,
            "--port",
            str(port),
            "--region",
            region,
        ]
        cmd += ["--host", "0.0.0.0"] if os.environ.get("OSRERANK_ENDPOINT_HOST") else []  # reachable from a container
        cmd += [] if auth else ["--no-auth"]
        cmd += ["--record"] if record else []
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_file, "wb") as log:
            proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, start_new_session=True
            )
        base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ClusterError(
                    f"the local model endpoint exited while starting (code {proc.returncode}):\n{self._tail()}"
                )
            try:
                if requests.get(f"{base_url}/ping", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.3)
        else:
            os.killpg(proc.pid, signal.SIGKILL)
            raise ClusterError(f"the local model endpoint did not answer /ping within {START_TIMEOUT_S:.0f}s")
        info = EndpointInfo(pid=proc.pid, base_url=base_url, **wanted)  # type: ignore[arg-type]
        self.state_file.write_text(json.dumps(asdict(info)))
        return info, True

    def stop(self) -> bool:
        """Stop the endpoint if it runs; True if one was stopped."""
        try:
            pid = int(json.loads(self.state_file.read_text())["pid"])
        except (OSError, ValueError, KeyError):
            return False
        self.state_file.unlink(missing_ok=True)
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            return False
        for _ in range(100):
            try:
                os.kill(pid, 0)
                os.waitpid(pid, os.WNOHANG)
            except (ProcessLookupError, ChildProcessError):
                return True
            time.sleep(0.1)
        os.killpg(pid, signal.SIGKILL)
        return True

    def _tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""
