"""The one typed configuration that flows through every step.

Precedence, highest first, in :meth:`Settings.resolve`:
    1. explicit values (CLI flags, keyword arguments)
    2. environment variables ``OSRERANK_<FIELD>`` (e.g. ``OSRERANK_INDEX``)
    3. a TOML file (``--config``, or ``$OSRERANK_CONFIG``), flat keys named like the fields
    4. the defaults below
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from .errors import ConfigError

__all__ = ["DEFAULT_MODEL", "Settings"]

DEFAULT_MODEL = "cross-encoder/ms-marco-MiniLM-L-6-v2"
ENV_PREFIX = "OSRERANK_"


class Settings(BaseModel):
    """Everything a setup/search/teardown run needs to know. Frozen: derive with ``model_copy``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # --- cluster
    opensearch_url: str | None = Field(None, description="Cluster URL; unset means the local cluster osrerank starts.")
    opensearch_user: str | None = None
    opensearch_password: SecretStr | None = None
    verify_certs: bool = True
    aws_region: str | None = Field(None, description="Sign cluster requests with SigV4 (Amazon OpenSearch Service).")
    aws_profile: str | None = None
    opensearch_version: str | None = Field(None, description="Version of the local cluster (default 3.6.0).")

    # --- model and endpoint
    target: Literal["local", "sagemaker", "opensearch"] = "local"
    model: str = DEFAULT_MODEL
    kind: Literal["cross-encoder", "bi-encoder"] = "cross-encoder"
    activation: Literal["sigmoid", "none"] = "sigmoid"
    endpoint_url: str | None = Field(None, description="Use this model endpoint instead of deploying one.")
    endpoint_port: int | None = None
    region: str = "us-east-1"

    # --- what gets created in OpenSearch (found again by these names)
    name: str = Field("osrerank", description="Prefix of every object the kit creates.")
    template: str | None = Field(None, description="Connector template; default depends on the target.")
    pipeline: str = "osrerank-rerank"
    index: str = "my-test-data"
    document_fields: tuple[str, ...] = ("passage_text",)
    timeout_s: float = Field(30.0, gt=0, description="Connector read/connect timeout.")

    # --- SageMaker
    instance_type: str = "ml.m5.xlarge"
    instance_count: int = Field(1, ge=1)
    role_arn: str | None = Field(
        None, description="SageMaker execution role; on Amazon OpenSearch Service also the connector's role."
    )
    endpoint_name: str | None = Field(None, description="SageMaker endpoint name (default: <name>-cross-encoder).")
    connector_role_arn: str | None = Field(
        None, description="IAM role the connector assumes to invoke SageMaker (Amazon OpenSearch Service)."
    )
    transformers_version: str = "4.37"
    pytorch_version: str = "2.1"
    py_version: str = "py310"
    serverless_memory_mb: int | None = Field(None, description="Deploy serverless with this memory (1024-6144).")
    serverless_max_concurrency: int = Field(5, ge=1)
    autoscale_target: int | None = Field(None, description="Autoscale to keep invocations/instance/minute near this.")
    autoscale_max_instances: int = Field(4, ge=1)

    @field_validator("document_fields", mode="before")
    @classmethod
    def _split_fields(cls, v: Any) -> Any:
        if isinstance(v, str):
            return tuple(f.strip() for f in v.split(",") if f.strip())
        return v

    @field_validator("name", "pipeline", "index")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v

    @property
    def connector_template(self) -> str:
        """The connector template for this target unless one was chosen explicitly."""
        return self.template or "sagemaker-hf-text-classification"

    @classmethod
    def resolve(
        cls,
        explicit: Mapping[str, Any] | None = None,
        *,
        env: Mapping[str, str] | None = None,
        config_file: str | Path | None = None,
    ) -> Settings:
        """Merge explicit values, OSRERANK_* variables, a TOML file and defaults (in that order).

        ``None`` in ``explicit`` means "not given" so that CLI options without a value fall through.
        """
        env = os.environ if env is None else env
        merged: dict[str, Any] = {}
        path = config_file or env.get(f"{ENV_PREFIX}CONFIG")
        if path:
            merged.update(_read_toml(Path(path)))
        for field in cls.model_fields:
            value = env.get(ENV_PREFIX + field.upper())
            if value is not None and value != "":
                merged[field] = value
        merged.update({k: v for k, v in (explicit or {}).items() if v is not None})
        unknown = sorted(set(merged) - set(cls.model_fields))
        if unknown:
            raise ConfigError(f"unknown setting(s) {', '.join(unknown)}; known: {', '.join(cls.model_fields)}")
        try:
            return cls(**merged)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])} = {e.get('input')!r}: {e['msg']}" for e in exc.errors()
            )
            raise ConfigError(
                f"invalid setting: {problems} (flag --x-y, variable OSRERANK_X_Y, or config key)"
            ) from None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    return data.get("osrerank", data)
