"""The deploy-target interface: where the model runs, behind one small seam.

A target makes an ml-commons model that scores (query, document) pairs, finds it again, and removes
what it made. Remote targets (a model server reached over HTTP: the stand-in, SageMaker, ...) share
the connector path in :class:`RemoteTarget`: model server -> connector -> remote model. A target
that runs the model inside OpenSearch implements :class:`Target` directly. Targets are chosen by name
in ``osrerank/targets/__init__.py``; adding one is a module here plus its line there. A target with
options of its own declares them as ``Options`` (a settings section): the root settings get a
``targets.<name>`` section from it, and every command that deploys gets its flags.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from ..config.environment import get
from ..config.section import Section
from ..connector import ConnectorOptions, delete_connector, ensure_connector, passes_inputs_through, render_connector
from ..cpu import cpu_info
from ..errors import ConfigError
from ..kinds import kind_refusal
from ..ml_commons import MLCommons
from ..opensearch import ClusterOptions
from ..pipeline import PipelineOptions
from ..precision import Host, refusal
from ..scorer import ModelOptions
from ..templates import connector_template, list_templates
from ..types import Credentials, Found, Progress, quiet
from .local_secrets import local_secrets

__all__ = ["DeploySettings", "Endpoint", "RemoteTarget", "Target", "credentials_from_env"]


class DeploySettings(Protocol):
    """What a target reads of the settings (the root, osrerank/settings.py, has it all): the sections it uses
    and the names of what it creates."""

    @property
    def name(self) -> str: ...
    @property
    def target(self) -> str: ...
    @property
    def model(self) -> ModelOptions: ...
    @property
    def connector(self) -> ConnectorOptions: ...
    @property
    def pipeline(self) -> PipelineOptions: ...
    @property
    def cluster(self) -> ClusterOptions: ...
    @property
    def targets(self) -> Any: ...
    @property
    def connector_name(self) -> str: ...
    @property
    def model_name(self) -> str: ...


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
    #: Its own settings section (``targets.<name>``), if it has options.
    Options: ClassVar[type[Section] | None] = None

    def __init__(self, settings: DeploySettings, progress: Progress = quiet) -> None:
        self.settings, self.progress = settings, progress
        self.options: Any = getattr(settings.targets, self.name) if self.Options else None

    @property
    def host(self) -> Host:
        """What scores the model: the kit's scorer, ml-commons' engine, or another server."""
        return "other"

    def check(self) -> None:
        """Refuse bad settings before anything starts or is created (raise an OsRerankError): a model kind the
        target cannot run; a precision or length where no kit scorer runs to honour them (where one does, it
        decides the precision itself as it loads the model: precision.py); then the target's own rules."""
        model = self.settings.model
        why = kind_refusal(model.kind, self.name, model.path)
        if not why and self.host == "other":
            where = "a given --endpoint-url" if self.settings.connector.endpoint_url else f"the {self.name} target"
            why = refusal(model.precision, self.host, cpu_info(), where)
            if not why and model.max_length is not None:
                why = (
                    f"--max-length cannot apply to {where}: only the standin and opensearch targets run the kit's model"
                )
        if why:
            raise ConfigError(why)
        self.check_target()

    def check_target(self) -> None:  # noqa: B027 (a target may have none)
        """The target's own refusals (a model folder it cannot take, a tool it lacks)."""

    def prepare(self) -> dict[str, Found]:
        """Bring up what serves the model before anything is made in the cluster (a server started, a graph
        packaged and its precision decided), so a failure here leaves the cluster untouched; what it did."""
        return {}

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
        return self.settings.connector.template or self.default_template

    #: Whether the server it starts runs the kit's scorer with the model section (precision, max length).
    runs_kit_scorer: ClassVar[bool] = False

    def __init__(self, settings: DeploySettings, progress: Progress = quiet) -> None:
        super().__init__(settings, progress)
        self._endpoint: Endpoint | None = None

    @property
    def host(self) -> Host:
        return "kit" if self.runs_kit_scorer and not self.settings.connector.endpoint_url else "other"

    def check_target(self) -> None:
        info = connector_template(self.template)  # an unknown name fails here, listing the known ones
        if info.purpose != "rerank":
            raise ConfigError(
                f"template {self.template!r} is for an {info.purpose} model; the reranker's: "
                f"{', '.join(list_templates('connectors', 'rerank'))}"
            )
        if not self.settings.connector.endpoint_url:
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
        url = self.settings.connector.endpoint_url
        if url:
            return Endpoint(url, credentials_from_env(self.settings, self.template), Found(url, "reused"))
        return self.start_server()

    def plan(self) -> list[str]:
        url = self.settings.connector.endpoint_url
        return [f"use the model endpoint at {url}"] if url else self.server_plan()

    def deploy(self, ml: MLCommons | None) -> dict[str, Found]:
        return {"endpoint": self.endpoint().found}

    def prepare(self) -> dict[str, Found]:
        self._endpoint = self.endpoint()  # on every setup: a server stopped since the last one is started again
        return {"endpoint": self._endpoint.found}

    def connector_body(self, endpoint: Endpoint, passthrough: bool = False) -> dict[str, Any]:
        """The connector to ``endpoint``, as setup creates it (``passthrough``: for ml-commons 3.0+). A bearer-token
        API without a token: refused where the API needs one, else said in one line (the connector then sends no
        Authorization header)."""
        s = self.settings
        info = connector_template(self.template)
        if info.auth == "bearer" and not endpoint.credentials.bearer_token:
            if info.auth_required:
                raise ConfigError(
                    f"the {self.template} API needs a bearer token: set OSRERANK_BEARER_TOKEN (the connector keeps "
                    "it as an ml-commons credential; it is never printed)"
                )
            self.progress(
                f"no OSRERANK_BEARER_TOKEN: the {self.template} connector sends no Authorization header "
                "(right for a server without auth; set the variable if yours has a token)"
            )
        return render_connector(
            s.connector,
            self.template,
            endpoint.url,
            endpoint.credentials,
            name=s.connector_name,
            description=f"osrerank: {s.model.path} via {self.template}",
            raw_scores=s.model.activation == "none",
            chunk=s.pipeline.chunk,
            passthrough=passthrough,
        )

    def setup_model(self, ml: MLCommons, group_id: str) -> dict[str, Found]:
        endpoint = self._endpoint = self._endpoint or self.endpoint()
        self.progress("creating the connector")
        connector = ensure_connector(ml, self.connector_body(endpoint, passes_inputs_through(ml)))
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
        description = f"osrerank: {self.settings.model.path} via {self.template}"
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
        if not self.settings.connector.endpoint_url:
            removed += self.stop_server(dry_run=dry_run)
        return removed


def credentials_from_env(settings: DeploySettings, template: str) -> Credentials:
    """Credentials for an endpoint the kit did not start, by what the template authenticates with:
    SigV4 from a connector role (Amazon OpenSearch Service) or the normal AWS key chain (env, profile,
    instance role), else the stand-in's local keys; a bearer token from OSRERANK_BEARER_TOKEN."""
    if connector_template(template).auth == "bearer":
        return Credentials(bearer_token=get("OSRERANK_BEARER_TOKEN"))
    if settings.connector.role_arn:
        return Credentials(role_arn=settings.connector.role_arn)
    import botocore.session

    chain = botocore.session.Session(profile=settings.cluster.aws_profile).get_credentials()
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
