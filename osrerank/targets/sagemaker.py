"""Target ``sagemaker``: the cross-encoder on an Amazon SageMaker endpoint (the tutorial's production path).

The ``sagemaker`` SDK's ``HuggingFaceModel`` builds the model on the Hugging Face inference DLC with
``HF_MODEL_ID`` and ``HF_TASK=text-classification``; the endpoint then answers
``{"inputs": [{"text", "text_pair"}]}`` with ``[{"label", "score"}]``, which the
``sagemaker-hf-text-classification`` connector speaks.

Everything the kit creates carries the tag ``created-by=osrerank`` and an ``osrerank-config`` tag with
a fingerprint of the deployment settings: a second deploy with the same settings reuses the endpoint,
different settings are an error unless ``update=True``, and teardown deletes only tagged resources.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

from ..config.section import Section, setting
from ..errors import AwsError, ConfigError, ToolMissingError
from ..types import Action, Found, Progress, quiet
from .aws_errors import aws_errors
from .base import DeploySettings, Endpoint, RemoteTarget, credentials_from_env
from .sagemaker_artifact import digest, is_local_folder, remove, upload

__all__ = ["OWNER_TAG", "SageMakerDeployment", "SageMakerOptions", "SageMakerTarget", "runtime_url"]

OWNER_TAG = {"Key": "created-by", "Value": "osrerank"}
CONFIG_TAG = "osrerank-config"
POLL_S = 15.0


def runtime_url(region: str, endpoint_name: str) -> str:
    """The SageMaker-runtime invocation URL the connector posts to (service name ``sagemaker``)."""
    return f"https://runtime.sagemaker.{region}.amazonaws.com/endpoints/{endpoint_name}/invocations"


class SageMakerOptions(Section):
    """The endpoint the sagemaker target deploys: the HF DLC's versions, capacity and scaling, and the role it
    runs as (the tutorial's settings by default)."""

    update: bool = setting(False, "Move an existing SageMaker endpoint to changed settings.")
    instance_type: str = setting("ml.m5.xlarge", "SageMaker instance type.")
    instance_count: int = setting(1, "SageMaker instance count.", ge=1)
    role_arn: str | None = setting(None, "Execution role the SageMaker endpoint runs as.")
    endpoint_name: str | None = setting(None, "SageMaker endpoint name [default: <name>-cross-encoder].")
    transformers_version: str = setting("4.37", "HF DLC transformers version.")
    pytorch_version: str = setting("2.1", "HF DLC PyTorch version.")
    py_version: str = setting("py310", "HF DLC Python version.")
    serverless_memory_mb: int | None = setting(None, "Deploy serverless with this memory (1024-6144).")
    serverless_max_concurrency: int = setting(5, "Serverless max concurrency.", ge=1)
    autoscale_target: int | None = setting(None, "Autoscale on invocations per instance per minute.")
    autoscale_max_instances: int = setting(4, "Autoscaling upper bound.", ge=1)


class SageMakerDeployment:
    """Deploy, find and delete the kit's SageMaker endpoint for one Settings."""

    def __init__(self, settings: DeploySettings, progress: Progress = quiet, boto_session: Any = None) -> None:
        self.settings, self.progress = settings, progress
        self.options: SageMakerOptions = settings.targets.sagemaker
        self.endpoint_name = self.options.endpoint_name or f"{settings.name}-cross-encoder"
        self._boto = boto_session

    # ----------------------------------------------------------------- AWS clients
    @property
    def boto(self) -> Any:
        if self._boto is None:
            try:
                import boto3
            except ImportError:
                raise ToolMissingError("the SageMaker target needs: pip install 'osrerank[aws]'") from None
            session = boto3.Session(
                profile_name=self.settings.cluster.aws_profile, region_name=self.settings.connector.region
            )
            if self.settings.connector.region not in session.get_available_regions("sagemaker"):
                raise ConfigError(
                    f"region {self.settings.connector.region!r} has no SageMaker; pass --region with one of: "
                    + ", ".join(session.get_available_regions("sagemaker")[:8])
                    + ", ..."
                )
            self._boto = session
        return self._boto

    def client(self, name: str) -> Any:
        return self.boto.client(name, region_name=self.settings.connector.region)

    # ----------------------------------------------------------------- what we want
    def wanted(self) -> dict[str, Any]:
        """The deployment settings that define "the same endpoint"; their hash is the config tag."""
        s, o = self.settings, self.options
        if is_local_folder(
            s.model.path
        ):  # uploaded as model.tar.gz; its digest makes a changed folder "other settings"
            source: dict[str, Any] = {
                "env": {"HF_TASK": "text-classification"},
                "model_data_digest": digest(Path(s.model.path).expanduser()),
            }
        elif Path(s.model.path).expanduser().exists() or s.model.path.count("/") != 1:
            raise ConfigError(
                f"the SageMaker target deploys a Hugging Face Hub id (HF_MODEL_ID) or a model folder, not "
                f"{s.model.path!r}; pass --model org/name (e.g. cross-encoder/ms-marco-MiniLM-L-6-v2) or a folder"
            )
        else:
            source = {"env": {"HF_MODEL_ID": s.model.path, "HF_TASK": "text-classification"}}
        capacity: dict[str, Any] = (
            {"serverless_memory_mb": o.serverless_memory_mb, "serverless_max_concurrency": o.serverless_max_concurrency}
            if o.serverless_memory_mb
            else {"instance_type": o.instance_type, "instance_count": o.instance_count}
        )
        return {
            **source,
            "transformers_version": o.transformers_version,
            "pytorch_version": o.pytorch_version,
            "py_version": o.py_version,
            **capacity,
        }

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.wanted(), sort_keys=True).encode()).hexdigest()[:12]

    def plan(self) -> list[str]:
        """What deploy would do, for --dry-run."""
        current = self.find()
        if current is None:
            what = self.wanted()
            return [f"create model, endpoint config and endpoint {self.endpoint_name}: {json.dumps(what)}"]
        if current["tags"].get(CONFIG_TAG) == self.fingerprint():
            return [f"reuse endpoint {self.endpoint_name} ({current['EndpointStatus']})"]
        return [f"endpoint {self.endpoint_name} exists with other settings: needs --update"]

    # ----------------------------------------------------------------- find
    def find(self) -> dict[str, Any] | None:
        """The endpoint of this name with its tags, or None."""
        sm = self.client("sagemaker")
        try:
            endpoint = sm.describe_endpoint(EndpointName=self.endpoint_name)
        except sm.exceptions.ClientError as exc:
            if "Could not find endpoint" in str(exc) or exc.response["Error"]["Code"] == "ValidationException":
                return None
            raise AwsError(f"describe_endpoint {self.endpoint_name} failed: {exc}") from exc
        tags = sm.list_tags(ResourceArn=endpoint["EndpointArn"])["Tags"]
        endpoint["tags"] = {t["Key"]: t["Value"] for t in tags}
        return endpoint

    # ----------------------------------------------------------------- deploy
    def deploy(self, *, update: bool = False, wait: bool = True) -> Found:
        """Create the endpoint, or reuse it if it exists with the same settings (idempotent)."""
        url = runtime_url(self.settings.connector.region, self.endpoint_name)
        current = self.find()
        if current is not None:
            if current["tags"].get("created-by") != "osrerank":
                raise AwsError(
                    f"endpoint {self.endpoint_name} exists but was not created by osrerank; "
                    "choose another --endpoint-name or pass its URL with --endpoint-url"
                )
            if current["EndpointStatus"] == "Failed":
                raise AwsError(self._failed_message(current))
            if current["tags"].get(CONFIG_TAG) == self.fingerprint():
                if wait:
                    self._wait()
                return Found(url, "reused")
            if not update:
                raise AwsError(
                    f"endpoint {self.endpoint_name} exists with different settings (model, image versions or "
                    "capacity); pass --update to move it to the new settings, or choose another --endpoint-name"
                )
        model = self._hf_model()
        names = f"{self.endpoint_name}-{self.fingerprint()}"
        self.progress(
            f"deploying {self.settings.model.path} to SageMaker endpoint {self.endpoint_name} (takes minutes)"
        )
        if current is None:
            self._deploy_new(model, names)
        else:
            self._update(model, names)
        if self.options.autoscale_target and not self.options.serverless_memory_mb:
            self._autoscale()
        if wait:
            self._wait()
        action: Action = "created" if current is None else "updated"
        return Found(url, action)

    def _tags(self) -> list[dict[str, str]]:
        return [OWNER_TAG, {"Key": CONFIG_TAG, "Value": self.fingerprint()}]

    def _hf_model(self) -> Any:
        os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
        try:
            import sagemaker
            from sagemaker.huggingface import HuggingFaceModel
        except ImportError:
            raise ToolMissingError("the SageMaker target needs: pip install 'osrerank[aws]'") from None
        role = self.options.role_arn
        if not role:
            raise ConfigError(
                "deploying to SageMaker needs an execution role the endpoint runs as: pass --role-arn "
                "arn:aws:iam::<account>:role/<role with AmazonSageMakerFullAccess>"
            )
        w = self.wanted()
        session = sagemaker.Session(boto_session=self.boto)
        folder = Path(self.settings.model.path).expanduser()
        model_data = upload(session, folder, self.endpoint_name) if "model_data_digest" in w else None
        return HuggingFaceModel(
            role=role,
            model_data=model_data,
            env=w["env"],
            transformers_version=w["transformers_version"],
            pytorch_version=w["pytorch_version"],
            py_version=w["py_version"],
            sagemaker_session=session,
        )

    def _deploy_new(self, model: Any, names: str) -> None:
        model.name = names
        kwargs: dict[str, Any] = {"endpoint_name": self.endpoint_name, "tags": self._tags(), "wait": False}
        if self.options.serverless_memory_mb:
            from sagemaker.serverless import ServerlessInferenceConfig

            kwargs["serverless_inference_config"] = ServerlessInferenceConfig(
                memory_size_in_mb=self.options.serverless_memory_mb,
                max_concurrency=self.options.serverless_max_concurrency,
            )
        else:
            kwargs.update(initial_instance_count=self.options.instance_count, instance_type=self.options.instance_type)
        try:
            model.deploy(**kwargs)
        except Exception as exc:  # botocore ClientError and the SDK's own errors
            raise AwsError(f"deploying endpoint {self.endpoint_name} failed: {exc}") from exc

    def _update(self, model: Any, names: str) -> None:
        """New model + endpoint config (named by fingerprint), then point the endpoint at them."""
        sm = self.client("sagemaker")
        o = self.options
        model.name = names
        try:
            model.create(instance_type=o.instance_type, tags=self._tags())
            variant: dict[str, Any] = {"VariantName": "AllTraffic", "ModelName": names}
            if o.serverless_memory_mb:
                variant["ServerlessConfig"] = {
                    "MemorySizeInMB": o.serverless_memory_mb,
                    "MaxConcurrency": o.serverless_max_concurrency,
                }
            else:
                variant.update(
                    InitialInstanceCount=o.instance_count, InstanceType=o.instance_type, InitialVariantWeight=1.0
                )
            sm.create_endpoint_config(EndpointConfigName=names, ProductionVariants=[variant], Tags=self._tags())
            sm.update_endpoint(EndpointName=self.endpoint_name, EndpointConfigName=names)
            arn = sm.describe_endpoint(EndpointName=self.endpoint_name)["EndpointArn"]
            sm.delete_tags(ResourceArn=arn, TagKeys=[CONFIG_TAG])
            sm.add_tags(ResourceArn=arn, Tags=self._tags())
        except Exception as exc:
            raise AwsError(f"updating endpoint {self.endpoint_name} failed: {exc}") from exc

    def _autoscale(self) -> None:
        """Target tracking on invocations per instance, between instance_count and autoscale_max_instances."""
        o = self.options
        scaling = self.client("application-autoscaling")
        resource = f"endpoint/{self.endpoint_name}/variant/AllTraffic"
        scaling.register_scalable_target(
            ServiceNamespace="sagemaker",
            ResourceId=resource,
            ScalableDimension="sagemaker:variant:DesiredInstanceCount",
            MinCapacity=o.instance_count,
            MaxCapacity=max(o.instance_count, o.autoscale_max_instances),
        )
        scaling.put_scaling_policy(
            PolicyName=f"{self.endpoint_name}-invocations",
            ServiceNamespace="sagemaker",
            ResourceId=resource,
            ScalableDimension="sagemaker:variant:DesiredInstanceCount",
            PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration={
                "TargetValue": float(o.autoscale_target or 0),
                "PredefinedMetricSpecification": {"PredefinedMetricType": "SageMakerVariantInvocationsPerInstance"},
                "ScaleInCooldown": 300,
                "ScaleOutCooldown": 60,
            },
        )

    def _wait(self, timeout_s: float = 1800.0) -> None:
        deadline = time.monotonic() + timeout_s
        started = time.monotonic()
        while True:
            endpoint = self.find()
            status = endpoint["EndpointStatus"] if endpoint else "missing"
            if status == "InService":
                return
            if status in ("Failed", "missing", "OutOfService"):
                raise AwsError(
                    self._failed_message(endpoint) if endpoint else f"endpoint {self.endpoint_name} vanished"
                )
            if time.monotonic() > deadline:
                raise AwsError(f"endpoint {self.endpoint_name} still {status} after {timeout_s:.0f}s")
            self.progress(f"endpoint {self.endpoint_name}: {status} ({time.monotonic() - started:.0f}s)")
            time.sleep(POLL_S)

    def _failed_message(self, endpoint: dict[str, Any]) -> str:
        return (
            f"endpoint {self.endpoint_name} is in state {endpoint['EndpointStatus']}: "
            f"{endpoint.get('FailureReason', 'no reason given')}. See its CloudWatch logs "
            f"(/aws/sagemaker/Endpoints/{self.endpoint_name}); `osrerank teardown` removes it."
        )

    # ----------------------------------------------------------------- teardown
    def teardown(self, *, dry_run: bool = False) -> list[str]:
        """Delete the endpoint, its endpoint configs and models, each only if tagged created-by=osrerank, and
        (for a model folder) the archives uploaded for this endpoint, even when the endpoint never came up."""
        sm = self.client("sagemaker")
        local = is_local_folder(self.settings.model.path)
        uploaded = remove(self.boto, self.endpoint_name, dry_run=dry_run) if local else []
        endpoint = self.find()
        if endpoint is None or endpoint["tags"].get("created-by") != "osrerank":
            return [f"S3 object {u}" for u in uploaded]
        configs = {endpoint["EndpointConfigName"]}
        listed = sm.list_endpoint_configs(NameContains=self.endpoint_name)["EndpointConfigs"]  # older, from --update
        configs |= {c["EndpointConfigName"] for c in listed if c["EndpointConfigName"].startswith(self.endpoint_name)}
        models: set[str] = set()
        for config in configs:
            try:
                described = sm.describe_endpoint_config(EndpointConfigName=config)
            except sm.exceptions.ClientError:
                continue
            models |= {v["ModelName"] for v in described["ProductionVariants"]}
        owned_configs = [c for c in sorted(configs) if _owned(sm, "endpoint-config", c)]
        owned_models = [m for m in sorted(models) if _owned(sm, "model", m)]
        if not dry_run:
            self._remove_autoscaling()
            sm.delete_endpoint(EndpointName=self.endpoint_name)
            for config in owned_configs:
                sm.delete_endpoint_config(EndpointConfigName=config)
            for model in owned_models:
                sm.delete_model(ModelName=model)
        return (
            [f"SageMaker endpoint {self.endpoint_name}"]
            + [f"SageMaker endpoint config {c}" for c in owned_configs]
            + [f"SageMaker model {m}" for m in owned_models]
            + [f"S3 object {u}" for u in uploaded]
        )

    def _remove_autoscaling(self) -> None:
        scaling = self.client("application-autoscaling")
        resource = f"endpoint/{self.endpoint_name}/variant/AllTraffic"
        targets = scaling.describe_scalable_targets(ServiceNamespace="sagemaker", ResourceIds=[resource])
        if targets["ScalableTargets"]:
            scaling.deregister_scalable_target(
                ServiceNamespace="sagemaker",
                ResourceId=resource,
                ScalableDimension="sagemaker:variant:DesiredInstanceCount",
            )


