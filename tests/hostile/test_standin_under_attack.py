"""The stand-in under hostile and heavy traffic: a real `osrerank serve` process on 127.0.0.1, with auth,
probed as an attacker and a busy cluster would (every loop bounded in count and time).

The suite talks to the server only over HTTP (no kit imports but in the last test), so it runs
against any version of the stand-in. Each test is one row of issue 20's table: one bad request never
fails good ones, nothing unsigned stalls signed traffic, a gone client's work is dropped, memory stays
bounded, client mistakes are 4xx, every rejection is counted.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

KEY, SECRET, TOKEN = "AKIAHOSTILETEST", "hostile-test-secret", "hostile-test-token"

QUERY = "What is the capital of the United States?"
LONG_DOC = ("Washington, D.C. is the capital of the United States of America and a federal district. " * 60)[:4000]


@dataclass(frozen=True)
class Server:
    pid: int
    base_url: str
    log: Path


def ping(base_url: str) -> bool:
    try:
        return requests.get(f"{base_url}/ping", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def serve(model: Path, log: Path, **env: str) -> tuple[subprocess.Popen[bytes], Server]:
    """`osrerank serve` as a user starts it: auth from AWS_* keys and OSRERANK_BEARER_TOKEN."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    secrets = {"AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET, "OSRERANK_BEARER_TOKEN": TOKEN}
    environment = {**os.environ, **secrets, **env}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "osrerank", "serve", "--model", str(model), "--port", str(port)],
            stdout=out, stderr=subprocess.STDOUT, env=environment,
        )  # fmt: skip
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while not ping(base_url):
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.2)
    return proc, Server(proc.pid, base_url, log)


@pytest.fixture(scope="module")
def server(test_model_dir, tmp_path_factory):
    proc, info = serve(test_model_dir, tmp_path_factory.mktemp("serve") / "serve.log")
    yield info
    proc.terminate()
    proc.wait(30)


def post_in_background(info, body: bytes) -> subprocess.Popen[bytes]:
    """A separate client process posting ``body``, SigV4-signed, to the SageMaker route (to be killed mid-request)."""
    code = (
        "import json, requests, sys; requests.post(sys.argv[1], data=sys.stdin.buffer.read(), "
        "headers=json.loads(sys.argv[2]), timeout=300)"
    )
    headers = json.dumps(signed(info, body))
    client = subprocess.Popen([sys.executable, "-c", code, url(info), headers], stdin=subprocess.PIPE)
    assert client.stdin is not None
    client.stdin.write(body)
    client.stdin.close()
    return client


def url(info, path="/endpoints/hostile/invocations") -> str:
    return info.base_url + path


def signed(info, body: bytes, path: str = "/endpoints/hostile/invocations", **headers: str) -> dict[str, str]:
    request = AWSRequest("POST", url(info, path), data=body, headers={"Content-Type": "application/json", **headers})
    SigV4Auth(Credentials(KEY, SECRET), "sagemaker", "us-east-1").add_auth(request)
    return dict(request.headers)


def bearer() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}


def good(info, docs: list[str]) -> requests.Response:
    body = json.dumps({"inputs": [{"text": QUERY, "text_pair": d} for d in docs], "parameters": {"truncation": True}})
    return requests.post(url(info), data=body.encode(), headers=signed(info, body.encode()), timeout=60)


def metrics(info) -> dict[str, float]:
    text = requests.get(url(info, "/metrics"), timeout=10).text
    return {line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line}


def log_text(info) -> str:
    return info.log.read_text(errors="replace")


def rss_mb(info, field: str = "VmRSS") -> float:
    for line in Path(f"/proc/{info.pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field} for pid {info.pid}")


def test_a_bad_text_in_a_concurrent_request_fails_only_that_request(server, reference):
    """Was: 84 of 120 good requests failed with 424, because one batch's exception reached every request."""
    rows = [p for p in reference if p["query"] == QUERY][:2]
    docs, expected = [p["document"] for p in rows], [p["sigmoid"] for p in rows]  # PyTorch's scores
    bad = json.dumps({"query": QUERY, "texts": ["fine", "\ud800 lone surrogate"]})
    with ThreadPoolExecutor(9) as pool:
        for _ in range(15):
            goods = [pool.submit(good, server, docs) for _ in range(8)]
            hostile = pool.submit(requests.post, url(server, "/rerank"), data=bad, headers=bearer(), timeout=60)
            assert hostile.result().status_code == 400 and "lone surrogate" in hostile.result().json()["error"]
            for reply in (g.result() for g in goods):
                assert reply.status_code == 200, reply.text
                np.testing.assert_allclose([r["score"] for r in reply.json()], expected, atol=1e-5)


