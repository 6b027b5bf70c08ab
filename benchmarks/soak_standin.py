"""Soak: the stand-in with 8 good signed clients, first alone, then beside 2 hostile clients.

    python benchmarks/soak_standin.py [--model DIR] [--baseline-s 30] [--seconds 60] [--json]

Good clients send SigV4-signed SageMaker requests of one SciFact query and 10 SciFact passages
(title + text) and check every score against the model scored in this process (to 1e-5). The hostile
clients, on 127.0.0.1 only, loop over: a text with a lone surrogate; a maximal body (1,024 long pairs)
abandoned after 2 s; a 15 MB single text; an unsigned maximal body; JSON nested 100k deep. Prints the
good requests' success rate and p50/p99 in both phases, their ratio, and the server's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import requests
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from osrerank.ingest import read_jsonl
from osrerank.process import free_port
from osrerank.scorer import load_scorer

ROOT = Path(__file__).resolve().parents[2]
KEY, SECRET, TOKEN = "AKIASOAKTEST", "soak-secret", "soak-token"


def start(model: str, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "AWS_ACCESS_KEY_ID": KEY, "AWS_SECRET_ACCESS_KEY": SECRET, "OSRERANK_BEARER_TOKEN": TOKEN}
    with log.open("wb") as out:
        cmd = [sys.executable, "-m", "osrerank", "serve", "--model", model, "--port", str(port)]
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if requests.get(f"{url}/ping", timeout=1).ok:
                return proc, url
        except requests.RequestException:
            time.sleep(0.2)
    raise SystemExit(f"the stand-in did not start: {log.read_text()[-2000:]}")


def signed_headers(url: str, body: bytes) -> dict[str, str]:
    request = AWSRequest("POST", url, data=body, headers={"Content-Type": "application/json"})
    SigV4Auth(Credentials(KEY, SECRET), "sagemaker", "us-east-1").add_auth(request)
    return dict(request.headers)


def rss_mb(pid: int, field: str) -> float:
    """VmRSS (now) or VmHWM (peak) of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Good(threading.Thread):
    def __init__(self, url: str, work: list[tuple[bytes, np.ndarray]], until: float) -> None:
        super().__init__(daemon=True)
        self.url, self.work, self.until = url + "/invocations", work, until
        self.latencies: list[float] = []
        self.sent = self.wrong = self.failed = 0

    def run(self) -> None:
        session, i = requests.Session(), 0
        while time.monotonic() < self.until:
            body, expected = self.work[i % len(self.work)]
            i += 1
            self.sent += 1
            started = time.monotonic()
            try:
                reply = session.post(self.url, data=body, headers=signed_headers(self.url, body), timeout=60)
            except requests.RequestException:
                self.failed += 1
                continue
            self.latencies.append(time.monotonic() - started)
            if reply.status_code != 200:
                self.failed += 1
            elif not np.allclose([r["score"] for r in reply.json()], expected, atol=1e-5):
                self.wrong += 1


def hostile(url: str, until: float, counts: dict[str, int]) -> None:
    long_doc = ("Cells divide and proteins fold in many ways across tissues and species. " * 60)[:4000]
    maximal = json.dumps({"inputs": [{"text": "q", "text_pair": long_doc}] * 1024, "parameters": {"truncation": True}})
    attacks = [
        ("bad unicode", f"{url}/rerank", json.dumps({"query": "q", "texts": ["ok", "\ud800"]}).encode(), True),
        ("abandoned maximal", f"{url}/invocations", maximal.encode(), "sigv4"),
        ("15 MB text", f"{url}/invocations", json.dumps({"inputs": [{"text": "q", "text_pair": "word " * 3_000_000}],
                                                        "parameters": {"truncation": True}}).encode(), True),
        ("unsigned maximal", f"{url}/invocations", maximal.encode(), False),
        ("deep json", f"{url}/rerank", b"[" * 100_000 + b"]" * 100_000, True),
    ]  # fmt: skip
    i = 0
    while time.monotonic() < until:
        name, target, body, auth = attacks[i % len(attacks)]
        i += 1
        headers = {"Content-Type": "application/json"}
        if auth == "sigv4":
            headers = signed_headers(target, body)
        elif auth:
            headers["Authorization"] = f"Bearer {TOKEN}"
        try:
            timeout = 2 if name == "abandoned maximal" else 60
            status = str(requests.post(target, data=body, headers=headers, timeout=timeout).status_code)
        except requests.RequestException:
            status = "abandoned"
        counts[f"{name}: {status}"] = counts.get(f"{name}: {status}", 0) + 1


