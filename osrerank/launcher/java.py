"""Find a JDK of the major version an OpenSearch line needs."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from ..config.environment import get
from ..errors import ToolMissingError

__all__ = ["find_java_home", "java_major", "java_range"]


def java_range(version: str) -> tuple[int, int | None]:
    """3.x needs JDK 21+; 2.x runs under the Security Manager, which JDK 24 removed."""
    return (21, None) if int(version.split(".")[0]) >= 3 else (11, 21)


def java_major(java: Path) -> int | None:
    """The major version ``java -version`` reports, or None if it cannot run."""
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
    for home in (get("OSRERANK_JAVA_HOME"), os.environ.get("OPENSEARCH_JAVA_HOME"), os.environ.get("JAVA_HOME")):
        if home:
            candidates.append(Path(home))
    jvm = Path("/usr/lib/jvm")
    if jvm.is_dir():
        candidates += sorted((p for p in jvm.iterdir() if (p / "bin/java").exists()), reverse=True)
    on_path = shutil.which("java")
    if on_path:
        candidates.append(Path(os.path.realpath(on_path)).parent.parent)
    seen: list[str] = []
    for home in candidates:
        major = java_major(home / "bin/java")
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
