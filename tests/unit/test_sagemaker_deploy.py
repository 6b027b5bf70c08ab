"""The SageMaker target against moto (AWS's API models, no account): deploy, reuse, update, teardown, errors.

moto cannot make an endpoint fail, so the failed-state message is checked with botocore's Stubber.
"""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.stub import Stubber
from moto import mock_aws

from osrerank.errors import AwsError, ConfigError
from osrerank.settings import Settings
from osrerank.targets.sagemaker import SageMakerDeployment, runtime_url

REGION = "us-west-2"


@pytest.fixture
def aws(monkeypatch):
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "SAGEMAKER_SUPPRESS_V2_WARNING": "1",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr("osrerank.targets.sagemaker.POLL_S", 0.01)
    with mock_aws():
        role = boto3.client("iam").create_role(RoleName="sm-exec", AssumeRolePolicyDocument="{}")["Role"]["Arn"]
        yield role


def settings(role: str, *, name: str = "kit", model: str | None = None, **sagemaker) -> Settings:
    """The kit's settings for the sagemaker target: ``sagemaker`` are its section's fields."""
    return Settings(
        name=name,
        target="sagemaker",
        connector={"region": REGION},
        targets={"sagemaker": {"role_arn": role, **sagemaker}},
        **({"model": model} if model else {}),
    )


def someone_elses_endpoint(role: str, name: str) -> None:
    """An untagged model + endpoint config + endpoint, all named ``name``, not made by the kit."""
    sm = boto3.client("sagemaker", region_name=REGION)
    sm.create_model(ModelName=name, ExecutionRoleArn=role, PrimaryContainer={"Image": "x"})
    variant = {"VariantName": "A", "ModelName": name, "InstanceType": "ml.m5.large", "InitialInstanceCount": 1}
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant])
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)


def inventory() -> tuple[list[str], list[str], list[str]]:
    sm = boto3.client("sagemaker", region_name=REGION)
    return (
        sorted(m["ModelName"] for m in sm.list_models()["Models"]),
        sorted(c["EndpointConfigName"] for c in sm.list_endpoint_configs()["EndpointConfigs"]),
        sorted(e["EndpointName"] for e in sm.list_endpoints()["Endpoints"]),
    )


def test_deploy_creates_the_tutorials_endpoint(aws):
    deployed = SageMakerDeployment(settings(aws)).deploy()
    assert deployed.action == "created"
    assert deployed.id == f"https://runtime.sagemaker.{REGION}.amazonaws.com/endpoints/kit-cross-encoder/invocations"
    sm = boto3.client("sagemaker", region_name=REGION)
    endpoint = sm.describe_endpoint(EndpointName="kit-cross-encoder")
    assert endpoint["EndpointStatus"] == "InService"
    variant = sm.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])["ProductionVariants"][0]
    assert (variant["InstanceType"], variant["InitialInstanceCount"]) == ("ml.m5.xlarge", 1)
    model = sm.describe_model(ModelName=variant["ModelName"])
    assert model["ExecutionRoleArn"] == aws
    container = model["PrimaryContainer"]
    assert "huggingface-pytorch-inference:2.1-transformers4.37-cpu-py310" in container["Image"]
    assert container["Environment"]["HF_MODEL_ID"] == "cross-encoder/ms-marco-MiniLM-L-6-v2"
    assert container["Environment"]["HF_TASK"] == "text-classification"
    for arn in (endpoint["EndpointArn"], model["ModelArn"]):
        assert {"Key": "created-by", "Value": "osrerank"} in sm.list_tags(ResourceArn=arn)["Tags"]


def test_second_deploy_is_a_no_op(aws):
    SageMakerDeployment(settings(aws)).deploy()
    before = inventory()
    again = SageMakerDeployment(settings(aws)).deploy()
    assert again.action == "reused" and inventory() == before