def test_unsigned_requests_are_refused_at_once_on_every_route(server):
    """Was: /rerank had no auth and no pair limit: 10,000 unsigned texts took 33.7 s and stalled signed traffic."""
    before = metrics(server).get('osrerank_rejected_total{reason="authentication"}', 0)
    huge = json.dumps({"query": QUERY, "texts": ["text"] * 10_000})
    for path in ("/rerank", "/predictions/m", "/invocations", "/endpoints/x/invocations"):
        started = time.monotonic()
        reply = requests.post(url(server, path), data=huge, timeout=60)
        assert reply.status_code == 403 and time.monotonic() - started < 2
    assert metrics(server)['osrerank_rejected_total{reason="authentication"}'] == before + 4
    assert '"rejected": "authentication"' in log_text(server)


def test_every_route_has_the_pair_limit(server):
    body = json.dumps({"query": QUERY, "texts": ["text"] * 1025})
    reply = requests.post(url(server, "/rerank"), data=body, headers=bearer(), timeout=60)
    assert reply.status_code == 400 and "maximum is 1024" in reply.json()["error"]


def test_a_maximal_request_does_not_starve_a_small_one(server):
    """A signed request of 2 pairs, sent while a 1,024-pair request of long texts is being scored."""
    pairs = [{"text": QUERY, "text_pair": LONG_DOC} for _ in range(1024)]
    big = json.dumps({"inputs": pairs, "parameters": {"truncation": True}}).encode()
    client = post_in_background(server, big)
    try:
        time.sleep(2.0)  # the big one is being scored now
        latencies = []
        for _ in range(3):
            started = time.monotonic()
            assert good(server, ["Washington, D.C.", "Carson City"]).status_code == 200
            latencies.append(time.monotonic() - started)
        assert max(latencies) < 3.0, latencies  # alone it takes ~0.1 s; a whole 1,024-pair batch would take minutes
    finally:
        client.kill()
        client.wait()


def test_a_gone_clients_work_is_dropped(server):
    """Was: the server kept scoring a killed client's 1,024 pairs for 41.9 s; the next request waited 38.8 s."""
    cancelled = metrics(server).get('osrerank_rejected_total{reason="client_gone"}', 0)
    pairs = [{"text": QUERY, "text_pair": LONG_DOC} for _ in range(1024)]
    big = json.dumps({"inputs": pairs, "parameters": {"truncation": True}}).encode()
    client = post_in_background(server, big)
    time.sleep(2.0)
    os.kill(client.pid, signal.SIGKILL)
    client.wait()
    time.sleep(1.0)  # the current slice finishes; the rest is dropped
    started = time.monotonic()
    assert good(server, ["Washington, D.C."]).status_code == 200
    assert time.monotonic() - started < 2.0
    deadline = time.monotonic() + 10
    while metrics(server).get('osrerank_rejected_total{reason="client_gone"}', 0) <= cancelled:
        assert time.monotonic() < deadline, "the gone client was not noticed"
        time.sleep(0.2)


@pytest.mark.parametrize("megabytes", [5, 15])
def test_memory_stays_bounded_for_the_largest_bodies(server, megabytes):
    """Was: one 5 MB / 15 MB body peaked at 1.67 / 3.38 GB of RSS, 2.2 GB still held afterwards."""
    Path(f"/proc/{server.pid}/clear_refs").write_text("5")  # restart the peak (VmHWM) from now
    idle = rss_mb(server)
    body = json.dumps({"inputs": [{"text": QUERY, "text_pair": "word " * (megabytes * 200_000)}],
                       "parameters": {"truncation": True}}).encode()  # fmt: skip
    reply = requests.post(url(server, "/invocations"), data=body, headers=bearer(), timeout=120)
    assert reply.status_code == 200, reply.text
    peak = rss_mb(server, "VmHWM")
    assert peak - idle < 1024, f"peak {peak:.0f} MB, idle {idle:.0f} MB"
    assert rss_mb(server) - idle < 512


