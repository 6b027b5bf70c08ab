"""Exceptions raised by osrerank.

Every error a user can cause or fix is an ``OsRerankError``; the CLI prints its message on one line
and exits 1, without a stack trace. Foreign exceptions (opensearch-py, requests, botocore,
onnxruntime, subprocess) are translated once, where they enter: ``opensearch.py`` for the cluster,
``launcher/`` for the local node, ``targets/sagemaker.py`` for AWS, ``model.py`` for the model.

    OsRerankError
    ├── ConfigError          a setting has a bad or missing value
    ├── ToolMissingError     java / mvn / a Python extra is not installed
    ├── ClusterError         the local OpenSearch could not be fetched, started or reached
    ├── EndpointError        the local model endpoint could not be started or reached
    ├── ModelLoadError       a model folder or hub id cannot be loaded
    ├── ScoringError         the model failed while scoring (not the input's fault)
    ├── TemplateError        a connector/pipeline template is unknown, misses variables or renders bad JSON
    ├── OpenSearchError      OpenSearch answered a request with an error
    │   ├── NotFound         ... 404: the object does not exist
    │   └── Conflict         ... 409: the object is in a state that forbids the request
    └── AwsError             an AWS call (SageMaker, STS) failed
"""

from __future__ import annotations

__all__ = [
    "AwsError",
    "ClusterError",
    "ConfigError",
    "Conflict",
    "EndpointError",
    "ModelLoadError",
    "NotFound",
    "OpenSearchError",
    "OsRerankError",
    "ScoringError",
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


class EndpointError(OsRerankError):
    """The local model endpoint (the stand-in) could not be started, reached or stopped."""


class ModelLoadError(OsRerankError):
    """A model folder or hub id cannot be turned into a runnable ONNX model."""


class ScoringError(OsRerankError):
    """The model raised while scoring valid input: a model or runtime fault, not a client mistake."""


class TemplateError(OsRerankError):
    """A template is unknown, lacks variables, or renders to JSON that fails validation."""


class OpenSearchError(OsRerankError):
    """OpenSearch answered with an error; carries the HTTP status and the reason it gave."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class NotFound(OpenSearchError):
    """OpenSearch answered 404: what was asked for does not exist (create-or-reuse code catches this)."""


class Conflict(OpenSearchError):
    """OpenSearch answered 409: the object exists in a state that forbids the request (e.g. still in use)."""


class AwsError(OsRerankError):
    """An AWS API call failed or AWS resources are in an unusable state."""
