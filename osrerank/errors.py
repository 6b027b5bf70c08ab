"""Exceptions raised by osrerank.

Every error a user can cause or fix is an ``OsRerankError``; the CLI prints its
message on one line and exits non-zero, without a stack trace.

    OsRerankError
    ├── ConfigError          a setting has a bad or missing value
    ├── ToolMissingError     java / mvn / a Python extra is not installed
    ├── ClusterError         the local OpenSearch could not be fetched, started or reached
    ├── ModelLoadError       a model folder or hub id cannot be loaded
    ├── TemplateError        a connector/pipeline template is unknown, misses variables or renders bad JSON
    ├── OpenSearchError      OpenSearch answered a request with an error
    └── AwsError             an AWS call (SageMaker, STS) failed
"""

from __future__ import annotations

__all__ = [
    "AwsError",
    "ClusterError",
    "ConfigError",
    "ModelLoadError",
    "OpenSearchError",
    "OsRerankError",
    "TemplateError",
    "ToolMissingError",
]


class OsRerankError(Exception):
    """Root of every error osrerank raises on purpose."""


class ConfigError(OsRerankError):
    """A setting (flag, OSRERANK_* variable or config-file key) has a bad or missing value."""


class ToolMissingError(OsRerankError):
    """An external program or optional Python dependency is not installed."""


class ClusterError(OsRerankError):
    """The local OpenSearch node could not be fetched, started, stopped or reached."""


class ModelLoadError(OsRerankError):
    """A model folder or hub id cannot be turned into a runnable ONNX model."""


class TemplateError(OsRerankError):
    """A template is unknown, lacks variables, or renders to JSON that fails validation."""


class OpenSearchError(OsRerankError):
    """OpenSearch answered with an error; carries the HTTP status and the reason it gave."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AwsError(OsRerankError):
    """An AWS API call failed or AWS resources are in an unusable state."""