def test_an_overlong_body_without_truncation_is_refused_before_scoring(server):
    """Was: 400, but only after scoring for 11.3 s."""
    body = json.dumps({"inputs": [{"text": QUERY, "text_pair": "word " * 1_000_000}]}).encode()
    started = time.monotonic()
    reply = requests.post(url(server, "/invocations"), data=body, headers=bearer(), timeout=120)
    assert reply.status_code == 400 and "truncation" in reply.json()["error"]
    assert time.monotonic() - started < 3.0


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (json.dumps({"query": "\udc00", "texts": ["a"]}).encode(), "lone surrogate"),
        (b'{"query": "q", "texts": [1]}', "must be a string"),
        (b"\xff\xfe not json", "not valid JSON"),
    ],
    ids=["deep", "surrogate", "not-a-string", "bytes"],
)
def test_client_mistakes_are_4xx_never_a_model_failure(server, body, fragment):
    """Was: 424 with a server-side traceback."""
    reply = requests.post(url(server, "/rerank"), data=body, headers=bearer(), timeout=60)
    assert reply.status_code == 400 and fragment in reply.json()["error"]
    assert reply.json()["error_type"] == "validation"
    assert "Traceback" not in log_text(server)


def test_unsigned_payload_signature_is_refused(server):
    """Was: accepted, so a captured signature would carry any body for 15 minutes."""
    body = json.dumps({"inputs": [{"text": QUERY, "text_pair": "x"}]}).encode()
    headers = signed(server, body, **{"X-Amz-Content-SHA256": "UNSIGNED-PAYLOAD"})
    reply = requests.post(url(server), data=body, headers=headers, timeout=30)
    assert reply.status_code == 403 and "UNSIGNED-PAYLOAD" in reply.json()["error"]


def test_refusals_are_logged_and_counted(server):
    """Was: 403 and 413 were never logged and never counted."""
    before = metrics(server)
    requests.post(url(server), data=b"{}", timeout=30)  # unsigned: 403
    too_big = b"x" * (16 * 1024 * 1024 + 1)
    requests.post(url(server, "/rerank"), data=too_big, headers=bearer(), timeout=60)  # 413
    requests.post(url(server, "/rerank"), data=b"[]", headers=bearer(), timeout=60)  # 400
    after = metrics(server)
    for reason in ("authentication", "too_large", "validation"):
        key = f'osrerank_rejected_total{{reason="{reason}"}}'
        assert after[key] == before.get(key, 0) + 1, reason
    assert after["osrerank_accepted_total"] == before["osrerank_accepted_total"]
    log = log_text(server)
    assert '"rejected": "authentication"' in log and '"error_type": "too_large"' in log
    assert SECRET not in log and TOKEN not in log


def test_aws_region_is_the_signing_scope_unless_given(test_model_dir, tmp_path):
    """Was: the stand-in ignored AWS_REGION, so requests ml-commons signed for us-west-2 got 403."""
    proc, info = serve(test_model_dir, tmp_path / "serve.log", AWS_REGION="us-west-2")
    try:
        body = json.dumps({"inputs": [{"text": QUERY, "text_pair": "x"}]}).encode()
        request = AWSRequest("POST", url(info), data=body, headers={"Content-Type": "application/json"})
        SigV4Auth(Credentials(KEY, SECRET), "sagemaker", "us-west-2").add_auth(request)
        assert requests.post(url(info), data=body, headers=dict(request.headers), timeout=30).status_code == 200
    finally:
        proc.terminate()
        proc.wait(30)


def test_a_failing_replacement_leaves_the_working_stand_in_running(test_model_dir, tmp_path, monkeypatch):
    """Was: `setup --model /nonexistent` after a demo stopped the demo's stand-in, then failed. Now the server that
    cannot load its model refuses with one line (a ConfigError), and the working one keeps answering."""
    from osrerank.errors import ConfigError
    from osrerank.scorer import ModelOptions
    from osrerank.server.run import ServerSpec
    from osrerank.targets.standin import StandInProcess

    monkeypatch.setenv("OSRERANK_CACHE", str(tmp_path / "cache"))  # the state file and local keys: this test's
    stand_in = StandInProcess("osrerank-hostile-replace")
    working, started = stand_in.start(ServerSpec(model=ModelOptions(path=str(test_model_dir))))
    try:
        assert started
        broken = tmp_path / "model"
        broken.mkdir()
        with pytest.raises(ConfigError, match=r"has no onnx/model\.onnx"):
            stand_in.start(ServerSpec(model=ModelOptions(path=str(broken))))
        running = stand_in.info()
        assert running is not None and running.pid == working.pid
        assert running.server_spec.model.path == str(Path(test_model_dir).resolve())  # settings keep absolute paths
        assert ping(working.base_url)
    finally:
        stand_in.stop()
