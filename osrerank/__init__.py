"""osrerank: cross-encoder reranking for OpenSearch in one command."""

from .errors import (
    AwsError,
    ClusterError,
    ConfigError,
    Conflict,
    EndpointError,
    ModelLoadError,
    NotFound,
    OpenSearchError,
    OsRerankError,
    ScoringError,
    TemplateError,
    ToolMissingError,
)
from .reranker import Reranker, SetupResult, rank
from .settings import Settings

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
    "Reranker",
    "ScoringError",
    "Settings",
    "SetupResult",
    "TemplateError",
    "ToolMissingError",
    "rank",
]
