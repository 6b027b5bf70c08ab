"""The one typed configuration that flows through every step: a root composed of sections, each declared
beside the code that uses it.

    name, target        what the kit's objects are called, where the model runs
    cluster             opensearch.py: ClusterOptions (URL, credentials, the local cluster's version and shape)
    model               scorer.py: ModelOptions (folder or hub id, kind, activation, precision, max length...)
    index               ingest.py: IndexOptions (the index searched, the fields reranked)
    pipeline            pipeline.py: PipelineOptions (its name, rank window, fail-open, long documents, batch cap,
                        a pipeline of yours to extend)
    first_stage         first_stage.py: FirstStageOptions (bm25, neural or hybrid; the embedding model)
    connector           connector.py: ConnectorOptions (template, endpoint URL, SigV4 region, timeout)
    targets.<name>      each target's own ``Options`` (targets/standin.py: the server; targets/sagemaker.py ...)

Values come from flags, ``OSRERANK_*`` variables, a TOML file and the defaults, in that order (sources.py);
``Settings(...)`` from Python takes keyword values over the defaults only. A section given as a plain string
sets its main field: ``Settings(model="DIR", index="docs")``. Change one with :meth:`Settings.updated`, which
validates the result again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, create_model, field_validator

from . import records
from .config import sources
from .config.section import Section, setting
from .connector import ConnectorOptions
from .first_stage import FirstStageOptions
from .ingest import IndexOptions
from .opensearch import ClusterOptions
from .pipeline import PipelineOptions
from .scorer import ModelOptions
from .targets import TARGETS

__all__ = ["Settings", "TargetSections"]

#: One section per target that has options, named like the target: ``targets.standin``, ``targets.sagemaker``.
TargetSections: type[Section] = create_model(  # type: ignore[call-overload]
    "TargetSections",
    __base__=Section,
    __doc__="Each target's own options, under its name.",
    **{name: (cls.Options, Field(default_factory=cls.Options)) for name, cls in TARGETS.items() if cls.Options},
)
TargetName = Literal[tuple(TARGETS)]  # type: ignore[valid-type]


class Settings(Section):
    """Everything a setup/search/teardown run needs to know. Frozen: derive with :meth:`updated`."""

    name: str = setting("osrerank", "Prefix of every object the kit creates.")
    target: TargetName = setting(
        "standin", "Where the model runs: " + "; ".join(f"{n}: {t.summary}" for n, t in TARGETS.items()) + "."
    )
    cluster: ClusterOptions = Field(default_factory=ClusterOptions)
    model: ModelOptions = Field(default_factory=ModelOptions)
    index: IndexOptions = Field(default_factory=IndexOptions)
    pipeline: PipelineOptions = Field(default_factory=PipelineOptions)
    first_stage: FirstStageOptions = Field(default_factory=FirstStageOptions)
    connector: ConnectorOptions = Field(default_factory=ConnectorOptions)
    targets: TargetSections = Field(default_factory=TargetSections)  # type: ignore[valid-type]

    @field_validator("name")
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

    # --- making them
    def updated(self, **changes: Any) -> Settings:
        """A copy with ``changes`` (root fields, or sections as mappings or shorthand strings), validated again:
        ``settings.updated(pipeline={"window": 50}, model="DIR")``."""
        merged = sources.deep_merge(self.model_dump(), sources.normalized(Settings, changes))
        return sources.validated(Settings, merged)  # type: ignore[no-any-return]

    @classmethod
    def resolve(
        cls,
        flags: Mapping[str, Any] | None = None,
        *,
        env: Mapping[str, str] | None = None,
        config_file: str | Path | None = None,
        from_record: bool = False,
    ) -> Settings:
        """Settings from flags (dotted paths; None: not given), ``OSRERANK_*`` variables, a TOML file, (with
        ``from_record``) what setup recorded for the pipeline they name or for the latest setup, and the defaults,
        in that order (see sources.py)."""
        return sources.resolve(  # type: ignore[no-any-return]
            cls,
            flags,
            env=os.environ if env is None else env,
            config_file=config_file,
            record=records.recorded if from_record else None,
        )

    def recordable(self) -> dict[str, Any]:
        """These settings as JSON without secrets: what setup records for later commands."""
        return json.loads(json.dumps(sources.secret_free(self.model_dump()), default=str))  # type: ignore[no-any-return]
