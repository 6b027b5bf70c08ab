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

__all__ = [
    "AwsError",
    "ClusterError",
    "ConfigError",
    "ModelLoadError",
    "OpenSearchError",
    "OsRerankError",
    "Settings",
    "TemplateError",
    "ToolMissingError",
]
