"""Fetch artifacts from Maven Central with ``mvn`` (which honours the machine's Maven settings)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from ..errors import ClusterError, ToolMissingError

__all__ = ["DEPENDENCY_PLUGIN", "Maven", "NotOnMavenCentral"]

DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.6.1"


class NotOnMavenCentral(ClusterError):
    """Maven answered, but the artifact is not there (as opposed to Maven Central being out of reach)."""


class Maven:
    """``mvn`` run with a given JDK."""

    def __init__(self, java_home: Path) -> None:
        mvn = shutil.which("mvn")
        if not mvn:
            raise ToolMissingError(
                "mvn (Apache Maven) is needed to fetch OpenSearch from Maven Central: apt-get install maven"
            )
        self.mvn, self.java_home = mvn, java_home

    def copy(self, artifact: str, dest: Path) -> None:
        """Download one artifact (``group:artifact:version[:type[:classifier]]``) into ``dest``."""
        self.run([f"{DEPENDENCY_PLUGIN}:copy", f"-Dartifact={artifact}", f"-DoutputDirectory={dest}"], artifact)

    def exists(self, artifact: str, scratch: Path) -> bool:
        """Whether Maven Central serves ``artifact``; False only when it answers that it has none."""
        try:
            self.copy(artifact, scratch)
            return True
        except NotOnMavenCentral:
            return False

    def copy_dependencies(self, pom: str, dest: Path, what: str, work: Path) -> None:
        """Download the runtime dependencies a one-off pom declares into ``dest``."""
        work.mkdir(parents=True, exist_ok=True)
        (work / "pom.xml").write_text(pom)
        self.run(
            [f"{DEPENDENCY_PLUGIN}:copy-dependencies", "-DincludeScope=runtime", f"-DoutputDirectory={dest}"],
            what,
            work,
        )

    def run(self, args: list[str], what: str, cwd: Path | None = None) -> None:
        try:
            proc = subprocess.run(
                [self.mvn, "-B", "-q", *args],
                capture_output=True,
                text=True,
                cwd=cwd,
                env={**os.environ, "JAVA_HOME": str(self.java_home)},
            )
        except OSError as exc:
            raise ToolMissingError(f"cannot run mvn: {exc}") from exc
        if proc.returncode == 0:
            return
        output = proc.stdout + proc.stderr
        if "Could not find artifact" in output or "was not found in" in output:
            raise NotOnMavenCentral(f"{what} is not on Maven Central")
        tail = "\n".join(line for line in output.strip().splitlines()[-8:] if "[ERROR]" in line)[-800:]
        raise ClusterError(
            f"download of {what} from Maven Central failed (mvn exit {proc.returncode}). "
            f"Check network access to Maven Central and your ~/.m2/settings.xml.\n{tail}"
        )
