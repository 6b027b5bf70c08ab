"""The one typed configuration that flows through every step.

Precedence, highest first, in :meth:`Settings.resolve`:
    1. explicit values (CLI flags, keyword arguments)
    2. environment variables ``OSRERANK_<FIELD>`` (e.g. ``OSRERANK_INDEX``)
    3. a TOML file (``--config``, or ``$OSRERANK_CONFIG``), flat keys named like the fields
    4. the defaults below

Each field carries what the CLI needs to offer it as a flag (its group and, where it is not the field
name, its flag), so flags and their help are never written twice.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from .errors import ConfigError

__all__ = ["DEFAULT_MODEL", "ENV_PREFIX", "Chunking", "Settings", "chunking", "flag_of"]

DEFAULT_MODEL = "cross-encoder/ms-marco-MiniLM-L-6-v2"
ENV_PREFIX = "OSRERANK_"


def _cli(group: str, flag: str | None = None) -> dict[str, Any]:
    """Field metadata for the CLI: the group of commands that offer it, and its flag when not --field-name."""
    return {"group": group, **({"flag": flag} if flag else {})}


class Settings(BaseModel):
    """Everything a setup/search/teardown run needs to know. Frozen: derive with ``model_copy``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # --- cluster
    opensearch_url: str | None = Field(
        None, description="Cluster URL [default: the local cluster osrerank starts].", json_schema_extra=_cli("cluster")
    )
    opensearch_user: str | None = Field(
        None, description="Basic-auth user (password: OSRERANK_OPENSEARCH_PASSWORD).", json_schema_extra=_cli("cluster")
    )
    opensearch_password: SecretStr | None = Field(None, description="Basic-auth password (variable or config only).")
    verify_certs: bool = Field(
        True, description="Verify the cluster's TLS certificate.", json_schema_extra=_cli("cluster")
    )
    aws_region: str | None = Field(
        None,
        description="Sign cluster requests with SigV4 (Amazon OpenSearch Service).",
        json_schema_extra=_cli("cluster"),
    )
    aws_profile: str | None = Field(
        None, description="AWS profile for --aws-region.", json_schema_extra=_cli("cluster")
    )
    opensearch_version: str | None = Field(
        None, description="Version of the local cluster [default: 3.6.0].", json_schema_extra=_cli("cluster")
    )

    # --- model and endpoint
    target: str = Field(
        "standin", description="Where the model runs (see `osrerank targets`).", json_schema_extra=_cli("model")
    )
    model: str = Field(
        DEFAULT_MODEL, description="Model folder or Hugging Face Hub id.", json_schema_extra=_cli("model")
    )
    kind: Literal["cross-encoder", "bi-encoder"] = Field(
        "cross-encoder", description="bi-encoder: cosine of mean-pooled embeddings.", json_schema_extra=_cli("model")
    )
    activation: Literal["sigmoid", "none"] = Field(
        "sigmoid",
        description="Score activation: sigmoid (the tutorial's) or none (raw logits).",
        json_schema_extra=_cli("model"),
    )
    precision: Literal["auto", "fp32", "bf16", "int8"] = Field(
        "fp32",
        description="fp32: exact. bf16 (OpenVINO; CPUs with AVX512-BF16/AMX) or int8: reduced precision, refused "
        "unless they keep the ranking (the fidelity gate). auto: of fp32 and the modes that pass, the fastest as "
        "timed on this machine. Stand-in and opensearch targets.",
        json_schema_extra=_cli("model"),
    )
    gate_pairs: str | None = Field(
        None,
        description='JSONL of {"query": ..., "documents": [...]} from your data for the precision gate '
        "[default: a built-in sample].",
        json_schema_extra=_cli("model"),
    )
    max_length: int | None = Field(
        None,
        description="Cut each (query, document) pair to this many tokens: faster, may cost relevance "
        "[default: the model's limit, 512]. Stand-in and opensearch targets.",
        json_schema_extra=_cli("model"),
    )
    endpoint_url: str | None = Field(
        None, description="Use this model endpoint instead of deploying one.", json_schema_extra=_cli("model")
    )
    region: str = Field(
        "us-east-1", description="AWS region of the SageMaker endpoint (and of the stand-in's SigV4 scope).",
        json_schema_extra=_cli("model"),
    )  # fmt: skip
    remote_model: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9._:/-]+$",
        description="Model a hosted rerank API is asked for: Cohere's [rerank-v3.5] or a Bedrock model id "
        "[amazon.rerank-v1:0].",
        json_schema_extra=_cli("model"),
    )
    template: str | None = Field(
        None, description="Connector template [default: the target's].", json_schema_extra=_cli("model")
    )
    timeout_s: float = Field(
        30.0, gt=0, description="Model call timeout in seconds.", json_schema_extra=_cli("model", "--timeout")
    )

    # --- what gets created in OpenSearch (found again by these names)
    name: str = Field(
        "osrerank", description="Prefix of every object the kit creates.", json_schema_extra=_cli("names")
    )
    pipeline: str = Field("osrerank-rerank", description="Search pipeline name.", json_schema_extra=_cli("names"))
    index: str = Field("my-test-data", description="Index to search.", json_schema_extra=_cli("names"))
    document_fields: tuple[str, ...] = Field(
        ("passage_text",), description="Comma-separated fields to rerank on.", json_schema_extra=_cli("names")
    )

    # --- what the pipeline does for every search (pipelines/rerank.json.j2)
    window: int | None = Field(
        None,
        ge=1,
        description="Rank window: rerank the top K first-stage hits of every search and return the request's size.",
        json_schema_extra=_cli("pipeline"),
    )
    on_model_failure: Literal["fail", "first-stage"] = Field(
        "fail",
        description="When the model fails: fail the search, or answer in first-stage order "
        "(?verbose_pipeline=true tells which).",
        json_schema_extra=_cli("pipeline"),
    )
    long_documents: str = Field(
        "truncate",
        description="truncate (to the model's limit), or chunk[:WORDS[:STRIDE[:PASSAGES]]]: score overlapping "
        "passages, a document gets its best passage's score [chunk: 200 words, stride 100, 4 passages].",
        json_schema_extra=_cli("pipeline"),
    )
    max_batch: int | None = Field(
        None,
        ge=1,
        description="Most texts the model server takes in one request (TEI's --max-client-batch-size): the pipeline "
        "then calls the model once per hit (in parallel), so any page or window fits.",
        json_schema_extra=_cli("pipeline"),
    )

    # --- SageMaker
    update: bool = Field(
        False,
        description="Move an existing SageMaker endpoint to changed settings.",
        json_schema_extra=_cli("sagemaker"),
    )
    instance_type: str = Field(
        "ml.m5.xlarge", description="SageMaker instance type.", json_schema_extra=_cli("sagemaker")
    )
    instance_count: int = Field(1, ge=1, description="SageMaker instance count.", json_schema_extra=_cli("sagemaker"))
    role_arn: str | None = Field(
        None, description="Execution role the SageMaker endpoint runs as.", json_schema_extra=_cli("sagemaker")
    )
    endpoint_name: str | None = Field(
        None,
        description="SageMaker endpoint name [default: <name>-cross-encoder].",
        json_schema_extra=_cli("sagemaker"),
    )
    connector_role_arn: str | None = Field(
        None,
        description="IAM role the connector assumes (Amazon OpenSearch Service).",
        json_schema_extra=_cli("sagemaker"),
    )
    transformers_version: str = Field(
        "4.37", description="HF DLC transformers version.", json_schema_extra=_cli("sagemaker")
    )
    pytorch_version: str = Field("2.1", description="HF DLC PyTorch version.", json_schema_extra=_cli("sagemaker"))
    py_version: str = Field("py310", description="HF DLC Python version.", json_schema_extra=_cli("sagemaker"))
    serverless_memory_mb: int | None = Field(
        None, description="Deploy serverless with this memory (1024-6144).", json_schema_extra=_cli("sagemaker")
    )
    serverless_max_concurrency: int = Field(
        5, ge=1, description="Serverless max concurrency.", json_schema_extra=_cli("sagemaker")
    )
    autoscale_target: int | None = Field(
        None, description="Autoscale on invocations per instance per minute.", json_schema_extra=_cli("sagemaker")
    )
    autoscale_max_instances: int = Field(
        4, ge=1, description="Autoscaling upper bound.", json_schema_extra=_cli("sagemaker")
    )

    @field_validator("document_fields", mode="before")
    @classmethod
    def _split_fields(cls, v: Any) -> Any:
        if isinstance(v, str):
            return tuple(f.strip() for f in v.split(",") if f.strip())
        return v

    @field_validator("long_documents")
    @classmethod
    def _chunking(cls, v: str) -> str:
        chunking(v)  # raises ValueError with the accepted forms
        return v

    @property
    def chunk(self) -> Chunking | None:
        """How documents are cut into passages, or None to truncate them."""
        return chunking(self.long_documents)

    @field_validator("name", "pipeline", "index")
    @classmethod
    def _not_blank(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v

    # --- the names of what the kit creates, all derived from ``name``
    @property
    def connector_name(self) -> str:
        return f"{self.name}-connector"

    @property
    def model_name(self) -> str:
        return f"{self.name}-model"

    @property
    def group_name(self) -> str:
        return f"{self.name}-group"

    @property
    def eval_pipeline(self) -> str:
        """The rerank pipeline ``osrerank eval`` uses (over the eval index's combined field)."""
        return f"{self.name}-eval-rerank"

    def eval_index(self, dataset: str) -> str:
        """The index ``osrerank eval`` loads a dataset's corpus into."""
        return f"{self.name}-eval-{dataset.lower()}"

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
            raise ConfigError("invalid setting: " + "; ".join(_problem(e) for e in exc.errors())) from None


@dataclass(frozen=True)
class Chunking:
    """Overlapping passages of ``words`` whitespace-separated words, ``stride`` apart, at most ``passages``."""

    words: int = 200
    stride: int = 100
    passages: int = 4

    @property
    def reach(self) -> int:
        """Words a document is read up to."""
        return (self.passages - 1) * self.stride + self.words


def chunking(spec: str) -> Chunking | None:
    """``truncate`` -> None; ``chunk[:WORDS[:STRIDE[:PASSAGES]]]`` -> Chunking."""
    name, *numbers = spec.split(":")
    if name == "truncate" and not numbers:
        return None
    chunk = None
    if name == "chunk" and len(numbers) <= 3 and all(n.isdigit() for n in numbers):
        words = int(numbers[0]) if numbers else Chunking.words
        stride = int(numbers[1]) if len(numbers) > 1 else max(1, words // 2)
        chunk = Chunking(words, stride, int(numbers[2]) if len(numbers) > 2 else Chunking.passages)
    if chunk is None or not 1 <= chunk.stride <= chunk.words or chunk.passages < 1:
        raise ValueError(
            f"{spec!r} is not truncate or chunk[:WORDS[:STRIDE[:PASSAGES]]] with 1 <= STRIDE <= WORDS "
            "(e.g. chunk:200:100)"
        )
    return chunk


def flag_of(field: str) -> str | None:
    """The CLI flag of a Settings field, or None for a field offered only as a variable or config key."""
    extra = Settings.model_fields[field].json_schema_extra
    if not isinstance(extra, dict) or "group" not in extra:
        return None
    return str(extra.get("flag") or "--" + field.replace("_", "-"))


def _problem(error: Any) -> str:
    """One validation problem, naming the field's flag, variable and config key, and its value only when
    the field holds no secret."""
    field = str(error["loc"][0]) if error["loc"] else "?"
    names = [n for n in (flag_of(field) if field in Settings.model_fields else None,) if n]
    names += [f"variable {ENV_PREFIX}{field.upper()}", f"config key {field}"]
    secret = field in Settings.model_fields and "SecretStr" in str(Settings.model_fields[field].annotation)
    value = "" if secret else f" = {error.get('input')!r}"
    return f"{field}{value}: {error['msg']} (set with {', '.join(names)})"


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    return data.get("osrerank", data)
