"""An OpenSearch install with ml-commons and neural-search, built once from Maven Central into the cache.

The server (minimal ``integ-test-zip``) and the four plugins are fetched with ``mvn``, the plugins
installed, the modules the 2.x zip lacks assembled and libtorch added (modules.py); the result is
kept under the cache and reused by every later start.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import zipfile
from pathlib import Path

from ..errors import ClusterError
from ..paths import cache_root
from ..types import Progress, quiet
from .java import find_java_home, java_range
from .maven import Maven, NotOnMavenCentral
from .modules import assemble_missing_modules, fetch_libtorch, missing_modules

__all__ = ["DEFAULT_VERSION", "PLUGINS", "SUPPORTED_LINES", "Distribution"]

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
READY = ".osrerank-ready"


class Distribution:
    """The plugin-ready server of one version, in the cache."""

    def __init__(self, version: str, progress: Progress = quiet) -> None:
        self.version, self.progress = version, progress
        self.root = cache_root()
        self.home = self.root / f"opensearch-{version}"

    @property
    def java_home(self) -> Path:
        return find_java_home(*java_range(self.version))

    def is_complete(self) -> bool:
        return (self.home / READY).exists() and not missing_modules(self.home) and (self.home / "djl-pytorch").exists()

    def install(self) -> Path:
        """Fetch and build the server once; complete an install an earlier osrerank left without some part."""
        if self.is_complete():
            return self.home
        maven = Maven(self.java_home)
        self.root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="osrerank-fetch-", dir=self.root) as tmp:
            work = Path(tmp)
            if (self.home / READY).exists():  # installed by an earlier osrerank: complete it in place
                assemble_missing_modules(maven, self.home, self.version, work, self.progress)
                if not (self.home / "djl-pytorch").exists():
                    fetch_libtorch(maven, self.home, work, self.progress)
                return self.home
            server = self._build(maven, work)
            if self.home.exists():
                shutil.rmtree(self.home)
            shutil.move(str(server), self.home)
        return self.home

    def _build(self, maven: Maven, work: Path) -> Path:
        zips = work / "zips"
        artifacts = [("the server zip", SERVER_ARTIFACT.format(v=self.version))]
        artifacts += [(f"the {name} plugin zip", a.format(v=self.version)) for name, a in PLUGINS]
        for part, artifact in artifacts:
            self.progress(f"fetching {artifact}")
            try:
                maven.copy(artifact, zips)
            except NotOnMavenCentral:
                raise ClusterError(
                    f"OpenSearch {self.version} cannot be installed from Maven Central: {part} ({artifact}) is not "
                    f"there. Lines known to work: {', '.join(SUPPORTED_LINES)} (pass --version)."
                ) from None
        self.progress("unpacking the server")
        _unzip_keeping_modes(zips / f"opensearch-{self.version}.zip", work / "server")
        server = work / "server" / f"opensearch-{self.version}"
        assemble_missing_modules(maven, server, self.version, work, self.progress)
        env = {**os.environ, "OPENSEARCH_JAVA_HOME": str(maven.java_home), "JAVA_HOME": str(maven.java_home)}
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
        fetch_libtorch(maven, server, work, self.progress)
        (server / READY).write_text(json.dumps({"version": self.version, "artifacts": [a for _, a in artifacts]}))
        return server


def _unzip_keeping_modes(archive: Path, dest: Path) -> None:
    """Extract a zip and restore Unix permission bits (zipfile drops them; bin/ must stay executable)."""
    with zipfile.ZipFile(archive) as zf:
        for member in zf.infolist():
            target = Path(zf.extract(member, dest))
            mode = (member.external_attr >> 16) & 0o777
            if mode:
                target.chmod(mode)