def phase(url: str, work: list[tuple[bytes, np.ndarray]], seconds: float, hostile_clients: int) -> dict[str, object]:
    until = time.monotonic() + seconds
    goods = [Good(url, work, until) for _ in range(8)]
    counts: dict[str, int] = {}
    bad = [threading.Thread(target=hostile, args=(url, until, counts), daemon=True) for _ in range(hostile_clients)]
    for t in goods + bad:
        t.start()
    for t in goods + bad:
        t.join()
    latencies = [x for g in goods for x in g.latencies]
    sent = sum(g.sent for g in goods)
    answered_right = sum(g.sent - g.failed - g.wrong for g in goods)
    p50, p99 = (float(np.percentile(latencies, q)) * 1000 for q in (50, 99))
    return {
        "good_requests": sent,
        "good_answered_correctly": answered_right,
        "good_success_rate": answered_right / max(sent, 1),
        "good_p50_ms": round(p50, 1),
        "good_p99_ms": round(p99, 1),
        "hostile": dict(sorted(counts.items())),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "shared/models/minilm-l6-random-head"))
    parser.add_argument("--baseline-s", type=float, default=30)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    documents = read_jsonl(ROOT / "shared/data/beir/scifact/corpus.jsonl")
    corpus = [f"{d['title']}. {d['text']}" for _, d in zip(range(200), documents, strict=False)]
    scorer = load_scorer(args.model)
    work = []
    for i in range(20):
        docs = corpus[i * 10 : i * 10 + 10]
        query = "What do these studies find about cell biology?"
        body = json.dumps(
            {"inputs": [{"text": query, "text_pair": d} for d in docs], "parameters": {"truncation": True}}
        )
        work.append((body.encode(), scorer.predict([(query, d) for d in docs])))
    log = Path("/tmp/osrerank-soak.log")
    proc, url = start(args.model, log)
    try:
        idle = rss_mb(proc.pid, "VmRSS")
        baseline = phase(url, work, args.baseline_s, hostile_clients=0)
        attacked = phase(url, work, args.seconds, hostile_clients=2)
        figures = {
            "machine": f"{os.cpu_count()} CPUs",
            "baseline": baseline,
            "with_hostile": attacked,
            "p99_ratio": round(float(attacked["good_p99_ms"]) / float(baseline["good_p99_ms"]), 2),
            "server_idle_rss_mb": round(idle, 0),
            "server_peak_rss_mb": round(rss_mb(proc.pid, "VmHWM"), 0),
            "server_log_tracebacks": log.read_text(errors="replace").count("Traceback"),
        }
    finally:
        proc.terminate()
        proc.wait(30)
    if args.json:
        print(json.dumps(figures))
        return
    for name in ("baseline", "with_hostile"):
        f = figures[name]
        print(
            f"{name:13} good {f['good_answered_correctly']}/{f['good_requests']} correct "  # type: ignore[index]
            f"({f['good_success_rate']:.1%}), p50 {f['good_p50_ms']} ms, p99 {f['good_p99_ms']} ms"
        )  # type: ignore[index]
    print(
        f"p99 with hostile / without: {figures['p99_ratio']}x; server RSS {figures['server_idle_rss_mb']:.0f} MB idle, "
        f"peak {figures['server_peak_rss_mb']:.0f} MB; tracebacks in its log: {figures['server_log_tracebacks']}"
    )
    print("hostile requests:", json.dumps(attacked["hostile"]))


if __name__ == "__main__":
    main()
