"""A local OpenSearch for the kit and its tests: fetched from Maven Central, run without Docker.

java.py          which JDK a line needs
maven.py         fetching artifacts with mvn
modules.py       what the zips lack: 2.x modules, libtorch for DJL
distribution.py  the plugin-ready install in the cache
node.py          running it: up, down, status
containers.py    the same through testcontainers, where a Docker engine exists
"""

from .distribution import DEFAULT_VERSION, SUPPORTED_LINES
from .node import ClusterInfo, LocalOpenSearch, ml_commons_settings

__all__ = ["DEFAULT_VERSION", "SUPPORTED_LINES", "ClusterInfo", "LocalOpenSearch", "ml_commons_settings"]
