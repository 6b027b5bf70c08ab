"""osrerank: cross-encoder reranking for OpenSearch in one command."""

from .config import Settings
from .errors import (
    AwsError,
    ClusterError,
    ConfigError,
    ModelLoadError,
    OpenSearchError,
    OsRerankError,
    TemplateError,
    ToolMissingError,
)
from .reranker import Reranker, SetupResult, rank

__all__ = [
    "AwsError",
    "ClusterError",
    "ConfigError",
    "ModelLoadError",
    "OpenSearchError",
    "OsRerankError",
    "Reranker",
    "Settings",
    "SetupResult",
    "TemplateError",
    "ToolMissingError",
    "rank",
]
