"""A real local OpenSearch with ml-commons and neural-search, started without Docker: one node, or three.

The install comes from distribution.py; this runs it. OpenSearch refuses to run as root, so as root
the nodes run as an unprivileged system user created here. The cluster is found again through a state
file, so ``cluster up`` reuses a running one and ``cluster down`` stops it. The test suite uses
:class:`LocalOpenSearch` as a session fixture; the CLI as ``osrerank cluster up|down|status``.

Three nodes (``--nodes 3``) are what a small production cluster looks like: two data nodes and a
dedicated ML node (no data), all three eligible as cluster manager so that losing any one keeps a
quorum, and ``only_run_on_ml_node`` at its default (models run on the ML node only).
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
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
#: The nodes of a three-node cluster: name -> (roles, heap). Sized for 24 GiB and 2 cores.
THREE_NODES = {
    "data-1": ("cluster_manager,data,ingest", "1g"),
    "data-2": ("cluster_manager,data,ingest", "1g"),
    "ml-1": ("cluster_manager,ml", "1536m"),
}
#: Node settings that are the same at every start. A running node started with others is restarted.
STATIC_SETTINGS = {
    "network.host": "127.0.0.1",
    "cluster.name": "osrerank",
    "cluster.routing.allocation.disk.threshold_enabled": "false",
    # count only tracked allocations in the parent breaker: in-cluster model uploads leave garbage that a
    # real-memory breaker takes for load, answering 429 until the next collection
    "indices.breaker.total.use_real_memory": "false",
}
LAUNCH = json.dumps(STATIC_SETTINGS, sort_keys=True)
BOOT_TIMEOUT_S = 180.0


def ml_commons_settings(nodes: int = 1) -> dict[str, object]:
    """Cluster settings that let ml-commons call a model server on this machine.

    On one node, models must be allowed on a node without the ml role (with an ML node, the default
    keeps them there); loopback endpoints must be trusted and private addresses allowed (2.15+ block
    them); the memory circuit breakers are relaxed because a small heap on a small machine would
    otherwise refuse deploys. Chunked model upload is allowed for the in-cluster target.
    """
    return {
        **({"plugins.ml_commons.only_run_on_ml_node": False} if nodes == 1 else {}),
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
    """What ``status`` reports about a running cluster (``pid`` is the first node's)."""

    url: str
    version: str
    pid: int
    plugins: list[str]
    health: str
    nodes: list[str] = field(default_factory=list)


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
    """A local OpenSearch cluster of a given version (one node, or three), with its install, run folder and
    state file.

    Example::

        cluster = LocalOpenSearch("3.6.0", nodes=3)
        info = cluster.up()        # fetches on first use, then starts in ~30 s (one node) or ~1 min (three)
        print(info.url)
        cluster.down()
    """

    def __init__(
        self,
        version: str | None = None,
        *,
        nodes: int | None = None,
        port: int | None = None,
        progress: Progress = quiet,
    ):
        self.version = version or DEFAULT_VERSION
        if not re.fullmatch(r"\d+\.\d+\.\d+", self.version):
            raise ConfigError(
                f"OpenSearch version {self.version!r} is not of the form X.Y.Z "
                f"(supported: {', '.join(SUPPORTED_LINES)})."
            )
        #: None: reuse a running cluster of any size (a fresh one gets 1 node)
        self.asked_nodes = nodes
        self.nodes = self.asked_nodes or 1
        if self.nodes not in (1, 3):
            raise ConfigError(f"--nodes {self.nodes}: osrerank starts 1 node or 3 (two data nodes and an ML node)")
        if port is not None and not 1 <= port <= 65535:
            raise ConfigError(f"port {port} is out of range: pass --port between 1 and 65535")
        self.requested_port, self.progress = port, progress
        self.distribution = Distribution(self.version, progress)
        self.run_dir = cache_root() / "run" / self.version
        self.state_file = self.run_dir / "state.json"

    @property
    def log_dir(self) -> Path:
        """The first node's log folder (``log_dirs`` has every node's)."""
        return self.log_dirs[0]

    @property
    def log_dirs(self) -> list[Path]:
        state = self._state()
        names = [n["name"] for n in state["nodes"]] if state else [*self._layout()]
        return [self.run_dir / name / "logs" for name in names]

    def _layout(self) -> dict[str, tuple[str | None, str]]:
        return {"node-1": (None, HEAP)} if self.nodes == 1 else dict(THREE_NODES)

    def _launch(self) -> str:
        return json.dumps([LAUNCH, self._layout()], sort_keys=True)

    # ----------------------------------------------------------------- state
    def _state(self) -> dict[str, Any] | None:
        try:
            state = dict(json.loads(self.state_file.read_text()))
        except (OSError, ValueError):
            return None
        return state if "nodes" in state else None

    def running_url(self) -> str | None:
        """URL of this version's cluster (its first node) if it is running and answering, else None."""
        state = self._state()
        if not state or not any(process.alive(n["pid"]) for n in state["nodes"]):
            return None
        return str(state["url"]) if process.http_ok(state["url"]) else None

    # ----------------------------------------------------------------- up / down
    def up(self) -> ClusterInfo:
        """Start the cluster (installing first if needed), or reuse the one already running."""
        if self.running_url():
            state = self._state() or {}
            if self.asked_nodes is None:
                self.nodes = len(state["nodes"])
            if state.get("launch") == self._launch():
                self.progress(f"OpenSearch {self.version} is already running")
                self.apply_settings()
                return self.status()
            self.progress(f"restarting OpenSearch {self.version}: it runs with other nodes, JVM options or settings")
            self.down()
        home = self.distribution.install()
        if self.requested_port and process.port_in_use(self.requested_port):
            raise ClusterError(
                f"port {self.requested_port} on 127.0.0.1 is already in use; "
                "pick another with --port or stop what holds it"
            )
        owner = _ensure_run_user()
        if self.run_dir.exists():
            shutil.rmtree(self.run_dir)
        layout = self._layout()
        nodes = [
            {
                "name": name,
                "http": (self.requested_port if i == 0 and self.requested_port else process.free_port()),
                "transport": process.free_port(),
                "roles": roles,
                "heap": heap,
            }
            for i, (name, (roles, heap)) in enumerate(layout.items())
        ]
        for node in nodes:
            for sub in ("data", "logs", "tmp"):
                (self.run_dir / node["name"] / sub).mkdir(parents=True)
            link_libtorch(home, self.run_dir / node["name"] / "data")
        _chown(home, owner)
        _chown(self.run_dir, owner)
        url = f"http://127.0.0.1:{nodes[0]['http']}"
        state = {"url": url, "version": self.version, "launch": self._launch(), "nodes": nodes}
        self.progress(f"starting OpenSearch {self.version}: {len(nodes)} node(s) on 127.0.0.1")
        started = [self._start_node(node, nodes, owner) for node in nodes]
        for node, proc in zip(nodes, started, strict=True):
            node["pid"] = proc.pid
        self.state_file.write_text(json.dumps(state))
        for node, proc in zip(nodes, started, strict=True):
            self._wait_node(node, proc, len(nodes))
        self.progress(f"OpenSearch {self.version} is healthy at {url}")
        self.apply_settings()
        return self.status()

    def _start_node(self, node: dict[str, Any], nodes: list[dict[str, Any]], owner: tuple[int, int] | None) -> Any:
        home, folder = self.distribution.home, self.run_dir / node["name"]
        settings: dict[str, Any] = {
            **STATIC_SETTINGS,
            "node.name": node["name"],
            "http.port": node["http"],
            "transport.port": node["transport"],
            "path.data": folder / "data",
            "path.logs": folder / "logs",
        }
        if len(nodes) == 1:
            settings["discovery.type"] = "single-node"
        else:
            settings["node.roles"] = node["roles"]
            settings["discovery.seed_hosts"] = ",".join(f"127.0.0.1:{n['transport']}" for n in nodes)
            settings["cluster.initial_cluster_manager_nodes"] = ",".join(n["name"] for n in nodes)
        cmd = [str(home / "bin/opensearch")] + [arg for k, v in settings.items() for arg in ("-E", f"{k}={v}")]
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "OPENSEARCH_JAVA_HOME": str(self.distribution.java_home),
            "OPENSEARCH_JAVA_OPTS": f"-Xms{node['heap']} -Xmx{node['heap']}",
            "OPENSEARCH_TMPDIR": str(folder / "tmp"),
            "HOME": str(folder),
        }
        return process.spawn(
            cmd,
            log=folder / "stdout.log",
            env=env,
            error=ClusterError,
            cwd=folder,
            user=owner[0] if owner else None,
            group=owner[1] if owner else None,
        )

    def _wait_node(self, node: dict[str, Any], proc: Any, count: int) -> None:
        url = f"http://127.0.0.1:{node['http']}"
        health = {"wait_for_status": "yellow", "wait_for_nodes": str(count), "timeout": "2s"}
        process.wait_ready(
            proc,
            lambda: process.http_ok(f"{url}/_cluster/health", params=health),
            what=f"OpenSearch {self.version} node {node['name']}",
            log=self.run_dir / node["name"] / "stdout.log",
            timeout_s=BOOT_TIMEOUT_S,
            error=ClusterError,
        )

    def stop_node(self, name: str, *, kill: bool = False) -> None:
        """Stop one node of a running cluster (SIGKILL with ``kill``); for fault tests."""
        node = self._node(name)
        if kill:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(node["pid"], signal.SIGKILL)
        process.stop(node["pid"])

    def start_node(self, name: str) -> None:
        """Start a stopped node again with its ports, folders and settings, and wait until the cluster has it."""
        state = self._state() or {}
        node = self._node(name)
        if process.alive(node["pid"]):
            return
        proc = self._start_node(node, state["nodes"], _ensure_run_user())
        node["pid"] = proc.pid
        self.state_file.write_text(
            json.dumps(state | {"nodes": [node if n["name"] == name else n for n in state["nodes"]]})
        )
        self._wait_node(node, proc, len(state["nodes"]))

    def _node(self, name: str) -> dict[str, Any]:
        for node in (self._state() or {}).get("nodes", []):
            if node["name"] == name:
                return dict(node)
        raise ClusterError(f"no node {name!r} in the local OpenSearch {self.version}")

    def apply_settings(self) -> None:
        url = self._require_url()
        nodes = len((self._state() or {}).get("nodes", [])) or 1
        try:
            reply = requests.put(
                f"{url}/_cluster/settings", json={"persistent": ml_commons_settings(nodes)}, timeout=30
            )
        except requests.RequestException as exc:
            raise ClusterError(f"applying ml-commons settings to {url} failed: {exc}") from exc
        if reply.status_code != 200:
            raise ClusterError(f"applying ml-commons settings failed: HTTP {reply.status_code} {reply.text[:500]}")

    def down(self) -> bool:
        """Stop every node; True if one was running. Leaves no process behind."""
        state = self._state()
        if not state:
            return False
        running = [n for n in state["nodes"] if process.alive(n["pid"])]
        for node in running:
            self.progress(f"stopping OpenSearch {self.version} node {node['name']} (pid {node['pid']})")
            process.stop(node["pid"])
        self.state_file.unlink(missing_ok=True)
        return bool(running)

    def _require_url(self) -> str:
        url = self.running_url()
        if not url:
            raise ClusterError(f"no local OpenSearch {self.version} is running: start it with `osrerank cluster up`")
        return url

    def status(self) -> ClusterInfo:
        url = self._require_url()
        plugins = _get(f"{url}/_cat/plugins", format="json")
        nodes = _get(f"{url}/_cat/nodes", format="json", h="name,node.role")
        return ClusterInfo(
            url=url,
            version=_get(url)["version"]["number"],
            pid=int((self._state() or {"nodes": [{"pid": 0}]})["nodes"][0]["pid"]),
            plugins=sorted({p["component"] for p in plugins}),
            health=_get(f"{url}/_cluster/health")["status"],
            nodes=sorted(f"{n['name']} ({n['node.role']})" for n in nodes),
        )
