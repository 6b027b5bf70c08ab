"""The deploy-target interface: where the model runs, behind one small seam.

A target makes an ml-commons model that scores (query, document) pairs, finds it again, and removes
what it made. Remote targets (a model server reached over HTTP: the stand-in, SageMaker, ...) share
the connector path in :class:`RemoteTarget`: model server -> connector -> remote model. A target
that runs the model inside OpenSearch implements :class:`Target` directly. Targets are chosen by name
in ``osrerank/targets/__init__.py``; adding one is a module here plus its line there.
"""

from __future__ import annotations

import contextlib
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

from ..config import Settings
from ..connector import delete_connector, ensure_connector, render_connector
from ..errors import ConfigError
from ..ml_commons import MLCommons
from ..templates import connector_template
from ..types import Credentials, Found, Progress, quiet
from .local_secrets import local_secrets

__all__ = ["Endpoint", "RemoteTarget", "Target", "credentials_from_env"]


@dataclass(frozen=True)
class Endpoint:
    """A model server the cluster can call: its URL, what the connector authenticates with, what happened."""

    url: str
    credentials: Credentials
    found: Found


class Target(ABC):
    """Where the model runs. Every method gets what it needs explicitly; ``settings`` never changes."""

    #: The name users pick it by (``--target``), and one line saying what it is.
    name: ClassVar[str]
    summary: ClassVar[str]

    def __init__(self, settings: Settings, progress: Progress = quiet) -> None:
        self.settings, self.progress = settings, progress

    @abstractmethod
    def check(self) -> None:
        """Refuse bad settings before anything starts or is created (raise an OsRerankError)."""

    @abstractmethod
    def plan(self) -> list[str]:
        """What ``deploy`` would do, one line per action (``deploy --dry-run``)."""

    @abstractmethod
    def deploy(self, ml: MLCommons | None) -> dict[str, Found]:
        """Bring up what serves the model (``osrerank deploy``); ``ml`` is None when no cluster is set."""

    @abstractmethod
    def setup_model(self, ml: MLCommons, group_id: str) -> dict[str, Found]:
        """Everything up to a deployed ml-commons model in group ``group_id``; the last step is "model"."""

    @abstractmethod
    def find_model(self, ml: MLCommons) -> str | None:
        """The id of the model ``setup_model`` made, if it exists."""

    @abstractmethod
    def teardown(self, ml: MLCommons | None, *, dry_run: bool) -> list[str]:
        """Remove (or, with dry_run, list) what this target made; ``ml`` is None when no cluster is set."""