def _owned(sm: Any, kind: str, name: str) -> bool:
    try:
        if kind == "model":
            arn = sm.describe_model(ModelName=name)["ModelArn"]
        else:
            arn = sm.describe_endpoint_config(EndpointConfigName=name)["EndpointConfigArn"]
    except sm.exceptions.ClientError:
        return False
    return any(t == OWNER_TAG for t in sm.list_tags(ResourceArn=arn)["Tags"])


class SageMakerTarget(RemoteTarget):
    name = "sagemaker"
    summary = "an Amazon SageMaker endpoint on the Hugging Face DLC (HF_TASK=text-classification)"
    default_template = "sagemaker-hf-text-classification"
    Options = SageMakerOptions

    def deployment(self) -> SageMakerDeployment:
        return SageMakerDeployment(self.settings, self.progress)

    def check_server(self) -> None:
        self.deployment().wanted()  # a path that is neither a Hub id nor a model folder fails here

    def start_server(self) -> Endpoint:
        with aws_errors(f"deploying the SageMaker endpoint for {self.settings.model.path}"):
            found = self.deployment().deploy(update=self.options.update)
        return Endpoint(found.id, credentials_from_env(self.settings, self.template), found)

    def server_plan(self) -> list[str]:
        with aws_errors("looking up the SageMaker endpoint"):
            return self.deployment().plan()

    def stop_server(self, *, dry_run: bool) -> list[str]:
        with aws_errors("removing the SageMaker endpoint"):
            return self.deployment().teardown(dry_run=dry_run)
