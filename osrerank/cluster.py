"""A real single-node OpenSearch with ml-commons and neural-search, started without Docker.

The server (minimal ``integ-test-zip`` distribution) and the four plugins are fetched from
Maven Central with ``mvn``, installed once into a cache folder outside the repository, and
reused on the next start. OpenSearch refuses to run as root, so when we are root the node
runs as an unprivileged system user that we create.

The test suite uses :class:`LocalCluster` as a session fixture; the CLI exposes it as
``osrerank cluster up|down|status``.
"""

from __future__ import annotations

import json
import os
import platform
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import requests

from .errors import ClusterError, ConfigError, ToolMissingError
from .paths import cache_root

__all__ = [
    "DEFAULT_VERSION",
    "PLUGINS",
    "SUPPORTED_LINES",
    "ClusterInfo",
    "LocalCluster",
    "ml_commons_settings",
]

DEFAULT_VERSION = "3.6.0"
#: Release lines known to work, newest first. Each needs the server and all four plugins on Maven Central.
SUPPORTED_LINES = ("3.6.0", "2.19.6")
SERVER_ARTIFACT = "org.opensearch.distribution.integ-test-zip:opensearch:{v}:zip"
#: Install order matters: a plugin that extends another comes after it.
PLUGINS = (
    ("opensearch-job-scheduler", "org.opensearch.plugin:opensearch-job-scheduler:{v}.0:zip"),
    ("opensearch-ml", "org.opensearch.plugin:opensearch-ml-plugin:{v}.0:zip"),
    ("opensearch-knn", "org.opensearch.plugin:opensearch-knn:{v}.0:zip"),
    ("opensearch-neural-search", "org.opensearch.plugin:neural-search:{v}.0:zip"),
)
#: Modules the plugins need that the 2.x integ-test-zip leaves out (3.x ships them all). Maven Central
#: has each only as a jar + pom, so the module folder is assembled from the jar and its dependencies.
#: lang-painless runs the connectors' scripts; reindex provides delete-by-query, which ml-commons uses
#: to delete an in-cluster model's chunks.
MODULES_2X = ("lang-painless", "reindex")
MODULE_ARTIFACT = {"lang-painless": "lang-painless", "reindex": "reindex-client"}
MODULE_POLICY = {
    "lang-painless": 'grant {\n  permission java.lang.RuntimePermission "createClassLoader";\n'
    '  permission java.lang.RuntimePermission "getClassLoader";\n};\n',
    "reindex": 'grant {\n  permission java.net.SocketPermission "*", "connect";\n};\n',
}
MODULE_CLASS = {  # their 2.x names
    "lang-painless": "org.opensearch.painless.PainlessPlugin",
    "reindex": "org.opensearch.index.reindex.ReindexPlugin",
}
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1"
RUN_USER = "osrerank"
HEAP = "2g"  # 1 GB trips the parent circuit breaker after a few in-cluster model deploys
JAVA_OPTS = f"-Xms{HEAP} -Xmx{HEAP}"
#: DJL (inside ml-commons) runs an in-cluster ONNX model with PyTorch as its helper engine and downloads
#: libtorch + its JNI library from publish.djl.ai on first use, which fails offline. The same files are
#: on Maven Central: fetched once with the server and linked into the node's DJL cache at every start.
DJL_PLATFORM = "linux-x86_64"
BOOT_TIMEOUT_S = 180.0

Progress = Callable[[str], None]


def _quiet(_: str) -> None:
    pass


