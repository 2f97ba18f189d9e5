"""Starting the real service in a child process (`python -m service`, uvicorn on 127.0.0.1 and a free port) and
waiting until /readyz answers 200: the harness of the benchmarks and the tests (tests/helpers.py), which
exercise the real server. It is no part of the service, and not in its wheel."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class LiveServer:
    process: subprocess.Popen
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/v1/stream"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout_s: float = 60) -> int:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_server(log_dir: Path, env: dict[str, str] | None = None, ready_timeout_s: float = 180) -> LiveServer:
    port = free_port()
    log_path = log_dir / f"server-{port}.log"
    environment = {**os.environ, "ASR_HOST": "127.0.0.1", "ASR_PORT": str(port), "ASR_TORCH_THREADS": "2",
                   **(env or {})}
    process = subprocess.Popen([sys.executable, "-m", "service"], cwd=ROOT, env=environment,
                               stdout=open(log_path, "w"), stderr=subprocess.STDOUT)
    server = LiveServer(process, port, log_path)
    deadline = time.monotonic() + ready_timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{server.log()}")
        try:
            if httpx.get(f"{server.url}/readyz", timeout=2).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    server.stop()
    raise RuntimeError(f"server not ready after {ready_timeout_s} s:\n{server.log()}")
