"""Shared pytest fixtures for the end-to-end suites: start the real inferd binary on free
loopback ports, wait until it reports ready, and stop it with SIGTERM afterwards."""

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]


def inferd_bin() -> str:
    path = os.environ.get("INFERD_BIN") or str(ROOT / "target" / "release" / "inferd")
    if not os.path.exists(path):
        raise RuntimeError(f"inferd binary not found at {path}: run `cargo build --release` first")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Inferd:
    """A running inferd process. `args` are passed after `serve`."""

    def __init__(self, args=(), env=None, ready_timeout=30.0):
        self.http_port = free_port()
        self.grpc_port = free_port()
        self.metrics_port = free_port()
        self.url = f"http://127.0.0.1:{self.http_port}"
        self.grpc_url = f"127.0.0.1:{self.grpc_port}"
        self.metrics_url = f"http://127.0.0.1:{self.metrics_port}"
        cmd = [
            inferd_bin(), "serve", "--host", "127.0.0.1",
            "--http-port", str(self.http_port),
            *self._optional_ports(),
            "--shutdown-delay", "0",
            *args,
        ]
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.proc = subprocess.Popen(cmd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self._wait_ready(ready_timeout)

    def _optional_ports(self):
        help_text = subprocess.run([inferd_bin(), "serve", "--help"], capture_output=True, text=True).stdout
        extra = []
        if "--grpc-port" in help_text:
            extra += ["--grpc-port", str(self.grpc_port)]
        if "--metrics-port" in help_text:
            extra += ["--metrics-port", str(self.metrics_port)]
        return extra

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out = self.proc.stdout.read().decode(errors="replace")
                raise RuntimeError(f"inferd exited with {self.proc.returncode}:\n{out}")
            try:
                if requests.get(self.url + "/v2/health/ready", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("inferd did not become ready in time")

    def stop(self, sig=signal.SIGTERM, timeout=30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def output(self) -> str:
        return self.proc.stdout.read().decode(errors="replace") if self.proc.stdout else ""


@pytest.fixture(scope="module")
def inferd():
    """inferd serving its built-in iris model."""
    server = Inferd()
    yield server
    server.stop()


@pytest.fixture
def start_inferd():
    """Factory: start_inferd(args...) -> Inferd, stopped at the end of the test."""
    started = []

    def start(*args, env=None):
        server = Inferd(args, env=env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


# The management token the repository suites use (management needs one of 16+ characters).
MANAGEMENT_TOKEN = "test-management-token-0123456789"
MANAGEMENT_AUTH = {"Authorization": f"Bearer {MANAGEMENT_TOKEN}"}


def start_with_repository(start_inferd, repo, *extra):
    """inferd on a model repository, rescanned every 0.2 s, with the management API on a port
    of its own (`server.management_url`)."""
    port = free_port()
    server = start_inferd(
        "--model-repository", str(repo), "--repository-poll-interval", "0.2",
        "--management", "--management-port", str(port), *extra,
        env={"INFERD_MANAGEMENT_TOKEN": MANAGEMENT_TOKEN},
    )
    server.management_url = f"http://127.0.0.1:{port}"
    return server


def rss_mb(pid: int) -> float:
    """A process's resident memory, in MB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")