def ml_commons_settings() -> dict[str, object]:
    """Cluster settings that let ml-commons call a model server on this machine.

    Remote models must be allowed on a node without the ml role; loopback endpoints must be
    trusted and private addresses allowed (2.15+ block them); the memory circuit breakers
    are relaxed because a 1 GB heap on a small machine would otherwise refuse deploys. Chunked model
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
    """What ``status`` reports about a running node."""

    url: str
    version: str
    pid: int
    plugins: list[str]
    health: str


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_in_use(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _java_major(java: Path) -> int | None:
    try:
        out = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=30).stderr
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r'version "(\d+)(?:\.(\d+))?', out)
    if not m:
        return None
    major = int(m.group(1))
    return int(m.group(2)) if major == 1 and m.group(2) else major


def find_java_home(min_major: int, max_major: int | None = None) -> Path:
    """Pick a JDK whose major version is in ``[min_major, max_major]``.

    Order: $OSRERANK_JAVA_HOME, $OPENSEARCH_JAVA_HOME, $JAVA_HOME, then every JDK under
    /usr/lib/jvm (newest first), then ``java`` on PATH.
    """
    candidates: list[Path] = []
    for var in ("OSRERANK_JAVA_HOME", "OPENSEARCH_JAVA_HOME", "JAVA_HOME"):
        if os.environ.get(var):
            candidates.append(Path(os.environ[var]))
    jvm = Path("/usr/lib/jvm")
    if jvm.is_dir():
        candidates += sorted((p for p in jvm.iterdir() if (p / "bin/java").exists()), reverse=True)
    on_path = shutil.which("java")
    if on_path:
        candidates.append(Path(os.path.realpath(on_path)).parent.parent)
    seen: list[str] = []
    for home in candidates:
        major = _java_major(home / "bin/java")
        if major is not None:
            seen.append(f"{home} (Java {major})")
            if major >= min_major and (max_major is None or major <= max_major):
                return home
    found = "; found: " + ", ".join(seen) if seen else "; no Java was found at all"
    wanted = f"Java {min_major} to {max_major}" if max_major else f"Java {min_major} or newer"
    raise ToolMissingError(
        f"OpenSearch needs {wanted}{found}. Install such a JDK "
        "(e.g. apt-get install openjdk-17-jdk for 2.x, Temurin 21+ for 3.x) or set OSRERANK_JAVA_HOME."
    )


def _ensure_run_user() -> tuple[int, int] | None:
    """Return (uid, gid) to run the node as, creating the user when we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pw = pwd.getpwnam(RUN_USER)
    except KeyError:
        nologin = "/usr/sbin/nologin" if Path("/usr/sbin/nologin").exists() else "/bin/false"
        proc = subprocess.run(
            ["useradd", "--system", "--no-create-home", "--shell", nologin, RUN_USER],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            raise ClusterError(
                f"OpenSearch refuses to run as root and creating user {RUN_USER!r} failed: "
                f"{proc.stderr.strip()}. Create it yourself or run osrerank as a normal user."
            ) from None
        pw = pwd.getpwnam(RUN_USER)
    return pw.pw_uid, pw.pw_gid


def _chown_tree(path: Path, owner: tuple[int, int] | None) -> None:
    if owner is None:
        return
    subprocess.run(["chown", "-R", f"{owner[0]}:{owner[1]}", str(path)], check=True)


class LocalCluster:
    """One local OpenSearch node of a given version, with its cache and state file.

    Example::

        cluster = LocalCluster("3.6.0")
        info = cluster.up()        # fetches on first use, then starts in ~30 s
        print(info.url)
        cluster.down()
    """

    def __init__(self, version: str | None = None, *, port: int | None = None, progress: Progress = _quiet):
        self.version = version or os.environ.get("OSRERANK_OPENSEARCH_VERSION") or DEFAULT_VERSION
        if not re.fullmatch(r"\d+\.\d+\.\d+", self.version):
            raise ConfigError(
                f"OpenSearch version {self.version!r} is not of the form X.Y.Z "
                f"(supported: {', '.join(SUPPORTED_LINES)})."
            )
        self.requested_port = port
        self.progress = progress
        self.root = cache_root()
        self.home = self.root / f"opensearch-{self.version}"
        self.run_dir = self.root / "run" / self.version
        self.state_file = self.run_dir / "state.json"

    # ----------------------------------------------------------------- fetch
    @property
    def java_range(self) -> tuple[int, int | None]:
        """3.x needs JDK 21+; 2.x uses the Security Manager, which JDK 24 removed."""
        return (21, None) if int(self.version.split(".")[0]) >= 3 else (11, 21)

    def is_installed(self) -> bool:
        return (self.home / ".osrerank-ready").exists()

    def fetch(self) -> Path:
        """Download server + plugins with mvn and build the plugin-ready server, once."""
        if self.is_installed() and not self._missing_modules(self.home) and (self.home / "djl-pytorch").exists():
            return self.home
        mvn = shutil.which("mvn")
        if not mvn:
            raise ToolMissingError(
                "mvn (Apache Maven) is needed to fetch OpenSearch from Maven Central: apt-get install maven"
            )
        java_home = find_java_home(*self.java_range)
        self.root.mkdir(parents=True, exist_ok=True)
        if self.is_installed():  # installed by an earlier osrerank: complete it in place
            with tempfile.TemporaryDirectory(prefix="osrerank-fetch-", dir=self.root) as tmp:
                self._assemble_missing_modules(mvn, self.home, Path(tmp), java_home)
                if not (self.home / "djl-pytorch").exists():
                    self._fetch_libtorch(mvn, self.home, Path(tmp), java_home)
            return self.home
        with tempfile.TemporaryDirectory(prefix="osrerank-fetch-", dir=self.root) as tmp:
            zips = Path(tmp) / "zips"
            artifacts = [SERVER_ARTIFACT.format(v=self.version)] + [a.format(v=self.version) for _, a in PLUGINS]
            for artifact in artifacts:
                self.progress(f"fetching {artifact}")
                self._mvn_copy(mvn, artifact, zips, java_home)
            staging = Path(tmp) / "server"
            self.progress("unpacking the server")
            _unzip_keeping_modes(zips / f"opensearch-{self.version}.zip", staging)
            server = staging / f"opensearch-{self.version}"
            self._assemble_missing_modules(mvn, server, Path(tmp), java_home)
            env = {**os.environ, "OPENSEARCH_JAVA_HOME": str(java_home), "JAVA_HOME": str(java_home)}
            for name, artifact in PLUGINS:
                self.progress(f"installing plugin {name}")
                zip_name = "{}-{}.zip".format(artifact.split(":")[1], self.version + ".0")
                proc = subprocess.run(
                    [str(server / "bin/opensearch-plugin"), "install", "--batch", (zips / zip_name).as_uri()],
                    capture_output=True,
                    text=True,
                    env=env,
                )
                if proc.returncode != 0:
                    raise ClusterError(
                        f"installing plugin {name} into OpenSearch {self.version} failed:\n"
                        + (proc.stderr or proc.stdout)[-2000:]
                    )
            self._fetch_libtorch(mvn, server, Path(tmp), java_home)
            (server / ".osrerank-ready").write_text(json.dumps({"version": self.version, "artifacts": artifacts}))
            if self.home.exists():
                shutil.rmtree(self.home)
            shutil.move(str(server), self.home)
        return self.home

    @staticmethod
    def _djl_versions(server: Path) -> tuple[str, str] | None:
        """(DJL version, PyTorch version) of the ml plugin's PyTorch engine, from its jar."""
        for jar in (server / "plugins" / "opensearch-ml").glob("pytorch-engine-*.jar"):
            with zipfile.ZipFile(jar) as z:
                props = dict(
                    line.split("=", 1)
                    for line in z.read("pytorch-engine.properties").decode().splitlines()
                    if "=" in line
                )
            return props["djl_version"].strip(), props["pytorch_version"].strip()
        return None

    def _fetch_libtorch(self, mvn: str, server: Path, tmp: Path, java_home: Path) -> None:
        """libtorch (pytorch-native-cpu) and DJL's JNI bridge (pytorch-jni) into ``<server>/djl-pytorch``.

        Maven Central has no pytorch-jni for every DJL release (none for 0.31.x); the next DJL release
        built for the same PyTorch is used then, which has the same JNI entry points.
        """
        versions = self._djl_versions(server)
        if versions is None or platform.machine() != "x86_64":
            return
        djl, torch = versions
        self.progress(f"fetching libtorch {torch} and DJL's JNI library for the in-cluster target")
        jars = tmp / "djl"
        self._mvn_copy(mvn, f"ai.djl.pytorch:pytorch-native-cpu:{torch}:jar:{DJL_PLATFORM}", jars, java_home)
        major, minor = djl.split(".")[:2]
        for candidate in (djl, f"{major}.{int(minor) + 1}.0"):
            try:
                self._mvn_copy(mvn, f"ai.djl.pytorch:pytorch-jni:{torch}-{candidate}", jars, java_home)
                break
            except ClusterError:
                continue
        else:
            self.progress(
                f"no pytorch-jni for PyTorch {torch} on Maven Central: the in-cluster target will need internet"
            )
            return
        target = server / "djl-pytorch"
        target.mkdir()
        with zipfile.ZipFile(next(jars.glob("pytorch-native-cpu-*.jar"))) as z:
            for member in z.namelist():
                if member.startswith(f"pytorch/cpu/{DJL_PLATFORM}/") and not member.endswith("/"):
                    (target / Path(member).name).write_bytes(z.read(member))
        with zipfile.ZipFile(next(jars.glob("pytorch-jni-*.jar"))) as z:
            (target / f"{djl}-libdjl_torch.so").write_bytes(z.read(f"jnilib/{DJL_PLATFORM}/cpu/libdjl_torch.so"))
        (target / "versions.json").write_text(json.dumps({"djl": djl, "pytorch": torch}))

    def _link_libtorch(self) -> None:
        """Make the fetched libtorch the node's DJL cache entry, where DJL looks before downloading."""
        source = self.home / "djl-pytorch"
        if not (source / "versions.json").exists():
            return
        torch = json.loads((source / "versions.json").read_text())["pytorch"]
        # ml-commons (3.x) asks DJL for the precxx11 flavor; 2.19 overrides the version to 1.13.1, which
        # is not on Maven Central, so nothing here serves it
        cache = self.run_dir / "data" / "ml_cache" / "pytorch" / f"{torch}-cpu-precxx11-{DJL_PLATFORM}"
        cache.mkdir(parents=True, exist_ok=True)
        for file in source.iterdir():
            if file.name != "versions.json":  # hard links: no 440 MB copy at every start
                try:
                    os.link(file, cache / file.name)
                except OSError:
                    shutil.copy2(file, cache / file.name)

    def _missing_modules(self, server: Path) -> list[str]:
        return [m for m in MODULES_2X if not (server / "modules" / m).exists()]

    def _assemble_missing_modules(self, mvn: str, server: Path, tmp: Path, java_home: Path) -> None:
        for module in self._missing_modules(server):
            self.progress(f"assembling module {module}")
            self._assemble_module(mvn, module, server / "modules" / module, tmp, java_home)

    def _assemble_module(self, mvn: str, module: str, dest: Path, tmp: Path, java_home: Path) -> None:
        """Build ``modules/<module>`` from its Maven jar + runtime dependencies, as the full distribution has it.

        The descriptor and security policy are what the module's own build writes; 2.x runs under the
        Java Security Manager, so the policy matters.
        """
        project = tmp / f"module-{module}"
        project.mkdir()
        (project / "pom.xml").write_text(
            '<project xmlns="http://maven.apache.org/POM/4.0.0"><modelVersion>4.0.0</modelVersion>'
            f"<groupId>osrerank</groupId><artifactId>{module}-module</artifactId><version>1</version>"
            "<dependencies><dependency><groupId>org.opensearch.plugin</groupId>"
            f"<artifactId>{MODULE_ARTIFACT[module]}</artifactId><version>{self.version}</version>"
            "</dependency></dependencies>"
            "</project>"
        )
        self._mvn(
            mvn,
            [f"{DEPENDENCY_PLUGIN}:copy-dependencies", "-DincludeScope=runtime", f"-DoutputDirectory={dest}"],
            f"org.opensearch.plugin:{MODULE_ARTIFACT[module]}:{self.version} and its dependencies",
            java_home,
            cwd=project,
        )
        for jar in dest.glob("*.jar"):  # the core's own dependencies come along transitively: keep one copy
            if (dest.parent.parent / "lib" / jar.name).exists():
                jar.unlink()
        java = "11" if self.version.startswith("2.") else "21"
        (dest / "plugin-descriptor.properties").write_text(
            f"description={module} module\nversion={self.version}\nname={module}\n"
            f"classname={MODULE_CLASS[module]}\njava.version={java}\nopensearch.version={self.version}\n"
            "custom.foldername=\nextended.plugins=\nhas.native.controller=false\n"
        )
        (dest / "plugin-security.policy").write_text(MODULE_POLICY[module])

    def _mvn_copy(self, mvn: str, artifact: str, dest: Path, java_home: Path) -> None:
        self._mvn(
            mvn,
            [f"{DEPENDENCY_PLUGIN}:copy", f"-Dartifact={artifact}", f"-DoutputDirectory={dest}"],
            artifact,
            java_home,
        )

    def _mvn(self, mvn: str, args: list[str], what: str, java_home: Path, cwd: Path | None = None) -> None:
        cmd = [mvn, "-B", "-q", *args]
        proc = subprocess.run(
            cmd, capture_output=True, text=True, cwd=cwd, env={**os.environ, "JAVA_HOME": str(java_home)}
        )
        if proc.returncode != 0:
            tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-8:])
            raise ClusterError(
                f"download of {what} from Maven Central failed (mvn exit {proc.returncode}). "
                f"Check network access to Maven Central and your ~/.m2/settings.xml.\n{tail}"
            )

    # ----------------------------------------------------------------- state
    def _read_state(self) -> dict | None:
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return None

    @staticmethod
    def _alive(pid: int) -> bool:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        # A zombie child still answers kill(0); reap it if it is ours.
        try:
            done, _ = os.waitpid(pid, os.WNOHANG)
            return done == 0
        except ChildProcessError:
            return Path(f"/proc/{pid}").exists() and "Z" not in _proc_state(pid)

    def running_url(self) -> str | None:
        """URL of this version's node if it is running and answering, else None."""
        state = self._read_state()
        if not state or not self._alive(state["pid"]):
            return None
        try:
            requests.get(state["url"], timeout=5).raise_for_status()
        except requests.RequestException:
            return None
        return str(state["url"])

    # ----------------------------------------------------------------- up / down
    def up(self) -> ClusterInfo:
        """Start the node (fetching first if needed), or reuse the one already running."""
        if self.running_url():
            if (self._read_state() or {}).get("java_opts") == JAVA_OPTS:
                self.progress(f"OpenSearch {self.version} is already running")
                self.apply_settings()
                return self.status()
            self.progress(f"restarting OpenSearch {self.version}: it runs with other JVM options")
            self.down()
        self.fetch()
        java_home = find_java_home(*self.java_range)
        port = self.requested_port or _free_port()
        if _port_in_use(port):
            raise ClusterError(
                f"port {port} on 127.0.0.1 is already in use; pick another with --port or stop what holds it"
            )
        owner = _ensure_run_user()
        if self.run_dir.exists():
            shutil.rmtree(self.run_dir)
        (self.run_dir / "data").mkdir(parents=True)
        (self.run_dir / "logs").mkdir()
        (self.run_dir / "tmp").mkdir()
        self._link_libtorch()
        _chown_tree(self.home, owner)
        _chown_tree(self.run_dir, owner)
        log_path = self.run_dir / "stdout.log"
        cmd = [
            str(self.home / "bin/opensearch"),
            "-E", "discovery.type=single-node",
            "-E", "network.host=127.0.0.1",
            "-E", f"http.port={port}",
            "-E", f"transport.port={_free_port()}",
            "-E", f"path.data={self.run_dir / 'data'}",
            "-E", f"path.logs={self.run_dir / 'logs'}",
            "-E", "cluster.name=osrerank",
            "-E", "node.name=osrerank-node",
            "-E", "cluster.routing.allocation.disk.threshold_enabled=false",
        ]  # fmt: skip
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "OPENSEARCH_JAVA_HOME": str(java_home),
            "OPENSEARCH_JAVA_OPTS": JAVA_OPTS,
            "OPENSEARCH_TMPDIR": str(self.run_dir / "tmp"),
            "HOME": str(self.run_dir),
        }
        self.progress(f"starting OpenSearch {self.version} on 127.0.0.1:{port}")
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                cmd,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self.run_dir,
                start_new_session=True,
                user=owner[0] if owner else None,
                group=owner[1] if owner else None,
            )
        url = f"http://127.0.0.1:{port}"
        state = {"pid": proc.pid, "url": url, "version": self.version, "java_opts": JAVA_OPTS}
        self.state_file.write_text(json.dumps(state))
        self._wait_healthy(proc, url, log_path)
        self.apply_settings()
        return self.status()

    def _wait_healthy(self, proc: subprocess.Popen, url: str, log_path: Path) -> None:
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise ClusterError(
                    f"OpenSearch {self.version} exited during boot (code {proc.returncode}). "
                    f"Last lines of {log_path}:\n{_tail(log_path)}"
                )
            try:
                r = requests.get(
                    f"{url}/_cluster/health", params={"wait_for_status": "yellow", "timeout": "2s"}, timeout=5
                )
                if r.status_code == 200:
                    self.progress(f"OpenSearch {self.version} is healthy at {url}")
                    return
            except requests.RequestException:
                pass
            time.sleep(1)
        self._stop_pid(proc.pid)
        raise ClusterError(
            f"OpenSearch {self.version} did not become healthy within {BOOT_TIMEOUT_S:.0f}s. "
            f"Last lines of {log_path}:\n{_tail(log_path)}"
        )

    def apply_settings(self) -> None:
        url = self._require_url()
        r = requests.put(f"{url}/_cluster/settings", json={"persistent": ml_commons_settings()}, timeout=30)
        if r.status_code != 200:
            raise ClusterError(f"applying ml-commons settings failed: HTTP {r.status_code} {r.text[:500]}")

    def down(self) -> bool:
        """Stop the node if it runs; True if one was stopped. Leaves no process behind."""
        state = self._read_state()
        if not state:
            return False
        stopped = False
        if self._alive(state["pid"]):
            self.progress(f"stopping OpenSearch {self.version} (pid {state['pid']})")
            self._stop_pid(state["pid"])
            stopped = True
        self.state_file.unlink(missing_ok=True)
        return stopped

    def _stop_pid(self, pid: int, grace_s: float = 30.0) -> None:
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            if not self._alive(pid):
                return
            time.sleep(0.25)
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        while self._alive(pid):
            time.sleep(0.1)

    def _require_url(self) -> str:
        url = self.running_url()
        if not url:
            raise ClusterError(f"no local OpenSearch {self.version} is running: start it with `osrerank cluster up`")
        return url

    def status(self) -> ClusterInfo:
        url = self._require_url()
        root = requests.get(url, timeout=10).json()
        plugins = requests.get(f"{url}/_cat/plugins", params={"format": "json"}, timeout=10).json()
        health = requests.get(f"{url}/_cluster/health", timeout=10).json()
        state = self._read_state() or {}
        return ClusterInfo(
            url=url,
            version=root["version"]["number"],
            pid=int(state.get("pid", 0)),
            plugins=sorted({p["component"] for p in plugins}),
            health=health["status"],
        )


def _unzip_keeping_modes(archive: Path, dest: Path) -> None:
    """Extract a zip and restore Unix permission bits (zipfile drops them; bin/ must stay executable)."""
    with zipfile.ZipFile(archive) as zf:
        for member in zf.infolist():
            target = Path(zf.extract(member, dest))
            mode = (member.external_attr >> 16) & 0o777
            if mode:
                target.chmod(mode)


def _proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return ""


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log written)"