def moto_update_endpoint(**kwargs):
    """moto has no UpdateEndpoint: answer it from moto's own backend (a botocore before-call hook)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.sagemaker.models import sagemaker_backends

    def handler(params, **_):
        params = json.loads(params["body"])  # the serialized request
        backend = sagemaker_backends[DEFAULT_ACCOUNT_ID][REGION]
        endpoint = backend.endpoints[params["EndpointName"]]
        config = backend.endpoint_configs[params["EndpointConfigName"]]
        endpoint.endpoint_config_name = config.endpoint_config_name
        endpoint.production_variants = endpoint._process_production_variants(config.production_variants)
        from botocore.awsrequest import AWSResponse

        return AWSResponse("", 200, {}, None), {"EndpointArn": endpoint.arn}

    session = boto3.Session(region_name=REGION)
    session.events.register("before-call.sagemaker.UpdateEndpoint", handler)
    return session


def test_changed_settings_need_update(aws):
    SageMakerDeployment(settings(aws)).deploy()
    bigger = SageMakerDeployment(
        settings(aws, instance_type="ml.c5.2xlarge", instance_count=2), boto_session=moto_update_endpoint()
    )
    with pytest.raises(AwsError, match="--update"):
        bigger.deploy()
    assert "needs --update" in bigger.plan()[0]
    assert bigger.deploy(update=True).action == "updated"
    sm = boto3.client("sagemaker", region_name=REGION)
    config = sm.describe_endpoint(EndpointName="kit-cross-encoder")["EndpointConfigName"]
    variant = sm.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"][0]
    assert (variant["InstanceType"], variant["InitialInstanceCount"]) == ("ml.c5.2xlarge", 2)
    assert bigger.deploy().action == "reused"


def test_teardown_removes_exactly_the_tagged_resources(aws):
    someone_elses_endpoint(aws, "theirs")  # beside ours, untagged: must survive
    SageMakerDeployment(settings(aws)).deploy()
    SageMakerDeployment(settings(aws, instance_count=2), boto_session=moto_update_endpoint()).deploy(update=True)
    ours = SageMakerDeployment(settings(aws))
    plan = ours.teardown(dry_run=True)
    assert len(plan) == 5 and inventory() != (["theirs"], ["theirs"], ["theirs"])  # dry run: nothing deleted
    assert ours.teardown() == plan
    assert inventory() == (["theirs"], ["theirs"], ["theirs"])
    assert ours.teardown() == []


def test_endpoint_of_the_same_name_not_made_by_us_is_left_alone(aws):
    someone_elses_endpoint(aws, "kit-cross-encoder")
    with pytest.raises(AwsError, match="not created by osrerank"):
        SageMakerDeployment(settings(aws)).deploy()
    assert SageMakerDeployment(settings(aws)).teardown() == []


def test_serverless_and_autoscaling_options(aws):
    SageMakerDeployment(settings(aws, serverless_memory_mb=3072, serverless_max_concurrency=8)).deploy()
    sm = boto3.client("sagemaker", region_name=REGION)
    config = sm.describe_endpoint(EndpointName="kit-cross-encoder")["EndpointConfigName"]
    variant = sm.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"][0]
    assert variant["ServerlessConfig"] == {"MemorySizeInMB": 3072, "MaxConcurrency": 8}

    scaled = settings(aws, name="scaled", autoscale_target=200, autoscale_max_instances=3)
    SageMakerDeployment(scaled).deploy()
    scaling = boto3.client("application-autoscaling", region_name=REGION)
    target = scaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"][0]
    assert target["ResourceId"] == "endpoint/scaled-cross-encoder/variant/AllTraffic"
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 3)
    policy = scaling.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"][0]
    assert policy["TargetTrackingScalingPolicyConfiguration"]["TargetValue"] == 200.0
    SageMakerDeployment(scaled).teardown()
    assert scaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"] == []


def test_missing_role_bad_region_and_local_folder_are_clear_errors(aws, tmp_path):
    with pytest.raises(ConfigError, match="--role-arn"):
        SageMakerDeployment(Settings(connector={"region": REGION})).deploy()
    with pytest.raises(ConfigError, match="region 'mars-1' has no SageMaker"):
        SageMakerDeployment(settings(aws).updated(connector={"region": "mars-1"})).deploy()
    with pytest.raises(ConfigError, match="has no PyTorch weights"):  # the DLC runs PyTorch: an ONNX-only folder
        SageMakerDeployment(settings(aws, model=str(tmp_path))).deploy()
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ConfigError, match=r"Hugging Face Hub id .* or a model folder"):
        SageMakerDeployment(settings(aws, model=str(tmp_path / "notes.txt"))).deploy()
    with pytest.raises(ConfigError, match=r"not 'org/team/name'; pass --model org/name"):  # no folder, no hub id
        SageMakerDeployment(settings(aws, model="org/team/name")).wanted()


def hf_folder(path, weights: bytes = b"weights"):
    """A model folder as transformers saves one (contents do not matter to SageMaker's API), plus what the
    archive must leave out."""
    path.mkdir()
    for name, content in {
        "config.json": b"{}",
        "model.safetensors": weights,
        "tokenizer.json": b"{}",
        "TRAINING.md": b"report",
    }.items():
        (path / name).write_bytes(content)
    (path / "onnx").mkdir()
    (path / "onnx" / "model.onnx").write_bytes(b"graph")
    return path


def archive_names(uri: str) -> list[str]:
    import io
    import tarfile

    bucket, key = uri.removeprefix("s3://").split("/", 1)
    body = boto3.client("s3", region_name=REGION).get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as archive:
        return sorted(archive.getnames())


def s3_keys() -> list[str]:
    s3 = boto3.client("s3", region_name=REGION)
    return [
        o["Key"] for b in s3.list_buckets()["Buckets"] for o in s3.list_objects_v2(Bucket=b["Name"]).get("Contents", [])
    ]


def deploys_a_model_folder(role: str, folder) -> None:
    """A local folder goes up as model.tar.gz (once), the model points at it with HF_TASK and no hub id, a
    second deploy reuses everything, changed weights are other settings, and teardown removes the archive."""
    deployment = SageMakerDeployment(settings(role, model=str(folder)))
    assert deployment.deploy().action == "created"
    sm = boto3.client("sagemaker", region_name=REGION)
    config = sm.describe_endpoint(EndpointName="kit-cross-encoder")["EndpointConfigName"]
    model_name = sm.describe_endpoint_config(EndpointConfigName=config)["ProductionVariants"][0]["ModelName"]
    container = sm.describe_model(ModelName=model_name)["PrimaryContainer"]
    assert container["Environment"]["HF_TASK"] == "text-classification"
    assert "HF_MODEL_ID" not in container["Environment"]
    uri = container["ModelDataUrl"]
    assert uri.startswith(f"s3://sagemaker-{REGION}-") and "/osrerank/kit-cross-encoder/" in uri
    names = archive_names(uri)
    assert "model.safetensors" in names and "config.json" in names and "tokenizer.json" in names
    assert not any(n.startswith("onnx") or n == "TRAINING.md" for n in names)
    before, keys = inventory(), s3_keys()
    assert SageMakerDeployment(settings(role, model=str(folder))).deploy().action == "reused"
    assert (inventory(), s3_keys()) == (before, keys) and len(keys) == 1
    removed = SageMakerDeployment(settings(role, model=str(folder))).teardown()
    assert f"S3 object {uri}" in removed
    assert inventory() == ([], [], []) and s3_keys() == []


def test_a_model_folder_is_uploaded_once_and_removed_by_teardown(aws, tmp_path):
    deploys_a_model_folder(aws, hf_folder(tmp_path / "m"))


def test_a_changed_model_folder_is_other_settings(aws, tmp_path):
    folder = hf_folder(tmp_path / "m")
    SageMakerDeployment(settings(aws, model=str(folder))).deploy()
    (folder / "model.safetensors").write_bytes(b"retrained")
    with pytest.raises(AwsError, match="exists with different settings"):
        SageMakerDeployment(settings(aws, model=str(folder))).deploy()


def test_failed_endpoint_state_names_the_reason(aws):
    deployment = SageMakerDeployment(settings(aws))
    sm = boto3.client("sagemaker", region_name=REGION)
    deployment.client = lambda name: sm  # type: ignore[method-assign]
    arn = f"arn:aws:sagemaker:{REGION}:123456789012:endpoint/kit-cross-encoder"
    with Stubber(sm) as stub:
        stub.add_response(
            "describe_endpoint",
            {
                "EndpointName": "kit-cross-encoder",
                "EndpointArn": arn,
                "EndpointConfigName": "c",
                "EndpointStatus": "Failed",
                "FailureReason": "The primary container for production variant AllTraffic did not pass the ping "
                "health check.",
                "CreationTime": "2026-11-23T00:00:00Z",
                "LastModifiedTime": "2026-11-23T00:00:00Z",
            },
        )
        stub.add_response("list_tags", {"Tags": [{"Key": "created-by", "Value": "osrerank"}]})
        with pytest.raises(AwsError, match=r"state Failed: The primary container .* ping health check"):
            deployment.deploy()


def test_runtime_url_format():
    assert (
        runtime_url("eu-central-1", "e")
        == "https://runtime.sagemaker.eu-central-1.amazonaws.com/endpoints/e/invocations"
    )
