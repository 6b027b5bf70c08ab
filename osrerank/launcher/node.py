"""A real local OpenSearch with ml-commons and neural-search, started without Docker.

The install comes from distribution.py; this runs it. OpenSearch refuses to run as root, so as root
the node runs as an unprivileged system user created here. The node is found again through a state
file, so ``cluster up`` reuses a running node and ``cluster down`` stops it. The test suite uses
:class:`LocalOpenSearch` as a session fixture; the CLI as ``osrerank cluster up|down|status``.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any

import requests

from .. import process
from ..errors import ClusterError, ConfigError
from ..paths import cache_root
from ..types import Progress, quiet
from .distribution import DEFAULT_VERSION, SUPPORTED_LINES, Distribution
from .modules import link_libtorch

__all__ = ["ClusterInfo", "LocalOpenSearch", "ml_commons_settings"]

RUN_USER = "osrerank"
HEAP = "2g"  # 1 GB trips the parent circuit breaker after a few in-cluster model deploys
JAVA_OPTS = f"-Xms{HEAP} -Xmx{HEAP}"
#: Node settings that are the same at every start. A running node started with others is restarted.
STATIC_SETTINGS = {
    "network.host": "127.0.0.1",
    "cluster.name": "osrerank",
    "cluster.routing.allocation.disk.threshold_enabled": "false",
    # count only tracked allocations in the parent breaker: in-cluster model uploads leave garbage that a
    # real-memory breaker takes for load, answering 429 until the next collection
    "indices.breaker.total.use_real_memory": "false",
}
LAUNCH = json.dumps([JAVA_OPTS, STATIC_SETTINGS], sort_keys=True)
BOOT_TIMEOUT_S = 180.0


def ml_commons_settings() -> dict[str, object]:
    """Cluster settings that let ml-commons call a model server on this machine.

    Remote models must be allowed on a node without the ml role; loopback endpoints must be
    trusted and private addresses allowed (2.15+ block them); the memory circuit breakers
    are relaxed because a small heap on a small machine would otherwise refuse deploys. Chunked model
    upload is allowed for the in-cluster target.
    """
    return {
        "plugins.ml_commons.only_run_on_ml_node": False,
        "plugins.ml_commons.connector.private_ip_enabled": True,
        "plugins.ml_commons.trusted_connector_endpoints_regex": [
            r"^https?://(127\.0\.0\.1|localhost|\[::1\])(:\d+)?/.*$",
            r"^https://runtime\.sagemaker\..*[a-z0-9-]\.amazonaws\.com/.*$",
        ],
        "plugins.ml_commons.allow_registering_model_via_local_file": True,  # in-cluster model by chunked upload
        "plugins.ml_commons.native_memory_threshold": 100,
        "plugins.ml_commons.jvm_heap_memory_threshold": 100,
    }


@dataclass(frozen=True)
class ClusterInfo:
    """What ``status`` reports about a running cluster."""

    url: str
    version: str
    pid: int
    plugins: list[str]
    health: str


def _get(url: str, **params: str) -> Any:
    """GET JSON from the node; an unreachable node or a bad answer is a ClusterError."""
    try:
        reply = requests.get(url, params=params or None, timeout=30)
        reply.raise_for_status()
        return reply.json()
    except (requests.RequestException, ValueError) as exc:
        raise ClusterError(f"the local OpenSearch at {url} did not answer properly: {exc}") from exc


def _ensure_run_user() -> tuple[int, int] | None:
    """Return (uid, gid) to run the node as, creating the user when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pw = pwd.getpwnam(RUN_USER)
    except KeyError:
        nologin = "/usr/sbin/nologin" if os.path.exists("/usr/sbin/nologin") else "/bin/false"
        proc = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", nologin, RUN_USER], capture_output=True, text=True
        )
        if proc.returncode != 0:
            raise ClusterError(
                f"OpenSearch refuses to run as root and creating user {RUN_USER!r} failed: "
                f"{proc.stderr.strip()}. Create it yourself or run osrerank as a normal user."
            ) from None
        pw = pwd.getpwnam(RUN_USER)
    return pw.pw_uid, pw.pw_gid


def _chown(path: os.PathLike[str], owner: tuple[int, int] | None) -> None:
    if owner is not None:
        subprocess.run(["chown", "-R", f"{owner[0]}:{owner[1]}", str(path)], check=True)


