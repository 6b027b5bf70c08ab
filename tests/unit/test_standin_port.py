"""A stand-in started without a port takes any free one; if another process binds that port between the probe
and the server's own bind (CI saw it with two stand-ins started side by side), the start takes another port
instead of failing, and never takes the server already there for its own. A real server process on the tiny
model, about 5 s a case."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from osrerank import process
from osrerank.scorer import ModelOptions
from osrerank.server.options import ServerOptions
from osrerank.server.run import ServerSpec
from osrerank.targets.standin import StandInProcess


class _OtherServer(BaseHTTPRequestHandler):
    """Another stand-in holding the port: its /ping answers "ok" (with its own pid)."""

    def do_GET(self) -> None:
        body = json.dumps({"status": "ok", "pid": 1}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(params=["silent", "answering"])
def taken_port(request: pytest.FixtureRequest) -> Iterator[int]:
    """A port something else listens on: a socket that never answers, or a server whose /ping says "ok" (which
    must not be taken for the stand-in being started)."""
    if request.param == "silent":
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            s.listen()
            yield int(s.getsockname()[1])
        return
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OtherServer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def test_a_port_taken_after_the_probe_is_replaced_by_another(
    tiny_model_dir: Path, taken_port: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OSRERANK_CACHE", str(tmp_path))
    found = iter([taken_port])
    real = process.free_port
    monkeypatch.setattr(process, "free_port", lambda: next(found, None) or real())
    standin = StandInProcess("osrerank-unit-port")
    spec = ServerSpec(model=ModelOptions(path=str(tiny_model_dir)), server=ServerOptions(auth=False))
    info, started = standin.start(spec)
    try:
        assert started
        assert not info.base_url.endswith(f":{taken_port}")
        assert requests.get(f"{info.base_url}/ping", timeout=10).json()["status"] == "ok"
        assert "address already in use" in standin.log_file.read_text()  # the first start did meet the taken port
    finally:
        standin.stop()


def test_a_port_asked_for_and_taken_is_the_users_error(
    tiny_model_dir: Path, taken_port: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OSRERANK_CACHE", str(tmp_path))
    standin = StandInProcess("osrerank-unit-port-asked")
    spec = ServerSpec(model=ModelOptions(path=str(tiny_model_dir)), server=ServerOptions(auth=False, port=taken_port))
    with pytest.raises(Exception, match="address already in use"):
        standin.start(spec)
    assert standin.log_file.read_text().count("address already in use") == 1  # no second try on the same port
