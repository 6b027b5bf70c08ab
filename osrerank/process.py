"""Background processes the kit starts and finds again: the OpenSearch node(s) and the stand-in.

One lifecycle for both: spawn detached in its own session (so a stop reaches the whole group) with
output to a log file, wait until a readiness probe answers (failing early, with the log's tail, if
the process exits), tell whether a pid is alive (zombies count as dead), and stop with SIGTERM, then
SIGKILL after a grace period. Probes use plain HTTP and never raise.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import requests

from .backoff import Backoff
from .errors import OsRerankError

__all__ = ["alive", "free_port", "http_ok", "port_in_use", "spawn", "stop", "tail", "wait_ready"]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex((host, port)) == 0


def http_ok(url: str, timeout: float = 5.0, params: dict[str, str] | None = None) -> bool:
    """Whether a GET of ``url`` answers 200 (connection errors and timeouts are just "no")."""
    try:
        return requests.get(url, params=params, timeout=timeout).status_code == 200
    except requests.RequestException:
        return False


def spawn(
    cmd: list[str],
    *,
    log: Path,
    env: Mapping[str, str],
    error: type[OsRerankError],
    cwd: Path | None = None,
    user: int | None = None,
    group: int | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` detached (its own session), stdout and stderr appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    try:
        with open(log, "ab") as out:
            return subprocess.Popen(
                cmd,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=dict(env),
                cwd=cwd,
                start_new_session=True,
                user=user,
                group=group,
            )
    except OSError as exc:
        raise error(f"cannot start {cmd[0]}: {exc.strerror or exc}") from exc


def wait_ready(
    proc: subprocess.Popen[bytes],
    ready: Callable[[], bool],
    *,
    what: str,
    log: Path,
    timeout_s: float,
    error: type[OsRerankError],
) -> None:
    """Poll ``ready`` until it holds; raise ``error`` with the log's tail if the process exits or time runs out
    (then the process is stopped: nothing is left half-started)."""
    deadline, pause = time.monotonic() + timeout_s, Backoff()
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise error(f"{what} exited while starting (code {proc.returncode}). Last lines of {log}:\n{tail(log)}")
        if ready():
            return
        pause.sleep()
    stop(proc.pid)
    raise error(f"{what} did not become ready within {timeout_s:.0f}s. Last lines of {log}:\n{tail(log)}")


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, reaped here when it is our child, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return Path(f"/proc/{pid}").exists() and "Z" not in _proc_state(pid)


def stop(pid: int, grace_s: float = 30.0) -> bool:
    """SIGTERM the process group, SIGKILL it after ``grace_s``; True if something was running."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.2)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        return True
    while alive(pid):
        time.sleep(0.1)
    return True


def stop_recorded(state_file: Path, grace_s: float) -> bool:
    """Stop the process whose pid a server's state file records, and forget it; True if one was stopped."""
    try:
        pid = int(json.loads(state_file.read_text())["pid"])
    except (OSError, ValueError, KeyError):
        return False
    state_file.unlink(missing_ok=True)
    return stop(pid, grace_s=grace_s)


def tail(path: Path, lines: int = 30) -> str:
    """The last lines of a log file (or a note that there is none)."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log written)"


def _proc_state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except OSError:
        return ""