class RemoteTarget(Target):
    """A model server outside OpenSearch, reached through an ml-commons connector.

    Subclasses say how to start, describe and stop their server; with ``--endpoint-url`` none is
    started and the given URL is used as it is.
    """

    #: The connector template used unless --template names another.
    default_template: ClassVar[str]

    @property
    def template(self) -> str:
        return self.settings.template or self.default_template

    #: Whether the server it starts honours --precision / --max-length (the kit's own scorer does).
    runs_kit_scorer: ClassVar[bool] = False

    def check(self) -> None:
        connector_template(self.template)  # an unknown name fails here, listing the known ones
        tuned = [f for f in ("precision", "max_length") if self.settings.model_dump()[f] not in ("fp32", None)]
        if tuned and (self.settings.endpoint_url or not self.runs_kit_scorer):
            flags = " and ".join(f"--{f.replace('_', '-')}" for f in tuned)
            where = "a given --endpoint-url" if self.settings.endpoint_url else f"the {self.name} target"
            raise ConfigError(
                f"{flags} cannot apply to {where}: only the standin and opensearch targets run the kit's scorer"
            )
        if not self.settings.endpoint_url:
            self.check_server()

    def check_server(self) -> None:
        """Refuse settings the server cannot start with (before anything starts)."""

    @abstractmethod
    def start_server(self) -> Endpoint:
        """Start (or find running) the model server."""

    @abstractmethod
    def server_plan(self) -> list[str]: ...

    @abstractmethod
    def stop_server(self, *, dry_run: bool) -> list[str]:
        """Stop (or, with dry_run, list) the model server; what was (or would be) removed."""

    def endpoint(self) -> Endpoint:
        url = self.settings.endpoint_url
        if url:
            return Endpoint(url, credentials_from_env(self.settings, self.template), Found(url, "reused"))
        return self.start_server()

    def plan(self) -> list[str]:
        url = self.settings.endpoint_url
        return [f"use the model endpoint at {url}"] if url else self.server_plan()

    def deploy(self, ml: MLCommons | None) -> dict[str, Found]:
        return {"endpoint": self.endpoint().found}

    def setup_model(self, ml: MLCommons, group_id: str) -> dict[str, Found]:
        endpoint = self.endpoint()
        self.progress("creating the connector")
        body = render_connector(self.settings, self.template, endpoint.url, endpoint.credentials)
        connector = ensure_connector(ml, body)
        self.progress("registering and deploying the model")
        model = self._ensure_model(ml, connector.id, group_id)
        return {"endpoint": endpoint.found, "connector": connector, "model": model}

    def _ensure_model(self, ml: MLCommons, connector_id: str, group_id: str) -> Found:
        """Register + deploy the remote model, or reuse (and if needed redeploy) the one on this connector."""
        for model in ml.find_models(self.settings.model_name):
            if model.get("connector_id") == connector_id:
                # the state from a GET, not from the search: the search sees the model index as of its last
                # refresh, and a setup run a second after another found REGISTERED there and deployed again
                if ml.model(model["id"]).get("model_state") != "DEPLOYED":
                    ml.deploy(model["id"])
                return Found(model["id"], "reused")
        description = f"osrerank: {self.settings.model} via {self.template}"
        model_id = ml.register_remote(self.settings.model_name, connector_id, group_id, description)
        ml.deploy(model_id)
        return Found(model_id, "created")

    def find_model(self, ml: MLCommons) -> str | None:
        for connector in ml.find_connectors(self.settings.connector_name):
            for model_id in ml.models_using(connector["id"]):
                return model_id
        return None

    def teardown(self, ml: MLCommons | None, *, dry_run: bool) -> list[str]:
        removed: list[str] = []
        if ml is not None:
            for c in ml.find_connectors(self.settings.connector_name):
                models = ml.models_using(c["id"]) if dry_run else delete_connector(ml, c["id"])
                removed += [f"model {m}" for m in models] + [f"connector {c['id']}"]
        if not self.settings.endpoint_url:
            removed += self.stop_server(dry_run=dry_run)
        return removed


def credentials_from_env(settings: Settings, template: str) -> Credentials:
    """Credentials for an endpoint the kit did not start, by what the template authenticates with:
    SigV4 from a connector role (Amazon OpenSearch Service) or the normal AWS key chain (env, profile,
    instance role), else the stand-in's local keys; a bearer token from OSRERANK_BEARER_TOKEN."""
    if connector_template(template).auth == "bearer":
        return Credentials(bearer_token=os.environ.get("OSRERANK_BEARER_TOKEN"))
    if settings.connector_role_arn:
        return Credentials(role_arn=settings.connector_role_arn)
    import botocore.session

    chain = botocore.session.Session(profile=settings.aws_profile).get_credentials()
    if chain is not None:
        frozen = chain.get_frozen_credentials()
        return Credentials(access_key=frozen.access_key, secret_key=frozen.secret_key, session_token=frozen.token)
    with contextlib.suppress(OSError):
        local = local_secrets()
        return Credentials(access_key=local.access_key, secret_key=local.secret_key)
    raise ConfigError(
        "no AWS credentials for the connector: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or --aws-profile, "
        "or --connector-role-arn on Amazon OpenSearch Service"
    )
