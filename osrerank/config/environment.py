"""The process-level ``OSRERANK_*`` variables: what is not a setting of one run but of the machine or the
process (the cache folder, the bearer token, the host a container reaches the stand-in by, test knobs).

Every ``OSRERANK_*`` name the kit reads is either a settings path (sources.py: ``OSRERANK_MODEL__PATH``) or
listed here, and this module is the only reader of the listed ones: a module that needs one calls
:func:`get`. So ``sources.py`` can refuse any other ``OSRERANK_*`` variable as a mistake (with the close
match), and ``tests/unit/test_structure.py`` can check that no other module reads the prefix.
"""

from __future__ import annotations

import os

__all__ = ["PREFIX", "VARIABLES", "get"]

PREFIX = "OSRERANK_"

#: name -> what it is for (the README's list of variables is this table)
VARIABLES: dict[str, str] = {
    "OSRERANK_CONFIG": "TOML settings file every command reads (what --config names)",
    "OSRERANK_CACHE": "the kit's cache folder: OpenSearch installs, node data, stand-in state, ONNX conversions, "
    "gate results [default: /var/cache/osrerank as root, else ~/.cache/osrerank]",
    "OSRERANK_BEARER_TOKEN": "the token bearer-token connectors send and the stand-in accepts (a secret)",
    "OSRERANK_ENDPOINT_HOST": "the host name the cluster reaches the stand-in by, when the cluster runs elsewhere "
    "(host.docker.internal from a container)",
    "OSRERANK_CPU_FLAGS": "comma-separated CPU flags replacing the detected ones (to pin or test a precision choice)",
    "OSRERANK_CLUSTER": "the test suite's cluster: local (default) or testcontainers",
    "OSRERANK_OPENSEARCH_IMAGE": "the image OSRERANK_CLUSTER=testcontainers runs",
    "OSRERANK_JAVA_HOME": "the JDK the local OpenSearch runs on, before OPENSEARCH_JAVA_HOME and JAVA_HOME",
    "OSRERANK_ORT_THREADS": "ONNX Runtime threads of the TorchServe handler",
    "OSRERANK_TORCHSERVE_RECORD": "a file the TorchServe handler appends the pairs it receives to (tests)",
    "OSRERANK_TEST_MODEL": "the test cross-encoder the suites and benchmarks use (tests)",
    "OSRERANK_REAL_MODEL": "a folder of the real ms-marco-MiniLM-L-6-v2, for pytest -m real_model (tests)",
    "OSRERANK_SCIFACT": "the SciFact folder the benchmarks read (benchmarks)",
}


def get(name: str, *, keep_empty: bool = False) -> str | None:
    """A listed variable's value, or None when it is unset (or empty, unless ``keep_empty``)."""
    if name not in VARIABLES:
        raise KeyError(f"{name} is not a listed OSRERANK_ variable: add it to osrerank/config/environment.py")
    value = os.environ.get(name)
    return value if keep_empty else (value or None)