class LocalOpenSearch:
    """One local OpenSearch node of a given version, with its install, run folder and state file.

    Example::

        node = LocalOpenSearch("3.6.0")
        info = node.up()        # fetches on first use, then starts in ~30 s
        print(info.url)
        node.down()
    """

    def __init__(self, version: str | None = None, *, port: int | None = None, progress: Progress = quiet):
        self.version = version or os.environ.get("OSRERANK_OPENSEARCH_VERSION") or DEFAULT_VERSION
        if not re.fullmatch(r"\d+\.\d+\.\d+", self.version):
            raise ConfigError(
                f"OpenSearch version {self.version!r} is not of the form X.Y.Z "
                f"(supported: {', '.join(SUPPORTED_LINES)})."
            )
        if port is not None and not 1 <= port <= 65535:
            raise ConfigError(f"port {port} is out of range: pass --port between 1 and 65535")
        self.requested_port, self.progress = port, progress
        self.distribution = Distribution(self.version, progress)
        self.run_dir = cache_root() / "run" / self.version
        self.state_file = self.run_dir / "state.json"
        self.log_dir = self.run_dir / "logs"

    # ----------------------------------------------------------------- state
    def _state(self) -> dict[str, Any] | None:
        try:
            return dict(json.loads(self.state_file.read_text()))
        except (OSError, ValueError):
            return None

    def running_url(self) -> str | None:
        """URL of this version's node if it is running and answering, else None."""
        state = self._state()
        if not state or not process.alive(state["pid"]) or not process.http_ok(state["url"]):
            return None
        return str(state["url"])

    # ----------------------------------------------------------------- up / down
    def up(self) -> ClusterInfo:
        """Start the node (installing first if needed), or reuse the one already running."""
        if self.running_url():
            if (self._state() or {}).get("launch") == LAUNCH:
                self.progress(f"OpenSearch {self.version} is already running")
                self.apply_settings()
                return self.status()
            self.progress(f"restarting OpenSearch {self.version}: it runs with other JVM options or settings")
            self.down()
        home = self.distribution.install()
        java_home = self.distribution.java_home
        port = self.requested_port or process.free_port()
        if process.port_in_use(port):
            raise ClusterError(
                f"port {port} on 127.0.0.1 is already in use; pick another with --port or stop what holds it"
            )
        owner = _ensure_run_user()
        if self.run_dir.exists():
            shutil.rmtree(self.run_dir)
        for sub in ("data", "logs", "tmp"):
            (self.run_dir / sub).mkdir(parents=True)
        link_libtorch(home, self.run_dir / "data")
        _chown(home, owner)
        _chown(self.run_dir, owner)
        settings = {
            **STATIC_SETTINGS,
            "discovery.type": "single-node",
            "http.port": port,
            "transport.port": process.free_port(),
            "path.data": self.run_dir / "data",
            "path.logs": self.log_dir,
            "node.name": "osrerank-node",
        }
        cmd = [str(home / "bin/opensearch")] + [arg for k, v in settings.items() for arg in ("-E", f"{k}={v}")]
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "OPENSEARCH_JAVA_HOME": str(java_home),
            "OPENSEARCH_JAVA_OPTS": JAVA_OPTS,
            "OPENSEARCH_TMPDIR": str(self.run_dir / "tmp"),
            "HOME": str(self.run_dir),
        }
        self.progress(f"starting OpenSearch {self.version} on 127.0.0.1:{port}")
        log = self.run_dir / "stdout.log"
        proc = process.spawn(
            cmd, log=log, env=env, error=ClusterError, cwd=self.run_dir,
            user=owner[0] if owner else None, group=owner[1] if owner else None,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        self.state_file.write_text(json.dumps({"pid": proc.pid, "url": url, "version": self.version, "launch": LAUNCH}))
        process.wait_ready(
            proc,
            lambda: process.http_ok(f"{url}/_cluster/health", params={"wait_for_status": "yellow", "timeout": "2s"}),
            what=f"OpenSearch {self.version}",
            log=log,
            timeout_s=BOOT_TIMEOUT_S,
            error=ClusterError,
        )
        self.progress(f"OpenSearch {self.version} is healthy at {url}")
        self.apply_settings()
        return self.status()

    def apply_settings(self) -> None:
        url = self._require_url()
        try:
            reply = requests.put(f"{url}/_cluster/settings", json={"persistent": ml_commons_settings()}, timeout=30)
        except requests.RequestException as exc:
            raise ClusterError(f"applying ml-commons settings to {url} failed: {exc}") from exc
        if reply.status_code != 200:
            raise ClusterError(f"applying ml-commons settings failed: HTTP {reply.status_code} {reply.text[:500]}")

    def down(self) -> bool:
        """Stop the node if it runs; True if one was stopped. Leaves no process behind."""
        state = self._state()
        if not state:
            return False
        stopped = False
        if process.alive(state["pid"]):
            self.progress(f"stopping OpenSearch {self.version} (pid {state['pid']})")
            stopped = process.stop(state["pid"])
        self.state_file.unlink(missing_ok=True)
        return stopped

    def _require_url(self) -> str:
        url = self.running_url()
        if not url:
            raise ClusterError(f"no local OpenSearch {self.version} is running: start it with `osrerank cluster up`")
        return url

    def status(self) -> ClusterInfo:
        url = self._require_url()
        plugins = _get(f"{url}/_cat/plugins", format="json")
        return ClusterInfo(
            url=url,
            version=_get(url)["version"]["number"],
            pid=int((self._state() or {}).get("pid", 0)),
            plugins=sorted({p["component"] for p in plugins}),
            health=_get(f"{url}/_cluster/health")["status"],
        )
